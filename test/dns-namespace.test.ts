// The DNS server as deployed: `fulcrum server --dns-listen` in one network namespace, dig and kdig
// in another, over a veth (no route out). A, PTR, TCP, REFUSED, and a node delete seen by a client.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { withLab, type Namespace } from '../src/lab/lab.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net', 'dns'); });

async function dig(ns: Namespace, ...args: string[]): Promise<{ status: string; answers: string[]; raw: string }> {
  const r = await ns.exec('dig', ['@10.91.0.1', '+time=2', '+tries=1', ...args], { timeoutMs: 15000 });
  const section = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(r.stdout);
  return {
    status: /status: (\w+)/.exec(r.stdout)?.[1] ?? 'none',
    answers: section ? section[1].split('\n').filter(Boolean).map((l) => l.split(/\s+/).slice(4).join(' ')).sort() : [],
    raw: r.stdout,
  };
}

test('dig and kdig in a client namespace query Fulcrum over a veth', async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const client = await lab.namespace('client');
    await lab.link(srv, client, { ifaceA: 'eth0', addressA: '10.91.0.1/24', addressB: '10.91.0.2/24' });
    const server = await startServerIn(lab, srv, '10.91.0.1', ['--no-dhcp', '--dns-listen', '10.91.0.1:53']);
    const api = server.api;
    const ok = async (method: string, p: string, body?: unknown) => {
      const r = await api(method, p, body);
      assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    await ok('POST', '/api/v1/dns-zones', { name: 'lab.test', ns_addresses: ['10.91.0.1'] });
    await ok('POST', '/api/v1/dns-zones', { cidr: '10.91.0.0/24' });
    await ok('POST', '/api/v1/subnets', { name: 'lab', cidr: '10.91.0.0/24', server_address: '10.91.0.1' });
    for (const i of [5, 6]) {
      await ok('POST', '/api/v1/nodes', { name: `node${i}.lab.test`, macs: [`52:54:00:00:91:0${i}`] });
      await ok('POST', '/api/v1/reservations', { mac: `52:54:00:00:91:0${i}`, subnet: 'lab', address: `10.91.0.${i}` });
    }
    await ok('POST', '/api/v1/dns-name-filters', { name: 'hosts', zone: 'lab.test', template: '{{ node.short }}' });

    const a = await waitFor('node5 to resolve from the client namespace', async () => {
      const r = await dig(client, 'A', 'node5.lab.test');
      return r.answers.length ? r : undefined;
    }, 30000, 200);
    assert.deepEqual(a.answers, ['10.91.0.5']);
    assert.match(a.raw, /flags: qr aa rd;/);
    assert.deepEqual((await dig(client, '-x', '10.91.0.6')).answers, ['node6.lab.test.']);
    const k = await client.exec('kdig', ['@10.91.0.1', '+tcp', '+retry=0', 'A', 'node6.lab.test'], { timeoutMs: 15000 });
    assert.match(k.stdout, /node6\.lab\.test\.\s+\d+\s+IN\s+A\s+10\.91\.0\.6/);
    assert.match(k.stdout, /TCP/);
    assert.equal((await dig(client, 'A', 'example.com')).status, 'REFUSED');

    assert.equal((await api('DELETE', '/api/v1/nodes/node6.lab.test')).status, 204);
    await waitFor('node6 gone for the client', async () => (await dig(client, 'A', 'node6.lab.test')).status === 'NXDOMAIN', 15000, 200);
    assert.equal((await dig(client, '-x', '10.91.0.6')).status, 'NXDOMAIN');
    await server.stop();
  });
});
