#!/bin/sh
# fulcrum-agent: registers this machine with Fulcrum, reports its inventory, then runs the jobs
# the annealer gives it (DESIGN.md §3 "Agent"). POSIX sh: runs under busybox ash and bash, needs
# only curl or wget. It parses no JSON: the server answers in key=value lines and sends each job
# as a shell bundle that unpacks the job's scripts and attrib values into a work directory.
#
#   fulcrum-agent --api URL [--state DIR] [--once]
#   fulcrum-agent --api URL [--state DIR] --install-service [--root DIR]
#       installs itself as /usr/local/sbin/fulcrum-agent with a systemd unit (enabled and started
#       when systemd runs), so an installed system keeps running its work across reboots.
#
# Environment: FULCRUM_API, FULCRUM_STATE (default /var/lib/fulcrum-agent),
# FULCRUM_MACHINE_UUID (overrides the DMI system UUID: namespace nodes share one host's DMI),
# FULCRUM_HTTP=wget (use wget even where curl exists),
# FULCRUM_REBOOT / FULCRUM_POWEROFF (shell commands replacing `reboot -f` / `poweroff -f`, e.g. on
# namespace nodes, which must never reboot their host), FULCRUM_KEXEC (the kexec program; "none"
# disables kexec).
# Exit-code bits of a job's scripts: 0 ok, 16 stop the agent, 32 power off, 64 reboot,
# 128 incomplete (run again); any of the low four bits set means failure.
set -u

API=${FULCRUM_API:-}
STATE=${FULCRUM_STATE:-/var/lib/fulcrum-agent}
ONCE=0
INSTALL=0
ROOT=
WAIT=25
while [ $# -gt 0 ]; do
  case "$1" in
    --api) API=$2; shift 2 ;;
    --state) STATE=$2; shift 2 ;;
    --once) ONCE=1; shift ;;
    --install-service) INSTALL=1; shift ;;
    --root) ROOT=${2%/}; shift 2 ;;
    *) echo "fulcrum-agent: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$API" ] || { echo "fulcrum-agent: no API URL (--api or FULCRUM_API)" >&2; exit 2; }
API=${API%/}

install_service() {
  mkdir -p "$ROOT/usr/local/sbin" "$ROOT/etc/systemd/system" || exit 1
  cp "$0" "$ROOT/usr/local/sbin/fulcrum-agent" && chmod 755 "$ROOT/usr/local/sbin/fulcrum-agent" || exit 1
  cat > "$ROOT/etc/systemd/system/fulcrum-agent.service" <<UNIT
[Unit]
Description=Fulcrum agent: runs the work Fulcrum gives this node
Documentation=$API/api/v1/agent/fulcrum-agent.sh
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/fulcrum-agent --api $API --state $STATE
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
  log "installed $ROOT/etc/systemd/system/fulcrum-agent.service"
  if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload && systemctl enable --now fulcrum-agent.service || exit 1
  fi
  exit 0
}

log() { echo "fulcrum-agent: $*" >&2; }
# With --root, --state is the path on the installed system: nothing is created there now.
[ "$INSTALL" = 1 ] && install_service

mkdir -p "$STATE" || exit 1
TOKEN_FILE=$STATE/token

# http METHOD PATH [BODY_FILE] -> body on stdout; the status code in $STATE/status.
http() {
  method=$1 path=$2 body=${3:-}
  auth=""
  [ -s "$TOKEN_FILE" ] && auth="Authorization: Bearer $(cat "$TOKEN_FILE")"
  if [ "${FULCRUM_HTTP:-}" != wget ] && command -v curl >/dev/null 2>&1; then
    set -- -sS -m $((WAIT + 10)) -X "$method" -H "Accept: text/plain" -o "$STATE/body" -w '%{http_code}'
    [ -n "$auth" ] && set -- "$@" -H "$auth"
    [ -n "$body" ] && set -- "$@" -H "Content-Type: text/plain" --data-binary "@$body"
    curl "$@" "$API$path" > "$STATE/status" 2>"$STATE/http-error" || echo 000 > "$STATE/status"
  else
    # busybox wget -T segfaults (1.35): bound it with timeout instead; it has no way to show the
    # status of an error answer, so a failure is recorded as 000 and retried.
    set -- -q -O "$STATE/body" --header "Accept: text/plain"
    [ -n "$auth" ] && set -- "$@" --header "$auth"
    if [ "$method" = GET ]; then :; else set -- "$@" --header "Content-Type: text/plain" --post-file "${body:-/dev/null}"; fi
    if timeout $((WAIT + 10)) wget "$@" "$API$path" 2>"$STATE/http-error"; then
      if [ -s "$STATE/body" ]; then echo 200; else echo 204; fi > "$STATE/status"
    else echo 000 > "$STATE/status"; fi
  fi
  cat "$STATE/body" 2>/dev/null
}
status() { cat "$STATE/status"; }

