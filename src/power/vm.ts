// VM power driver for labs: a QEMU process is the "chassis", driven through its QMP socket.
//
// - on: start the VM with the configured launch command (the driver appends -qmp, -pidfile and
//   -boot), or resume it (`cont`) when it exists but its CPUs are stopped (-S, `stop`, shutdown);
// - off: `quit` (hard off, like IPMI chassis power off), optionally after an ACPI
//   `system_powerdown` and a grace period; SIGKILL (PID checked) if QMP no longer answers;
// - status: `query-status`; no QEMU process means off;
// - next boot: QEMU reads -boot only at start, so the driver records the choice in a state file
//   beside the socket and applies it at the next start: a one-time device as `-boot once=X` (QEMU
//   uses it for the first boot of that process only, like a BMC's one-time override) and a
//   persistent one as `-boot order=X`. A cycle with a boot change pending, or with -no-reboot in
//   the launch command (QEMU then exits on system_reset), restarts the process; otherwise it is
//   `system_reset`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import {
  PowerError, outputTail,
  type BootDevice, type BootOverride, type NextBootOptions, type PowerAction, type PowerDriver, type PowerState,
} from './driver.js';
import { qmpCommand, QmpError } from './qmp.js';

export interface VmPowerConfig {
  /** Path of the VM's QMP unix socket (created by QEMU when the driver starts it). */
  address: string;
  /**
   * argv that starts the VM: QEMU and its machine options, possibly behind a prefix such as
   * `ip netns exec NS`. It must not contain -qmp, -pidfile, -boot or -daemonize (the driver adds
   * the first three), nor `bootindex=` properties, which override -boot.
   */
  launch: readonly string[];
  /** Environment for the launch command. Default: this process's. */
  env?: Record<string, string>;
  /** Bound on QEMU starting and answering on QMP. Default 10000 ms. */
  startTimeoutMs?: number;
  /** Bound on one QMP command and on the process exiting after quit. Default 5000 ms. */
  commandTimeoutMs?: number;
  /** Ask the guest to shut down (ACPI) and wait this long before quitting. Default 0: immediate hard off. */
  gracefulShutdownMs?: number;
  /** -boot drive letters. Default pxe 'n', disk 'c'. */
  bootLetters?: Partial<Record<BootDevice, string>>;
}

interface VmBootState {
  /** Device for every start (-boot order=). */
  persistent?: BootDevice;
  /** Device for the next start only (-boot once=); cleared when a start uses it. */
  once?: BootDevice;
  /** The -boot value the running process was started with ('' for none). */
  launchedWith?: string;
}

/** QMP RunState values in which the guest's CPUs do not run: reported as off. */
const STOPPED = new Set(['prelaunch', 'paused', 'shutdown']);

export class VmDriver implements PowerDriver {
  readonly kind = 'vm';
  readonly target: string;
  readonly pidFile: string;
  readonly stateFile: string;
  readonly logFile: string;

  constructor(readonly config: VmPowerConfig) {
    if (!config.address) throw new TypeError('vm power: address (the QMP socket path) is required');
    if (!config.launch?.length) throw new TypeError(`vm power for ${config.address}: launch (the command that starts the VM) is required`);
    for (const bad of ['-qmp', '-pidfile', '-boot', '-daemonize']) {
      if (config.launch.includes(bad)) throw new TypeError(`vm power for ${config.address}: the launch command must not contain ${bad}; the driver adds it`);
    }
    if (Buffer.byteLength(config.address) > 107) throw new TypeError(`vm power: QMP socket path ${config.address} is longer than a unix socket allows (107 bytes)`);
    this.target = `VM ${config.address} (vm)`;
    this.pidFile = `${config.address}.pid`;
    this.stateFile = `${config.address}.boot.json`;
    this.logFile = `${config.address}.log`;
  }

  async status(): Promise<PowerState> {
    const s = await this.#runState('status');
    return s === undefined || STOPPED.has(s) ? 'off' : 'on';
  }

