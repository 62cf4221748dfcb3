// The vm power driver against a real QEMU (qemu-system-x86_64, TCG: KVM is not usable on this
// machine kind, LAB-NOTES) with a tiny machine and no network, driven through its real QMP socket.
// SeaBIOS's debug console (port 0x402) goes to a file, so a reset is seen as a new BIOS banner.
// Every QEMU this test starts has the test's temporary directory on its command line; the cleanup
// kills exactly those (checked in /proc/PID/cmdline), even when a subtest fails.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { projectRoot } from '../paths.js';
import { PowerError } from './driver.js';
import { qmpCommand } from './qmp.js';
import { verifiedPower, type PowerEvent, type PowerPolicy } from './verified.js';
import { VmDriver, type VmPowerConfig } from './vm.js';

const QEMU = 'qemu-system-x86_64';
// QEMU starts and answers QMP in well under a second here.
const FAST: PowerPolicy = { attempts: 3, initialDelayMs: 50, maxDelayMs: 200, jitter: 0, verifyTimeoutMs: 5000, pollIntervalMs: 50 };

let dir = '';

function have(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

/** PIDs of live processes whose command line mentions `marker` (our unique temp dir). */
function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(marker)) out.push(Number(e));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

function killOurs(): number {
  if (!dir) return 0;
  const pids = processesWith(dir);
  for (const pid of pids) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return pids.length;
}

