// IPMI power driver: ipmitool over RMCP+ (lanplus). The password travels in the IPMI_PASSWORD
// environment variable (`-E`), never on the command line where `ps` would show it, and BMC output
// is redacted before it reaches an error.
import { spawn } from 'node:child_process';
import {
  PowerError, outputTail, redact,
  type BootDevice, type BootOverride, type NextBootOptions, type PowerAction, type PowerDriver, type PowerState,
} from './driver.js';

export interface IpmiConfig {
  /** BMC host name or IP address. */
  address: string;
  /** UDP port. Default 623. */
  port?: number;
  username: string;
  password: string;
  /** RMCP+ cipher suite (ipmitool -C). Default 3 (HMAC-SHA1, AES-CBC-128): the one most BMCs and ipmi_sim accept without a 10 s fallback stall. */
  cipherSuite?: number;
  /** Session privilege (ipmitool -L). Default: ipmitool's (ADMINISTRATOR). */
  privilege?: 'CALLBACK' | 'USER' | 'OPERATOR' | 'ADMINISTRATOR';
  /** Ask for UEFI boot with the boot device (options=efiboot). Default false (legacy/BIOS). */
  efiBoot?: boolean;
  /** Seconds ipmitool waits for each reply (-N). Default 1. */
  replyTimeoutSec?: number;
  /** Retransmissions inside ipmitool (-R), at least 1 (ipmitool reads 0 as its default, 4: about 20 s per unreachable BMC). Default 2 (about 6 s with -N 1). */
  retransmits?: number;
  /** Bound on one ipmitool run; it is killed after this. Default 20000 ms. */
  commandTimeoutMs?: number;
  /** The ipmitool binary. Default 'ipmitool' from PATH. */
  ipmitool?: string;
  /** argv to run ipmitool under, e.g. ['ip', 'netns', 'exec', 'oob'] to reach a BMC network from a namespace. */
  commandPrefix?: readonly string[];
}

export interface IpmitoolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

/** The full argv of one ipmitool run. Pure; the password is never part of it. */
export function ipmitoolArgv(c: IpmiConfig, args: readonly string[], opts: { verbose?: boolean } = {}): string[] {
  return [
    ...(c.commandPrefix ?? []),
    c.ipmitool ?? 'ipmitool',
    '-I', 'lanplus',
    '-H', c.address,
    '-p', String(c.port ?? 623),
    '-U', c.username,
    '-E',
    '-C', String(c.cipherSuite ?? 3),
    '-N', String(c.replyTimeoutSec ?? 1),
    '-R', String(Math.max(1, c.retransmits ?? 2)),
    ...(c.privilege ? ['-L', c.privilege] : []),
    ...(opts.verbose ? ['-v'] : []),
    ...args,
  ];
}

/** `chassis bootdev` arguments for a device. */
export function bootdevArgs(dev: BootDevice, opts: NextBootOptions = {}, efiBoot = false): string[] {
  const options = [...(opts.persistent ? ['persistent'] : []), ...(efiBoot ? ['efiboot'] : [])];
  return ['chassis', 'bootdev', dev, ...(options.length ? [`options=${options.join(',')}`] : [])];
}

/** "Chassis Power is on" → 'on'. */
export function parsePowerStatus(stdout: string): PowerState | undefined {
  const m = /Chassis Power is (on|off)/i.exec(stdout);
  return m ? (m[1].toLowerCase() as PowerState) : undefined;
}

/** `chassis bootparam get 5` output → the override the BMC reports. */
export function parseBootParam5(stdout: string): BootOverride | undefined {
  const sel = /Boot Device Selector\s*:\s*(.+)/i.exec(stdout);
  if (!sel) return undefined;
  const s = sel[1].trim();
  let device: string;
  if (/PXE/i.test(s)) device = 'pxe';
  else if (/Hard-?Drive/i.test(s)) device = 'disk';
  else if (/No override/i.test(s)) device = 'none';
  else if (/CD|DVD/i.test(s)) device = 'cdrom';
  else if (/BIOS Setup/i.test(s)) device = 'bios';
  else device = s;
  // A BMC that does not mark the flags valid (ipmi_sim never does) says nothing reliable about persistence.
  const valid = /Boot Flag Valid/i.test(stdout) && !/Boot Flag Invalid/i.test(stdout);
  let persistent: boolean | undefined;
  if (valid && /apply to all future boots/i.test(stdout)) persistent = true;
  else if (valid && /apply to only next boot/i.test(stdout)) persistent = false;
  return { device, persistent };
}

/** What an ipmitool failure means, from its output (plus the output of a verbose re-run, if any). */
export function classifyIpmitoolFailure(output: string, c: Pick<IpmiConfig, 'username' | 'port' | 'cipherSuite'>): { detail: string; retryable: boolean } {
  if (/unauthorized name/i.test(output)) {
    return { detail: `the BMC does not know user "${c.username}" (RAKP: unauthorized name); check the node's power username`, retryable: false };
  }
  if (/RAKP 2 HMAC is invalid|RAKP \d .*(invalid|integrity)/i.test(output)) {
    return { detail: `the BMC rejected the password of user "${c.username}" (RAKP 2 HMAC invalid); check the node's power password`, retryable: false };
  }
  if (/Unable to read password from environment/i.test(output)) {
    return { detail: 'no password configured for the BMC', retryable: false };
  }
  if (/unsupported cipher suite|Invalid or unsupported cipher/i.test(output)) {
    return { detail: `the BMC does not support RMCP+ cipher suite ${c.cipherSuite ?? 3}; set cipherSuite (often 17 on newer BMCs)`, retryable: false };
  }
  if (/insufficient privilege|Requested privilege level exceeds/i.test(output)) {
    return { detail: `user "${c.username}" lacks the privilege for this command; the BMC said: ${outputTail(output)}`, retryable: false };
  }
  if (/Unable to establish IPMI v2|Could not open socket|No response|timeout/i.test(output)) {
    return { detail: `no IPMI session with the BMC on UDP port ${c.port ?? 623} (unreachable, not answering, or busy): ${outputTail(output)}`, retryable: true };
  }
  return { detail: `ipmitool failed: ${outputTail(output)}`, retryable: true };
}

