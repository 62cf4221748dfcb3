# etcd: one member of the deployment's etcd cluster (Debian's etcd-server).
#
# - First run of the first members (no member anywhere yet): start with initial-cluster-state
#   new and every bound peer in the initial cluster.
# - First run of a member bound later: `member add` through the existing members, then start
#   with initial-cluster-state existing. The other members are not touched.
# - Every run: the health check (`etcdctl endpoint health` on this member); then, on the first
#   member of the peers list only, members that are no longer bound are removed (`member remove`;
#   a removed etcd stops itself).
# - A member that ran before and is not running is NOT restarted behind the operator's back: the
#   health check fails with etcd's message (ERROR). Start it (`systemctl start etcd`, or on nodes
#   without systemd <root>/usr/local/sbin/fulcrum-etcd-start), then retry the noderole.
#
# Attribs: core-root, etcd-peers (from etcd-peers), etcd-client-port, etcd-peer-port,
# etcd-cluster-token, etcd-health-timeout. Reports etcd-endpoints, etcd-client-url, etcd-member-id.
# Files (under core-root): /etc/default/etcd (the member's ETCD_* settings, read by Debian's
# etcd.service), /var/lib/etcd/default (data), and without systemd /run/etcd.pid and /var/log/etcd.log.
ROOT=$(fulcrum-attr core-root 2>/dev/null || echo /); ROOT=${ROOT%/}
CLIENT_PORT=$(fulcrum-attr etcd-client-port 2>/dev/null || echo 2379)
PEER_PORT=$(fulcrum-attr etcd-peer-port 2>/dev/null || echo 2380)
TOKEN=$(fulcrum-attr etcd-cluster-token 2>/dev/null || echo "fulcrum-$FULCRUM_DEPLOYMENT")
WAIT=$(fulcrum-attr etcd-health-timeout 2>/dev/null || echo 120)
export ETCDCTL_API=3
command -v etcd >/dev/null 2>&1 || { echo "etcd: the etcd binary is missing: install Debian's etcd-server (and etcd-client)" >&2; exit 1; }
command -v etcdctl >/dev/null 2>&1 || { echo "etcd: etcdctl is missing: install Debian's etcd-client" >&2; exit 1; }

# The peers, one "name address member" line each (the JSON has no spaces; keys in any order).
PEERS=$FULCRUM_DIR/peers
{ fulcrum-attr etcd-peers | tr -d '[] \n' | sed 's/},{/}\n{/g'; echo; } | while IFS= read -r o; do
  [ -n "$o" ] || continue
  n=$(printf '%s' "$o" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')
  a=$(printf '%s' "$o" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p')
  case "$o" in *'"member":true'*) m=true ;; *) m=false ;; esac
  echo "$n $a $m"
done > "$PEERS"
NAME=$FULCRUM_NODE
set -- $(awk -v n="$NAME" '$1 == n { print $2, $3 }' "$PEERS")
[ $# -eq 2 ] || { echo "etcd: this node ($NAME) is not in the peers list:" >&2; cat "$PEERS" >&2; exit 1; }
ADDR=$1 MEMBER=$2
url() { case "$1" in *:*) echo "http://[$1]:$2" ;; *) echo "http://$1:$2" ;; esac; }
CLIENT_URL=$(url "$ADDR" "$CLIENT_PORT")
PEER_URL=$(url "$ADDR" "$PEER_PORT")
INITIAL_ALL=$(while read -r n a m; do printf '%s=%s,' "$n" "$(url "$a" "$PEER_PORT")"; done < "$PEERS")
INITIAL_ALL=${INITIAL_ALL%,}
PEER_URLS=$(while read -r n a m; do printf '%s ' "$(url "$a" "$PEER_PORT")"; done < "$PEERS")
ENDPOINTS=$(while read -r n a m; do printf '%s,' "$(url "$a" "$CLIENT_PORT")"; done < "$PEERS")
ENDPOINTS=${ENDPOINTS%,}
OTHERS=$(while read -r n a m; do if [ "$m" = true ] && [ "$n" != "$NAME" ]; then printf '%s,' "$(url "$a" "$CLIENT_PORT")"; fi; done < "$PEERS")
OTHERS=${OTHERS%,}

