// DNS metrics on GET /metrics, read from the server's own counters when scraped (the hot path only
// bumps plain numbers).
import client from 'prom-client';
import { registry } from '../metrics.js';
import type { DnsServer } from './server.js';

export function watchDns(server: DnsServer, records: () => number): void {
  for (const name of ['fulcrum_dns_replies_total', 'fulcrum_dns_dropped_total', 'fulcrum_dns_forwarded_total', 'fulcrum_dns_truncated_total', 'fulcrum_dns_records']) {
    registry.removeSingleMetric(name);
  }
  const c = server.counters;
  new client.Counter({
    name: 'fulcrum_dns_replies_total', help: 'DNS replies sent, by transport and rcode', labelNames: ['transport', 'rcode'], registers: [registry],
    collect() { this.reset(); for (const [k, n] of Object.entries(c.replies)) { const [transport, rcode] = k.split(':'); this.inc({ transport, rcode }, n); } },
  });
  new client.Counter({
    name: 'fulcrum_dns_dropped_total', help: 'DNS messages dropped unanswered, by reason (malformed: the decoder\'s reason)', labelNames: ['reason'], registers: [registry],
    collect() { this.reset(); for (const [reason, n] of Object.entries(c.dropped)) this.inc({ reason }, n); },
  });
  new client.Counter({
    name: 'fulcrum_dns_forwarded_total', help: 'Queries relayed to the upstream forwarder, by outcome', labelNames: ['outcome'], registers: [registry],
    collect() { this.reset(); for (const [outcome, n] of Object.entries(c.forwarded)) this.inc({ outcome }, n); },
  });
  new client.Counter({
    name: 'fulcrum_dns_truncated_total', help: 'UDP replies sent truncated (TC) because they exceeded 512 bytes or the EDNS size', registers: [registry],
    collect() { this.reset(); this.inc(c.truncated); },
  });
  new client.Gauge({
    name: 'fulcrum_dns_records', help: 'Records served (all zones, SOA excluded)', registers: [registry],
    collect() { this.set(records()); },
  });
}
