#!/bin/sh
# /init of the Fulcrum discovery ramdisk (template: src/images/discovery-init.sh; docs/discovery-image.md).
# busybox ash as PID 1: mount, load the drivers the hardware asks for, bring every NIC with link up
# by DHCP, then run `fulcrum-agent --api <fulcrum.api>`. PID 1 never exits: a failure is retried
# with backoff, or with fulcrum.debug a shell is started on the console first (exit it to retry).
#
# Kernel parameters:
#   fulcrum.api=URL        the Fulcrum API the agent registers with
#   fulcrum.mac=MAC        the NIC the machine booted from (its default route is preferred)
#   fulcrum.debug          on failure, a shell on the console instead of silent retries
#   fulcrum.modules=a,b    load these modules too (they must be in the image)
#   fulcrum.link_timeout=S DHCP starts on each NIC when its link comes up, for up to S s (default 10)
#   fulcrum.dhcp_timeout=S then wait up to S more seconds for a first lease (default 30)
#   fulcrum.test=poweroff  after modules and DHCP: print FULCRUM-TEST lines and power off
IMAGE_ID='@@IMAGE_ID@@'
IMAGE_KERNEL='@@KERNEL_RELEASE@@'
AGENT_IN_IMAGE='@@AGENT@@'

export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=linux
umask 022
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run/net /tmp /var/lib /var/log
mount -t devpts devpts /dev/pts 2>/dev/null
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
exec 0</dev/console 1>/dev/console 2>&1

LOG=/run/fulcrum-init.log
# console=ttyS0 console=tty0 sends /dev/console to the last one only: write to every active one.
CONSOLES=""
for c in $(cat /sys/class/tty/console/active 2>/dev/null); do
  [ -c "/dev/$c" ] && CONSOLES="$CONSOLES /dev/$c"
done
[ -n "$CONSOLES" ] || CONSOLES=/dev/console
# fulcrum-init[<seconds since boot>]: message
say() { echo "fulcrum-init[$(cut -d' ' -f1 /proc/uptime)]: $*" | tee -a "$LOG" $CONSOLES >/dev/null 2>&1; }
# A line for every console without the prefix (test markers, agent output).
emit() { echo "$*" | tee -a "$LOG" $CONSOLES >/dev/null 2>&1; }

API="" BOOT_MAC="" DEBUG=0 TEST="" EXTRA_MODULES="" LINK_TIMEOUT=10 DHCP_TIMEOUT=30
set -f
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    fulcrum.api=*) API=${arg#*=} ;;
    fulcrum.mac=*) BOOT_MAC=$(echo "${arg#*=}" | tr 'A-F-' 'a-f:') ;;
    fulcrum.debug|fulcrum.debug=1|fulcrum.debug=y*|fulcrum.debug=true) DEBUG=1 ;;
    fulcrum.test=*) TEST=${arg#*=} ;;
    fulcrum.modules=*) EXTRA_MODULES=$(echo "${arg#*=}" | tr ',' ' ') ;;
    fulcrum.link_timeout=*) LINK_TIMEOUT=${arg#*=} ;;
    fulcrum.dhcp_timeout=*) DHCP_TIMEOUT=${arg#*=} ;;
  esac
done
set +f
case "$LINK_TIMEOUT" in ''|*[!0-9]*) LINK_TIMEOUT=10 ;; esac
case "$DHCP_TIMEOUT" in ''|*[!0-9]*) DHCP_TIMEOUT=30 ;; esac

KREL=$(uname -r)
say "Fulcrum discovery image $IMAGE_ID (kernel $KREL)"
[ "$KREL" = "$IMAGE_KERNEL" ] || say "warning: this initrd was built for kernel $IMAGE_KERNEL, not $KREL: no modules will load"
hostname fulcrum-discovery

# Drivers: modprobe every device's modalias (modules.alias in the image maps them) until no new
# module loads, since loading a bus driver (virtio_pci, ahci...) makes new devices appear.
load_modules() {
  [ -f "/lib/modules/$KREL/modules.dep" ] || { say "no modules for kernel $KREL in this image"; return 0; }
  for m in $(cat "/lib/modules/$KREL/fulcrum.load" 2>/dev/null) $EXTRA_MODULES; do
    modprobe -q "$m" || say "cannot load module $m"
  done
  before=-1 stable=0 round=0
  while [ $round -lt 30 ]; do
    round=$((round + 1))
    modprobe -q -a $(cat /sys/bus/*/devices/*/modalias 2>/dev/null | sort -u) 2>/dev/null
    now=$(wc -l < /proc/modules)
    if [ "$now" = "$before" ]; then
      stable=$((stable + 1))
      [ $stable -ge 2 ] && break
    else
      stable=0
    fi
    before=$now
    usleep 100000
  done
  [ "${1:-}" = quiet ] || say "modules: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
}