CONF=$ROOT/etc/default/etcd
DATA=$ROOT/var/lib/etcd/default
PIDF=$ROOT/run/etcd.pid
LOG=$ROOT/var/log/etcd.log
LAUNCHER=$ROOT/usr/local/sbin/fulcrum-etcd-start
SYSTEMD=0
[ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] && SYSTEMD=1

running() {
  if [ "$SYSTEMD" = 1 ]; then systemctl is-active --quiet etcd; return; fi
  [ -s "$PIDF" ] || return 1
  pid=$(cat "$PIDF")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'etcd'
}
start() {
  if [ "$SYSTEMD" = 1 ]; then systemctl enable etcd >/dev/null 2>&1 || true; systemctl restart etcd; return; fi
  mkdir -p "$(dirname "$LAUNCHER")" "$(dirname "$PIDF")" "$(dirname "$LOG")"
  # The launcher an operator uses too. Output to the log (never the job's pipe), in its own session.
  cat > "$LAUNCHER" <<LAUNCH
#!/bin/sh
# Written by Fulcrum (role etcd): starts this node's etcd member with $CONF.
set -a; . "$CONF"; set +a
setsid etcd >> "$LOG" 2>&1 < /dev/null &
echo \$! > "$PIDF"
LAUNCH
  chmod 755 "$LAUNCHER"
  sh "$LAUNCHER"
  echo "started etcd (pid $(cat "$PIDF")), log in $LOG"
}
members() { etcdctl --endpoints="$1" --command-timeout=10s member list 2>&1; }
# membership ENDPOINTS add|remove ARGS...: etcd refuses membership changes for a few seconds after a
# member (re)connects ("unhealthy cluster", its strict reconfiguration check): try again, bounded.
membership() {
  ep=$1; shift
  n=0
  while :; do
    if OUT=$(etcdctl --endpoints="$ep" --command-timeout=20s member "$@" 2>&1); then printf '%s\n' "$OUT"; return 0; fi
    n=$((n + 1))
    case "$OUT" in
      *"unhealthy cluster"*) if [ "$n" -lt 15 ]; then echo "etcd refuses membership changes for now (unhealthy cluster); retrying in 2 s" >&2; sleep 2; continue; fi ;;
    esac
    printf '%s\n' "$OUT" >&2
    return 1
  done
}

# MARKER: this node's member was healthy once (written at the end of a successful run).
MARKER=$ROOT/var/lib/etcd/fulcrum-member
# Every other bound peer's client URL: whichever answers tells what the cluster looks like now.
ALL_OTHERS=$(while read -r n a m; do if [ "$n" != "$NAME" ]; then printf '%s,' "$(url "$a" "$CLIENT_PORT")"; fi; done < "$PEERS")
ALL_OTHERS=${ALL_OTHERS%,}
knows_me() { printf '%s\n' "$1" | grep -qF ", $PEER_URL,"; }

# Debian's etcd-server starts a single-node etcd on localhost when installed. That one is not a
# member of this cluster: stop it, and keep its data aside (never deleted).
if [ "$SYSTEMD" = 1 ] && [ ! -f "$MARKER" ] && ! grep -q '^# Written by Fulcrum' "$CONF" 2>/dev/null; then
  if systemctl is-active --quiet etcd; then echo "stopping the etcd the package started (not configured by Fulcrum)"; systemctl stop etcd; fi
  if [ -d "$DATA/member" ]; then mv "$DATA" "$DATA.pre-fulcrum.$(date +%s)"; echo "kept the package's etcd data in $DATA.pre-fulcrum.*"; fi
fi

if running; then
  echo "etcd member $NAME is running; not restarting it"
elif [ -f "$MARKER" ] && { [ -z "$ALL_OTHERS" ] || ! LIST=$(members "$ALL_OTHERS") || knows_me "$LIST"; }; then
  echo "etcd member $NAME is not running. Fulcrum started it before and does not restart it behind your back:"
  echo "look at $LOG, start it (systemctl start etcd, or $LAUNCHER), then retry this noderole."
