# network-<name> role script (docs/networks.md "Network roles"): write this node's persistent config
# for one network (netplan when the installed system has it, else systemd-networkd files), then
# configure it live with iproute2 (bond, VLAN sub-interface, bridge, addresses, default route). Files go under
# $FULCRUM_NETWORK_ROOT (default /), so a test can point them at a scratch directory.
# The plan is the attrib <role>-plan, computed by Fulcrum: shell assignments, values single-quoted.
set -eu
plan=$(fulcrum-attr "$FULCRUM_ROLE-plan") || { echo "no plan for $FULCRUM_ROLE on $FULCRUM_NODE yet; it is written when the address is allocated" >&2; exit 1; }
BRIDGE_PORT=
eval "$plan"
if [ -n "$ERROR" ]; then echo "network $NET_NAME: $ERROR" >&2; exit 1; fi
if [ "$CONFIGURE" != 1 ]; then
  echo "network $NET_NAME has configure: false; $ADDRESS is recorded, not configured"
  exit 0
fi
ROOT=${FULCRUM_NETWORK_ROOT:-}
mode_name() {
  case "$1" in 0) echo balance-rr ;; 1) echo active-backup ;; 2) echo balance-xor ;; 3) echo broadcast ;;
    4) echo 802.3ad ;; 5) echo balance-tlb ;; *) echo balance-alb ;; esac
}
have() { [ -e "/sys/class/net/$1" ]; }
# The interface the VLAN (or bridge, or address) sits on: the bond, else the one member.
base=${MEMBERS%% *}
[ -z "$BOND" ] || base=$BOND


# Persistent configuration for the installed system, first: it is the desired state even when the
# live change below fails.
write() { mkdir -p "$(dirname "$1")"; cat > "$1"; }
if command -v netplan >/dev/null 2>&1 && [ -d "$ROOT/etc/netplan" ]; then
  f="$ROOT/etc/netplan/60-fulcrum-$NET_NAME.yaml"
  # The final interface's entry carries the addresses and the default route.
  extra() {
    [ "$1" = "$IFACE" ] || return 0
    echo "      addresses: [$(echo "$ADDRESS $ADDRESS6" | xargs | sed 's/ /, /g')]"
    if [ "$DEFAULT_ROUTE" = 1 ] && [ -n "$ROUTER" ]; then echo "      routes: [{to: default, via: $ROUTER}]"; fi
  }
  {
    echo "# written by Fulcrum (role $FULCRUM_ROLE); changes are overwritten"
    echo "network:"
    echo "  version: 2"
    echo "  ethernets:"
    for m in $MEMBERS; do echo "    $m:"; echo "      dhcp4: false"; extra "$m"; done
    if [ -n "$BOND" ]; then
      echo "  bonds:"
      echo "    $BOND:"
      echo "      interfaces: [$(echo "$MEMBERS" | sed 's/ /, /g')]"
      echo "      parameters: {mode: $(mode_name "$TEAM_MODE")}"
      extra "$BOND"
    fi
    if [ -n "$VLAN_IFACE" ]; then
      echo "  vlans:"
      echo "    $VLAN_IFACE:"
      echo "      id: $VLAN"
      echo "      link: $base"
      extra "$VLAN_IFACE"
    fi
    if [ -n "$BRIDGE" ]; then
      echo "  bridges:"
      echo "    $BRIDGE:"
      echo "      interfaces: [$BRIDGE_PORT]"
      extra "$BRIDGE"
    fi
  } | write "$f"
  chmod 600 "$f"   # netplan refuses to trust world-readable files
  echo "wrote $f"
else
  d="$ROOT/etc/systemd/network"
  # Each interface has one base .network file (its [Match]); each network adds a drop-in, so two
  # networks on one conduit (say, two VLANs on a bond) do not overwrite each other.
  match() { write "$d/60-fulcrum-$1.network" <<EOF
# written by Fulcrum; changes are overwritten
[Match]
Name=$1
EOF
  }
  dropin() { write "$d/60-fulcrum-$1.network.d/$NET_NAME.conf"; }
  netdev() { write "$d/60-fulcrum-$1.netdev"; }
  if [ -n "$BOND" ]; then
    netdev "$BOND" <<EOF
[NetDev]
Name=$BOND
Kind=bond

[Bond]
Mode=$(mode_name "$TEAM_MODE")
EOF
    for m in $MEMBERS; do
      match "$m"
      printf '[Network]\nBond=%s\n' "$BOND" | dropin "$m"
    done
  fi
  match "$base"
  if [ -n "$VLAN_IFACE" ]; then
    printf '[NetDev]\nName=%s\nKind=vlan\n\n[VLAN]\nId=%s\n' "$VLAN_IFACE" "$VLAN" | netdev "$VLAN_IFACE"
    printf '[Network]\nVLAN=%s\n' "$VLAN_IFACE" | dropin "$base"
    match "$VLAN_IFACE"
  fi
  if [ -n "$BRIDGE" ]; then
    printf '[NetDev]\nName=%s\nKind=bridge\n' "$BRIDGE" | netdev "$BRIDGE"
    match "$BRIDGE_PORT"
    printf '[Network]\nBridge=%s\n' "$BRIDGE" | dropin "$BRIDGE_PORT"
    match "$BRIDGE"
  fi
  {
    echo "[Network]"
    for a in $ADDRESS $ADDRESS6; do echo "Address=$a"; done
    if [ "$DEFAULT_ROUTE" = 1 ] && [ -n "$ROUTER" ]; then echo "Gateway=$ROUTER"; fi
  } | dropin "$IFACE"
  echo "wrote systemd-networkd files under $d"
