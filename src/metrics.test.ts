import test from 'node:test';
import assert from 'node:assert/strict';
import { dhcpTraffic, registry } from './metrics.js';

test('DHCP traffic counted in plain arrays is exported as Prometheus counters and a cumulative histogram', async () => {
  dhcpTraffic.received(1);
  dhcpTraffic.replied(1, 2, 0.0007);
  dhcpTraffic.received(3);
  dhcpTraffic.replied(3, 5, 0.02);
  dhcpTraffic.received(3);
  dhcpTraffic.replied(3, 6, 3);
  const text = await registry.metrics();
  assert.match(text, /^fulcrum_dhcp_messages_total\{direction="in",type="REQUEST"\} 2$/m);
  assert.match(text, /^fulcrum_dhcp_messages_total\{direction="out",type="NAK"\} 1$/m);
  assert.match(text, /^# TYPE fulcrum_dhcp_reply_seconds histogram$/m);
  assert.match(text, /^fulcrum_dhcp_reply_seconds_bucket\{le="0.001",type="DISCOVER"\} 1$/m);
  assert.match(text, /^fulcrum_dhcp_reply_seconds_bucket\{le="0.01",type="REQUEST"\} 0$/m);
  assert.match(text, /^fulcrum_dhcp_reply_seconds_bucket\{le="0.025",type="REQUEST"\} 1$/m);
  assert.match(text, /^fulcrum_dhcp_reply_seconds_bucket\{le="\+Inf",type="REQUEST"\} 2$/m);
  assert.match(text, /^fulcrum_dhcp_reply_seconds_sum\{type="REQUEST"\} 3.02$/m);
  assert.match(text, /^fulcrum_dhcp_reply_seconds_count\{type="REQUEST"\} 2$/m);
  assert.doesNotMatch(text, /type="INFORM"/, 'types never seen have no series');
  registry.resetMetrics();
  const after = await registry.metrics();
  assert.doesNotMatch(after, /^fulcrum_dhcp_reply_seconds_count/m, 'reset clears the histogram');
  assert.doesNotMatch(after, /^fulcrum_dhcp_messages_total\{/m, 'reset clears the counters');
});
