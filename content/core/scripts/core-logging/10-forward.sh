# core-logging: rsyslog forwards everything to the registry's logging service (TCP); with no
# logging service registered, forwarding is off (the drop-in is removed).
# Attribs: core-root, service-logging (addresses), service-logging-port (default 514).
ROOT=$(fulcrum-attr core-root 2>/dev/null || echo /); ROOT=${ROOT%/}
SERVERS=$(fulcrum-attr service-logging 2>/dev/null | tr -d '[]" ' | tr ',' ' ' || true)
PORT=$(fulcrum-attr service-logging-port 2>/dev/null || true)
case "$PORT" in ''|null) PORT=514 ;; *[!0-9]*) echo "core-logging: invalid port '$PORT'" >&2; exit 1 ;; esac
FILE=$ROOT/etc/rsyslog.d/60-fulcrum.conf
CHANGED=0
if [ -z "$SERVERS" ] || [ "$SERVERS" = null ]; then
  if [ -e "$FILE" ]; then rm -f "$FILE"; CHANGED=1; echo "removed: $FILE"; fi
  echo "no logging service registered: log forwarding is off"
else
  OUT=$({ echo "# Written by Fulcrum (role core-logging): the registry's logging service."; for s in $SERVERS; do echo "*.* @@$s:$PORT"; done; } | fulcrum-put "$FILE")
  echo "$OUT"
  case "$OUT" in wrote:*) CHANGED=1 ;; esac
  echo "logs forwarded to $SERVERS port $PORT"
fi
if [ -z "$ROOT" ] && [ "$CHANGED" = 1 ] && command -v systemctl >/dev/null 2>&1; then systemctl try-restart rsyslog || true; fi