json_escape() { sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' | tr -d '\n\r'; }
read_sys() { [ -r "$1" ] && json_escape < "$1" || true; }

# Inventory from /sys and /proc, as JSON built with printf.
inventory() {
  cpus=$(grep -c '^processor' /proc/cpuinfo 2>/dev/null || echo 0)
  model=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: //' | json_escape)
  mem=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)
  printf '{"cpu":{"count":%s,"model":"%s"},"memory_kb":%s,' "$cpus" "$model" "${mem:-0}"
  d=/sys/class/dmi/id
  printf '"dmi":{"vendor":"%s","product":"%s","serial":"%s","uuid":"%s"},' \
    "$(read_sys $d/sys_vendor)" "$(read_sys $d/product_name)" "$(read_sys $d/product_serial)" "$(machine_uuid)"
  printf '"disks":['
  sep=""
  for b in /sys/block/*; do
    [ -e "$b" ] || continue
    name=${b##*/}
    case "$name" in loop*|ram*|dm-*|sr*|zram*|nbd*) continue ;; esac
    size=$(( $(cat "$b/size" 2>/dev/null || echo 0) * 512 ))
    rot=$(cat "$b/queue/rotational" 2>/dev/null || echo 1)
    if [ "$rot" = 1 ]; then kind=HDD; else kind=SSD; fi
    printf '%s{"name":"%s","size_bytes":%s,"rotational":%s,"kind":"%s","removable":%s,"model":"%s","serial":"%s"}' "$sep" "$name" "$size" \
      "$( [ "$rot" = 1 ] && echo true || echo false)" "$kind" "$( [ "$(cat "$b/removable" 2>/dev/null)" = 1 ] && echo true || echo false)" \
      "$(read_sys "$b/device/model" | sed 's/ *$//')" "$(read_sys "$b/device/serial")"
    sep=","
  done
  printf '],"nics":['
  sep=""
  for n in /sys/class/net/*; do
    name=${n##*/}
    [ "$name" = lo ] && continue
    [ -r "$n/address" ] || continue
    driver=""; [ -e "$n/device/driver" ] && driver=$(basename "$(readlink "$n/device/driver")")
    pci=""; [ -e "$n/device" ] && pci=$(readlink -f "$n/device")
    speed=$(cat "$n/speed" 2>/dev/null || echo -1)
    case "$speed" in ''|*[!0-9-]*) speed=-1 ;; esac
    printf '%s{"name":"%s","mac":"%s","link":%s,"speed_mbps":%s,"driver":"%s","pci_path":"%s"}' "$sep" "$name" "$(cat "$n/address")" \
      "$( [ "$(cat "$n/carrier" 2>/dev/null)" = 1 ] && echo true || echo false)" "$speed" "$driver" "$pci"
    sep=","
  done
  printf ']}'
}

machine_uuid() {
  if [ -n "${FULCRUM_MACHINE_UUID:-}" ]; then echo "$FULCRUM_MACHINE_UUID"; else read_sys /sys/class/dmi/id/product_uuid; fi
}

macs() {
  for n in /sys/class/net/*; do
    [ "${n##*/}" = lo ] && continue
    cat "$n/address" 2>/dev/null
  done | grep -v '^00:00:00:00:00:00$' | tr '\n' ',' | sed 's/,$//'
}

