// Redfish power driver (DMTF DSP0266 / ComputerSystem schema): PowerState from the system
// resource, ComputerSystem.Reset for power, a PATCH of Boot for the next boot device. Basic
// authentication; TLS verification can be turned off or given the BMC's own CA, since BMCs ship
// self-signed certificates.
import http from 'node:http';
import https from 'node:https';
import {
  PowerError, outputTail, redact,
  type BootDevice, type BootOverride, type NextBootOptions, type PowerAction, type PowerDriver, type PowerState,
} from './driver.js';

export interface RedfishConfig {
  /** BMC host name or IP address. */
  address: string;
  /** Default 443 for https, 80 for http. */
  port?: number;
  /** Default 'https'. */
  scheme?: 'https' | 'http';
  username: string;
  password: string;
  /** The ComputerSystem's Id (e.g. "1", "System.Embedded.1"). Default: the first member of /redfish/v1/Systems. */
  systemId?: string;
  /** Check the BMC's certificate. Default true; set false for a self-signed certificate, or give caCert. */
  tlsVerify?: boolean;
  /** PEM certificate(s) to trust for this BMC (its self-signed certificate or its CA). */
  caCert?: string;
  /** Also set BootSourceOverrideMode with the boot device. Default: leave the BMC's mode alone. */
  bootMode?: 'UEFI' | 'Legacy';
  /** Bound on one HTTP request. Default 15000 ms. */
  requestTimeoutMs?: number;
}

export interface RedfishResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: unknown;
}

type Json = Record<string, unknown>;

/** ResetType to send for each action, best first (the BMC lists what it allows). */
export const RESET_TYPES = {
  on: ['On', 'ForceOn', 'PushPowerButton'],
  off: ['ForceOff'],
  cycle: ['PowerCycle', 'ForceRestart'],
} as const;

const BOOT_TARGET: Record<BootDevice, string> = { pxe: 'Pxe', disk: 'Hdd' };

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED',
]);

/** PowerState → on/off. A transition reports where it is going, so "powering on" is already on. */
export function mapPowerState(s: unknown): PowerState | undefined {
  switch (s) {
    case 'On': case 'PoweringOn': case 'Paused': return 'on';
    case 'Off': case 'PoweringOff': return 'off';
    default: return undefined;
  }
}

/** Pick the ResetType for an action from what the BMC allows (undefined list: it did not say). */
export function chooseResetType(action: keyof typeof RESET_TYPES, allowed: readonly string[] | undefined): string | undefined {
  const wanted = RESET_TYPES[action];
  if (!allowed) return wanted[0];
  return wanted.find((t) => allowed.includes(t));
}

/** The message(s) of a Redfish error body ({"error": {"message", "@Message.ExtendedInfo": [...]}}). */
export function redfishErrorMessage(body: unknown): string | undefined {
  const err = (body as { error?: Json } | undefined)?.error;
  if (!err || typeof err !== 'object') return undefined;
  const parts: string[] = [];
  const info = err['@Message.ExtendedInfo'];
  if (Array.isArray(info)) {
    for (const i of info) {
      const m = (i as Json)?.Message;
      if (typeof m === 'string') parts.push(m);
    }
  }
  if (parts.length === 0 && typeof err.message === 'string') parts.push(err.message);
  return parts.length ? parts.join('; ') : undefined;
}

export class RedfishDriver implements PowerDriver {
  readonly kind = 'redfish';
  readonly target: string;
  readonly baseUrl: string;
  #systemPath: string | undefined;
  /** The Reset action from the last system document read (target and, once known, allowed types): it does not change with power state. */
  #resetAction: { target: string; allowed?: string[]; actionInfo?: string } | undefined;
  #agent: http.Agent | https.Agent;

