#!/bin/sh
# Install the Debian packages Fulcrum's test suites need, by group. Idempotent: only packages that
# are not installed are installed; `apt-get update` runs at most once, and only when needed.
# Services shipped by the packages are not started (policy-rc.d) and, when newly installed, are
# disabled at boot: tests run their own instances inside network namespaces.
#
#   scripts/install-system-packages.sh [--check] [--list] [GROUP...]      (default: all groups)
#
# Exit: 0 all present/installed, 1 apt failed, 2 usage error, 3 packages missing and not root (or
# --check), 4 installing would remove an installed package (refused; resolve by hand).
set -eu

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  echo "groups: $ALL_GROUPS"
}

ALL_GROUPS="net perf vm dns browser workload"

# Package names checked against Debian 12 (bookworm) with `apt-cache policy`.
group_packages() {
  case "$1" in
    # busybox-static satisfies udhcpc's `busybox | busybox-static` dependency and is what the vm group
    # needs anyway (static binary for initramfs); the two conflict, so pick one everywhere.
    # dhcpcd-base is the dhcpcd binary without the system service (dhcpcd5 is a transitional package).
    # radvd: the server answers router solicitations with it; ndisc6 (rdisc6) checks that.
    # netplan.io: `netplan generate --root-dir` checks the netplan files network roles write.
    net) echo "iproute2 iputils-ping isc-dhcp-client busybox-static udhcpc dhcpcd-base tftp-hpa curl isc-dhcp-relay dnsmasq-base tcpdump radvd ndisc6 openssh-client openssh-server netplan.io" ;;
    # kea-admin ships perfdhcp.
    perf) echo "kea-admin kea-dhcp4-server kea-dhcp6-server tftpd-hpa nginx-light wrk" ;;
    vm) echo "qemu-system-x86 ipxe-qemu ipxe busybox-static ovmf openipmi ipmitool" ;;
    dns) echo "bind9 bind9-dnsutils knot knot-dnsutils nsd dnsperf" ;;
    browser) echo "chromium" ;;
    # Cluster workloads run for real on namespace nodes (content/etcd, the ansible jig).
    workload) echo "etcd-server etcd-client ansible" ;;
    *) return 1 ;;
  esac
}

check_only=0
groups=""
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --list) for g in $ALL_GROUPS; do printf '%-8s %s\n' "$g" "$(group_packages "$g")"; done; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    all) groups="$groups $ALL_GROUPS" ;;
    -*) echo "install-system-packages: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *)
      if ! group_packages "$arg" >/dev/null; then
        echo "install-system-packages: unknown group '$arg' (groups: $ALL_GROUPS)" >&2
        exit 2
      fi
      groups="$groups $arg" ;;
  esac
done
[ -n "$groups" ] || groups=" $ALL_GROUPS"

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

wanted=""
for g in $groups; do
  for p in $(group_packages "$g"); do
    case " $wanted " in *" $p "*) ;; *) wanted="$wanted $p" ;; esac
  done
done

missing=""
for p in $wanted; do
  is_installed "$p" || missing="$missing $p"
done
missing="${missing# }"

if [ -z "$missing" ]; then
  echo "install-system-packages: all packages present for:$groups"
  exit 0
fi

if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
  echo "install-system-packages: missing for$groups: $missing"
  [ "$(id -u)" = 0 ] || echo "install-system-packages: run as root to install them: sudo $0$groups"
  exit 3
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS="-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=600"

updated=0
apt_update() {
  if [ "$updated" = 0 ]; then
    updated=1
    echo "install-system-packages: apt-get update"
    apt-get update -q -o DPkg::Lock::Timeout=600 || { echo "install-system-packages: apt-get update failed" >&2; exit 1; }
  fi
}

has_candidate() {
  c="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  [ -n "$c" ] && [ "$c" != "(none)" ]
}

# Package lists are needed when any missing package is unknown to apt (fresh image, lists purged).
for p in $missing; do
  if ! has_candidate "$p"; then apt_update; break; fi
done
for p in $missing; do
  if ! has_candidate "$p"; then
    echo "install-system-packages: no package '$p' in the configured apt sources (Debian 12 expected)" >&2
    exit 1
  fi
done

# Refuse to remove anything (e.g. busybox, which conflicts with busybox-static).
# shellcheck disable=SC2086
removals="$(apt-get install -s $APT_OPTS $missing 2>/dev/null | awk '/^Remv / {print $2}' | tr '\n' ' ')"
if [ -n "$removals" ]; then
  echo "install-system-packages: installing '$missing' would remove: $removals; refusing. Remove or replace them by hand first." >&2
  exit 4
fi

# Keep package scripts from starting daemons (kea, nginx, tftpd-hpa, named, knot...): invoke-rc.d
# and deb-systemd-invoke ask /usr/sbin/policy-rc.d, and exit 101 means "not allowed".
POLICY=/usr/sbin/policy-rc.d
SAVED=/usr/sbin/policy-rc.d.fulcrum-saved
MARK="# fulcrum install-system-packages: temporary"
if [ -f "$POLICY" ] && grep -q "$MARK" "$POLICY"; then
  # A previous run died before restoring: put the original back first.
  if [ -f "$SAVED" ]; then mv -f "$SAVED" "$POLICY"; else rm -f "$POLICY"; fi
fi
had_policy=0
if [ -e "$POLICY" ]; then had_policy=1; cp -p "$POLICY" "$SAVED"; fi
restore_policy() {
  if [ "$had_policy" = 1 ]; then mv -f "$SAVED" "$POLICY"; else rm -f "$POLICY"; fi
}
trap 'restore_policy' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
printf '#!/bin/sh\n%s\nexit 101\n' "$MARK" >"$POLICY"
chmod 755 "$POLICY"

echo "install-system-packages: installing $missing"
# shellcheck disable=SC2086
if ! apt-get install $APT_OPTS $missing; then
  if [ "$updated" = 1 ]; then exit 1; fi
  # Stale lists (404 on a superseded .deb): refresh once and retry.
  apt_update
  # shellcheck disable=SC2086
  apt-get install $APT_OPTS $missing || exit 1
fi

# Newly installed services must not come up at the next boot either.
for p in $missing; do
  for unit in $(dpkg-query -L "$p" 2>/dev/null | grep -E '^(/usr)?/lib/systemd/system/[^/@]+\.(service|socket)$' || true); do
    name="$(basename "$unit")"
    if [ -d /run/systemd/system ]; then
      systemctl disable --now --quiet "$name" 2>/dev/null || true
    else
      systemctl disable --quiet "$name" 2>/dev/null || true
    fi
  done
  for init in $(dpkg-query -L "$p" 2>/dev/null | grep -E '^/etc/init\.d/[^/]+$' || true); do
    command -v update-rc.d >/dev/null 2>&1 && update-rc.d "$(basename "$init")" disable >/dev/null 2>&1 || true
  done
done

echo "install-system-packages: done:$groups"