else
  if [ -f "$MARKER" ] || { [ -d "$DATA/member" ] && [ -n "$ALL_OTHERS" ] && LIST=$(members "$ALL_OTHERS") && ! knows_me "$LIST"; }; then
    # Removed from the cluster earlier (unbound), bound again: its old data is of no use.
    echo "the cluster does not know $PEER_URL (removed earlier): discarding the old data in $DATA"
    rm -rf "$DATA" "$MARKER"
  fi
  if [ -d "$DATA/member" ]; then
    echo "starting $NAME again on its data from an earlier attempt ($CONF)"
  else
    if [ -n "$OTHERS" ]; then
      echo "joining the existing cluster through $OTHERS"
      LIST=$(members "$OTHERS") || { echo "$LIST" >&2; echo "etcd: cannot list the members through $OTHERS" >&2; exit 1; }
      if ! knows_me "$LIST"; then
        membership "$OTHERS" add "$NAME" --peer-urls="$PEER_URL" || { echo "etcd: member add failed" >&2; exit 1; }
        LIST=$(members "$OTHERS") || { echo "$LIST" >&2; exit 1; }
      fi
      # The initial cluster of a joining member: the started members, and itself.
      INITIAL=$(printf '%s\n' "$LIST" | awk -F', ' -v me="$NAME" -v url="$PEER_URL" '
        $4 == url { printf "%s%s=%s", sep, me, url; sep = ","; next }
        $3 != "" { printf "%s%s=%s", sep, $3, $4; sep = "," }')
      STATE=existing
    else
      echo "bootstrapping a new cluster: $INITIAL_ALL"
      INITIAL=$INITIAL_ALL
      STATE=new
    fi
    mkdir -p "$(dirname "$CONF")" "$DATA"
    chmod 700 "$DATA"
    cat > "$CONF" <<EOF
# Written by Fulcrum (role etcd) for member $NAME of deployment $FULCRUM_DEPLOYMENT.
ETCD_NAME="$NAME"
ETCD_DATA_DIR="$DATA"
ETCD_LISTEN_CLIENT_URLS="$CLIENT_URL"
ETCD_ADVERTISE_CLIENT_URLS="$CLIENT_URL"
ETCD_LISTEN_PEER_URLS="$PEER_URL"
ETCD_INITIAL_ADVERTISE_PEER_URLS="$PEER_URL"
ETCD_INITIAL_CLUSTER="$INITIAL"
ETCD_INITIAL_CLUSTER_STATE="$STATE"
ETCD_INITIAL_CLUSTER_TOKEN="$TOKEN"
EOF
  fi
  start
fi

# Health: this member answers and the cluster has a quorum (etcd's own check).
deadline=$(( $(date +%s) + WAIT ))
until OUT=$(etcdctl --endpoints="$CLIENT_URL" --command-timeout=5s endpoint health 2>&1); do
  if ! running; then
    echo "$OUT" >&2
    [ -s "$LOG" ] && { echo "last lines of $LOG:" >&2; tail -n 5 "$LOG" >&2; }
    echo "etcd member $NAME ($CLIENT_URL) is not running" >&2
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "$OUT" >&2
    echo "etcd member $NAME ($CLIENT_URL) is not healthy after ${WAIT}s" >&2
    exit 1
  fi
  sleep 2
done
echo "$OUT"
touch "$MARKER"

# Members that are no longer bound leave the cluster. Only the first member of the peers list does
# it: Fulcrum re-runs that member's peers list whenever members join or leave, so its list is
# current; another member's list may predate a member that joined since, which it must not remove.
FIRST=$(awk '$3 == "true" { print $1; exit }' "$PEERS")
if [ "$FIRST" = "$NAME" ]; then
  LIST=$(members "$CLIENT_URL") || { echo "$LIST" >&2; exit 1; }
  printf '%s\n' "$LIST" | while IFS= read -r line; do
    id=${line%%,*}
    peer=$(printf '%s\n' "$line" | awk -F', ' '{ print $4 }')
    [ -n "$id" ] && [ -n "$peer" ] || continue
    case " $PEER_URLS" in *" $peer "*) continue ;; esac
    echo "member $id ($peer) is no longer bound: removing it"
    membership "$CLIENT_URL" remove "$id" || { echo "etcd: member remove failed" >&2; exit 1; }
  done
fi
etcdctl --endpoints="$CLIENT_URL" --command-timeout=10s member list

ID=$(etcdctl --endpoints="$CLIENT_URL" --command-timeout=5s endpoint status 2>/dev/null | awk -F', ' '{ print $2 }')
fulcrum-wall etcd-endpoints "[\"$(printf '%s' "$ENDPOINTS" | sed 's/,/","/g')\"]"
fulcrum-wall etcd-client-url "$CLIENT_URL"
fulcrum-wall etcd-member-id "$ID"