# Physical Ethernet NICs (type 1 with a device behind it).
nics() {
  for p in /sys/class/net/*; do
    n=${p##*/}
    [ "$n" = lo ] && continue
    [ -e "$p/device" ] && [ "$(cat "$p/type" 2>/dev/null)" = 1 ] && echo "$n"
  done
}
carrier() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }
driver_of() { [ -e "$1/driver" ] && basename "$(readlink "$1/driver")"; }

running() { pid=$(cat "/run/net/$1.pid" 2>/dev/null); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# One udhcpc per NIC, started as soon as the NIC has link; it keeps running: it retries until it
# gets a lease, then renews it. The boot NIC (fulcrum.mac) gets the preferred default route.
dhcp_on() {
  n=$1
  mac=$(cat "/sys/class/net/$n/address")
  ifindex=$(cat "/sys/class/net/$n/ifindex" 2>/dev/null)
  metric=$((200 + ${ifindex:-0}))
  [ "$mac" = "$BOOT_MAC" ] && metric=10
  IF_METRIC=$metric udhcpc -f -i "$n" -s /usr/share/udhcpc/default.script -t 4 -T 2 -A 5 \
    -V fulcrum-discovery >> "/run/net/$n.log" 2>&1 &
  echo $! > "/run/net/$n.pid"
  say "$n ($mac, $(driver_of "/sys/class/net/$n/device")): link up, DHCP started"
}

# Link up on every NIC; DHCP on each as its link comes, until all have it or LINK_TIMEOUT passed.
start_dhcp() {
  for n in $(nics); do ip link set dev "$n" up 2>/dev/null; done
  t=0
  while :; do
    pending=""
    for n in $(nics); do
      running "$n" && continue
      if carrier "$n"; then dhcp_on "$n"; else pending="$pending $n"; fi
    done
    [ -z "$pending" ] && return 0
    if [ $t -ge $((LINK_TIMEOUT * 10)) ]; then
      say "no link after ${LINK_TIMEOUT}s on:$pending"
      return 0
    fi
    usleep 100000
    t=$((t + 1))
  done
}

boot_nic() {
  [ -n "$BOOT_MAC" ] || return 1
  for n in $(nics); do [ "$(cat "/sys/class/net/$n/address")" = "$BOOT_MAC" ] && { echo "$n"; return 0; }; done
  return 1
}

# A lease on the boot NIC (fulcrum.mac: it reached Fulcrum to boot), else on any NIC.
wait_lease() {
  bn=$(boot_nic)
  t=0
  while [ $t -lt $(((LINK_TIMEOUT + DHCP_TIMEOUT) * 10)) ]; do
    if [ -n "$bn" ]; then
      [ -s "/run/net/$bn.ip" ] && return 0
    else
      for f in /run/net/*.ip; do [ -s "$f" ] && return 0; done
    fi
    usleep 100000
    t=$((t + 1))
  done
  for f in /run/net/*.ip; do [ -s "$f" ] && { say "no lease on the boot NIC $bn; going on with the others"; return 0; }; done
  return 1
}

links() {
  for n in $(nics); do
    if carrier "$n"; then echo "$n:link"; else echo "$n:no-link"; fi
  done | tr '\n' ' '
}

addresses() {
  for f in /run/net/*.ip; do [ -s "$f" ] && { n=${f##*/}; echo "${n%.ip}=$(cat "$f")"; }; done | tr '\n' ' '
}

BACKOFF=5
# A shell on every active console (serial for a BMC's serial-over-LAN, tty0 for its KVM); the
# first one to exit ends the others, and the caller goes on (retries).
debug_shell() {
  say "fulcrum.debug: a shell on$CONSOLES; logs in /run/fulcrum-init.log, /run/net/; exit the shell to retry"
  pids=""
  for c in $CONSOLES; do
    setsid sh -c "exec sh -l <>$c >&0 2>&1" &
    pids="$pids $!"
  done
  while :; do
    for p in $pids; do kill -0 "$p" 2>/dev/null || break 2; done
    sleep 1
  done
  kill -HUP $pids 2>/dev/null
}
fail() {
  say "$*"
  # Devices that showed up late (USB keyboards and NICs, slow controllers) get their drivers now.
  load_modules quiet
  if [ "$DEBUG" = 1 ]; then
    debug_shell
  else
    say "retrying in ${BACKOFF}s (boot with fulcrum.debug for a shell on the console)"
    sleep "$BACKOFF"
    [ "$BACKOFF" -lt 60 ] && BACKOFF=$((BACKOFF * 2))
  fi
}

