# core-hostname: /etc/hostname (short name) and a managed /etc/hosts line (FQDN and short name).
# Attribs: core-root (where to write, "/" on a real node), core-hostname (default: the node's name).
ROOT=$(fulcrum-attr core-root 2>/dev/null || echo /); ROOT=${ROOT%/}
NAME=$(fulcrum-attr core-hostname 2>/dev/null || echo "$FULCRUM_NODE")
case "$NAME" in ''|*[!A-Za-z0-9.-]*|-*) echo "core-hostname: invalid host name '$NAME' (letters, digits, '-' and '.')" >&2; exit 1 ;; esac
SHORT=${NAME%%.*}

printf '%s\n' "$SHORT" | fulcrum-put "$ROOT/etc/hostname"
[ -e "$ROOT/etc/hosts" ] || : > "$ROOT/etc/hosts"
{ grep -v '# fulcrum-hostname$' "$ROOT/etc/hosts" || true; printf '127.0.1.1\t%s %s # fulcrum-hostname\n' "$NAME" "$SHORT"; } | fulcrum-put "$ROOT/etc/hosts"
# The running system only on a real root (namespace nodes share the host's UTS name).
if [ -z "$ROOT" ] && [ "$(hostname)" != "$SHORT" ]; then
  if command -v hostnamectl >/dev/null 2>&1; then hostnamectl set-hostname "$SHORT"; else hostname "$SHORT"; fi
  echo "host name set to $SHORT"
fi
echo "host name: $NAME ($SHORT)"