  async on(): Promise<void> {
    let s = await this.#runState('on');
    if (s === undefined) {
      await this.#launch();
      s = await this.#runState('on');
    }
    if (s === 'shutdown') await this.#qmp('on', 'system_reset');
    if (s !== undefined && STOPPED.has(s)) await this.#qmp('on', 'cont');
  }

  async off(): Promise<void> {
    let s: string | undefined;
    try {
      s = await this.#runState('off');
    } catch (err) {
      // QEMU is there but QMP does not answer (hung, stopped): the hard off is SIGKILL (PID checked).
      const pid = this.#pid();
      this.#kill(pid);
      if (await this.#waitGone(3000, pid)) return;
      throw this.#error('off', `${(err as Error).message}; it did not exit after SIGKILL either`, true, err);
    }
    if (s === undefined) return;
    const pid = this.#pid();
    const grace = this.config.gracefulShutdownMs ?? 0;
    if (grace > 0) {
      await this.#qmp('off', 'system_powerdown').catch(() => undefined);
      if (await this.#waitGone(grace, pid)) return;
    }
    try {
      await this.#qmp('off', 'quit');
    } catch (err) {
      if (!(err instanceof QmpError && (err.code === 'ECONNRESET' || err.code === 'EPIPE'))) this.#kill(pid);
    }
    if (!(await this.#waitGone(this.config.commandTimeoutMs ?? 5000, pid))) {
      this.#kill(pid);
      if (!(await this.#waitGone(3000, pid))) throw this.#error('off', `QEMU (pid ${pid}) did not exit after quit and SIGKILL`, true);
    }
  }

  async cycle(): Promise<void> {
    const s = await this.#runState('cycle');
    if (s === undefined) return this.on();
    const state = this.#readState();
    // A reset keeps the process's -boot order (QEMU has already dropped a spent once=): restart
    // only for a pending one-time device or a changed persistent order.
    const order = (arg: string) => arg.split(',').filter((p) => p.startsWith('order=')).join(',');
    const restart = state.once !== undefined || order(state.launchedWith ?? '') !== order(this.#bootArg(state)) || this.config.launch.includes('-no-reboot');
    if (restart) {
      await this.off();
      await this.on();
      return;
    }
    await this.#qmp('cycle', 'system_reset');
    if (STOPPED.has(s)) await this.#qmp('cycle', 'cont');
  }

  async nextBoot(dev: BootDevice, opts: NextBootOptions = {}): Promise<void> {
    const state = this.#readState();
    if (opts.persistent) {
      state.persistent = dev;
      delete state.once;
    } else {
      state.once = dev;
    }
    this.#writeState(state);
  }

  async bootOverride(): Promise<BootOverride> {
    const s = this.#readState();
    if (s.once) return { device: s.once, persistent: false };
    if (s.persistent) return { device: s.persistent, persistent: true };
    return { device: 'none', persistent: undefined };
  }

  /** The QEMU process's PID, when the pid file names a live process using this socket. */
  pid(): number | undefined {
    return this.#pid();
  }

  // ---- internals ----------------------------------------------------------------------------

  #error(action: PowerAction, detail: string, retryable: boolean, cause?: unknown): PowerError {
    return new PowerError(detail, { target: this.target, action, retryable, cause });
  }

  #qmp<T = unknown>(action: PowerAction, execute: string, args?: Record<string, unknown>): Promise<T> {
    return qmpCommand<T>(this.config.address, execute, args, this.config.commandTimeoutMs ?? 5000).catch((err: unknown) => {
      throw this.#error(action, (err as Error).message, true, err);
    });
  }

  /** QEMU's RunState, or undefined when no QEMU process is there. */
  async #runState(action: PowerAction): Promise<string | undefined> {
    try {
      const r = await qmpCommand<{ status: string }>(this.config.address, 'query-status', undefined, this.config.commandTimeoutMs ?? 5000);
      return r.status;
    } catch (err) {
      const pid = this.#pid();
      if (pid === undefined) return undefined;
      throw this.#error(action, `QEMU (pid ${pid}) is running but its QMP socket does not answer: ${(err as Error).message}`, true, err);
    }
  }

  #pid(): number | undefined {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(this.pidFile, 'utf8').trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    return this.#isOurs(pid) ? pid : undefined;
  }

  /** A PID is only this VM if its command line names this socket (PIDs get reused; zombies have none). */
  #isOurs(pid: number): boolean {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`unix:${this.config.address},`);
    } catch {
      return false;
    }
  }

