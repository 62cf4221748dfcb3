// Importing a content pack: one transaction, idempotent (an unchanged pack changes nothing),
// upgrades update roles, attribs and profiles in place and keep every binding.
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { FulcrumError } from '../model/errors.js';
import { checkRoleGraph, upsertAttrib, upsertRole } from '../model/roles.js';
import { checkBundle, PackError, validateReferences, type PackBundle } from './pack.js';
import { templateError } from '../provisioning/bootenvs.js';
import { writeNetwork } from '../network/networks.js';

export interface ImportResult { name: string; version: string; roles: number; attribs: number; profiles: number; bootenvs: number; networks: number; changed: boolean }

export async function importPack(tx: Tx, body: unknown): Promise<ImportResult> {
  let pack: PackBundle;
  try {
    pack = checkBundle(body);
    const roles = new Set<string>((await tx.query('SELECT name FROM roles').then((r) => r.rows.map((x) => x.name))));
    const attribs = new Set<string>((await tx.query('SELECT name FROM attribs').then((r) => r.rows.map((x) => x.name))));
    validateReferences(pack, { roles, attribs });
    pack.bootenvs.forEach((b, i) => {
      const texts: Array<[string, string]> = [[`bootenvs[${i}].boot_params`, b.boot_params], ...b.templates.map((t, j): [string, string] => [`bootenvs[${i}].templates[${j}].contents`, t.contents])];
      b.templates.forEach((t, j) => {
        if (!/^[A-Za-z0-9._-]+$/.test(t.path)) throw new PackError(`pack ${pack.name}`, `bootenvs[${i}].templates[${j}].path`, `"${t.path}" must be a file name (letters, digits, . _ -)`);
      });
      for (const [key, text] of texts) {
        const e = templateError(text);
        if (e) throw new PackError(`pack ${pack.name}`, key, `not a valid template: ${e}`);
      }
    });
  } catch (err) {
    if (err instanceof PackError) throw new FulcrumError('invalid', err.message, err.key || undefined);
    throw err;
  }
  const before = await tx.query('SELECT digest FROM content_packs WHERE name = $1 FOR UPDATE', [pack.name]);
  const counts = { name: pack.name, version: pack.version, roles: pack.roles.length, attribs: pack.attribs.length, profiles: pack.profiles.length, bootenvs: pack.bootenvs.length, networks: pack.networks.length };
  if (before.rows[0]?.digest === pack.digest) return { ...counts, changed: false };

  // Networks first: each brings its network-<name> role, which the pack's roles may name.
  for (const [i, n] of pack.networks.entries()) {
    const id = (await tx.query('SELECT id FROM networks WHERE name = $1', [n.name])).rows[0]?.id ?? null;
    const ranges = n.ranges.map((r) => ({ ...r, allow_bound_leases: r.allow_bound_leases ?? undefined, allow_anon_leases: r.allow_anon_leases ?? undefined }));
    try {
      await writeNetwork(tx, id, { ...n, ranges, content_pack: pack.name });
    } catch (err) {
      if (err instanceof FulcrumError) throw new FulcrumError(err.kind, `pack ${pack.name}: networks[${i}] (${n.name}): ${err.message}`, `networks[${i}]${err.field ? `.${err.field}` : ''}`);
      throw err;
    }
  }
  // Roles first without their references checked (they may point at each other), then attribs,
  // then the whole graph once: unknown references and cycles roll the import back entirely.
  for (const [i, r] of pack.roles.entries()) await upsertRole(tx, { ...r, content_pack: pack.name }, `roles[${i}].`);
  for (const [i, a] of pack.attribs.entries()) await upsertAttrib(tx, { ...a, content_pack: pack.name }, `attribs[${i}].`);
  for (const p of pack.profiles) {
    await tx.query(
      `INSERT INTO profiles (name, description, values, content_pack) VALUES ($1, $2, $3, $4)
       ON CONFLICT (name) DO UPDATE SET description = $2, values = $3, content_pack = $4, version = profiles.version + 1, updated_at = now()`,
      [p.name, p.description, p.values, pack.name]);
  }
  for (const b of pack.bootenvs) {
    await tx.query(
      `INSERT INTO bootenvs (name, description, netboot, kernel, initrds, boot_params, templates, required_params, content_pack, kexec)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (name) DO UPDATE SET description = $2, netboot = $3, kernel = $4, initrds = $5, boot_params = $6, templates = $7,
         required_params = $8, content_pack = $9, kexec = $10, version = bootenvs.version + 1, updated_at = now()`,
      [b.name, b.description, b.netboot, b.kernel, b.initrds, b.boot_params, JSON.stringify(b.templates), b.required_params, pack.name, b.kexec]);
  }
  await checkRoleGraph(tx);
  await tx.query(
    `INSERT INTO content_packs (name, version, description, digest, manifest) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET version = $2, description = $3, digest = $4, manifest = $5, imported_at = now()`,
    [pack.name, pack.version, pack.description, pack.digest, pack]);
  await emit(tx, { type: 'content.imported', object_kind: 'content-pack', payload: { ...counts } });
  return { ...counts, changed: true };
}