  constructor(readonly config: RedfishConfig) {
    if (!config.address) throw new TypeError('redfish power: address is required');
    if (!config.username) throw new TypeError(`redfish power for ${config.address}: username is required`);
    if (config.password === undefined || config.password === '') throw new TypeError(`redfish power for ${config.address}: password is required`);
    const scheme = config.scheme ?? 'https';
    const defaultPort = scheme === 'https' ? 443 : 80;
    const port = config.port ?? defaultPort;
    const host = config.address.includes(':') ? `[${config.address}]` : config.address;
    this.baseUrl = `${scheme}://${host}${port === defaultPort ? '' : `:${port}`}`;
    this.target = `BMC ${port === defaultPort ? config.address : `${host}:${port}`} (redfish)`;
    this.#agent = scheme === 'https'
      ? new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: config.tlsVerify ?? true, ca: config.caCert })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
    if (config.systemId) this.#systemPath = `/redfish/v1/Systems/${encodeURIComponent(config.systemId)}`;
  }

  /** Close kept-alive connections. */
  close(): void {
    this.#agent.destroy();
  }

  async status(): Promise<PowerState> {
    const sys = await this.#system('status');
    const state = mapPowerState(sys.body.PowerState);
    if (!state) throw this.#error('status', `the system ${sys.path} reports PowerState ${JSON.stringify(sys.body.PowerState ?? null)}`, true);
    return state;
  }

  on(): Promise<void> { return this.#reset('on'); }
  off(): Promise<void> { return this.#reset('off'); }
  cycle(): Promise<void> { return this.#reset('cycle'); }

  async nextBoot(dev: BootDevice, opts: NextBootOptions = {}): Promise<void> {
    const sys = await this.#system('next boot');
    const boot: Json = {
      BootSourceOverrideTarget: BOOT_TARGET[dev],
      BootSourceOverrideEnabled: opts.persistent ? 'Continuous' : 'Once',
    };
    if (this.config.bootMode) boot.BootSourceOverrideMode = this.config.bootMode;
    const allowed = (sys.body.Boot as Json | undefined)?.['BootSourceOverrideTarget@Redfish.AllowableValues'];
    if (Array.isArray(allowed) && !allowed.includes(boot.BootSourceOverrideTarget)) {
      throw this.#error('next boot', `the BMC does not offer boot target ${boot.BootSourceOverrideTarget} (it allows ${allowed.join(', ')})`, false);
    }
    const headers: Record<string, string> = {};
    if (sys.etag) headers['If-Match'] = sys.etag;
    await this.#expect('next boot', 'PATCH', sys.path, { Boot: boot }, headers);
  }

  async bootOverride(): Promise<BootOverride> {
    const sys = await this.#system('boot override');
    const boot = (sys.body.Boot ?? {}) as Json;
    const enabled = boot.BootSourceOverrideEnabled;
    const target = boot.BootSourceOverrideTarget;
    if (enabled === 'Disabled' || target === 'None' || target === undefined || target === null) return { device: 'none', persistent: undefined };
    const device = target === 'Pxe' ? 'pxe' : target === 'Hdd' ? 'disk' : String(target).toLowerCase();
    return { device, persistent: enabled === 'Continuous' ? true : enabled === 'Once' ? false : undefined };
  }

  // ---- internals ----------------------------------------------------------------------------

  #error(action: PowerAction, detail: string, retryable: boolean, cause?: unknown): PowerError {
    return new PowerError(redact(detail, [this.config.password]), { target: this.target, action, retryable, cause });
  }

  async #reset(action: 'on' | 'off' | 'cycle'): Promise<void> {
    // The Reset action is known from the status read that precedes every command (verified.ts):
    // send the command without reading the system again.
    if (!this.#resetAction) await this.#system(action);
    const act = this.#resetAction!;
    if (!act.allowed && act.actionInfo) act.allowed = await this.#actionInfoAllowed(action, act.actionInfo);
    const allowed = act.allowed;
    const resetType = chooseResetType(action, allowed);
    if (!resetType) {
      throw this.#error(action, `the BMC allows no ResetType for power ${action} (wanted ${RESET_TYPES[action].join(' or ')}; it allows ${allowed!.join(', ') || 'none'})`, false);
    }
    try {
      await this.#expect(action, 'POST', act.target, { ResetType: resetType });
    } catch (err) {
      // A refused ResetType or a moved target: read the action afresh next time.
      if (err instanceof PowerError && !err.retryable) this.#resetAction = undefined;
      throw err;
    }
  }

  async #actionInfoAllowed(action: PowerAction, path: string): Promise<string[] | undefined> {
    const r = await this.#expect(action, 'GET', path);
    const params = (r.json as Json | undefined)?.Parameters;
    if (!Array.isArray(params)) return undefined;
    const p = params.find((x) => (x as Json)?.Name === 'ResetType') as Json | undefined;
    return Array.isArray(p?.AllowableValues) ? (p!.AllowableValues as string[]) : undefined;
  }

  /** The ComputerSystem resource (discovering its path once), with its ETag if the BMC sends one. */
  async #system(action: PowerAction): Promise<{ path: string; body: Json; etag?: string }> {
    if (!this.#systemPath) {
      const r = await this.#expect(action, 'GET', '/redfish/v1/Systems');
      const members = (r.json as Json | undefined)?.Members;
      const first = Array.isArray(members) ? (members[0] as Json | undefined)?.['@odata.id'] : undefined;
      if (typeof first !== 'string') throw this.#error(action, 'the BMC lists no ComputerSystem in /redfish/v1/Systems; set systemId', false);
      this.#systemPath = first;
    }
    const r = await this.#expect(action, 'GET', this.#systemPath);
    const body = (r.json ?? {}) as Json;
    const act = ((body.Actions ?? {}) as Json)['#ComputerSystem.Reset'] as Json | undefined;
    const target = typeof act?.target === 'string' ? act.target : `${this.#systemPath}/Actions/ComputerSystem.Reset`;
    const inline = Array.isArray(act?.['ResetType@Redfish.AllowableValues']) ? (act!['ResetType@Redfish.AllowableValues'] as unknown[]).filter((x): x is string => typeof x === 'string') : undefined;
    const actionInfo = !inline && typeof act?.['@Redfish.ActionInfo'] === 'string' ? act['@Redfish.ActionInfo'] as string : undefined;
    const known = this.#resetAction;
    if (!known || known.target !== target || known.actionInfo !== actionInfo || (inline && inline.join() !== known.allowed?.join())) {
      this.#resetAction = { target, allowed: inline, actionInfo };
    }
    const etagHeader = r.headers.etag;
    const etag = typeof etagHeader === 'string' ? etagHeader : typeof body['@odata.etag'] === 'string' ? body['@odata.etag'] as string : undefined;
    return { path: this.#systemPath, body, etag };
  }

  /** A request that must succeed (2xx); otherwise a PowerError saying what the BMC answered. */
  async #expect(action: PowerAction, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<RedfishResponse> {
    let r: RedfishResponse;
    try {
      r = await this.request(method, path, body, headers);
    } catch (err) {
      throw this.#networkError(action, method, path, err);
    }
    if (r.status >= 200 && r.status < 300) return r;
    const said = redfishErrorMessage(r.json) ?? (outputTail(r.text, 200) || 'no details');
    const what = `${method} ${path} returned HTTP ${r.status}`;
    if (r.status === 401) throw this.#error(action, `${what}: the BMC refused the credentials of user "${this.config.username}"; check the node's power username and password`, false);
    if (r.status === 403) throw this.#error(action, `${what}: user "${this.config.username}" may not do this (${said}); give it the Operator or Administrator role`, false);
    if (r.status === 404) throw this.#error(action, `${what}: no such resource (${said})${this.config.systemId ? '; check systemId' : ''}`, false);
    // 409 (conflict, often a transition in progress), 412 (ETag changed), 429 and 5xx: worth another attempt.
    const retryable = r.status === 409 || r.status === 412 || r.status === 429 || r.status >= 500;
    throw this.#error(action, `${what}: ${said}`, retryable);
  }

  #networkError(action: PowerAction, method: string, path: string, err: unknown): PowerError {
    const e = err as NodeJS.ErrnoException;
    const code = e?.code ?? '';
    if (TLS_CODES.has(code)) {
      return this.#error(action, `the BMC's TLS certificate is not trusted (${code}: ${e.message}); give its certificate or CA as caCert, or set tlsVerify: false`, false, err);
    }
    const msg = e instanceof Error ? e.message : String(err);
    return this.#error(action, `${method} ${this.baseUrl}${path} failed: ${msg}${code && !msg.includes(code) ? ` (${code})` : ''}`, true, err);
  }

  /** One HTTP request with basic auth, bounded by requestTimeoutMs. Rejects only on transport errors. */
  request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<RedfishResponse> {
    const url = new URL(path, this.baseUrl);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const timeoutMs = this.config.requestTimeoutMs ?? 15_000;
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, {
        method,
        agent: this.#agent,
        headers: {
          Accept: 'application/json',
          'OData-Version': '4.0',
          Authorization: `Basic ${Buffer.from(`${this.config.username}:${this.config.password}`).toString('base64')}`,
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {}),
          ...headers,
        },
      }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => { size += c.length; if (size <= 4 * 1024 * 1024) chunks.push(c); });
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', (err) => { clearTimeout(timer); reject(err); });
      });
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
      req.on('error', (err) => { clearTimeout(timer); reject(err); });
      req.end(payload);
    });
  }
}
