// One source of truth per shape: these JSON schemas validate request bodies and feed the
// OpenAPI document (STYLE.md "Plugins with encapsulation").
import { Type as T } from 'typebox';
import { FLAGS, JIGS } from '../model/role-graph.js';
import { STATES } from '../model/lifecycle.js';

const Name = T.String({ pattern: '^[a-z0-9][a-z0-9-]*$', maxLength: 100 });
const Names = T.Array(Name, { maxItems: 200 });
const Key = T.Union([T.String({ minLength: 1, maxLength: 300 }), T.Integer({ minimum: 1 })]);
const Data = T.Record(T.String(), T.Unknown());
const Mac = T.String({ pattern: '^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$' });
const IPv4 = T.String({ format: 'ipv4' });

export const NodeCreate = T.Object({
  name: T.String({ minLength: 1, maxLength: 253 }),
  description: T.Optional(T.String()),
  alive: T.Optional(T.Boolean()),
  available: T.Optional(T.Boolean()),
  bootenv: T.Optional(T.String({ minLength: 1 })),
  provider: T.Optional(T.String({ minLength: 1 })),
  deployment: T.Optional(Key),
  admin: T.Optional(T.Boolean()),
  inventory: T.Optional(Data),
  hints: T.Optional(Data),
  macs: T.Optional(T.Array(Mac, { maxItems: 64 })),
  profiles: T.Optional(T.Array(Name, { maxItems: 64 })),
}, { additionalProperties: false });

export const NodePatch = T.Object({
  description: T.Optional(T.String()),
  alive: T.Optional(T.Boolean()),
  available: T.Optional(T.Boolean()),
  bootenv: T.Optional(T.String({ minLength: 1 })),
  deployment: T.Optional(Key),
  inventory: T.Optional(Data),
  hints: T.Optional(Data),
  macs: T.Optional(T.Array(Mac, { maxItems: 64 })),
  profiles: T.Optional(T.Array(Name, { maxItems: 64 })),
}, { additionalProperties: false });

const RoleFields = {
  description: T.Optional(T.String()),
  jig: T.Optional(T.Union(JIGS.map((j) => T.Literal(j)))),
  jig_config: T.Optional(Data),
  flags: T.Optional(T.Array(T.Union(FLAGS.map((f) => T.Literal(f))))),
  requires: T.Optional(Names),
  wants_attribs: T.Optional(Names),
  preceeds: T.Optional(Names),
  provides: T.Optional(Names),
  conflicts: T.Optional(Names),
  template: T.Optional(Data),
  timeout: T.Optional(T.Integer({ minimum: 1 })),
  retry: T.Optional(T.Object({ count: T.Optional(T.Integer({ minimum: 0, maximum: 100 })), backoff: T.Optional(T.Integer({ minimum: 0 })) }, { additionalProperties: false })),
};
export const RoleCreate = T.Object({ name: Name, ...RoleFields }, { additionalProperties: false });
export const RolePatch = T.Object(RoleFields, { additionalProperties: false });

export const AttribCreate = T.Object({
  name: Name,
  description: T.Optional(T.String()),
  role: T.Optional(T.Union([Name, T.Null()])),
  map: T.String({ minLength: 1 }),
  schema: T.Optional(Data),
  secret: T.Optional(T.Boolean()),
}, { additionalProperties: false });
export const AttribPatch = T.Object({
  description: T.Optional(T.String()), map: T.Optional(T.String({ minLength: 1 })), schema: T.Optional(Data), secret: T.Optional(T.Boolean()),
}, { additionalProperties: false });

export const DeploymentCreate = T.Object({ name: Name, description: T.Optional(T.String()), parent: T.Optional(Key) }, { additionalProperties: false });
export const DeploymentPatch = T.Object({ description: T.Optional(T.String()) }, { additionalProperties: false });

export const Bind = T.Object({ role: Key, node: Key, deployment: T.Optional(Key) }, { additionalProperties: false });
export const DataPatch = T.Object({ proposed_data: T.Optional(Data) }, { additionalProperties: false });

export const ProfileCreate = T.Object({ name: Name, description: T.Optional(T.String()), values: T.Optional(Data) }, { additionalProperties: false });
export const ProfilePatch = T.Object({ description: T.Optional(T.String()), values: T.Optional(Data) }, { additionalProperties: false });

const Capability = T.String({ pattern: '^(\\*|[a-z-]+:(read|write|\\*))$' });
export const UserCreate = T.Object({ name: Name, password: T.String({ minLength: 8 }), capabilities: T.Optional(T.Array(Capability)) }, { additionalProperties: false });
export const UserPatch = T.Object({ password: T.Optional(T.String({ minLength: 8 })), capabilities: T.Optional(T.Array(Capability)) }, { additionalProperties: false });

