// API of the service registry: the `services` collection (operators create, change and delete
// external services; internal ones are listed, never written through the API) and
// GET /api/v1/service-registry, the resolved map roles see.
import type { FastifyInstance } from 'fastify';
import { Type as T } from 'typebox';
import type { Store, Tx } from '../store/db.js';
import { conflict, invalid } from '../model/errors.js';
import { emit } from '../events/outbox.js';
import type { Resource } from '../api/resources.js';
import { pokeResolvers, resolveServices } from './registry.js';

const Name = T.String({ pattern: '^[a-z0-9][a-z0-9-]*$', maxLength: 63 });
/** An IPv4/IPv6 address or a host name. */
const Address = T.String({ pattern: '^([0-9A-Fa-f.:]+|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$', maxLength: 253 });
const fields = {
  addresses: T.Array(Address, { minItems: 1, maxItems: 64 }),
  port: T.Union([T.Integer({ minimum: 1, maximum: 65535 }), T.Null()]),
  url: T.Union([T.String({ pattern: '^[a-z][a-z0-9+.-]*://', maxLength: 2000 }), T.Null()]),
  description: T.String({ maxLength: 2000 }),
};
export const ServiceCreate = T.Object({
  name: Name, addresses: fields.addresses, port: T.Optional(fields.port), url: T.Optional(fields.url), description: T.Optional(fields.description),
}, { additionalProperties: false });
export const ServicePatch = T.Object({
  addresses: T.Optional(fields.addresses), port: T.Optional(fields.port), url: T.Optional(fields.url), description: T.Optional(fields.description),
}, { additionalProperties: false });

const internalOnly = (row: { name: string; source: string }) => {
  if (row.source === 'internal') throw conflict(`service ${row.name} (id ${(row as any).id}) is registered by the server itself; register an external ${row.name} service to use another one instead`);
};

async function changed(tx: Tx, type: string, id: number, name: string): Promise<void> {
  await emit(tx, { type, object_kind: 'service', object_id: id, payload: { name } });
  await pokeResolvers(tx, `service ${name} changed`);
}

export const SERVICE_RESOURCES: Resource[] = [{
  kind: 'services', what: 'service', named: true,
  // External first, so `services show ntp` names the one roles use.
  view: `SELECT id, uuid, name, source, replica_id AS replica, addresses, port, url, description, version, created_at, updated_at FROM services
          ORDER BY name, source = 'external' DESC, id`,
  filters: ['name', 'source', 'replica'],
  create: {
    schema: ServiceCreate,
    run: async (tx, b) => {
      const dup = await tx.query(`SELECT id FROM services WHERE name = $1 AND source = 'external'`, [b.name]);
      if (dup.rowCount) throw conflict(`an external service ${b.name} is already registered (id ${dup.rows[0].id}); change it with PATCH /api/v1/services/${dup.rows[0].id}`);
      const id = (await tx.query(
        `INSERT INTO services (name, source, addresses, port, url, description) VALUES ($1, 'external', $2, $3, $4, $5) RETURNING id`,
        [b.name, b.addresses, b.port ?? null, b.url ?? null, b.description ?? ''])).rows[0].id;
      await changed(tx, 'service.created', id, b.name);
      return id;
    },
  },
  patch: {
    schema: ServicePatch,
    editable: (s) => ({ addresses: s.addresses, port: s.port, url: s.url, description: s.description }),
    run: async (tx, row, m) => {
      internalOnly(row);
      if (!Array.isArray(m.addresses) || m.addresses.length === 0) throw invalid('addresses', 'at least one address is required');
      await tx.query(`UPDATE services SET addresses = $2, port = $3, url = $4, description = $5, version = version + 1, updated_at = now() WHERE id = $1`,
        [row.id, m.addresses, m.port ?? null, m.url ?? null, m.description ?? '']);
      await changed(tx, 'service.updated', row.id, row.name);
    },
  },
  remove: async (tx, row) => {
    internalOnly(row);
    await tx.query('DELETE FROM services WHERE id = $1', [row.id]);
    await changed(tx, 'service.deleted', row.id, row.name);
  },
}];

export function registerServiceApi(app: FastifyInstance, store: Store): void {
  app.get('/api/v1/service-registry', { config: { capability: 'services:read' }, schema: { tags: ['services'] } }, async () => resolveServices(store));
}
