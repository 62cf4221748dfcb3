# core-ntp: time sync pointed at the registry's NTP service — a chrony source file and a
# systemd-timesyncd drop-in, so whichever of the two the system runs uses it.
# Attribs: core-root, service-ntp (from core-services: the NTP service's addresses).
ROOT=$(fulcrum-attr core-root 2>/dev/null || echo /); ROOT=${ROOT%/}
SERVERS=$(fulcrum-attr service-ntp 2>/dev/null | tr -d '[]" ' | tr ',' ' ' || true)
if [ -z "$SERVERS" ] || [ "$SERVERS" = null ]; then
  echo "core-ntp: the service registry has no NTP service; register one: fulcrum services create --set name=ntp --set addresses='[\"<address>\"]'" >&2
  exit 1
fi
OUT=$(
  { echo "# Written by Fulcrum (role core-ntp): the registry's NTP service."; for s in $SERVERS; do echo "server $s iburst"; done; } \
    | fulcrum-put "$ROOT/etc/chrony/sources.d/fulcrum.sources"
  { echo "# Written by Fulcrum (role core-ntp): the registry's NTP service."; echo "[Time]"; echo "NTP=$SERVERS"; } \
    | fulcrum-put "$ROOT/etc/systemd/timesyncd.conf.d/fulcrum.conf"
)
echo "$OUT"
if [ -z "$ROOT" ] && case "$OUT" in *wrote:*) true ;; *) false ;; esac; then
  if command -v chronyc >/dev/null 2>&1; then chronyc reload sources || true
  elif command -v systemctl >/dev/null 2>&1; then systemctl try-restart systemd-timesyncd || true; fi
fi
LIST=$(for s in $SERVERS; do printf '"%s",' "$s"; done)
fulcrum-wall core-ntp-servers "[${LIST%,}]"
echo "time sync: $SERVERS"