  #kill(pid = this.#pid()): void {
    if (pid !== undefined && this.#isOurs(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }

  /**
   * Wait until the process `pid` (default: the pid file's) has exited. QEMU removes its pid file
   * while it is still shutting down, so a caller that knows the PID passes it.
   */
  async #waitGone(timeoutMs: number, pid = this.#pid()): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (pid !== undefined && this.#isOurs(pid)) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
    return true;
  }

  #readState(): VmBootState {
    try {
      return JSON.parse(fs.readFileSync(this.stateFile, 'utf8')) as VmBootState;
    } catch {
      return {};
    }
  }

  #writeState(s: VmBootState): void {
    const tmp = `${this.stateFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(s)}\n`);
    fs.renameSync(tmp, this.stateFile);
  }

  #letter(dev: BootDevice): string {
    return this.config.bootLetters?.[dev] ?? (dev === 'pxe' ? 'n' : 'c');
  }

  /** The -boot value for a start in this state ('' for none). */
  #bootArg(s: VmBootState): string {
    const parts: string[] = [];
    if (s.persistent) parts.push(`order=${this.#letter(s.persistent)}`);
    if (s.once) parts.push(`once=${this.#letter(s.once)}`);
    return parts.join(',');
  }

  async #launch(): Promise<void> {
    const state = this.#readState();
    const boot = this.#bootArg(state);
    // Leftovers of a VM that is gone: QEMU refuses to bind an existing socket path.
    fs.rmSync(this.pidFile, { force: true });
    fs.rmSync(this.config.address, { force: true });
    const argv = [
      ...this.config.launch,
      '-qmp', `unix:${this.config.address},server=on,wait=off`,
      '-pidfile', this.pidFile,
      ...(boot ? ['-boot', boot] : []),
    ];
    const log = fs.openSync(this.logFile, 'a');
    let exited: string | undefined;
    let childPid: number | undefined;
    try {
      const child = spawn(argv[0], argv.slice(1), {
        // Not the server's environment: it holds DATABASE_URL and FULCRUM_SECRET_KEY.
        env: this.config.env ?? { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.on('error', (err) => { exited = err.message; });
      child.on('exit', (code, signal) => { exited = code !== null ? `exit code ${code}` : `signal ${signal}`; });
      child.unref();
      childPid = child.pid;
    } finally {
      fs.closeSync(log);
    }
    const timeoutMs = this.config.startTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await qmpCommand(this.config.address, 'query-status', undefined, Math.max(500, deadline - Date.now()));
        break;
      } catch {
        // Not up yet.
      }
      if (exited !== undefined) {
        throw this.#error('on', `QEMU exited while starting (${exited}): ${outputTail(this.#logTail())}`, false);
      }
      if (Date.now() >= deadline) {
        // Our own child, not reaped yet (no exit seen), so its PID is still ours: end its whole
        // process group (detached: it leads one), whether or not it got as far as the pid file.
        if (childPid !== undefined && exited === undefined) try { process.kill(-childPid, 'SIGKILL'); } catch { /* gone */ }
        this.#kill();
        throw this.#error('on', `QEMU did not answer on ${this.config.address} within ${timeoutMs} ms: ${outputTail(this.#logTail())}`, true);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    // The one-time device is spent by this start, as a BMC clears its one-time override at boot.
    delete state.once;
    state.launchedWith = boot;
    this.#writeState(state);
  }

  #logTail(): string {
    try {
      const text = fs.readFileSync(this.logFile, 'utf8');
      return text.slice(-2000) || 'no output';
    } catch {
      return 'no output';
    }
  }
}
