// Importing a content pack: one transaction, idempotent (an unchanged pack changes nothing),
// upgrades update roles, attribs and profiles in place and keep every binding.
import type { Tx } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { FulcrumError } from '../model/errors.js';
import { checkRoleGraph, upsertAttrib, upsertRole } from '../model/roles.js';
import { checkBundle, PackError, validateReferences, type PackBundle } from './pack.js';

export interface ImportResult { name: string; version: string; roles: number; attribs: number; profiles: number; changed: boolean }

export async function importPack(tx: Tx, body: unknown): Promise<ImportResult> {
  let pack: PackBundle;
  try {
    pack = checkBundle(body);
    const roles = new Set<string>((await tx.query('SELECT name FROM roles').then((r) => r.rows.map((x) => x.name))));
    const attribs = new Set<string>((await tx.query('SELECT name FROM attribs').then((r) => r.rows.map((x) => x.name))));
    validateReferences(pack, { roles, attribs });
  } catch (err) {
    if (err instanceof PackError) throw new FulcrumError('invalid', err.message, err.key || undefined);
    throw err;
  }
  const before = await tx.query('SELECT digest FROM content_packs WHERE name = $1 FOR UPDATE', [pack.name]);
  const counts = { name: pack.name, version: pack.version, roles: pack.roles.length, attribs: pack.attribs.length, profiles: pack.profiles.length };
  if (before.rows[0]?.digest === pack.digest) return { ...counts, changed: false };

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
  await checkRoleGraph(tx);
  await tx.query(
    `INSERT INTO content_packs (name, version, description, digest, manifest) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET version = $2, description = $3, digest = $4, manifest = $5, imported_at = now()`,
    [pack.name, pack.version, pack.description, pack.digest, pack]);
  await emit(tx, { type: 'content.imported', object_kind: 'content-pack', payload: { ...counts } });
  return { ...counts, changed: true };
}
