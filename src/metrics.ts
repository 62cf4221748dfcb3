// Prometheus metrics for the protocol servers (GET /metrics): counters per message type, drops
// by reason, and latencies. One registry per server process.
import client from 'prom-client';

export const registry = new client.Registry();

export const dhcpMessages = new client.Counter({
  name: 'fulcrum_dhcp_messages_total', help: 'DHCP messages by direction and type', labelNames: ['direction', 'type'], registers: [registry],
});
export const dhcpDrops = new client.Counter({
  name: 'fulcrum_dhcp_dropped_total', help: 'DHCP packets dropped, by reason', labelNames: ['reason'], registers: [registry],
});
export const dhcpLatency = new client.Histogram({
  name: 'fulcrum_dhcp_reply_seconds', help: 'Time from receiving a DHCP request to sending the reply', labelNames: ['type'],
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
});
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