# First contact: find-or-create by identity. The answer is key=value lines (node, name, token).
register() {
  inventory > "$STATE/inventory.json"
  {
    printf 'macs=%s\n' "$(macs)"
    printf 'uuid=%s\n' "$(machine_uuid)"
    printf 'serial=%s\n' "$(read_sys /sys/class/dmi/id/product_serial)"
    printf 'hostname=%s\n' "$(hostname 2>/dev/null)"
    printf 'inventory=%s\n' "$(cat "$STATE/inventory.json")"
  } > "$STATE/register"
  http POST /api/v1/agent/register "$STATE/register" > "$STATE/registered"
  [ "$(status)" = 200 ] || [ "$(status)" = 201 ] || return 1
  sed -n 's/^token=//p' "$STATE/registered" > "$TOKEN_FILE"
  chmod 600 "$TOKEN_FILE"
  log "registered as $(sed -n 's/^name=//p' "$STATE/registered")"
}

# Run one job: the bundle unpacks into a fresh work dir; scripts run in lexical order with set -e.
run_job() {
  work=$STATE/job
  rm -rf "$work" && mkdir -p "$work/scripts" "$work/attribs" "$work/wall"
  (cd "$work" && sh "$STATE/bundle") || { log "bad job bundle"; return 1; }
  # The bundle brings the helpers (fulcrum-attr, fulcrum-wall, fulcrum-put); this runtime adds the reboot request.
  mkdir -p "$work/bin"
  printf '#!/bin/sh\nprintf "%%s" "${1:-}" > "$FULCRUM_DIR/reboot"\n' > "$work/bin/fulcrum-reboot"
  chmod +x "$work/bin/"*
  . "$work/env"
  # Confirm the claim before running anything: a job whose claim lapsed (another request of this
  # node has it now) is not ours to run.
  http POST "/api/v1/agent/jobs/$FULCRUM_JOB/ack" > /dev/null
  if [ "$(status)" != 200 ]; then
    log "job $FULCRUM_JOB: not confirmed (status $(status)); leaving it"
    return 0
  fi
  log "job $FULCRUM_JOB: role $FULCRUM_ROLE"
  code=0
  for s in "$work"/scripts/*; do
    [ -f "$s" ] || continue
    echo "== ${s##*/}" > "$work/out"
    # Output goes back to the server as the script runs (a chunk per line batch).
    (
      cd "$work" && FULCRUM_DIR=$work PATH=$work/bin:$PATH sh -e "$s" 2>&1
      echo $? > "$work/rc.${s##*/}"
    ) | while IFS= read -r line; do
      printf '%s\n' "$line" >> "$work/out"
      printf '%s\n' "$line" > "$work/chunk"
      http POST "/api/v1/agent/jobs/$FULCRUM_JOB/log" "$work/chunk" > /dev/null
    done
    code=$(cat "$work/rc.${s##*/}" 2>/dev/null || echo 1)
    [ "$code" -ne 0 ] && break
  done
  [ "$code" -eq 0 ] && [ -e "$work/reboot" ] && code=64
  {
    printf 'exit_code=%s\n' "$code"
    [ -s "$work/reboot" ] && printf 'reboot_bootenv=%s\n' "$(head -n 1 "$work/reboot")"
    for w in "$work"/wall/*; do
      [ -f "$w" ] || continue
      printf 'wall.%s=%s\n' "${w##*/}" "$(base64 < "$w" | tr -d '\n')"
    done
  } > "$work/result"
  # The exit bits (stop, power off, reboot) are acted on only once the server has the result.
  tries=0
  until http POST "/api/v1/agent/jobs/$FULCRUM_JOB/complete" "$work/result" > "$work/completed" && [ "$(status)" = 200 ]; do
    tries=$((tries + 1))
    case "$(status)" in
      4??) log "the server refused the result of job $FULCRUM_JOB ($(status): $(cat "$work/completed")); not acting on its exit code"; return 0 ;;
    esac
    if [ "$tries" -ge 20 ]; then
      log "could not report job $FULCRUM_JOB to $API (status $(status)); not acting on its exit code"
      return 0
    fi
    sleep 3
  done
  return "$code"
}

kv() { sed -n "s/^$1=//p" "$2" | head -n 1; }

# fetch URL FILE: a boot file (absolute URL, no token).
fetch() {
  if [ "${FULCRUM_HTTP:-}" != wget ] && command -v curl >/dev/null 2>&1; then curl -sSf -m 300 -o "$2" "$1"
  else timeout 300 wget -q -O "$2" "$1"; fi
}

