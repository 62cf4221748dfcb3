// The IPMI driver against a real BMC implementation: OpenIPMI's ipmi_sim in a lab namespace, whose
// chassis is a real QEMU process (ipmi-sim-chassis.sh). ipmitool runs in a second namespace across
// a lab bridge, as Fulcrum would reach a BMC network.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { LabError, labPrerequisitesMissing, withLab, type Namespace } from '../lab/lab.js';
import { run } from '../lab/processes.js';
import { projectRoot } from '../paths.js';
import { PowerError, type PowerState } from './driver.js';
import {
  IpmiDriver, bootdevArgs, classifyIpmitoolFailure, ipmitoolArgv, parseBootParam5, parsePowerStatus, type IpmiConfig,
} from './ipmi.js';
import { startIpmiSim, type IpmiSim } from './ipmi-sim.js';
import { verifiedPower, type PowerEvent, type PowerPolicy } from './verified.js';

const PROGRAMS: Array<[string, string]> = [['ipmi_sim', 'openipmi'], ['ipmitool', 'ipmitool'], ['qemu-system-x86_64', 'qemu-system-x86'], ['setsid', 'util-linux']];
const PASSWORD = 'Ipmi-S3cret-7431';
const BMC = '10.66.0.5';
// Short waits: ipmi_sim answers in tens of milliseconds.
const FAST: PowerPolicy = { attempts: 3, initialDelayMs: 50, maxDelayMs: 200, jitter: 0, verifyTimeoutMs: 3000, pollIntervalMs: 100 };

before(async () => {
  let missing = labPrerequisitesMissing(PROGRAMS);
  if (missing && process.getuid?.() === 0) {
    await run(['sh', path.join(projectRoot, 'scripts', 'install-system-packages.sh'), 'vm'], { timeoutMs: 15 * 60_000 });
    missing = labPrerequisitesMissing(PROGRAMS);
  }
  if (missing) throw new LabError(`the IPMI power tests cannot run: ${missing}`);
});

test('ipmitool argv, bootdev options and output parsing (pure)', () => {
  const c: IpmiConfig = { address: '10.0.0.5', username: 'admin', password: PASSWORD };
  const argv = ipmitoolArgv(c, ['chassis', 'power', 'status']);
  assert.deepEqual(argv, ['ipmitool', '-I', 'lanplus', '-H', '10.0.0.5', '-p', '623', '-U', 'admin', '-E', '-C', '3', '-N', '1', '-R', '2', 'chassis', 'power', 'status']);
  assert.ok(!argv.join(' ').includes(PASSWORD), 'the password is never on the command line');
  assert.deepEqual(bootdevArgs('pxe'), ['chassis', 'bootdev', 'pxe']);
  assert.deepEqual(bootdevArgs('disk', { persistent: true }, true), ['chassis', 'bootdev', 'disk', 'options=persistent,efiboot']);
  assert.equal(parsePowerStatus('Chassis Power is on\n'), 'on');
  assert.equal(parsePowerStatus('Chassis Power is off\n'), 'off');
  assert.equal(parsePowerStatus('garbage'), undefined);
  const realBmc = ' Boot Flags :\n   - Boot Flag Valid\n   - Options apply to all future boots\n   - Boot Device Selector : Force PXE\n';
  assert.deepEqual(parseBootParam5(realBmc), { device: 'pxe', persistent: true });
  const sim = ' Boot Flags :\n   - Boot Flag Invalid\n   - Options apply to only next boot\n   - Boot Device Selector : Force Boot from default Hard-Drive\n';
  assert.deepEqual(parseBootParam5(sim), { device: 'disk', persistent: undefined });
  assert.equal(classifyIpmitoolFailure('> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session', c).retryable, false);
  assert.equal(classifyIpmitoolFailure('RAKP 2 message indicates an error : unauthorized name', c).retryable, false);
  assert.equal(classifyIpmitoolFailure('Error: Unable to establish IPMI v2 / RMCP+ session', c).retryable, true);
});

interface Bench {
  sim: IpmiSim;
  config: IpmiConfig;
  raw: IpmiDriver;
  mgmt: Namespace;
}

