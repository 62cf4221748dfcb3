# core-dns-client: /etc/resolv.conf pointed at the registry's DNS service.
# Attribs: core-root, service-dns (from core-services), core-dns-search (optional search domains).
ROOT=$(fulcrum-attr core-root 2>/dev/null || echo /); ROOT=${ROOT%/}
SERVERS=$(fulcrum-attr service-dns 2>/dev/null | tr -d '[]" ' | tr ',' ' ' || true)
if [ -z "$SERVERS" ] || [ "$SERVERS" = null ]; then
  echo "core-dns-client: the service registry has no DNS service; register one: fulcrum services create --set name=dns --set addresses='[\"<address>\"]'" >&2
  exit 1
fi
SEARCH=$(fulcrum-attr core-dns-search 2>/dev/null | tr -d '[]" ' | tr ',' ' ' || true)
{
  echo "# Written by Fulcrum (role core-dns-client): the registry's DNS service."
  [ -n "$SEARCH" ] && echo "search $SEARCH"
  n=0; for s in $SERVERS; do n=$((n + 1)); [ $n -le 3 ] && echo "nameserver $s"; done  # the resolver reads at most 3
} | fulcrum-put "$ROOT/etc/resolv.conf"
LIST=$(for s in $SERVERS; do printf '"%s",' "$s"; done)
fulcrum-wall core-dns-nameservers "[${LIST%,}]"
echo "resolver: $SERVERS${SEARCH:+ (search $SEARCH)}"
