// Retries with exponential backoff, and verification that the power state really changed, around
// any PowerDriver (DESIGN.md §3: "retries with backoff and state verification"). A BMC that
// answers "OK" proves nothing: every command is followed by status polls until the expected state
// is seen or the verification window ends, and only then does the next attempt start.
import {
  PowerError, type BootDevice, type BootOverride, type NextBootOptions, type PowerAction, type PowerDriver, type PowerState,
} from './driver.js';

export interface PowerPolicy {
  /** Attempts per operation, each = command + verification. Default 5. */
  attempts?: number;
  /** Wait before the second attempt; doubled (backoffFactor) for each later one. Default 1000 ms. */
  initialDelayMs?: number;
  /** Cap on the wait between attempts. Default 15000 ms. */
  maxDelayMs?: number;
  /** Default 2. */
  backoffFactor?: number;
  /** Each wait is scaled by a random factor in [1 - jitter, 1 + jitter], so many nodes on one BMC network do not retry in step. Default 0.2. */
  jitter?: number;
  /** How long to poll status after a command before the attempt counts as "not confirmed". Default 30000 ms. */
  verifyTimeoutMs?: number;
  /** Default 1000 ms. */
  pollIntervalMs?: number;
  /**
   * 'off-on' (default): cycle = verified off, then verified on, so a chassis that ignores the
   * command is caught. 'native': one cycle command (IPMI chassis power cycle, Redfish PowerCycle or
   * ForceRestart, QEMU system_reset) and a check that the node is on afterwards; faster, but a
   * BMC that acknowledges and does nothing passes.
   */
  cycle?: 'off-on' | 'native';
  /** The node's name, prefixed to every message. */
  node?: string;
  /** Structured progress events, for logs and metrics; they never contain secrets. */
  onEvent?: (event: PowerEvent) => void;
  /** For tests: how to wait (default setTimeout) and the random source for jitter. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface PowerEvent {
  target: string;
  node?: string;
  action: PowerAction;
  attempt: number;
  /** confirmed: the expected state was seen; unchanged: the command was accepted but the state did not follow; error: the command or a read failed; failed: giving up. */
  outcome: 'confirmed' | 'unchanged' | 'error' | 'failed';
  observed?: PowerState;
  error?: string;
  elapsedMs: number;
}

export interface ResolvedPowerPolicy extends Required<Omit<PowerPolicy, 'node' | 'onEvent'>> {
  node: string | undefined;
  onEvent: ((event: PowerEvent) => void) | undefined;
}

export const DEFAULT_POWER_POLICY = {
  attempts: 5,
  initialDelayMs: 1000,
  maxDelayMs: 15_000,
  backoffFactor: 2,
  jitter: 0.2,
  verifyTimeoutMs: 30_000,
  pollIntervalMs: 1000,
  cycle: 'off-on',
} as const;

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function resolvePolicy(p: PowerPolicy = {}): ResolvedPowerPolicy {
  const r: ResolvedPowerPolicy = {
    attempts: p.attempts ?? DEFAULT_POWER_POLICY.attempts,
    initialDelayMs: p.initialDelayMs ?? DEFAULT_POWER_POLICY.initialDelayMs,
    maxDelayMs: p.maxDelayMs ?? DEFAULT_POWER_POLICY.maxDelayMs,
    backoffFactor: p.backoffFactor ?? DEFAULT_POWER_POLICY.backoffFactor,
    jitter: p.jitter ?? DEFAULT_POWER_POLICY.jitter,
    verifyTimeoutMs: p.verifyTimeoutMs ?? DEFAULT_POWER_POLICY.verifyTimeoutMs,
    pollIntervalMs: p.pollIntervalMs ?? DEFAULT_POWER_POLICY.pollIntervalMs,
    cycle: p.cycle ?? DEFAULT_POWER_POLICY.cycle,
    node: p.node,
    onEvent: p.onEvent,
    sleep: p.sleep ?? defaultSleep,
    random: p.random ?? Math.random,
  };
  if (!Number.isInteger(r.attempts) || r.attempts < 1 || r.attempts > 100) throw new RangeError(`power policy: attempts must be an integer from 1 to 100, not ${r.attempts}`);
  for (const k of ['initialDelayMs', 'maxDelayMs', 'verifyTimeoutMs', 'pollIntervalMs'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) throw new RangeError(`power policy: ${k} must be a number >= 0, not ${r[k]}`);
  }
  if (!(r.backoffFactor >= 1)) throw new RangeError(`power policy: backoffFactor must be >= 1, not ${r.backoffFactor}`);
  if (!(r.jitter >= 0 && r.jitter < 1)) throw new RangeError(`power policy: jitter must be in [0, 1), not ${r.jitter}`);
  if (r.cycle !== 'off-on' && r.cycle !== 'native') throw new RangeError(`power policy: cycle must be 'off-on' or 'native', not ${String(r.cycle)}`);
  return r;
}