async function waitForBmc(raw: IpmiDriver, sim: IpmiSim): Promise<PowerState> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await raw.status();
    } catch (err) {
      if (!sim.process.running) throw new Error(`ipmi_sim exited: ${sim.process.output()}`);
      if (Date.now() > deadline) throw new Error(`ipmi_sim did not answer within 10 s: ${(err as Error).message}\n${sim.process.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function count(lines: string[], text: string): number {
  return lines.filter((l) => l === text).length;
}

test('ipmi driver against OpenIPMI ipmi_sim driving a real QEMU process', async (t) => {
  await withLab(async (lab) => {
    const bmcNs = await lab.namespace('bmc');
    const mgmt = await lab.namespace('mgmt');
    const oob = await lab.bridge('oob');
    await lab.link(bmcNs, oob, { addressA: `${BMC}/24` });
    await lab.link(mgmt, oob, { addressA: '10.66.0.1/24' });
    const sim = startIpmiSim(bmcNs, { address: BMC, username: 'fulcrum', password: PASSWORD, dir: lab.makeDir('bmc') });
    const config: IpmiConfig = { address: BMC, username: 'fulcrum', password: PASSWORD, commandPrefix: ['ip', 'netns', 'exec', mgmt.name] };
    const raw = new IpmiDriver(config);
    const b: Bench = { sim, config, raw, mgmt };
    let started = Date.now();
    assert.equal(await waitForBmc(raw, sim), 'off', 'no QEMU process yet: the chassis is off');
    t.diagnostic(`ipmi_sim answering after ${Date.now() - started} ms`);
    const events: PowerEvent[] = [];
    const power = verifiedPower(raw, { ...FAST, node: 'n1', onEvent: (e) => events.push(e) });

    await t.test('next boot pxe reaches the chassis, and is read back', async () => {
      await power.nextBoot('pxe');
      assert.ok(sim.calls().includes('set boot pxe'), sim.calls().join('\n'));
      assert.deepEqual(await raw.bootOverride(), { device: 'pxe', persistent: undefined });
    });

    await t.test('on starts the QEMU process, with the boot order asked for', async () => {
      assert.equal(sim.qemuPid(), undefined);
      started = Date.now();
      await power.on();
      t.diagnostic(`power on confirmed in ${Date.now() - started} ms`);
      const argv = sim.qemuArgv();
      assert.ok(argv, 'QEMU runs');
      assert.equal(argv[argv.indexOf('-boot') + 1], 'order=n');
      assert.equal(await power.status(), 'on');
      // Already on: on() confirms without sending another command.
      const before = count(sim.calls(), 'set power 1');
      await power.on();
      assert.equal(count(sim.calls(), 'set power 1'), before);
    });

    await t.test('cycle (verified off, then on) replaces the QEMU process', async () => {
      const pid = sim.qemuPid();
      started = Date.now();
      await power.cycle();
      t.diagnostic(`off-on cycle confirmed in ${Date.now() - started} ms`);
      const now = sim.qemuPid();
      assert.ok(now !== undefined && now !== pid, `a new QEMU process (was ${pid}, now ${now})`);
    });

    await t.test('native cycle: ipmi_sim powers off, and on again 1 s later', async () => {
      await power.nextBoot('disk', { persistent: true });
      assert.ok(sim.calls().includes('set boot default'), 'ipmi_sim passes "disk" as boot default');
      assert.deepEqual(await raw.bootOverride(), { device: 'disk', persistent: undefined });
      const pid = sim.qemuPid();
      const native = verifiedPower(raw, { ...FAST, cycle: 'native' });
      started = Date.now();
      await native.cycle();
      t.diagnostic(`native cycle confirmed in ${Date.now() - started} ms`);
      const now = sim.qemuPid();
      assert.ok(now !== undefined && now !== pid, `a new QEMU process (was ${pid}, now ${now})`);
      const argv = sim.qemuArgv()!;
      assert.equal(argv[argv.indexOf('-boot') + 1], 'order=c');
    });

    await t.test('off stops the QEMU process', async () => {
      const pid = sim.qemuPid()!;
      await power.off();
      assert.equal(sim.qemuPid(), undefined);
      assert.equal(fs.existsSync(`/proc/${pid}/cmdline`) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(sim.chassisDir), false);
      assert.equal(await power.status(), 'off');
    });

    await t.test('verification catches a chassis that acknowledges and ignores', async () => {
      sim.refuse(true);
      // The bare driver believes the BMC: the command "succeeds".
      await raw.on();
      assert.equal(await raw.status(), 'off');
      const strict = verifiedPower(raw, { ...FAST, attempts: 2, verifyTimeoutMs: 400, node: 'n1' });
      const refusedBefore = count(sim.calls(), 'refused power 1');
      started = Date.now();
      await assert.rejects(strict.on(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.match(err.message, /^node n1: BMC 10\.66\.0\.5 \(ipmi\): power on not confirmed after 2 attempts; last status off \(the command was accepted/);
        assert.equal(err.observed, 'off');
        assert.equal(err.retryable, true);
        return true;
      });
      t.diagnostic(`gave up after ${Date.now() - started} ms`);
      assert.equal(count(sim.calls(), 'refused power 1') - refusedBefore, 2, 'one command per attempt');
      assert.equal(sim.qemuPid(), undefined);
      // The same for off, while on.
      sim.refuse(false);
      await power.on();
      sim.refuse(true);
      await assert.rejects(strict.off(), /power off not confirmed after 2 attempts; last status on/);
      assert.ok(sim.qemuPid() !== undefined);
      sim.refuse(false);
      await power.off();
    });

    await t.test('a BMC that fails twice is retried with backoff, then confirmed', async () => {
      sim.failNext(2);
      const log: PowerEvent[] = [];
      const retrying = verifiedPower(raw, { ...FAST, attempts: 3, onEvent: (e) => log.push(e) });
      await retrying.on();
      assert.ok(sim.qemuPid() !== undefined);
      assert.deepEqual(log.map((e) => e.outcome), ['error', 'error', 'confirmed']);
      assert.match(log[0].error ?? '', /chassis power on/);
      await power.off();
    });

    await t.test('bad credentials fail at once, with the user named and no password anywhere', async () => {
      const wrongPassword = 'Wrong-Pa55-0001';
      const bad = verifiedPower(new IpmiDriver({ ...config, password: wrongPassword }), FAST);
      let seen = 0;
      await assert.rejects(bad.on(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.match(err.message, /BMC 10\.66\.0\.5 \(ipmi\): power on failed: .*rejected the password of user "fulcrum"/);
        assert.equal(err.retryable, false);
        assert.equal(err.attempts, 1);
        assert.ok(!err.message.includes(wrongPassword) && !err.message.includes(PASSWORD));
        seen++;
        return true;
      });
      const unknownUser = verifiedPower(new IpmiDriver({ ...config, username: 'nobody' }), FAST);
      await assert.rejects(unknownUser.status(), /does not know user "nobody"/);
      assert.equal(seen, 1);
      assert.ok(events.every((e) => !JSON.stringify(e).includes(PASSWORD)), 'events carry no secret');
    });

    await t.test('the password is not on any command line ipmitool runs with', async () => {
      const record = path.join(lab.makeDir('argv'), 'argv.log');
      const spy = new IpmiDriver({
        ...config,
        // Records the argv exactly as executed (what `ps` would show), then runs it.
        commandPrefix: ['/bin/sh', '-c', `printf '%s\\n' "$*" >> ${record}; env | grep -c IPMI_PASSWORD >> ${record}; exec "$@"`, 'spy', 'ip', 'netns', 'exec', b.mgmt.name],
      });
      assert.equal(await spy.status(), 'off');
      const text = fs.readFileSync(record, 'utf8');
      assert.match(text, /ipmitool -I lanplus -H 10\.66\.0\.5 -p 623 -U fulcrum -E -C 3/);
      assert.ok(!text.includes(PASSWORD));
      assert.match(text, /^1$/m, 'the password travels in IPMI_PASSWORD');
    });

    await t.test('an unreachable BMC is retried, then reported with what was tried', async () => {
      const gone = verifiedPower(new IpmiDriver({ ...config, address: '10.66.0.99', retransmits: 1 }), { ...FAST, attempts: 2 });
      started = Date.now();
      await assert.rejects(gone.status(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.match(err.message, /^BMC 10\.66\.0\.99 \(ipmi\): power status failed after 2 attempts: .*no IPMI session with the BMC on UDP port 623/);
        return true;
      });
      t.diagnostic(`unreachable BMC reported after ${Date.now() - started} ms`);
    });
  });
});
