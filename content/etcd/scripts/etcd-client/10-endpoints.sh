# etcd-client: a consumer of the cluster. Writes the endpoints (attrib etcd-endpoints, published
# by the etcd members) to /etc/default/etcdctl as ETCDCTL_ENDPOINTS, then checks the cluster
# through them. Attribs: core-root, etcd-endpoints.
ROOT=$(fulcrum-attr core-root 2>/dev/null || echo /); ROOT=${ROOT%/}
ENDPOINTS=$(fulcrum-attr etcd-endpoints | tr -d '[]" \n')
[ -n "$ENDPOINTS" ] || { echo "etcd-client: no etcd endpoints published yet" >&2; exit 1; }
FILE=$ROOT/etc/default/etcdctl
{ echo "# Written by Fulcrum (role etcd-client): the etcd cluster's client endpoints."; echo "ETCDCTL_API=3"; echo "ETCDCTL_ENDPOINTS=$ENDPOINTS"; } | fulcrum-put "$FILE"
ETCDCTL_API=3 etcdctl --endpoints="$ENDPOINTS" --command-timeout=10s endpoint health
echo "etcd endpoints: $ENDPOINTS"