export class IpmiDriver implements PowerDriver {
  readonly kind = 'ipmi';
  readonly target: string;

  constructor(readonly config: IpmiConfig) {
    if (!config.address) throw new TypeError('ipmi power: address is required');
    if (!config.username) throw new TypeError(`ipmi power for ${config.address}: username is required`);
    if (config.password === undefined || config.password === '') throw new TypeError(`ipmi power for ${config.address}: password is required`);
    const port = config.port ?? 623;
    this.target = `BMC ${config.address}${port === 623 ? '' : `:${port}`} (ipmi)`;
  }

  async status(): Promise<PowerState> {
    const out = await this.#ipmitool('status', ['chassis', 'power', 'status']);
    const state = parsePowerStatus(out);
    if (!state) throw this.#error('status', `unexpected answer to "chassis power status": ${outputTail(this.#redact(out))}`, true);
    return state;
  }

  async on(): Promise<void> {
    await this.#ipmitool('on', ['chassis', 'power', 'on']);
  }

  async off(): Promise<void> {
    await this.#ipmitool('off', ['chassis', 'power', 'off']);
  }

  async cycle(): Promise<void> {
    await this.#ipmitool('cycle', ['chassis', 'power', 'cycle']);
  }

  async nextBoot(dev: BootDevice, opts: NextBootOptions = {}): Promise<void> {
    await this.#ipmitool('next boot', bootdevArgs(dev, opts, this.config.efiBoot));
  }

  async bootOverride(): Promise<BootOverride> {
    const out = await this.#ipmitool('boot override', ['chassis', 'bootparam', 'get', '5']);
    const o = parseBootParam5(out);
    if (!o) throw this.#error('boot override', `unexpected answer to "chassis bootparam get 5": ${outputTail(this.#redact(out))}`, true);
    return o;
  }

  // ---- running ipmitool ---------------------------------------------------------------------

  #redact(text: string): string {
    return redact(text, [this.config.password]);
  }

  #error(action: PowerAction, detail: string, retryable: boolean, cause?: unknown): PowerError {
    return new PowerError(detail, { target: this.target, action, retryable, cause });
  }

  /** Run one ipmitool command; stdout on success, a classified PowerError otherwise. */
  async #ipmitool(action: PowerAction, args: readonly string[]): Promise<string> {
    const r = await this.run(args);
    if (r.code === 0 && !r.timedOut) return r.stdout;
    const what = `"${args.join(' ')}"`;
    if (r.timedOut) {
      throw this.#error(action, `${what} did not finish within ${this.config.commandTimeoutMs ?? 20_000} ms (ipmitool killed)`, true);
    }
    let output = this.#redact(`${r.stdout}\n${r.stderr}`);
    if (/Unable to establish IPMI v2/i.test(output) && r.durationMs < (this.config.replyTimeoutSec ?? 1) * 1000) {
      // ipmitool says why a session failed (bad user, bad password) only with -v. A quick failure
      // means the BMC answered and refused: ask once more, verbosely. (A slow one is a timeout.)
      const v = await this.run(args, { verbose: true });
      output += `\n${this.#redact(`${v.stdout}\n${v.stderr}`)}`;
      if (v.code === 0 && !v.timedOut) return v.stdout;
    }
    if (r.code === null && !r.signal) {
      throw this.#error(action, `cannot run ${this.config.ipmitool ?? 'ipmitool'}: ${outputTail(output)} (install ipmitool)`, false);
    }
    const { detail, retryable } = classifyIpmitoolFailure(output, this.config);
    throw this.#error(action, `${what}: ${detail}`, retryable);
  }

  /** Run ipmitool with `args` (exposed for diagnostics and tests). Never rejects. */
  run(args: readonly string[], opts: { verbose?: boolean } = {}): Promise<IpmitoolResult> {
    const argv = ipmitoolArgv(this.config, args, opts);
    const timeoutMs = this.config.commandTimeoutMs ?? 20_000;
    return new Promise((resolve) => {
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      let settled = false;
      const started = Date.now();
      const done = (r: Pick<IpmitoolResult, 'code' | 'signal'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...r, stdout, stderr, timedOut, durationMs: Date.now() - started });
      };
      // A minimal environment: a predictable locale for parsing, and the password for -E.
      const child = spawn(argv[0], argv.slice(1), {
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', IPMI_PASSWORD: this.config.password },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.setEncoding('utf8').on('data', (d: string) => { if (stdout.length < 65536) stdout += d; });
      child.stderr.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 65536) stderr += d; });
      const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
      child.on('error', (err) => { stderr += err.message; done({ code: null, signal: null }); });
      child.on('close', (code, signal) => done({ code, signal }));
    });
  }
}