function argvOf(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

/** The -boot value a process was started with, or undefined. */
function bootArgOf(pid: number): string | undefined {
  const argv = argvOf(pid);
  const i = argv.indexOf('-boot');
  return i < 0 ? undefined : argv[i + 1];
}

function alive(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
  } catch {
    return false;
  }
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

before(() => {
  if (!have(QEMU) && process.getuid?.() === 0) {
    spawnSync('sh', [path.join(projectRoot, 'scripts', 'install-system-packages.sh'), 'vm'], { stdio: 'inherit', timeout: 15 * 60_000 });
  }
  if (!have(QEMU)) throw new Error(`the vm power tests need ${QEMU} (Debian package qemu-system-x86)`);
  // Short: the QMP socket path must fit a unix socket address.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fvm-'));
});

after(() => {
  const left = killOurs();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (left > 0) console.error(`vm.test: killed ${left} leftover process(es)`);
});

function launch(name: string): string[] {
  return [
    QEMU, '-nodefaults', '-machine', 'pc', '-accel', 'tcg', '-m', '32', '-display', 'none', '-S', '-serial', 'null',
    '-name', name,
    '-chardev', `file,id=dbg,path=${path.join(dir, `${name}.bios.log`)}`, '-device', 'isa-debugcon,iobase=0x402,chardev=dbg',
  ];
}

function biosBanners(name: string): number {
  try {
    return fs.readFileSync(path.join(dir, `${name}.bios.log`), 'latin1').split('SeaBIOS (version').length - 1;
  } catch {
    return 0;
  }
}

test('vm driver: configuration checks (pure)', () => {
  const ok: VmPowerConfig = { address: '/run/fulcrum/vm1.qmp', launch: [QEMU, '-m', '64'] };
  const d = new VmDriver(ok);
  assert.equal(d.target, 'VM /run/fulcrum/vm1.qmp (vm)');
  assert.equal(d.pidFile, '/run/fulcrum/vm1.qmp.pid');
  assert.equal(d.stateFile, '/run/fulcrum/vm1.qmp.boot.json');
  assert.throws(() => new VmDriver({ ...ok, address: '' }), /address \(the QMP socket path\) is required/);
  assert.throws(() => new VmDriver({ ...ok, launch: [] }), /vm power for \/run\/fulcrum\/vm1\.qmp: launch .* is required/);
  for (const bad of ['-qmp', '-pidfile', '-boot', '-daemonize']) {
    assert.throws(() => new VmDriver({ ...ok, launch: [QEMU, bad, 'x'] }), new RegExp(`must not contain ${bad}; the driver adds it`));
  }
  assert.throws(() => new VmDriver({ ...ok, address: `/tmp/${'x'.repeat(120)}` }), /longer than a unix socket allows/);
});

test('vm driver against a real QEMU (TCG) through its QMP socket', async (t) => {
  const socket = path.join(dir, 'vm1.qmp');
  const raw = new VmDriver({ address: socket, launch: launch('vm1') });
  const events: PowerEvent[] = [];
  const power = verifiedPower(raw, { ...FAST, node: 'vm1', onEvent: (e) => events.push(e) });
  const native = verifiedPower(raw, { ...FAST, node: 'vm1', cycle: 'native' });
  try {
    await t.test('on launches QEMU and runs it; on again changes nothing', async () => {
      assert.equal(await raw.status(), 'off', 'no process: off');
      assert.equal(raw.pid(), undefined);
      const started = Date.now();
      await power.on();
      t.diagnostic(`verified on (launch, QMP, cont) in ${Date.now() - started} ms`);
      const pid = raw.pid();
      assert.ok(pid, 'QEMU runs');
      const argv = argvOf(pid);
      assert.equal(argv[argv.indexOf('-qmp') + 1], `unix:${socket},server=on,wait=off`);
      assert.equal(argv[argv.indexOf('-pidfile') + 1], raw.pidFile);
      assert.equal(bootArgOf(pid), undefined, 'no boot device chosen: no -boot');
      assert.equal((await qmpCommand<{ status: string }>(socket, 'query-status')).status, 'running', 'the CPUs run (-S was continued)');
      assert.equal(await power.status(), 'on');
      await waitFor('SeaBIOS to start', 5000, () => (biosBanners('vm1') > 0 ? true : undefined));
      await power.on();
      assert.equal(raw.pid(), pid, 'already on: same process');
    });

    await t.test('off ends the process; off again is fine', async () => {
      const pid = raw.pid()!;
      const started = Date.now();
      await power.off();
      t.diagnostic(`verified off (quit) in ${Date.now() - started} ms`);
      assert.equal(alive(pid), false, `QEMU ${pid} is gone`);
      assert.equal(raw.pid(), undefined);
      assert.equal(await raw.status(), 'off');
      await raw.off();
      assert.equal(processesWith(socket).length, 0);
    });

    await t.test('on again starts a new process', async () => {
      await power.on();
      const pid = raw.pid();
      assert.ok(pid);
      assert.equal(processesWith(socket).length, 1, 'exactly one QEMU for this socket');
      assert.equal(await raw.status(), 'on');
    });

    await t.test('cycle without a boot change is a system_reset of the same process', async () => {
      const pid = raw.pid()!;
      // SeaBIOS prints its banner twice per boot (before and after POST); reset after the second
      // (a reset in the middle of POST is SeaBIOS's business, not the driver's).
      const banners = await waitFor('SeaBIOS to finish POST', 10_000, () => (biosBanners('vm1') >= 2 ? biosBanners('vm1') : undefined));
      const started = Date.now();
      await native.cycle();
      t.diagnostic(`native cycle (system_reset) in ${Date.now() - started} ms`);
      assert.equal(raw.pid(), pid, 'same process');
      await waitFor('SeaBIOS to start again after the reset', 10_000, () => (biosBanners('vm1') > banners ? true : undefined));
    });

    await t.test('next boot once: the cycle restarts QEMU with -boot once=, which is then spent', async () => {
      await power.nextBoot('pxe');
      assert.deepEqual(await raw.bootOverride(), { device: 'pxe', persistent: false });
      const pid = raw.pid()!;
      await native.cycle();
      const now = raw.pid()!;
      assert.ok(now && now !== pid, `a boot change is pending: a new process (was ${pid}, now ${now})`);
      assert.equal(alive(pid), false);
      assert.equal(bootArgOf(now), 'once=n');
      assert.deepEqual(await raw.bootOverride(), { device: 'none', persistent: undefined }, 'the one-time device is spent');
      // Nothing pending any more: the next cycle is a reset again, not another restart.
      await native.cycle();
      assert.equal(raw.pid(), now, 'a spent once= needs no restart');
      // The default (off, then on) cycle always makes a new process, now without -boot.
      await power.cycle();
      const fresh = raw.pid()!;
      assert.ok(fresh !== now);
      assert.equal(bootArgOf(fresh), undefined, 'the one-time device is not used again');
    });

    await t.test('next boot persistent: every later start uses -boot order=', async () => {
      await power.nextBoot('disk', { persistent: true });
      assert.deepEqual(await power.bootOverride(), { device: 'disk', persistent: true });
      let pid = raw.pid()!;
      await native.cycle();
      assert.notEqual(raw.pid(), pid, 'a changed order restarts');
      pid = raw.pid()!;
      assert.equal(bootArgOf(pid), 'order=c');
      await native.cycle();
      assert.equal(raw.pid(), pid, 'an unchanged order is a reset');
      await power.off();
      await power.on();
      assert.equal(bootArgOf(raw.pid()!), 'order=c', 'kept across off and on');
      // A one-time device on top of the persistent order, for one start.
      await power.nextBoot('pxe');
      assert.deepEqual(await raw.bootOverride(), { device: 'pxe', persistent: false });
      await power.cycle();
      assert.equal(bootArgOf(raw.pid()!), 'order=c,once=n');
      assert.deepEqual(await raw.bootOverride(), { device: 'disk', persistent: true }, 'back to the persistent device');
      assert.ok(events.every((e) => e.outcome !== 'failed'), JSON.stringify(events.filter((e) => e.outcome === 'failed')));
    });

    await t.test('an unresponsive QMP is an error naming the socket; off still ends QEMU', async () => {
      const pid = raw.pid()!;
      const slow = new VmDriver({ address: socket, launch: launch('vm1'), commandTimeoutMs: 300 });
      process.kill(pid, 'SIGSTOP');
      try {
        let started = Date.now();
        await assert.rejects(verifiedPower(slow, { ...FAST, attempts: 2 }).status(), (err: unknown) => {
          assert.ok(err instanceof PowerError);
          assert.equal(err.message, `VM ${socket} (vm): power status failed after 2 attempts: QEMU (pid ${pid}) is running but its QMP socket does not answer: QMP query-status on ${socket}: no answer within 300 ms`);
          assert.equal(err.retryable, true);
          return true;
        });
        t.diagnostic(`unresponsive QMP reported after ${Date.now() - started} ms`);
        started = Date.now();
        await slow.off();
        t.diagnostic(`hung QEMU killed in ${Date.now() - started} ms`);
        assert.equal(alive(pid), false, 'off ends a QEMU whose QMP does not answer');
        assert.equal(await slow.status(), 'off');
      } finally {
        try { if (alive(pid)) process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
      }
    });

    await t.test('graceful off waits for the guest, then quits; with -no-reboot a cycle restarts', async () => {
      // SeaBIOS with no OS ignores the ACPI power button: off takes the grace period, then quits.
      const graceMs = 400;
      const gentle = new VmDriver({ address: path.join(dir, 'vm4.qmp'), launch: launch('vm4'), gracefulShutdownMs: graceMs });
      await verifiedPower(gentle, FAST).on();
      const pid = gentle.pid()!;
      let started = Date.now();
      await verifiedPower(gentle, FAST).off();
      const took = Date.now() - started;
      t.diagnostic(`graceful off (ignored ACPI request, then quit) in ${took} ms`);
      assert.ok(took >= graceMs, `waited the grace period (${took} ms)`);
      assert.equal(alive(pid), false);

      const noReboot = new VmDriver({ address: path.join(dir, 'vm5.qmp'), launch: [...launch('vm5'), '-no-reboot'] });
      await verifiedPower(noReboot, FAST).on();
      const before = noReboot.pid()!;
      started = Date.now();
      await verifiedPower(noReboot, { ...FAST, cycle: 'native' }).cycle();
      t.diagnostic(`-no-reboot cycle (restart) in ${Date.now() - started} ms`);
      const after = noReboot.pid();
      assert.ok(after && after !== before, `QEMU would exit on system_reset: a new process (was ${before}, now ${after})`);
      await noReboot.off();
      assert.equal(noReboot.pid(), undefined);
    });

    await t.test('a QEMU that fails to start is reported with its output; one that hangs is killed', async () => {
      const broken = new VmDriver({ address: path.join(dir, 'vm2.qmp'), launch: [...launch('vm2'), '-no-such-option'] });
      await assert.rejects(verifiedPower(broken, FAST).on(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.match(err.message, /power on failed: QEMU exited while starting \(exit code 1\): .*-no-such-option/);
        assert.equal(err.retryable, false);
        return true;
      });
      // A launch command that stops itself before QEMU runs: no QMP, no pid file.
      const hungSocket = path.join(dir, 'vm3.qmp');
      const hung = new VmDriver({ address: hungSocket, launch: ['sh', '-c', 'kill -STOP $$; exec "$@"', 'vm3', ...launch('vm3')], startTimeoutMs: 1000 });
      const started = Date.now();
      await assert.rejects(hung.on(), (err: unknown) => {
        assert.ok(err instanceof PowerError);
        assert.match(err.message, new RegExp(`QEMU did not answer on ${hungSocket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} within 1000 ms`));
        assert.equal(err.retryable, true);
        return true;
      });
      t.diagnostic(`start timeout reported after ${Date.now() - started} ms`);
      const left = await waitFor('the hung launch to be killed', 3000, () => (processesWith(hungSocket).length === 0 ? 0 : undefined)).catch(() => processesWith(hungSocket).length);
      assert.equal(left, 0, 'nothing of the failed start is left running');
    });
  } finally {
    await raw.off().catch(() => undefined);
    killOurs();
  }
  assert.equal(processesWith(dir).length, 0, 'no QEMU left behind');
});
