// A node's power settings → the driver that acts on them, wrapped in retries and verification.
// The settings shape is a proposal (docs/power.md): where a node stores it is not decided yet.
import { Ajv, type ErrorObject } from 'ajv';
import { Type as T } from 'typebox';
import { PowerError, type PowerDriver } from './driver.js';
import { IpmiDriver, type IpmiConfig } from './ipmi.js';
import { RedfishDriver, type RedfishConfig } from './redfish.js';
import { VerifiedPowerDriver, type PowerPolicy } from './verified.js';
import { VmDriver, type VmPowerConfig } from './vm.js';

export type PowerConfig =
  | ({ driver: 'ipmi' } & IpmiConfig)
  | ({ driver: 'redfish' } & RedfishConfig)
  | ({ driver: 'vm' } & VmPowerConfig);

export type PowerDriverName = PowerConfig['driver'];

const Host = T.String({ minLength: 1, maxLength: 253, pattern: '^[^\\s/]+$', description: 'BMC host name or IP address' });
const Port = T.Integer({ minimum: 1, maximum: 65535 });
const Username = T.String({ minLength: 1, maxLength: 64 });
// writeOnly: accepted on input, never returned; stored encrypted (docs/power.md).
const Password = T.String({ minLength: 1, maxLength: 256, writeOnly: true, 'x-fulcrum-secret': true });

/** The per-node power settings as stored and accepted by the API (one schema per driver). */
export const PowerSettingsSchema = T.Union([
  T.Object({
    driver: T.Literal('ipmi'),
    address: Host,
    port: T.Optional(Port),
    username: Username,
    password: Password,
    cipherSuite: T.Optional(T.Integer({ minimum: 0, maximum: 17 })),
    privilege: T.Optional(T.Union([T.Literal('CALLBACK'), T.Literal('USER'), T.Literal('OPERATOR'), T.Literal('ADMINISTRATOR')])),
    efiBoot: T.Optional(T.Boolean()),
  }, { additionalProperties: false }),
  T.Object({
    driver: T.Literal('redfish'),
    address: Host,
    port: T.Optional(Port),
    scheme: T.Optional(T.Union([T.Literal('https'), T.Literal('http')])),
    username: Username,
    password: Password,
    systemId: T.Optional(T.String({ minLength: 1, maxLength: 200 })),
    tlsVerify: T.Optional(T.Boolean()),
    caCert: T.Optional(T.String({ minLength: 1, maxLength: 65536 })),
    bootMode: T.Optional(T.Union([T.Literal('UEFI'), T.Literal('Legacy')])),
  }, { additionalProperties: false }),
  T.Object({
    driver: T.Literal('vm'),
    address: T.String({ minLength: 1, maxLength: 107, pattern: '^/', description: 'QMP unix socket path' }),
    launch: T.Array(T.String(), { minItems: 1, maxItems: 500 }),
    gracefulShutdownMs: T.Optional(T.Integer({ minimum: 0, maximum: 600_000 })),
  }, { additionalProperties: false }),
]);

/** Settings fields that are secrets: sealed at rest, never returned (api.ts). */
export const SECRET_FIELDS = ['password'] as const;

let validate: ((v: unknown) => boolean) & { errors?: ErrorObject[] | null } | undefined;

/**
 * Check stored or submitted power settings; returns them typed, or throws a TypeError that says
 * which field is wrong. Secrets are never echoed.
 */
export function parsePowerSettings(value: unknown, what = 'power settings'): PowerConfig {
  const driver = (value as { driver?: unknown } | null)?.driver;
  if (driver !== 'ipmi' && driver !== 'redfish' && driver !== 'vm') {
    throw new TypeError(`${what}: driver must be one of ${POWER_DRIVERS.join(', ')}${driver === undefined ? '' : `, not ${JSON.stringify(driver)}`}`);
  }
  validate ??= new Ajv({ strict: false, allErrors: true }).compile(PowerSettingsSchema);
  if (validate(value)) return value as PowerConfig;
  // The union reports every branch; keep the errors of the branch the driver names.
  const branch = PowerSettingsSchema.anyOf.findIndex((s) => (s.properties.driver as { const?: string }).const === driver);
  const errors = (validate.errors ?? []).filter((e) => e.schemaPath.startsWith(`#/anyOf/${branch}/`));
  const text = errors.map((e) => {
    const field = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || (e.params as { missingProperty?: string; additionalProperty?: string }).missingProperty || (e.params as { additionalProperty?: string }).additionalProperty || '(settings)';
    if (e.keyword === 'required') return `${field} is required`;
    if (e.keyword === 'additionalProperties') return `${field} is not a ${driver} setting`;
    return `${field} ${e.message}`;
  });
  throw new TypeError(`${what} (${driver}): ${[...new Set(text)].join('; ') || 'invalid'}`);
}

const FACTORIES: { [K in PowerDriverName]: (c: Extract<PowerConfig, { driver: K }>) => PowerDriver } = {
  ipmi: (c) => new IpmiDriver(c),
  redfish: (c) => new RedfishDriver(c),
  vm: (c) => new VmDriver(c),
};

export const POWER_DRIVERS = Object.keys(FACTORIES) as PowerDriverName[];

/** The bare driver for a configuration: one command per call, no retries, no verification. */
export function createPowerDriver(config: PowerConfig): PowerDriver {
  const make = FACTORIES[config.driver] as ((c: PowerConfig) => PowerDriver) | undefined;
  if (!make) throw new TypeError(`unknown power driver ${JSON.stringify((config as { driver?: unknown }).driver)}; known: ${POWER_DRIVERS.join(', ')}`);
  return make(config);
}

/**
 * What the rest of Fulcrum uses: the driver for `config`, with retries, exponential backoff and
 * verification of every state change (verified.ts).
 */
export function powerControl(config: PowerConfig, policy: PowerPolicy = {}): VerifiedPowerDriver {
  return new VerifiedPowerDriver(createPowerDriver(config), policy);
}

export { PowerError };