export const WebhookCreate = T.Object({
  name: Name, url: T.String({ pattern: '^https?://' }), secret: T.Optional(T.String({ minLength: 16 })),
  types: T.Optional(T.Array(T.String())), active: T.Optional(T.Boolean()), max_attempts: T.Optional(T.Integer({ minimum: 1, maximum: 50 })),
}, { additionalProperties: false });
export const WebhookPatch = T.Object({
  url: T.Optional(T.String({ pattern: '^https?://' })), secret: T.Optional(T.String({ minLength: 16 })),
  types: T.Optional(T.Array(T.String())), active: T.Optional(T.Boolean()), max_attempts: T.Optional(T.Integer({ minimum: 1, maximum: 50 })),
}, { additionalProperties: false });

export const Login = T.Object({ user: T.String({ minLength: 1 }), password: T.String({ minLength: 1 }) }, { additionalProperties: false });
export const JobComplete = T.Object({
  status: T.Union([T.Literal('succeeded'), T.Literal('failed')]), wall: T.Optional(Data), log: T.Optional(T.String()), message: T.Optional(T.String()),
}, { additionalProperties: false });
export const SimNodes = T.Object({ count: T.Integer({ minimum: 1, maximum: 100000 }), deployment: T.Optional(Key), prefix: T.Optional(Name) }, { additionalProperties: false });
export const AttribValue = T.Object({ value: T.Unknown() }, { additionalProperties: false });

const RoleSpec = T.Object({
  name: Name, ...RoleFields,
}, { additionalProperties: false });
export const PackBundle = T.Object({
  name: Name, version: T.String({ minLength: 1 }), description: T.Optional(T.String()), digest: T.Optional(T.String()),
  roles: T.Optional(T.Array(RoleSpec)),
  attribs: T.Optional(T.Array(T.Object({
    name: Name, description: T.Optional(T.String()), role: T.Optional(T.Union([Name, T.Null()])), map: T.String({ minLength: 1 }),
    schema: T.Optional(Data), secret: T.Optional(T.Boolean()),
  }, { additionalProperties: false }))),
  profiles: T.Optional(T.Array(T.Object({ name: Name, description: T.Optional(T.String()), values: T.Optional(Data) }, { additionalProperties: false }))),
}, { additionalProperties: false });

export const ListQuery = T.Object({
  limit: T.Optional(T.Integer({ minimum: 1, maximum: 1000 })),
  offset: T.Optional(T.Integer({ minimum: 0 })),
}, { additionalProperties: true });

export const NodeRoleState = T.Union(STATES.map((s) => T.Literal(s)));

const Pool = T.Object({ first: IPv4, last: IPv4 }, { additionalProperties: false });
const SubnetFields = {
  server_address: T.Optional(T.Union([IPv4, T.Null()])),
  proxy: T.Optional(T.Boolean()),
  pools: T.Optional(T.Array(Pool, { maxItems: 64 })),
  routers: T.Optional(T.Array(IPv4)), dns: T.Optional(T.Array(IPv4)), ntp: T.Optional(T.Array(IPv4)),
  domain: T.Optional(T.Union([T.String(), T.Null()])),
  lease_time_s: T.Optional(T.Integer({ minimum: 60 })), offer_hold_s: T.Optional(T.Integer({ minimum: 1, maximum: 600 })),
  probe: T.Optional(T.Boolean()), probe_timeout_ms: T.Optional(T.Integer({ minimum: 10, maximum: 5000 })),
  options: T.Optional(Data), enabled: T.Optional(T.Boolean()),
};
export const SubnetCreate = T.Object({ name: Name, cidr: T.String({ pattern: '^\\d+\\.\\d+\\.\\d+\\.\\d+/\\d+$' }), ...SubnetFields }, { additionalProperties: false });
export const SubnetPatch = T.Object(SubnetFields, { additionalProperties: false });
export const ReservationCreate = T.Object({
  mac: Mac, subnet: Key, address: IPv4, hostname: T.Optional(T.String()), options: T.Optional(Data), node: T.Optional(Key),
}, { additionalProperties: false });
export const ReservationPatch = T.Object({ address: T.Optional(IPv4), hostname: T.Optional(T.String()), options: T.Optional(Data) }, { additionalProperties: false });
const BootenvFields = {
  description: T.Optional(T.String()), netboot: T.Optional(T.Boolean()), kernel: T.Optional(T.Union([T.String(), T.Null()])),
  initrds: T.Optional(T.Array(T.String())), boot_params: T.Optional(T.String()),
  templates: T.Optional(T.Array(T.Object({ path: T.String({ pattern: '^[A-Za-z0-9._-]+$' }), contents: T.String() }, { additionalProperties: false }))),
  required_params: T.Optional(T.Array(T.String())),
  kexec: T.Optional(T.Boolean({ description: 'the agent may load this bootenv with kexec instead of a firmware reboot' })),
};
export const BootenvCreate = T.Object({ name: Name, ...BootenvFields }, { additionalProperties: false });
export const BootenvPatch = T.Object(BootenvFields, { additionalProperties: false });
