// Networks and names: DHCP subnets, leases and reservations; networks with their ranges and
// allocations; DNS zones and static records (a collection this server lacks shows as not available).
import { list } from '../api';
import { useAsync, useCoalesced, useEvents } from '../hooks';
import { LiveDot } from '../components';

type Row = Record<string, any>;
const fetchOr = (path: string, s: AbortSignal) => list<Row>(path, { limit: 500 }, s).catch((e) => (e.status === 404 ? { rows: [], total: -1 } : Promise.reject(e)));

function Table({ title, rows, total, cols, error }: { title: string; rows?: Row[]; total?: number; cols: Array<[string, string, ((r: Row) => string)?]>; error?: string }) {
  const id = title.toLowerCase().replace(/\W+/g, '-');
  return (
    <div className="card" aria-labelledby={id}>
      <h2 id={id}>{title} {total !== undefined && total >= 0 ? <span className="muted">({total})</span> : null}</h2>
      {error && <p className="error" role="alert">{error}</p>}
      {total === -1 ? <p className="muted">Not available on this server.</p> : rows?.length ? (
        <div className="scroll-x"><table>
          <thead><tr>{cols.map(([, label]) => <th key={label} scope="col">{label}</th>)}</tr></thead>
          <tbody>{rows.map((r, i) => <tr key={r.id ?? i}>{cols.map(([k, label, f]) => <td key={label}>{f ? f(r) : Array.isArray(r[k]) ? r[k].join(', ') : String(r[k] ?? '—')}</td>)}</tr>)}</tbody>
        </table></div>
      ) : <p className="muted">None.</p>}
      {rows && total !== undefined && total > rows.length && <p className="muted small">Showing {rows.length} of {total}.</p>}
    </div>
  );
}

export function Networks() {
  const subnets = useAsync((s) => fetchOr('/api/v1/subnets', s), []);
  const leases = useAsync((s) => fetchOr('/api/v1/leases', s), []);
  const reservations = useAsync((s) => fetchOr('/api/v1/reservations', s), []);
  const networks = useAsync((s) => fetchOr('/api/v1/networks', s), []);
  const ranges = useAsync((s) => fetchOr('/api/v1/network-ranges', s), []);
  const allocations = useAsync((s) => fetchOr('/api/v1/network-allocations', s), []);
  const zones = useAsync((s) => fetchOr('/api/v1/dns-zones', s), []);
  const records = useAsync((s) => fetchOr('/api/v1/dns-records', s), []);
  const reload = useCoalesced(() => { for (const x of [subnets, leases, reservations, networks, ranges, allocations, zones, records]) x.reload(); }, 2000);
  const live = useEvents({ type: 'subnet,dhcp,network,node.reservations,dns' }, reload);
  return (
    <section className="page" aria-labelledby="net-title">
      <div className="page-head"><h1 id="net-title">Networks</h1><LiveDot live={live} /></div>
      <Table title="DHCP subnets" rows={subnets.data?.rows} total={subnets.data?.total} error={subnets.error}
        cols={[['name', 'Name'], ['cidr', 'CIDR'], ['pools', 'Pools', (r) => (r.pools ?? []).map((p: Row) => `${p.first}–${p.last}`).join(', ')], ['routers', 'Gateway'], ['domain', 'Domain'], ['enabled', 'Enabled']]} />
      <Table title="Leases" rows={leases.data?.rows} total={leases.data?.total} error={leases.error}
        cols={[['address', 'Address'], ['mac', 'MAC'], ['hostname', 'Hostname'], ['subnet', 'Subnet'], ['state', 'State'], ['expires_at', 'Expires', (r) => new Date(r.expires_at).toLocaleString()]]} />
      <Table title="Reservations" rows={reservations.data?.rows} total={reservations.data?.total} error={reservations.error}
        cols={[['address', 'Address'], ['mac', 'MAC'], ['hostname', 'Hostname'], ['subnet', 'Subnet'], ['node', 'Node']]} />
      <Table title="Networks" rows={networks.data?.rows} total={networks.data?.total} error={networks.error}
        cols={[['name', 'Name'], ['category', 'Category'], ['conduit', 'Conduit'], ['vlan', 'VLAN'], ['v6prefix', 'IPv6 prefix']]} />
      <Table title="Ranges" rows={ranges.data?.rows} total={ranges.data?.total} error={ranges.error}
        cols={[['network', 'Network'], ['name', 'Name'], ['first', 'First'], ['last', 'Last'], ['allocated', 'Allocated', (r) => `${r.allocated} of ${r.size}`]]} />
      <Table title="Allocations" rows={allocations.data?.rows} total={allocations.data?.total} error={allocations.error}
        cols={[['node', 'Node'], ['network', 'Network'], ['range', 'Range'], ['address', 'Address', (r) => `${r.address}/${r.prefix}`]]} />
      <Table title="DNS zones" rows={zones.data?.rows} total={zones.data?.total} error={zones.error}
        cols={[['name', 'Zone'], ['kind', 'Kind'], ['ttl', 'TTL'], ['nameservers', 'Name servers'], ['serial', 'Serial']]} />
      <Table title="DNS records" rows={records.data?.rows} total={records.data?.total} error={records.error}
        cols={[['zone', 'Zone'], ['name', 'Name'], ['type', 'Type'], ['ttl', 'TTL'], ['data', 'Data', (r) => (typeof r.data === 'string' ? r.data : JSON.stringify(r.data))]]} />
    </section>
  );
}