fi

# Live configuration: each step is idempotent, so a re-run converges. iproute2 first; busybox (the
# discovery ramdisk) has no `ip link add` or `addr replace`, so sysfs, vconfig and brctl stand in.
bond_sysfs() {
  [ -e /sys/class/net/bonding_masters ] || modprobe bonding 2>/dev/null || true
  [ -w /sys/class/net/bonding_masters ] || return 1
  echo "+$BOND" > /sys/class/net/bonding_masters
}
# Some `ip link add` (busybox) ignore the mode: set it through sysfs, which allows it only while
# the bond is down and has no members.
bond_mode() {
  want=$(mode_name "$TEAM_MODE")
  read -r got _ < "/sys/class/net/$BOND/bonding/mode" || return 0
  [ "$got" != "$want" ] || return 0
  if [ -n "$(cat "/sys/class/net/$BOND/bonding/slaves")" ]; then
    echo "network $NET_NAME: bond $BOND already has members in mode $got; remove it to change the mode to $want" >&2
    exit 1
  fi
  ip link set dev "$BOND" down
  echo "$want" > "/sys/class/net/$BOND/bonding/mode"
  read -r got _ < "/sys/class/net/$BOND/bonding/mode"
  [ "$got" = "$want" ] || { echo "network $NET_NAME: bond $BOND stays in mode $got, not $want" >&2; exit 1; }
}
vlan_vconfig() {
  command -v vconfig >/dev/null 2>&1 || return 1
  [ -e /proc/net/vlan/config ] || modprobe 8021q 2>/dev/null || true
  vconfig set_name_type DEV_PLUS_VID_NO_PAD >/dev/null && vconfig add "$base" "$VLAN" >/dev/null || return 1
  [ "$base.$VLAN" = "$VLAN_IFACE" ] || ip link set dev "$base.$VLAN" name "$VLAN_IFACE"
}
addr_set() {
  if [ "${3:-}" = -6 ]; then
    ip -6 addr replace "$1" dev "$2" nodad 2>/dev/null || ip -6 addr add "$1" dev "$2" 2>/dev/null || ip -6 addr show dev "$2" | grep -qF " $1 "
  else
    ip addr replace "$1" dev "$2" 2>/dev/null || ip addr add "$1" dev "$2" 2>/dev/null || ip addr show dev "$2" | grep -qF " $1 "
  fi
}
no_kind() { echo "network $NET_NAME: cannot create $1 $2 on this kernel (is $3 enabled?); the persistent config is written and applies at the next boot of a kernel that has it" >&2; exit 1; }
if [ -n "$BOND" ]; then
  have "$BOND" || ip link add "$BOND" type bond mode "$(mode_name "$TEAM_MODE")" 2>/dev/null || bond_sysfs || no_kind bond "$BOND" CONFIG_BONDING
  bond_mode
  for m in $MEMBERS; do
    if [ "$(basename "$(readlink "/sys/class/net/$m/master" 2>/dev/null || echo none)")" != "$BOND" ]; then
      ip link set dev "$m" down
      ip link set dev "$m" master "$BOND" 2>/dev/null || echo "+$m" > "/sys/class/net/$BOND/bonding/slaves"
    fi
    ip link set dev "$m" up
  done
fi
ip link set dev "$base" up
if [ -n "$VLAN_IFACE" ]; then
  have "$VLAN_IFACE" || ip link add link "$base" name "$VLAN_IFACE" type vlan id "$VLAN" 2>/dev/null || vlan_vconfig || no_kind "VLAN sub-interface" "$VLAN_IFACE" CONFIG_VLAN_8021Q
  ip link set dev "$VLAN_IFACE" up
fi
if [ -n "$BRIDGE" ]; then
  have "$BRIDGE" || ip link add "$BRIDGE" type bridge 2>/dev/null || brctl addbr "$BRIDGE"
  ip link set dev "$BRIDGE_PORT" master "$BRIDGE"
  ip link set dev "$BRIDGE" up
fi
[ -z "$ADDRESS" ] || addr_set "$ADDRESS" "$IFACE"
[ -z "$ADDRESS6" ] || addr_set "$ADDRESS6" "$IFACE" -6
if [ "$DEFAULT_ROUTE" = 1 ] && [ -n "$ROUTER" ]; then ip route replace default via "$ROUTER" dev "$IFACE"; fi
echo "network $NET_NAME: ${ADDRESS:-} ${ADDRESS6:-} on $IFACE (members: $MEMBERS)"

fulcrum-wall "network-$NET_NAME-iface" "$IFACE"
