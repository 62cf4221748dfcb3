// The Redfish driver against the stand-in Redfish BMC (redfish-standin.ts): no real Redfish
// emulator (DMTF Redfish-Interface-Emulator, sushy-tools) can be installed offline here, so the
// component on the other side of the HTTP connection is our own stand-in, not a real BMC. It is a
// real HTTP(S) server on loopback that enforces basic auth, ETags and allowable values, and counts
// every request, so the tests also check that the driver sends nothing needless.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PowerError } from './driver.js';
import { RedfishDriver, chooseResetType, mapPowerState, redfishErrorMessage, type RedfishConfig } from './redfish.js';
import { selfSignedCertificate, startRedfishStandIn, type RedfishStandIn, type RedfishStandInOptions, type StandInRequest } from './redfish-standin.js';
import { verifiedPower, type PowerEvent, type PowerPolicy } from './verified.js';

const USER = 'fulcrum';
const PASSWORD = 'Redfish-S3cret-9182';
// The stand-in answers in about a millisecond: short waits.
const FAST: PowerPolicy = { attempts: 3, initialDelayMs: 20, maxDelayMs: 100, jitter: 0, verifyTimeoutMs: 2000, pollIntervalMs: 25 };

test('redfish PowerState mapping, ResetType choice and error bodies (pure)', () => {
  assert.equal(mapPowerState('On'), 'on');
  assert.equal(mapPowerState('PoweringOn'), 'on');
  assert.equal(mapPowerState('Off'), 'off');
  assert.equal(mapPowerState('PoweringOff'), 'off');
  assert.equal(mapPowerState(null), undefined);
  assert.equal(mapPowerState('Unknown'), undefined);
  assert.equal(chooseResetType('on', undefined), 'On');
  assert.equal(chooseResetType('on', ['ForceOff', 'ForceOn', 'PushPowerButton']), 'ForceOn');
  assert.equal(chooseResetType('on', ['PushPowerButton', 'ForceOff']), 'PushPowerButton');
  assert.equal(chooseResetType('off', ['GracefulShutdown', 'On']), undefined, 'off is a hard off only');
  assert.equal(chooseResetType('cycle', ['ForceRestart', 'PowerCycle']), 'PowerCycle');
  assert.equal(chooseResetType('cycle', ['On', 'ForceOff', 'ForceRestart']), 'ForceRestart');
  assert.equal(redfishErrorMessage({ error: { message: 'general', '@Message.ExtendedInfo': [{ Message: 'first' }, { Message: 'second' }] } }), 'first; second');
  assert.equal(redfishErrorMessage({ error: { message: 'only general' } }), 'only general');
  assert.equal(redfishErrorMessage({ nothing: true }), undefined);
  assert.equal(redfishErrorMessage(undefined), undefined);

  const d = new RedfishDriver({ address: '10.0.0.5', username: USER, password: PASSWORD });
  assert.equal(d.baseUrl, 'https://10.0.0.5');
  assert.equal(d.target, 'BMC 10.0.0.5 (redfish)');
  const v6 = new RedfishDriver({ address: 'fd00::5', port: 8443, username: USER, password: PASSWORD });
  assert.equal(v6.baseUrl, 'https://[fd00::5]:8443');
  assert.equal(v6.target, 'BMC [fd00::5]:8443 (redfish)', 'an IPv6 address is bracketed when a port follows');
  const plain = new RedfishDriver({ address: 'bmc1.example', scheme: 'http', username: USER, password: PASSWORD });
  assert.equal(plain.baseUrl, 'http://bmc1.example');
  for (const d2 of [d, v6, plain]) d2.close();
  assert.throws(() => new RedfishDriver({ address: '', username: USER, password: PASSWORD }), /address is required/);
  assert.throws(() => new RedfishDriver({ address: '10.0.0.5', username: '', password: PASSWORD }), /redfish power for 10\.0\.0\.5: username is required/);
  assert.throws(() => new RedfishDriver({ address: '10.0.0.5', username: USER, password: '' }), /password is required/);
});

