import test from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { literalLookup } from './udp.js';

test('literal lookup: an IP is handed back at once, a name still resolves (a socket can bind to localhost)', async () => {
  // dgram calls it with the socket's family as a number.
  const lookup = literalLookup as unknown as (address: string, family: number, done: (...a: unknown[]) => void) => void;
  let sync: unknown[] | undefined;
  lookup('10.1.2.3', 4, (...a: unknown[]) => { sync = a; });
  assert.deepEqual(sync, [null, '10.1.2.3', 4], 'answered before returning');
  lookup('fe80::1', 6, (...a: unknown[]) => { sync = a; });
  assert.deepEqual(sync, [null, 'fe80::1', 6]);
  const s = dgram.createSocket({ type: 'udp4', lookup: literalLookup });
  try {
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(0, 'localhost', () => resolve()); });
    assert.equal(s.address().address, '127.0.0.1');
  } finally { s.close(); }
});
