// The service registry (issue 5, item 2) against a real server and PostgreSQL: internal services
// are listed and cannot be written through the API; an operator's external service wins over an
// internal one of the same name; `core-services` resolves the registry into attribs, and a change
// to the registry re-runs it and the roles that want a service.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readPack } from '../src/content/pack.js';
import { projectRoot } from '../src/paths.js';
import { pokeResolvers, registerInternalServices } from '../src/services/registry.js';
import { startTestServer, waitFor } from './support/server.js';
import { stopOwnCluster } from './support/db.js';

after(() => stopOwnCluster());

test('service registry: internal and external services, resolution, and re-runs on change', async () => {
  const t = await startTestServer({ annealer: { sweepMs: 200 } });
  try {
    const { api } = t;
    assert.equal((await api('POST', '/api/v1/content-packs', await readPack(path.join(projectRoot, 'content', 'core')))).status, 201);

    // An internal service as a replica registers it at start (this test server has no boot address).
    await registerInternalServices(t.server.store, t.server.replicaId, [{ name: 'ntp', addresses: ['10.1.0.1'], port: 123 }]);
    let list = (await api('GET', '/api/v1/services?name=ntp')).body as any[];
    assert.equal(list.length, 1);
    assert.equal(list[0].source, 'internal');
    assert.equal(list[0].replica, t.server.replicaId);
    const internalId = list[0].id;
    assert.equal((await api('DELETE', `/api/v1/services/${internalId}`)).status, 409, 'internal services are the server\'s own');
    assert.equal((await api('PATCH', `/api/v1/services/${internalId}`, { addresses: ['10.9.9.9'] })).status, 409);

    // Bad input: a clear error naming the field, nothing stored.
    const bad = await api('POST', '/api/v1/services', { name: 'dns', addresses: ['http://x/'] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /addresses/);
    assert.equal((await api('POST', '/api/v1/services', { name: 'dns', addresses: [] })).status, 400);
    assert.equal((await api('POST', '/api/v1/services', { name: 'Bad Name', addresses: ['10.0.0.1'] })).status, 400);
    assert.equal(((await api('GET', '/api/v1/services?name=dns')).body as any[]).length, 0);

    assert.equal((await api('POST', '/api/v1/services', { name: 'dns', addresses: ['10.1.0.53'], port: 53, description: 'site resolver' })).status, 201);
    assert.equal((await api('POST', '/api/v1/services', { name: 'dns', addresses: ['10.1.0.54'] })).status, 409, 'one external service per name');
    let resolved = (await api('GET', '/api/v1/service-registry')).body;
    assert.deepEqual(resolved.ntp, { addresses: ['10.1.0.1'], port: 123, url: null, source: 'internal' });
    assert.deepEqual(resolved.dns, { addresses: ['10.1.0.53'], port: 53, url: null, source: 'external' });
    assert.equal(resolved.logging, null, 'well-known services are always listed');

    // A role that wants service-ntp, on a simulated node; core-services is bound for it (service role).
    assert.equal((await api('POST', '/api/v1/roles', { name: 'wants-ntp', jig: 'test', wants_attribs: ['service-ntp'] })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments', { name: 'site' })).status, 201);
    await api('POST', '/api/v1/sim/nodes', { count: 1, deployment: 'site', prefix: 'reg' });
    const node = ((await api('GET', '/api/v1/nodes?deployment=site')).body as any[]).find((n) => !n.service).name;
    assert.equal((await api('POST', '/api/v1/noderoles', { role: 'wants-ntp', node, deployment: 'site' })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments/site/commit')).status, 200);
    const wanter = await waitFor('wants-ntp ACTIVE', async () => {
      const nr = ((await api('GET', '/api/v1/noderoles?role=wants-ntp')).body as any[])[0];
      return nr?.state === 'ACTIVE' && nr;
    }, 20000, 100);
    const resolver = ((await api('GET', '/api/v1/noderoles?role=core-services')).body as any[])[0];
    assert.equal(resolver.node, 'services.site.fulcrum.internal');
    assert.deepEqual(resolver.wall.services.dns.addresses, ['10.1.0.53']);
    const ranWith = async () => {
      const jobs = (await api('GET', `/api/v1/jobs?noderole=${wanter.id}`)).body as any[];
      const last = (await api('GET', `/api/v1/jobs/${jobs.at(-1).id}`)).body;
      return { count: jobs.length, attribs: last.input.attribs };
    };
    assert.deepEqual((await ranWith()).attribs['service-ntp'], ['10.1.0.1'], 'one attrib lookup gives the addresses');

    // An unchanged registry re-runs nothing: a replica registering the same services again (a
    // restart), or the leader's periodic check, finds the resolver's answer current.
    const resolverRuns = async () => ((await api('GET', `/api/v1/jobs?noderole=${resolver.id}`)).body as any[]).length;
    assert.equal(await resolverRuns(), 1);
    await registerInternalServices(t.server.store, t.server.replicaId, [{ name: 'ntp', addresses: ['10.1.0.1'], port: 123 }]);
    assert.equal(await t.server.store.tx((tx) => pokeResolvers(tx, 'check')), 0);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await resolverRuns(), 1, 'nothing re-ran');

    // The operator registers an external NTP server: it wins, and the wanting role runs again with it.
    assert.equal((await api('POST', '/api/v1/services', { name: 'ntp', addresses: ['192.0.2.123', '192.0.2.124'] })).status, 201);
    resolved = (await api('GET', '/api/v1/service-registry')).body;
    assert.deepEqual(resolved.ntp.addresses, ['192.0.2.123', '192.0.2.124']);
    await waitFor('wants-ntp re-run with the external NTP service', async () => {
      const r = await ranWith();
      const nr = (await api('GET', `/api/v1/noderoles/${wanter.id}`)).body;
      return r.count === 2 && nr.state === 'ACTIVE' && JSON.stringify(r.attribs['service-ntp']) === '["192.0.2.123","192.0.2.124"]';
    }, 20000, 100);

    // Any registry change re-runs the resolver, and with it (the ripple re-runs what is below a
    // re-run parent, decision 0003) its consumers, which see an unchanged value: idempotent roles.
    const resolverJobs = ((await api('GET', `/api/v1/jobs?noderole=${resolver.id}`)).body as any[]).length;
    assert.equal((await api('POST', '/api/v1/services', { name: 'logging', addresses: ['10.1.0.5'], port: 6514 })).status, 201);
    await waitFor('resolver re-run for the logging service', async () =>
      ((await api('GET', `/api/v1/jobs?noderole=${resolver.id}`)).body as any[]).length === resolverJobs + 1
      && (await api('GET', `/api/v1/noderoles/${resolver.id}`)).body.state === 'ACTIVE', 20000, 100);
    await waitFor('the NTP consumer ran again, same value', async () => {
      const r = await ranWith();
      return r.count === 3 && (await api('GET', `/api/v1/noderoles/${wanter.id}`)).body.state === 'ACTIVE' && r;
    }, 20000, 100);
    assert.deepEqual((await ranWith()).attribs['service-ntp'], ['192.0.2.123', '192.0.2.124']);

    // Deleting the external service falls back to the internal one.
    const ext = ((await api('GET', '/api/v1/services?name=ntp&source=external')).body as any[])[0];
    assert.equal((await api('DELETE', `/api/v1/services/${ext.id}`)).status, 204);
    await waitFor('wants-ntp back on the internal NTP service', async () => {
      const r = await ranWith();
      return r.count === 4 && JSON.stringify(r.attribs['service-ntp']) === '["10.1.0.1"]';
    }, 20000, 100);
    list = (await api('GET', '/api/v1/services')).body as any[];
    assert.deepEqual(list.map((s) => `${s.name}/${s.source}`).sort(), ['dns/external', 'logging/external', 'ntp/internal']);
  } finally {
    await t.close();
  }
});

test('internal DNS: registered at the address nodes reach (a wildcard listen means the boot address)', async () => {
  const { internalDns } = await import('../src/services/start.js');
  assert.deepEqual(internalDns('10.0.0.1:53'), { name: 'dns', addresses: ['10.0.0.1'], port: 53, description: 'Fulcrum DNS' });
  assert.deepEqual(internalDns('0.0.0.0:5353', '10.0.0.1')?.addresses, ['10.0.0.1']);
  assert.deepEqual(internalDns('[fd00::1]:53')?.addresses, ['fd00::1']);
  assert.equal(internalDns('127.0.0.1:53'), null, 'loopback is no use to nodes');
  assert.equal(internalDns('0.0.0.0:53'), null, 'a wildcard without a boot address names nothing');
});
