// A stand-in Redfish BMC for tests. No Redfish emulator can run offline here (the DMTF emulator
// and sushy-tools are Python packages we cannot fetch), so this small server implements the parts
// of DSP0266 and the ComputerSystem schema the driver uses, the way BMCs behave:
// - service root without authentication, everything else behind HTTP basic auth (401 + Redfish error);
// - /redfish/v1/Systems collection, one ComputerSystem with PowerState, Boot, Actions and an ETag;
// - ComputerSystem.Reset with ResetType@Redfish.AllowableValues (or an ActionInfo resource),
//   400 for a ResetType not allowed, 409 for On while on and ForceOff while off (as iDRAC does);
// - PowerState transitions (PoweringOn / PoweringOff) for a configurable time;
// - PATCH of Boot with If-Match (412 on a stale ETag, 428 when required and missing), 400 for
//   unknown properties or values not in the allowable lists;
// - a one-time (Once) boot override is spent at the next boot, as BMCs do.
// Fault switches: failNext (answer N requests with an error status), ignoreResets (acknowledge
// resets and do nothing), ignoreBootPatch.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface RedfishStandInOptions {
  username: string;
  password: string;
  /** Serve HTTPS with this key and certificate; plain HTTP without. */
  tls?: { key: string; cert: string };
  /** Default '437XR1138R2' (the DMTF mockup's id). */
  systemId?: string;
  /** ResetType@Redfish.AllowableValues. Default: every reset type of the schema. */
  resetTypes?: string[];
  /** Advertise the reset types through an @Redfish.ActionInfo resource instead of inline. */
  resetTypesViaActionInfo?: boolean;
  /** How long PoweringOn / PoweringOff last. Default 0. */
  transitionMs?: number;
  /** Refuse a PATCH without If-Match (428). Default false. */
  requireIfMatch?: boolean;
  initialPowerState?: 'On' | 'Off';
}

export interface StandInRequest {
  method: string;
  path: string;
  body: unknown;
  authorized: boolean;
  status: number;
  ifMatch?: string;
}

export interface RedfishStandIn {
  url: string;
  port: number;
  systemPath: string;
  /** The system's live state. */
  readonly powerState: string;
  readonly boot: { BootSourceOverrideTarget: string; BootSourceOverrideEnabled: string; BootSourceOverrideMode: string };
  /** Every request, in order. */
  requests: StandInRequest[];
  /** ResetTypes accepted, in order. */
  resets: string[];
  /** The boot source of each boot (power on or restart): 'Pxe', 'Hdd' or 'None' (the BIOS's own order). */
  boots: string[];
  ignoreResets: boolean;
  ignoreBootPatch: boolean;
  /** Answer the next `n` requests matching `filter` (after authentication) with `status`. */
  failNext(n: number, status?: number, filter?: { method?: string; path?: RegExp }): void;
  /** Change the system's ETag, as another client's PATCH or a BMC-internal update would. */
  touch(): void;
  /** Called after each request has been answered and recorded (to change state between a client's requests). */
  afterRequest?: (r: StandInRequest) => void;
  close(): Promise<void>;
}

const ALL_RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi', 'ForceOn', 'PushPowerButton', 'PowerCycle'];
const BOOT_TARGETS = ['None', 'Pxe', 'Floppy', 'Cd', 'Usb', 'Hdd', 'BiosSetup', 'Utilities', 'Diags', 'UefiShell', 'UefiTarget', 'SDCard', 'UefiHttp'];
const BOOT_ENABLED = ['Disabled', 'Once', 'Continuous'];

function redfishError(code: string, message: string, messageId = `Base.1.8.${code}`) {
  return {
    error: {
      code: messageId,
      message,
      '@Message.ExtendedInfo': [{ '@odata.type': '#Message.v1_1_1.Message', MessageId: messageId, Message: message, Severity: 'Warning', Resolution: 'See the message.' }],
    },
  };
}

/** A self-signed certificate for 127.0.0.1 (openssl), for the stand-in's HTTPS. */
export function selfSignedCertificate(dir: string): { key: string; cert: string } {
  const key = path.join(dir, 'bmc.key');
  const cert = path.join(dir, 'bmc.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=stand-in BMC',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ], { stdio: 'ignore', timeout: 30_000 });
  return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
}