/**
 * The wait before attempt `retry + 1` (retry = 1 for the wait before the second attempt):
 * initialDelayMs * backoffFactor^(retry-1), capped at maxDelayMs, then scaled by the jitter.
 */
export function backoffDelay(retry: number, p: Pick<ResolvedPowerPolicy, 'initialDelayMs' | 'maxDelayMs' | 'backoffFactor' | 'jitter'>, random: () => number = Math.random): number {
  const base = Math.min(p.maxDelayMs, p.initialDelayMs * p.backoffFactor ** Math.max(0, retry - 1));
  const scale = 1 + p.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base * scale));
}

function describe(dev: BootDevice, opts?: NextBootOptions): string {
  return `${dev} (${opts?.persistent ? 'persistent' : 'once'})`;
}

function describeOverride(o: BootOverride): string {
  return o.persistent === undefined ? o.device : `${o.device} (${o.persistent ? 'persistent' : 'once'})`;
}

function errorText(err: unknown): string {
  if (err instanceof PowerError) return err.detail;
  return err instanceof Error ? err.message : String(err);
}

function retryable(err: unknown): boolean {
  return err instanceof PowerError ? err.retryable : true;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A PowerDriver with retries, backoff and verification. Operations on one instance run one at a
 * time (a BMC handles few sessions, and a status poll must not interleave with another command).
 */
export class VerifiedPowerDriver implements PowerDriver {
  readonly policy: ResolvedPowerPolicy;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(readonly driver: PowerDriver, policy: PowerPolicy = {}) {
    this.policy = resolvePolicy(policy);
  }

  get kind(): string { return this.driver.kind; }
  get target(): string { return this.driver.target; }

  status(): Promise<PowerState> {
    return this.#serial(() => this.#status());
  }

  on(): Promise<void> {
    return this.#serial(() => this.#setPower('on', 'on', () => this.driver.on()));
  }

  off(): Promise<void> {
    return this.#serial(() => this.#setPower('off', 'off', () => this.driver.off()));
  }

  cycle(): Promise<void> {
    return this.#serial(async () => {
      if (this.policy.cycle === 'native') return this.#nativeCycle();
      await this.#setPower('off', 'cycle', () => this.driver.off(), 'power cycle (off)');
      await this.#setPower('on', 'cycle', () => this.driver.on(), 'power cycle (on)');
    });
  }

  nextBoot(dev: BootDevice, opts: NextBootOptions = {}): Promise<void> {
    return this.#serial(() => this.#nextBoot(dev, opts));
  }

  bootOverride(): Promise<BootOverride> {
    const read = this.driver.bootOverride?.bind(this.driver);
    if (!read) return Promise.reject(this.#error('boot override', `the ${this.driver.kind} driver cannot read the boot override back`, false));
    return this.#serial(() => this.#withRetries('boot override', 'read the boot override', read));
  }

  // ---- internals ----------------------------------------------------------------------------

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #error(action: PowerAction, detail: string, retryable: boolean, extra: { observed?: PowerState; attempts?: number; cause?: unknown } = {}): PowerError {
    return new PowerError(detail, { target: this.driver.target, node: this.policy.node, action, retryable, ...extra });
  }

  #emit(e: Omit<PowerEvent, 'target' | 'node'>): void {
    try {
      this.policy.onEvent?.({ target: this.driver.target, node: this.policy.node, ...e });
    } catch {
      // A broken log sink must not change what happens to the node.
    }
  }

  async #wait(retry: number): Promise<void> {
    await this.policy.sleep(backoffDelay(retry, this.policy, this.policy.random));
  }

  /** A read (status, boot override), retried with backoff on retryable errors. */
  async #withRetries<T>(action: PowerAction, what: string, read: () => Promise<T>): Promise<T> {
    const started = Date.now();
    let last: unknown;
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      if (attempt > 1) await this.#wait(attempt - 1);
      try {
        return await read();
      } catch (err) {
        last = err;
        this.#emit({ action, attempt, outcome: 'error', error: errorText(err), elapsedMs: Date.now() - started });
        if (!retryable(err)) throw this.#error(action, `${what} failed: ${errorText(err)}`, false, { attempts: attempt, cause: err });
      }
    }
    this.#emit({ action, attempt: this.policy.attempts, outcome: 'failed', error: errorText(last), elapsedMs: Date.now() - started });
    throw this.#error(action, `${what} failed after ${this.policy.attempts} attempts: ${errorText(last)}`, true, { attempts: this.policy.attempts, cause: last });
  }

  #status(): Promise<PowerState> {
    return this.#withRetries('status', 'power status', () => this.driver.status());
  }

  /** Poll status until `expected` or the verification window ends; the last state seen, or undefined. */
  async #poll(expected: PowerState, firstDelayMs: number, onError: (err: unknown) => void): Promise<{ confirmed: boolean; observed?: PowerState }> {
    const deadline = Date.now() + this.policy.verifyTimeoutMs;
    let observed: PowerState | undefined;
    if (firstDelayMs > 0) await this.policy.sleep(firstDelayMs);
    for (;;) {
      try {
        observed = await this.driver.status();
        if (observed === expected) return { confirmed: true, observed };
      } catch (err) {
        onError(err);
      }
      const left = deadline - Date.now();
      if (left <= 0) return { confirmed: false, observed };
      await this.policy.sleep(Math.min(this.policy.pollIntervalMs, left));
    }
  }

  /**
   * Each attempt: read status (done if already `expected`), send the command, poll until
   * `expected`. A non-retryable error ends at once; otherwise up to `attempts` attempts.
   */
  async #setPower(expected: PowerState, action: PowerAction, command: () => Promise<void>, label = `power ${action}`): Promise<void> {
    const started = Date.now();
    let observed: PowerState | undefined;
    let lastError: unknown;
    let lastUnchanged = false;
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      if (attempt > 1) await this.#wait(attempt - 1);
      lastError = undefined;
      lastUnchanged = false;
      try {
        observed = await this.driver.status();
        if (observed === expected) {
          this.#emit({ action, attempt, outcome: 'confirmed', observed, elapsedMs: Date.now() - started });
          return;
        }
        await command();
      } catch (err) {
        lastError = err;
        this.#emit({ action, attempt, outcome: 'error', observed, error: errorText(err), elapsedMs: Date.now() - started });
        if (!retryable(err)) throw this.#error(action, `${label} failed: ${errorText(err)}`, false, { observed, attempts: attempt, cause: err });
        continue;
      }
      const r = await this.#poll(expected, 0, (err) => { lastError = err; });
      if (r.observed) observed = r.observed;
      if (r.confirmed) {
        this.#emit({ action, attempt, outcome: 'confirmed', observed, elapsedMs: Date.now() - started });
        return;
      }
      lastUnchanged = lastError === undefined;
      this.#emit({ action, attempt, outcome: 'unchanged', observed, error: lastError === undefined ? undefined : errorText(lastError), elapsedMs: Date.now() - started });
    }
    this.#emit({ action, attempt: this.policy.attempts, outcome: 'failed', observed, error: lastError === undefined ? undefined : errorText(lastError), elapsedMs: Date.now() - started });
    let detail = `${label} not confirmed after ${this.policy.attempts} attempt${this.policy.attempts === 1 ? '' : 's'}; last status ${observed ?? 'unknown'}`;
    if (lastUnchanged) {
      detail += ` (the command was accepted but the status stayed ${observed} for ${seconds(this.policy.verifyTimeoutMs)}; check the chassis and the BMC's event log)`;
    } else if (lastError !== undefined) {
      detail += `; last error: ${errorText(lastError)}`;
    }
    throw this.#error(action, detail, true, { observed, attempts: this.policy.attempts, cause: lastError });
  }

  /** One cycle command while on (power on while off, as IPMI's cycle does nothing then), then wait for 'on'. */
  async #nativeCycle(): Promise<void> {
    const started = Date.now();
    let observed: PowerState | undefined;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      if (attempt > 1) await this.#wait(attempt - 1);
      lastError = undefined;
      try {
        observed = await this.driver.status();
        await (observed === 'on' ? this.driver.cycle() : this.driver.on());
      } catch (err) {
        lastError = err;
        this.#emit({ action: 'cycle', attempt, outcome: 'error', observed, error: errorText(err), elapsedMs: Date.now() - started });
        if (!retryable(err)) throw this.#error('cycle', `power cycle failed: ${errorText(err)}`, false, { observed, attempts: attempt, cause: err });
        continue;
      }
      // The state before the command was probably 'on' already: look only after one poll interval.
      const r = await this.#poll('on', this.policy.pollIntervalMs, (err) => { lastError = err; });
      if (r.observed) observed = r.observed;
      if (r.confirmed) {
        this.#emit({ action: 'cycle', attempt, outcome: 'confirmed', observed, elapsedMs: Date.now() - started });
        return;
      }
      this.#emit({ action: 'cycle', attempt, outcome: 'unchanged', observed, elapsedMs: Date.now() - started });
    }
    const tail = lastError === undefined ? '' : `; last error: ${errorText(lastError)}`;
    throw this.#error('cycle', `power cycle not confirmed after ${this.policy.attempts} attempts; last status ${observed ?? 'unknown'}${tail}`, true, { observed, attempts: this.policy.attempts, cause: lastError });
  }

  /** Set the boot device; when the driver can read it back, retry until the BMC reports it. */
  async #nextBoot(dev: BootDevice, opts: NextBootOptions): Promise<void> {
    const started = Date.now();
    const want = describe(dev, opts);
    let lastError: unknown;
    let reported: BootOverride | undefined;
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      if (attempt > 1) await this.#wait(attempt - 1);
      lastError = undefined;
      try {
        await this.driver.nextBoot(dev, opts);
        if (!this.driver.bootOverride) {
          this.#emit({ action: 'next boot', attempt, outcome: 'confirmed', elapsedMs: Date.now() - started });
          return;
        }
        reported = await this.driver.bootOverride();
        const persistentOk = reported.persistent === undefined || reported.persistent === !!opts.persistent;
        if (reported.device === dev && persistentOk) {
          this.#emit({ action: 'next boot', attempt, outcome: 'confirmed', elapsedMs: Date.now() - started });
          return;
        }
        this.#emit({ action: 'next boot', attempt, outcome: 'unchanged', elapsedMs: Date.now() - started });
      } catch (err) {
        lastError = err;
        this.#emit({ action: 'next boot', attempt, outcome: 'error', error: errorText(err), elapsedMs: Date.now() - started });
        if (!retryable(err)) throw this.#error('next boot', `next boot ${want} failed: ${errorText(err)}`, false, { attempts: attempt, cause: err });
      }
    }
    let detail = `next boot ${want} not confirmed after ${this.policy.attempts} attempts`;
    if (reported) detail += `; the BMC reports ${describeOverride(reported)}`;
    if (lastError !== undefined) detail += `; last error: ${errorText(lastError)}`;
    throw this.#error('next boot', detail, true, { attempts: this.policy.attempts, cause: lastError });
  }
}

export function verifiedPower(driver: PowerDriver, policy: PowerPolicy = {}): VerifiedPowerDriver {
  return new VerifiedPowerDriver(driver, policy);
}