/** Each request as "METHOD path status", for compact assertions on what the driver sent. */
function lines(rs: readonly StandInRequest[]): string[] {
  return rs.map((r) => `${r.method} ${r.path} ${r.status}`);
}

interface Bench {
  bmc: RedfishStandIn;
  raw: RedfishDriver;
  config: RedfishConfig;
  /** Requests since the last call. */
  since: () => StandInRequest[];
}

async function bench(o: Partial<RedfishStandInOptions> = {}, c: Partial<RedfishConfig> = {}): Promise<Bench> {
  const bmc = await startRedfishStandIn({ username: USER, password: PASSWORD, ...o });
  const config: RedfishConfig = { address: '127.0.0.1', port: bmc.port, scheme: o.tls ? 'https' : 'http', username: USER, password: PASSWORD, requestTimeoutMs: 3000, ...c };
  const raw = new RedfishDriver(config);
  let seen = 0;
  const since = () => {
    const out = bmc.requests.slice(seen);
    seen = bmc.requests.length;
    return out;
  };
  return { bmc, raw, config, since };
}

async function closeAll(benches: Bench[]): Promise<void> {
  for (const b of benches) {
    b.raw.close();
    await b.bmc.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The distinct power states the stand-in passes through during `ms` (sampled every 10 ms). */
async function watch(bmc: RedfishStandIn, ms: number): Promise<string[]> {
  const states = [bmc.powerState];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await sleep(10);
    if (states.at(-1) !== bmc.powerState) states.push(bmc.powerState);
  }
  return states;
}

test('redfish driver against the stand-in Redfish BMC (no real emulator available offline)', async (t) => {
  const benches: Bench[] = [];
  const open = async (o: Partial<RedfishStandInOptions> = {}, c: Partial<RedfishConfig> = {}) => {
    const b = await bench(o, c);
    benches.push(b);
    return b;
  };
  const messages: string[] = [];
  const events: PowerEvent[] = [];
  const record = (e: PowerEvent) => events.push(e);
  try {
    await t.test('status, on, off and cycle through verifiedPower, with no needless request', async () => {
      const b = await open();
      const { bmc, raw, since } = b;
      const sys = bmc.systemPath;
      let started = Date.now();
      assert.equal(await raw.status(), 'off');
      t.diagnostic(`first status (system discovery) in ${Date.now() - started} ms`);
      assert.deepEqual(lines(since()), ['GET /redfish/v1/Systems 200', `GET ${sys} 200`], 'discovers the system once, then reads it');
      assert.ok(bmc.requests.every((r) => r.authorized), 'every request carries the credentials');
      assert.equal(await raw.status(), 'off');
      assert.deepEqual(lines(since()), [`GET ${sys} 200`], 'the system path is remembered');

      const power = verifiedPower(raw, { ...FAST, node: 'n1', onEvent: record });
      started = Date.now();
      await power.on();
      t.diagnostic(`verified on in ${Date.now() - started} ms`);
      assert.equal(bmc.powerState, 'On');
      assert.deepEqual(lines(since()), [`GET ${sys} 200`, `POST ${sys}/Actions/ComputerSystem.Reset 204`, `GET ${sys} 200`],
        'status, the Reset (its target known from the status read), one confirming status');
      assert.deepEqual(bmc.requests.at(-2)?.body, { ResetType: 'On' });

      await power.on();
      assert.deepEqual(lines(since()), [`GET ${sys} 200`], 'already on: no command');
      assert.deepEqual(bmc.resets, ['On']);

      await power.off();
      assert.equal(bmc.powerState, 'Off');
      assert.deepEqual(lines(since()).length, 3);
      assert.deepEqual(bmc.resets, ['On', 'ForceOff']);

      await power.on();
      started = Date.now();
      await power.cycle();
      t.diagnostic(`verified off-on cycle in ${Date.now() - started} ms`);
      assert.deepEqual(bmc.resets.slice(-2), ['ForceOff', 'On'], 'the default cycle is a verified off, then a verified on');
      assert.equal(bmc.powerState, 'On');
      since();

      const native = verifiedPower(raw, { ...FAST, cycle: 'native' });
      const boots = bmc.boots.length;
      await native.cycle();
      assert.equal(bmc.resets.at(-1), 'PowerCycle');
      assert.equal(bmc.boots.length, boots + 1, 'the system booted again');
      assert.deepEqual(lines(since()), [`GET ${sys} 200`, `POST ${sys}/Actions/ComputerSystem.Reset 204`, `GET ${sys} 200`]);
      await power.off();
    });

    await t.test('PoweringOn / PoweringOff transitions are followed to the end, and a later command wins', async () => {
      const transitionMs = 300;
      const { bmc, raw } = await open({ transitionMs });
      const seen: string[] = [];
      bmc.afterRequest = (r) => { if (r.method === 'GET' && r.path === bmc.systemPath) seen.push(bmc.powerState); };
      const power = verifiedPower(raw, { ...FAST, onEvent: record });
      let started = Date.now();
      await power.on();
      t.diagnostic(`on confirmed during the transition after ${Date.now() - started} ms`);
      assert.equal(bmc.powerState, 'PoweringOn', 'PoweringOn counts as on: it is where the system is going');
      // Off half-way through powering on: the hard off must win over the pending power-on.
      await sleep(transitionMs / 2);
      assert.equal(bmc.powerState, 'PoweringOn');
      await power.off();
      assert.equal(bmc.powerState, 'PoweringOff');
      const after = await watch(bmc, transitionMs * 2);
      assert.deepEqual(after, ['PoweringOff', 'Off'], 'the interrupted power-on does not complete later');
      assert.equal(await raw.status(), 'off');

      await power.on();
      await sleep(transitionMs + 100);
      assert.equal(bmc.powerState, 'On');
      // A native cycle passes through PoweringOff (off) and is only confirmed once powering on again.
      seen.length = 0;
      const native = verifiedPower(raw, { ...FAST, cycle: 'native' });
      started = Date.now();
      await native.cycle();
      const took = Date.now() - started;
      t.diagnostic(`native cycle through the transitions confirmed in ${took} ms; states polled: ${seen.join(' ')}`);
      assert.ok(seen.includes('PoweringOff'), `a poll saw the system powering off (${seen.join(' ')})`);
      assert.ok(seen.at(-1) === 'PoweringOn' || seen.at(-1) === 'On', seen.join(' '));
      assert.ok(took >= transitionMs, `not confirmed before the power-off transition ended (${took} ms)`);
      await sleep(transitionMs + 100);
      assert.equal(bmc.powerState, 'On');
    });

    await t.test('ResetType is chosen from the allowable values, inline or through ActionInfo', async () => {
      const inline = await open({ resetTypes: ['ForceOn', 'ForceOff', 'ForceRestart'] });
      const p1 = verifiedPower(inline.raw, FAST);
      await p1.on();
      await verifiedPower(inline.raw, { ...FAST, cycle: 'native' }).cycle();
      await p1.off();
      assert.deepEqual(inline.bmc.resets, ['ForceOn', 'ForceRestart', 'ForceOff']);
      assert.ok(inline.bmc.requests.every((r) => r.status < 400), lines(inline.bmc.requests).join('\n'));

      const info = await open({ resetTypes: ['PushPowerButton', 'ForceOff', 'PowerCycle'], resetTypesViaActionInfo: true });
      const p2 = verifiedPower(info.raw, FAST);
      await p2.on();
      await verifiedPower(info.raw, { ...FAST, cycle: 'native' }).cycle();
      await p2.off();
      assert.deepEqual(info.bmc.resets, ['PushPowerButton', 'PowerCycle', 'ForceOff']);
      const infoReads = info.bmc.requests.filter((r) => r.path.endsWith('/ResetActionInfo'));
      assert.equal(infoReads.length, 1, 'the ActionInfo resource is read once, not before every command');

      const none = await open({ resetTypes: ['On', 'GracefulShutdown'], initialPowerState: 'On' });
      none.since();
      await assert.rejects(verifiedPower(none.raw, { ...FAST, node: 'n7' }).off(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.equal(err.message, `node n7: BMC 127.0.0.1:${none.bmc.port} (redfish): power off failed: the BMC allows no ResetType for power off (wanted ForceOff; it allows On, GracefulShutdown)`);
        assert.equal(err.retryable, false);
        assert.equal(err.attempts, 1);
        messages.push(err.message);
        return true;
      });
      assert.ok(none.since().every((r) => r.method === 'GET'), 'nothing is posted when no ResetType fits');
      assert.equal(none.bmc.powerState, 'On');
    });

    await t.test('next boot pxe once is spent by one boot; disk persistent stays', async () => {
      const { bmc, raw, since } = await open();
      const sys = bmc.systemPath;
      const power = verifiedPower(raw, { ...FAST, onEvent: record });
      await raw.status();
      since();
      await power.nextBoot('pxe');
      assert.deepEqual(lines(since()), [`GET ${sys} 200`, `PATCH ${sys} 200`, `GET ${sys} 200`], 'read (ETag), change, read back');
      const patch = bmc.requests.at(-2)!;
      assert.deepEqual(patch.body, { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }, 'the boot mode is left alone unless configured');
      assert.match(patch.ifMatch ?? '', /^W\/"\d+"$/, 'the PATCH is conditional on the ETag read');
      assert.deepEqual(await power.bootOverride(), { device: 'pxe', persistent: false });
      await power.on();
      assert.deepEqual(bmc.boots, ['Pxe']);
      assert.deepEqual(await raw.bootOverride(), { device: 'none', persistent: undefined }, 'a one-time override is spent by the boot');
      await verifiedPower(raw, { ...FAST, cycle: 'native' }).cycle();
      assert.deepEqual(bmc.boots, ['Pxe', 'None']);

      await power.nextBoot('disk', { persistent: true });
      assert.deepEqual(bmc.boot, { BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'Legacy' });
      assert.deepEqual(await power.bootOverride(), { device: 'disk', persistent: true });
      await power.cycle();
      await power.cycle();
      assert.deepEqual(bmc.boots.slice(-2), ['Hdd', 'Hdd']);
      assert.deepEqual(await raw.bootOverride(), { device: 'disk', persistent: true }, 'a persistent override survives boots');
      await power.off();

      const uefi = await open({}, { bootMode: 'UEFI' });
      await verifiedPower(uefi.raw, FAST).nextBoot('pxe', { persistent: true });
      assert.deepEqual(uefi.bmc.boot, { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'UEFI' });
    });

    await t.test('a PATCH with a stale ETag (412) is retried; a BMC that requires If-Match (428) gets one', async () => {
      const { bmc, raw, since } = await open();
      const sys = bmc.systemPath;
      await raw.status();
      since();
      // Another client changes the system between the driver's read and its PATCH.
      let touched = false;
      bmc.afterRequest = (r) => {
        if (!touched && r.method === 'GET' && r.path === sys) { touched = true; bmc.touch(); }
      };
      const log: PowerEvent[] = [];
      const power = verifiedPower(raw, { ...FAST, onEvent: (e) => { log.push(e); record(e); } });
      await power.nextBoot('pxe');
      const patches = since().filter((r) => r.method === 'PATCH');
      assert.deepEqual(patches.map((r) => r.status), [412, 200]);
      assert.notEqual(patches[0].ifMatch, patches[1].ifMatch, 'the retry re-reads the ETag');
      assert.deepEqual(log.map((e) => e.outcome), ['error', 'confirmed']);
      assert.match(log[0].error ?? '', new RegExp(`PATCH ${sys} returned HTTP 412: The ETag supplied did not match`));
      assert.deepEqual(bmc.boot.BootSourceOverrideTarget, 'Pxe');

      const strict = await open({ requireIfMatch: true });
      // The stand-in really refuses an unconditional PATCH...
      const bare = await strict.raw.request('PATCH', strict.bmc.systemPath, { Boot: { BootSourceOverrideTarget: 'Hdd' } });
      assert.equal(bare.status, 428);
      // ...and the driver's PATCH is conditional, so it is accepted the first time.
      await strict.raw.status();
      strict.since();
      await verifiedPower(strict.raw, FAST).nextBoot('disk');
      const sent = strict.since();
      assert.deepEqual(sent.map((r) => r.status), [200, 200, 200]);
      assert.ok(sent[1].method === 'PATCH' && sent[1].ifMatch, 'If-Match sent');
      assert.equal(strict.bmc.boot.BootSourceOverrideTarget, 'Hdd');
    });

    await t.test('bad credentials fail at once, naming the user, never the password', async () => {
      const { bmc, config } = await open();
      const wrong = 'Wrong-Pa55-0002';
      const badDriver = new RedfishDriver({ ...config, password: wrong });
      try {
        const bad = verifiedPower(badDriver, { ...FAST, onEvent: record });
        await assert.rejects(bad.on(), (err: unknown) => {
          assert.ok(err instanceof PowerError);
          assert.equal(err.message, `BMC 127.0.0.1:${bmc.port} (redfish): power on failed: GET /redfish/v1/Systems returned HTTP 401: the BMC refused the credentials of user "${USER}"; check the node's power username and password`);
          assert.equal(err.retryable, false);
          assert.equal(err.attempts, 1);
          messages.push(err.message, String((err.cause as Error | undefined)?.message ?? ''));
          return true;
        });
        assert.deepEqual(bmc.requests.map((r) => [r.status, r.authorized]), [[401, false]], 'one request, not retried');
        await assert.rejects(badDriver.status(), (err: unknown) => {
          assert.ok(err instanceof PowerError && !err.retryable);
          messages.push(err.message);
          return true;
        });
      } finally {
        badDriver.close();
      }
    });

    await t.test('a failing BMC is retried with backoff, then confirmed', async () => {
      const { bmc, raw } = await open();
      bmc.failNext(2, 503);
      const log: PowerEvent[] = [];
      const started = Date.now();
      await verifiedPower(raw, { ...FAST, onEvent: (e) => { log.push(e); record(e); } }).on();
      t.diagnostic(`confirmed after two 503s in ${Date.now() - started} ms`);
      assert.deepEqual(log.map((e) => e.outcome), ['error', 'error', 'confirmed']);
      assert.match(log[0].error ?? '', /returned HTTP 503: Injected failure: HTTP 503\./);
      assert.equal(bmc.powerState, 'On');
      assert.deepEqual(bmc.resets, ['On'], 'the command was sent once, after the BMC recovered');

      // A failed Reset POST is retried too.
      bmc.failNext(1, 500, { method: 'POST' });
      log.length = 0;
      await verifiedPower(raw, { ...FAST, onEvent: (e) => log.push(e) }).off();
      assert.deepEqual(log.map((e) => e.outcome), ['error', 'confirmed']);
      assert.equal(bmc.powerState, 'Off');
    });

    await t.test('a BMC that acknowledges resets and ignores them is reported as not confirmed', async () => {
      const { bmc, raw } = await open();
      bmc.ignoreResets = true;
      await raw.on();
      assert.equal(await raw.status(), 'off', 'the bare driver believes the BMC');
      const strict = verifiedPower(raw, { ...FAST, attempts: 2, verifyTimeoutMs: 200, node: 'n2', onEvent: record });
      const before = bmc.resets.length;
      const started = Date.now();
      await assert.rejects(strict.on(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.match(err.message, new RegExp(`^node n2: BMC 127\\.0\\.0\\.1:${bmc.port} \\(redfish\\): power on not confirmed after 2 attempts; last status off \\(the command was accepted but the status stayed off for 0\\.2 s`));
        assert.equal(err.retryable, true);
        assert.equal(err.observed, 'off');
        messages.push(err.message);
        return true;
      });
      t.diagnostic(`gave up after ${Date.now() - started} ms`);
      assert.equal(bmc.resets.length - before, 2, 'one command per attempt');
      bmc.ignoreBootPatch = true;
      await assert.rejects(strict.nextBoot('pxe'), /next boot pxe \(once\) not confirmed after 2 attempts; the BMC reports none/);
    });

    await t.test('HTTPS with a self-signed certificate: refused by default, accepted with caCert or tlsVerify false', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-redfish-'));
      try {
        let started = Date.now();
        const tls = selfSignedCertificate(dir);
        const other = selfSignedCertificate(fs.mkdtempSync(path.join(dir, 'other-')));
        t.diagnostic(`two certificates made in ${Date.now() - started} ms`);
        const strict = await open({ tls });
        await assert.rejects(verifiedPower(strict.raw, FAST).status(), (err: unknown) => {
          assert.ok(err instanceof PowerError);
          assert.match(err.message, /power status failed: the BMC's TLS certificate is not trusted \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/);
          assert.match(err.message, /give its certificate or CA as caCert, or set tlsVerify: false/);
          assert.equal(err.retryable, false);
          assert.equal(err.attempts, 1);
          messages.push(err.message);
          return true;
        });
        assert.equal(strict.bmc.requests.length, 0, 'no request reached the BMC over an untrusted connection');

        const wrongCa = await open({ tls }, { caCert: other.cert });
        await assert.rejects(wrongCa.raw.status(), /TLS certificate is not trusted/);
        assert.equal(wrongCa.bmc.requests.length, 0);

        const pinned = await open({ tls }, { caCert: tls.cert });
        started = Date.now();
        assert.equal(await pinned.raw.status(), 'off');
        t.diagnostic(`status over HTTPS (handshake + 2 requests) in ${Date.now() - started} ms`);
        await verifiedPower(pinned.raw, FAST).on();
        assert.equal(pinned.bmc.powerState, 'On');

        const unchecked = await open({ tls }, { tlsVerify: false });
        assert.equal(await unchecked.raw.status(), 'off');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    await t.test('a configured systemId skips discovery; a wrong one and an unreachable BMC are reported', async () => {
      const named = await open({ systemId: 'System.Embedded.1' }, { systemId: 'System.Embedded.1' });
      assert.equal(await named.raw.status(), 'off');
      assert.deepEqual(lines(named.since()), ['GET /redfish/v1/Systems/System.Embedded.1 200'], 'no collection read');

      const wrong = await open({}, { systemId: 'System.Embedded.1' });
      await assert.rejects(verifiedPower(wrong.raw, FAST).status(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.match(err.message, /power status failed: GET \/redfish\/v1\/Systems\/System\.Embedded\.1 returned HTTP 404: no such resource \(The resource at the URI .* was not found\.\); check systemId$/);
        assert.equal(err.retryable, false);
        messages.push(err.message);
        return true;
      });
      assert.equal(wrong.bmc.requests.length, 1, 'not retried');

      // A port nothing listens on any more.
      const gone = await open();
      await gone.bmc.close();
      const started = Date.now();
      await assert.rejects(verifiedPower(gone.raw, { ...FAST, attempts: 2 }).status(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.match(err.message, new RegExp(`power status failed after 2 attempts: GET http://127\\.0\\.0\\.1:${gone.bmc.port}/redfish/v1/Systems failed: .*ECONNREFUSED`));
        assert.equal(err.retryable, true);
        messages.push(err.message);
        return true;
      });
      t.diagnostic(`unreachable BMC reported after ${Date.now() - started} ms`);
    });

    await t.test('no secret in any message or event', () => {
      assert.ok(messages.length >= 5, `messages were collected (${messages.length})`);
      for (const m of messages) assert.ok(!m.includes(PASSWORD) && !m.includes('Wrong-Pa55'), m);
      assert.ok(events.length > 10);
      for (const e of events) assert.ok(!JSON.stringify(e).includes(PASSWORD), JSON.stringify(e));
    });
  } finally {
    await closeAll(benches);
  }
});