export async function startRedfishStandIn(o: RedfishStandInOptions): Promise<RedfishStandIn> {
  const id = o.systemId ?? '437XR1138R2';
  const systemPath = `/redfish/v1/Systems/${id}`;
  const resetPath = `${systemPath}/Actions/ComputerSystem.Reset`;
  const actionInfoPath = `${systemPath}/ResetActionInfo`;
  const resetTypes = o.resetTypes ?? ALL_RESET_TYPES;
  const transitionMs = o.transitionMs ?? 0;
  let powerState: string = o.initialPowerState ?? 'Off';
  let etag = 1;
  const boot = { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideMode: 'Legacy' };
  const timers = new Set<NodeJS.Timeout>();
  const faults: Array<{ left: number; status: number; method?: string; path?: RegExp }> = [];
  const expected = `Basic ${Buffer.from(`${o.username}:${o.password}`).toString('base64')}`;

  const state: RedfishStandIn = {
    url: '',
    port: 0,
    systemPath,
    get powerState() { return powerState; },
    get boot() { return { ...boot }; },
    requests: [],
    resets: [],
    boots: [],
    ignoreResets: false,
    ignoreBootPatch: false,
    failNext(n, status = 503, filter = {}) { faults.push({ left: n, status, ...filter }); },
    touch() { etag++; },
    close: () => new Promise<void>((resolve) => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };

  // One power transition at a time: a new one (ForceOff while PoweringOn) replaces the pending
  // one, as the chassis does; otherwise the old transition would complete later and undo it.
  const later = (ms: number, fn: () => void) => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    if (ms <= 0) return fn();
    const t = setTimeout(() => { timers.delete(t); fn(); }, ms);
    timers.add(t);
  };
  const booted = () => {
    const used = boot.BootSourceOverrideEnabled === 'Disabled' ? 'None' : boot.BootSourceOverrideTarget;
    state.boots.push(used);
    if (boot.BootSourceOverrideEnabled === 'Once') { boot.BootSourceOverrideEnabled = 'Disabled'; etag++; }
  };
  const powerOn = () => {
    powerState = transitionMs > 0 ? 'PoweringOn' : 'On';
    etag++;
    later(transitionMs, () => { powerState = 'On'; etag++; booted(); });
  };
  const powerOff = (then?: () => void) => {
    powerState = transitionMs > 0 ? 'PoweringOff' : 'Off';
    etag++;
    later(transitionMs, () => { powerState = 'Off'; etag++; then?.(); });
  };

  const systemDoc = () => {
    const reset: Record<string, unknown> = { target: resetPath };
    if (o.resetTypesViaActionInfo) reset['@Redfish.ActionInfo'] = actionInfoPath;
    else reset['ResetType@Redfish.AllowableValues'] = resetTypes;
    return {
      '@odata.id': systemPath,
      '@odata.type': '#ComputerSystem.v1_20_0.ComputerSystem',
      '@odata.etag': `W/"${etag}"`,
      Id: id,
      Name: 'Stand-in system',
      SystemType: 'Physical',
      Manufacturer: 'Fulcrum test',
      Model: 'Stand-in',
      SerialNumber: 'STANDIN-0001',
      UUID: '38947555-7742-3448-3784-823347823834',
      PowerState: powerState,
      Status: { State: 'Enabled', Health: 'OK' },
      Boot: {
        ...boot,
        'BootSourceOverrideTarget@Redfish.AllowableValues': BOOT_TARGETS,
        'BootSourceOverrideMode@Redfish.AllowableValues': ['Legacy', 'UEFI'],
      },
      Actions: { '#ComputerSystem.Reset': reset },
    };
  };

  const handle = (req: http.IncomingMessage, body: string, res: http.ServerResponse): number => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const p = url.pathname.replace(/\/$/, '') || '/';
    const send = (status: number, doc?: unknown, headers: Record<string, string> = {}) => {
      const text = doc === undefined ? '' : JSON.stringify(doc);
      res.writeHead(status, { 'OData-Version': '4.0', ...(text ? { 'Content-Type': 'application/json; charset=utf-8' } : {}), ...headers });
      res.end(text);
      return status;
    };
    let json: Record<string, unknown> | undefined;
    if (body) {
      try { json = JSON.parse(body); } catch { return send(400, redfishError('MalformedJSON', 'The request body submitted was malformed JSON and could not be parsed by the receiving service.')); }
    }
    // The service root is readable without credentials (DSP0266 §13.3.1).
    if (req.method === 'GET' && (p === '/redfish/v1' || p === '/redfish')) {
      return send(200, { '@odata.id': '/redfish/v1', '@odata.type': '#ServiceRoot.v1_15_0.ServiceRoot', Id: 'RootService', Name: 'Root Service', RedfishVersion: '1.17.0', Systems: { '@odata.id': '/redfish/v1/Systems' } });
    }
    if (req.headers.authorization !== expected) {
      return send(401, redfishError('NoValidSession', 'There is no valid session established with the implementation.'), { 'WWW-Authenticate': 'Basic realm="Redfish"' });
    }
    const fault = faults.find((f) => f.left > 0 && (!f.method || f.method === req.method) && (!f.path || f.path.test(p)));
    if (fault) {
      fault.left--;
      return send(fault.status, redfishError(fault.status === 412 ? 'PreconditionFailed' : 'GeneralError', `Injected failure: HTTP ${fault.status}.`));
    }
    if (p === '/redfish/v1/Systems') {
      if (req.method !== 'GET') return send(405, redfishError('OperationNotAllowed', 'The HTTP method is not allowed on this resource.'));
      return send(200, { '@odata.id': p, '@odata.type': '#ComputerSystemCollection.ComputerSystemCollection', Name: 'Computer System Collection', 'Members@odata.count': 1, Members: [{ '@odata.id': systemPath }] });
    }
    if (p === systemPath) {
      if (req.method === 'GET') return send(200, systemDoc(), { ETag: `W/"${etag}"` });
      if (req.method !== 'PATCH') return send(405, redfishError('OperationNotAllowed', 'The HTTP method is not allowed on this resource.'));
      const ifMatch = req.headers['if-match'];
      if (o.requireIfMatch && !ifMatch) return send(428, redfishError('PreconditionRequired', 'A precondition header or annotation is required to change this resource.'));
      if (ifMatch && ifMatch !== `W/"${etag}"` && ifMatch !== '*') return send(412, redfishError('PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.'));
      for (const k of Object.keys(json ?? {})) {
        if (k !== 'Boot') return send(400, redfishError('PropertyUnknown', `The property ${k} is not in the list of valid properties for the resource.`));
      }
      const b = (json?.Boot ?? {}) as Record<string, unknown>;
      const lists: Record<string, string[]> = { BootSourceOverrideTarget: BOOT_TARGETS, BootSourceOverrideEnabled: BOOT_ENABLED, BootSourceOverrideMode: ['Legacy', 'UEFI'] };
      for (const [k, v] of Object.entries(b)) {
        if (!(k in lists)) return send(400, redfishError('PropertyUnknown', `The property ${k} is not in the list of valid properties for the resource.`));
        if (!lists[k].includes(v as string)) return send(400, redfishError('PropertyValueNotInList', `The value ${JSON.stringify(v)} for the property ${k} is not in the list of acceptable values.`));
      }
      if (!state.ignoreBootPatch) {
        Object.assign(boot, b);
        etag++;
      }
      return send(200, systemDoc(), { ETag: `W/"${etag}"` });
    }
    if (p === actionInfoPath && o.resetTypesViaActionInfo) {
      if (req.method !== 'GET') return send(405, redfishError('OperationNotAllowed', 'The HTTP method is not allowed on this resource.'));
      return send(200, { '@odata.id': p, '@odata.type': '#ActionInfo.v1_3_0.ActionInfo', Id: 'ResetActionInfo', Name: 'Reset Action Info', Parameters: [{ Name: 'ResetType', Required: true, DataType: 'String', AllowableValues: resetTypes }] });
    }
    if (p === resetPath) {
      if (req.method !== 'POST') return send(405, redfishError('OperationNotAllowed', 'The HTTP method is not allowed on this resource.'));
      const t = json?.ResetType;
      if (typeof t !== 'string') return send(400, redfishError('ActionParameterMissing', 'The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.'));
      if (!resetTypes.includes(t)) return send(400, redfishError('ActionParameterValueNotInList', `The value ${JSON.stringify(t)} for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values.`));
      const on = powerState === 'On' || powerState === 'PoweringOn';
      if ((t === 'On' || t === 'ForceOn') && on) return send(409, redfishError('ResourceInStandby', 'Server is already powered ON.', 'Base.1.8.Conflict'));
      if (t === 'ForceOff' && !on) return send(409, redfishError('ResourceInStandby', 'Server is already powered OFF.', 'Base.1.8.Conflict'));
      if ((t === 'ForceRestart' || t === 'GracefulRestart' || t === 'PowerCycle') && !on) return send(409, redfishError('ResourceInStandby', 'Unable to restart: the server is powered off.', 'Base.1.8.Conflict'));
      state.resets.push(t);
      if (!state.ignoreResets) {
        if (t === 'On' || t === 'ForceOn') powerOn();
        else if (t === 'ForceOff' || t === 'GracefulShutdown') powerOff();
        else if (t === 'PushPowerButton') { if (on) powerOff(); else powerOn(); }
        else if (t === 'ForceRestart' || t === 'GracefulRestart') booted();
        else if (t === 'PowerCycle') powerOff(powerOn);
      }
      return send(204);
    }
    return send(404, redfishError('ResourceMissingAtURI', `The resource at the URI ${p} was not found.`));
  };

  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const status = handle(req, body, res);
      let parsed: unknown = body;
      try { parsed = body ? JSON.parse(body) : undefined; } catch { /* keep text */ }
      const r: StandInRequest = {
        method: req.method ?? '', path: req.url ?? '', body: parsed, authorized: req.headers.authorization === expected, status,
        ...(typeof req.headers['if-match'] === 'string' ? { ifMatch: req.headers['if-match'] } : {}),
      };
      state.requests.push(r);
      state.afterRequest?.(r);
    });
  };
  const server = o.tls ? https.createServer({ key: o.tls.key, cert: o.tls.cert }, listener) : http.createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  state.port = (server.address() as AddressInfo).port;
  state.url = `${o.tls ? 'https' : 'http'}://127.0.0.1:${state.port}`;
  return state;
}