# fulcrum.test=poweroff: what the image saw, on the console, then power off (QEMU -no-reboot exits).
test_report() {
  ip=""
  for n in $(nics); do
    a=$(cat "/run/net/$n.ip" 2>/dev/null)
    [ -z "$ip" ] && [ -n "$a" ] && ip=${a%/*}
    emit "FULCRUM-TEST nic $n mac=$(cat "/sys/class/net/$n/address") driver=$(driver_of "/sys/class/net/$n/device") carrier=$(cat "/sys/class/net/$n/carrier" 2>/dev/null) ip=${a:-none}"
  done
  disks=""
  for b in /sys/block/*; do
    [ -e "$b/size" ] || continue
    d=${b##*/}
    case "$d" in loop*|ram*|zram*|dm-*|sr*|nbd*) continue ;; esac
    disks="$disks $d"
    sectors=$(cat "$b/size" 2>/dev/null)
    emit "FULCRUM-TEST disk $d size_bytes=$(( ${sectors:-0} * 512 )) rotational=$(cat "$b/queue/rotational") removable=$(cat "$b/removable") driver=$(driver_of "$b/device")"
  done
  api=unset
  if [ -n "$API" ]; then
    # busybox 1.35 wget -T segfaults: bound it with timeout instead.
    if timeout 5 wget -q -O /dev/null "$API" 2>/dev/null; then api=reachable; else api=unreachable; fi
  fi
  emit "FULCRUM-TEST ready ip=${ip:-none} nics=$(nics | tr '\n' ',' | sed 's/,$//') disks=$(echo $disks | tr ' ' ',') api=$api agent=$AGENT_IN_IMAGE uptime=$(cut -d' ' -f1 /proc/uptime) modules=$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ',' | sed 's/,$//')"
}

# The agent: the one in the image, else the server's copy (GET /api/v1/agent/fulcrum-agent.sh).
run_agent() {
  agent=/usr/bin/fulcrum-agent
  if [ ! -x "$agent" ]; then
    say "no agent in this image; fetching it from ${API%/}/api/v1/agent/fulcrum-agent.sh"
    agent=/run/fulcrum-agent
    rm -f "$agent"
    if ! timeout 30 wget -q -O "$agent" "${API%/}/api/v1/agent/fulcrum-agent.sh" || [ ! -s "$agent" ]; then
      say "cannot fetch the agent from $API"
      return 1
    fi
    chmod 755 "$agent"
  fi
  say "starting fulcrum-agent --api $API ($(addresses))"
  rm -f /run/agent.rc
  { FULCRUM_BOOT_MAC=$BOOT_MAC "$agent" --api "$API"; echo $? > /run/agent.rc; } 2>&1 | tee -a /var/log/fulcrum-agent.log $CONSOLES >/dev/null 2>&1
  return "$(cat /run/agent.rc 2>/dev/null || echo 1)"
}

main() {
  load_modules
  while :; do
    if [ -z "$(nics)" ]; then
      fail "no network interface found (no driver in this image for the NICs, or no NIC); PCI devices: $(cat /sys/bus/pci/devices/*/modalias 2>/dev/null | cut -c1-22 | sort -u | tr '\n' ' ')"
      continue
    fi
    # In the background: a NIC whose link comes late still gets DHCP while the agent starts.
    [ -n "${linker:-}" ] && wait "$linker" 2>/dev/null
    start_dhcp &
    linker=$!
    if ! wait_lease; then
      wait "$linker"
      fail "no DHCP lease on any NIC (NICs: $(links); see /run/net/*.log)"
      continue
    fi
    say "network: $(addresses)"
    if [ "$TEST" = poweroff ]; then
      test_report
      say "fulcrum.test=poweroff: powering off"
      sync
      poweroff -f
      sleep 60
    fi
    if [ -z "$API" ]; then
      fail "no fulcrum.api=URL on the kernel command line: nothing to register with"
      continue
    fi
    run_agent
    rc=$?
    if [ $rc = 0 ]; then
      say "the agent stopped as asked; idle"
      [ "$DEBUG" = 1 ] && debug_shell
      while :; do sleep 3600; done
    fi
    fail "the agent exited with status $rc"
  done
}

# PID 1 must never exit (the kernel panics): main runs in a subshell, so that even a shell error
# in it (ash exits on some) only ends the subshell, and PID 1 starts it again.
while :; do
  ( main )
  say "the main loop ended (status $?); starting it again in 10s"
  [ "$DEBUG" = 1 ] && debug_shell
  sleep 10
done
