// Child processes for the lab: bounded command runs, tracked long-running processes, and the
// "is this PID still the process we started?" checks that guard every kill (LAB-NOTES: check
// /proc/PID/cmdline before killing; PIDs of exited daemons get reused).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

/** Environment for programs run in the lab: no inherited proxies, locales or tool settings. */
export const LAB_ENV: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

export class LabError extends Error {
  constructor(message: string, readonly details: { output?: string; command?: readonly string[] } = {}) {
    super(details.output ? `${message}\n--- output (tail) ---\n${details.output}` : message);
    this.name = 'LabError';
  }
}

export interface ExecOptions {
  /** Bound on the whole run; the command is killed (SIGKILL) when it passes. Default 15 s. */
  timeoutMs?: number;
  /** Throw a LabError on a non-zero exit (default true). */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
}

export interface ExecResult {
  command: readonly string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

const OUTPUT_LIMIT = 256 * 1024;

export function describeCommand(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Run a command to completion, bounded by `timeoutMs`. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { if (stdout.length < OUTPUT_LIMIT) stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < OUTPUT_LIMIT) stderr += d; });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new LabError(`cannot run ${describeCommand(argv)}: ${err.message}`, { command: argv }));
    });
    // A program that leaves a background child holding our pipes (a daemon that does not close its
    // stdio) would delay 'close' for that child's lifetime: after 'exit', wait briefly, then stop reading.
    child.on('exit', () => {
      setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); }, 200).unref();
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = { command: argv, code, signal, stdout, stderr, durationMs: Date.now() - started };
      if (timedOut) {
        reject(new LabError(`${describeCommand(argv)} did not finish within ${timeoutMs} ms (killed)`, { command: argv, output: tail(stdout + stderr) }));
      } else if (code !== 0 && opts.check !== false) {
        reject(new LabError(`${describeCommand(argv)} failed with ${code === null ? `signal ${signal}` : `exit code ${code}`}`, { command: argv, output: tail(stdout + stderr) }));
      } else {
        resolve(result);
      }
    });
  });
}

export function tail(text: string, max = 4000): string {
  return text.length <= max ? text.trimEnd() : `…${text.slice(-max).trimEnd()}`;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running child process (server, DHCP client in the foreground...), owned by a Lab. */
export class LabProcess {
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  #status: ExitStatus | undefined;
  #output = '';
  #waiters = new Set<() => void>();

  constructor(readonly command: readonly string[], readonly child: ChildProcess, readonly label: string) {
    if (child.pid === undefined) throw new LabError(`cannot start ${describeCommand(command)}`, { command });
    this.pid = child.pid;
    const append = (d: string) => {
      this.#output += d;
      if (this.#output.length > OUTPUT_LIMIT) this.#output = this.#output.slice(-OUTPUT_LIMIT / 2);
      for (const w of this.#waiters) w();
    };
    child.stdout?.setEncoding('utf8').on('data', append);
    child.stderr?.setEncoding('utf8').on('data', append);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.#status = { code, signal };
        for (const w of this.#waiters) w();
        resolve(this.#status);
      });
    });
  }

  get running(): boolean {
    return this.#status === undefined;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.#status;
  }

  /** Everything the process wrote to stdout and stderr (interleaved, last 128-256 KB). */
  output(): string {
    return this.#output;
  }

  /** Resolve with the first match of `pattern` in the output; reject on exit or after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.#output.match(pattern);
        if (m) return done(() => resolve(m));
        if (this.#status) {
          return done(() => reject(new LabError(`${this.label} exited (${statusText(this.#status!)}) before printing ${pattern}`, { command: this.command, output: tail(this.#output) })));
        }
      };
      const timer = setTimeout(() => done(() => reject(new LabError(`${this.label} did not print ${pattern} within ${timeoutMs} ms`, { command: this.command, output: tail(this.#output) }))), timeoutMs);
      const done = (f: () => void) => { clearTimeout(timer); this.#waiters.delete(check); f(); };
      this.#waiters.add(check);
      check();
    });
  }

  /** Wait for the process to exit by itself, at most `timeoutMs`; undefined if it is still running. */
  async waitForExit(timeoutMs: number): Promise<ExitStatus | undefined> {
    if (this.#status) return this.#status;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs); });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(sig: NodeJS.Signals): boolean {
    if (!this.running) return false;
    return this.child.kill(sig);
  }

  /** `signal` (default SIGTERM), then SIGKILL after `timeoutMs` (default 3 s). Safe to call on an exited process. */
  async stop(opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<ExitStatus> {
    if (this.#status) return this.#status;
    this.signal(opts.signal ?? 'SIGTERM');
    const status = await this.waitForExit(opts.timeoutMs ?? 3000);
    if (status) return status;
    this.signal('SIGKILL');
    const killed = await this.waitForExit(3000);
    if (!killed) throw new LabError(`${this.label} (pid ${this.pid}) survived SIGKILL for 3 s`, { command: this.command });
    return killed;
  }
}

export function statusText(s: ExitStatus): string {
  return s.code !== null ? `exit code ${s.code}` : `signal ${s.signal}`;
}

// ---- PID checks -----------------------------------------------------------------------------

/** argv of a live process, or undefined when it is gone or a zombie (empty cmdline). */
export function readCmdline(pid: number): string[] | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (raw === '') return undefined;
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** Inode of a process's network namespace, or undefined when it is gone. */
export function netnsInodeOf(pid: number): number | undefined {
  try {
    const m = /^net:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/ns/net`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface PidIdentity {
  /** A substring the process's command line (joined with spaces) must contain. */
  match: string;
  /** The process must live in the network namespace with this inode. */
  netnsInode?: number;
}

/** True when `pid` is alive and still the process described by `who`. */
export function isSameProcess(pid: number, who: PidIdentity): boolean {
  const argv = readCmdline(pid);
  if (!argv || !argv.join(' ').includes(who.match)) return false;
  if (who.netnsInode !== undefined && netnsInodeOf(pid) !== who.netnsInode) return false;
  return true;
}

/** Send `sig` only when the PID still is the process described by `who`. */
export function signalVerified(pid: number, sig: NodeJS.Signals, who: PidIdentity): boolean {
  if (!isSameProcess(pid, who)) return false;
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Read a pid file: the PID, or undefined when absent or malformed. */
export function readPidFile(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `probe` until it returns a value other than undefined; LabError after `timeoutMs`. */
export async function waitUntil<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw new LabError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(Math.min(intervalMs, Math.max(1, deadline - Date.now())));
  }
}

/** Synchronous sleep, only for the exit/signal cleanup path where the event loop is gone. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function runSync(argv: readonly string[], timeoutMs = 5000): { code: number | null; stdout: string } {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, stdout: r.stdout ?? '' };
}

/** Resolve a system binary by name: PATH first, then the sbin directories a non-login PATH lacks. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    const p = `${d}/${name}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

export function requireBinary(name: string, pkg: string): string {
  const p = findBinary(name);
  if (!p) throw new LabError(`${name} is not installed; install the Debian package ${pkg} (scripts/install-system-packages.sh net)`);
  return p;
}
