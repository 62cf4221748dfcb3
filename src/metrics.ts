// Prometheus metrics for the protocol servers (GET /metrics): counters per message type, drops
// by reason, and latencies. One registry per server process.
import client from 'prom-client';

export const registry = new client.Registry();

const DHCP_TYPES = ['', 'DISCOVER', 'OFFER', 'REQUEST', 'DECLINE', 'ACK', 'NAK', 'RELEASE', 'INFORM'];
const DHCP_REPLY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * DHCP messages in and out and reply times, counted in plain arrays by message type (1-8) on the
 * packet path (a labelled prom-client call costs more than the count) and read when scraped.
 */
export class DhcpTraffic {
  readonly in = new Float64Array(9);
  readonly out = new Float64Array(9);
  /** Per request type: one count per bucket (le), then +Inf; sums in seconds. */
  readonly buckets = Array.from({ length: 9 }, () => new Float64Array(DHCP_REPLY_BUCKETS.length + 1));
  readonly sums = new Float64Array(9);

  received(type: number): void { this.in[type]++; }
  reset(): void {
    for (const a of [this.in, this.out, this.sums, ...this.buckets]) a.fill(0);
  }
  replied(requestType: number, replyType: number, seconds: number): void {
    this.out[replyType]++;
    this.sums[requestType] += seconds;
    let i = 0;
    while (i < DHCP_REPLY_BUCKETS.length && seconds > DHCP_REPLY_BUCKETS[i]) i++;
    this.buckets[requestType][i]++;
  }
}
export const dhcpTraffic = new DhcpTraffic();

new client.Counter({
  name: 'fulcrum_dhcp_messages_total', help: 'DHCP messages by direction and type', labelNames: ['direction', 'type'], registers: [registry],
  collect() {
    this.reset();
    for (let t = 1; t < 9; t++) {
      if (dhcpTraffic.in[t]) this.inc({ direction: 'in', type: DHCP_TYPES[t] }, dhcpTraffic.in[t]);
      if (dhcpTraffic.out[t]) this.inc({ direction: 'out', type: DHCP_TYPES[t] }, dhcpTraffic.out[t]);
    }
  },
});
export const dhcpDrops = new client.Counter({
  name: 'fulcrum_dhcp_dropped_total', help: 'DHCP packets dropped, by reason', labelNames: ['reason'], registers: [registry],
});
// A histogram read from dhcpTraffic: prom-client's Histogram cannot be set from counts, so the
// series are built here (cumulative buckets, +Inf, sum, count per request type).
registry.registerMetric({
  name: 'fulcrum_dhcp_reply_seconds', help: 'Time from receiving a DHCP request to sending the reply', type: 'histogram', aggregator: 'sum',
  get: async () => {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (let t = 1; t < 9; t++) {
      const counts = dhcpTraffic.buckets[t];
      if (!counts.some((n) => n > 0)) continue;
      let total = 0;
      for (let i = 0; i <= DHCP_REPLY_BUCKETS.length; i++) {
        total += counts[i];
        values.push({ metricName: 'fulcrum_dhcp_reply_seconds_bucket', labels: { le: i < DHCP_REPLY_BUCKETS.length ? DHCP_REPLY_BUCKETS[i] : '+Inf', type: DHCP_TYPES[t] }, value: total });
      }
      values.push({ metricName: 'fulcrum_dhcp_reply_seconds_sum', labels: { type: DHCP_TYPES[t] }, value: dhcpTraffic.sums[t] });
      values.push({ metricName: 'fulcrum_dhcp_reply_seconds_count', labels: { type: DHCP_TYPES[t] }, value: total });
    }
    return { name: 'fulcrum_dhcp_reply_seconds', help: 'Time from receiving a DHCP request to sending the reply', type: 'histogram', aggregator: 'sum', values };
  },
  reset: () => dhcpTraffic.reset(),
} as unknown as client.Metric<string>);
export const bootFiles = new client.Counter({
  name: 'fulcrum_boot_files_total', help: 'Boot files served, by protocol and result', labelNames: ['protocol', 'result'], registers: [registry],
});

export const tftpTransfers = new client.Counter({
  name: 'fulcrum_tftp_transfers_total', help: 'TFTP transfers by outcome', labelNames: ['outcome'], registers: [registry],
});
export const tftpBytes = new client.Counter({ name: 'fulcrum_tftp_bytes_total', help: 'Bytes sent by TFTP', registers: [registry] });
export const tftpSeconds = new client.Histogram({
  name: 'fulcrum_tftp_transfer_seconds', help: 'TFTP transfer durations', buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300], registers: [registry],
});

/** TFTP drops by reason, read from the server's own counters when scraped. */
export function watchTftpDrops(read: () => Record<string, number>): void {
  registry.removeSingleMetric('fulcrum_tftp_dropped_total');
  new client.Counter({
    name: 'fulcrum_tftp_dropped_total', help: 'TFTP packets or requests dropped, by reason', labelNames: ['reason'], registers: [registry],
    collect() { this.reset(); for (const [reason, n] of Object.entries(read())) if (n) this.inc({ reason }, n); },
  });
}

/** The DHCP lease writer's group commits (lease-engine.ts), read from its own counters when scraped. */
export function watchLeaseWrites(read: () => { batches: number; rows: number; busyMs: number }): void {
  for (const name of ['fulcrum_dhcp_lease_batches_total', 'fulcrum_dhcp_lease_rows_total', 'fulcrum_dhcp_lease_write_seconds_total']) registry.removeSingleMetric(name);
  new client.Counter({ name: 'fulcrum_dhcp_lease_batches_total', help: 'Lease group commits (one statement and one fsync each)', registers: [registry],
    collect() { this.reset(); this.inc(read().batches); } });
  new client.Counter({ name: 'fulcrum_dhcp_lease_rows_total', help: 'Lease rows written by the group commits', registers: [registry],
    collect() { this.reset(); this.inc(read().rows); } });
  new client.Counter({ name: 'fulcrum_dhcp_lease_write_seconds_total', help: 'Time spent in lease group commits (one runs at a time)', registers: [registry],
    collect() { this.reset(); this.inc(read().busyMs / 1000); } });
}