# Reboot into what Fulcrum serves next: wait until it says the boot files are served (bounded),
# then kexec when the bootenv allows it and kexec works, else a firmware reboot.
reboot_into() {
  want=$1 tries=0
  case "$want" in
    *[!A-Za-z0-9._-]*) log "not rebooting: bad bootenv name '$want'"; return 1 ;;
  esac
  while :; do
    http GET "/api/v1/agent/boot?wait=$WAIT${want:+&expect=$want}" > "$STATE/boot"
    [ "$(status)" = 200 ] && [ "$(kv served "$STATE/boot")" = 1 ] && break
    tries=$((tries + 1))
    if [ "$tries" -ge 4 ]; then
      log "not rebooting: Fulcrum does not serve ${want:-the next bootenv} ($(kv error "$STATE/boot"))"
      return 1
    fi
  done
  kexec=${FULCRUM_KEXEC:-kexec}
  if [ "$(kv kexec "$STATE/boot")" = 1 ] && [ "$kexec" != none ] && command -v "$kexec" >/dev/null 2>&1; then
    k=$STATE/kexec && rm -rf "$k" && mkdir -p "$k" && : > "$k/initrd"
    ok=1
    fetch "$(kv kernel "$STATE/boot")" "$k/kernel" || ok=0
    # Several initrds are concatenated: the kernel unpacks each cpio archive in turn.
    set -f  # URLs are split on spaces only, never globbed
    for u in $(kv initrds "$STATE/boot"); do
      [ "$ok" = 1 ] && fetch "$u" "$k/part" && cat "$k/part" >> "$k/initrd" || ok=0
    done
    set +f
    if [ "$ok" = 1 ] && "$kexec" -l "$k/kernel" --initrd="$k/initrd" --command-line="$(kv cmdline "$STATE/boot")"; then
      log "booting $(kv bootenv "$STATE/boot") with kexec"
      # An installed system shuts down in order first (systemd runs the loaded kernel at the end).
      if [ -z "${FULCRUM_KEXEC:-}" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl kexec
      else
        sync
        "$kexec" -e
      fi
    fi
    log "kexec did not work; rebooting through the firmware"
  fi
  log "rebooting into $(kv bootenv "$STATE/boot")"
  eval "${FULCRUM_REBOOT:-$(machine_cmd reboot)}"
}

# reboot / poweroff: through systemd on an installed system (an orderly shutdown), else at once.
machine_cmd() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo "systemctl $1"
  else echo "sync; $1 -f 2>/dev/null || $1"; fi
}

act_on() {
  code=$1
  [ $((code & 32)) -ne 0 ] && { log "powering off as the job asked"; eval "${FULCRUM_POWEROFF:-$(machine_cmd poweroff)}"; exit 0; }
  if [ $((code & 64)) -ne 0 ] && [ "$(kv reboot "$STATE/job/completed")" = refused ]; then
    log "not rebooting: Fulcrum refused the bootenv the job asked for (see the job's log)"
    code=$((code & ~64))
  fi
  [ $((code & 64)) -ne 0 ] && { reboot_into "$(head -n 1 "$STATE/job/reboot" 2>/dev/null)" && exit 0; }
  [ $((code & 16)) -ne 0 ] && { log "stopping as the job asked"; exit 0; }
  return 0
}

backoff=1
until [ -s "$TOKEN_FILE" ] && http GET /api/v1/agent/whoami > /dev/null && [ "$(status)" = 200 ]; do
  rm -f "$TOKEN_FILE"
  register && break
  log "cannot register with $API yet (status $(status)); retrying in ${backoff}s"
  sleep "$backoff"; [ "$backoff" -lt 30 ] && backoff=$((backoff * 2))
done

inventory > "$STATE/inventory.json"
http PUT /api/v1/agent/inventory "$STATE/inventory.json" > /dev/null

while :; do
  http GET "/api/v1/agent/jobs/next?wait=$WAIT" > "$STATE/bundle"
  case "$(status)" in
    200) run_job; act_on $? ;;
    204) ;;
    401) log "token refused; registering again"; rm -f "$TOKEN_FILE"; register || sleep 5 ;;
    *) log "no answer from $API (status $(status)); retrying"; sleep 3 ;;
  esac
  [ "$ONCE" = 1 ] && exit 0
done
