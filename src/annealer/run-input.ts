// The input of a run, snapshotted when the run is queued (annealer rule 5): the layered data
// of the noderole plus the values of the attribs it wants, read from the parents that provide them.
import type { Sql } from '../store/db.js';
import { byMap, getPath, mergeLayers, type Data } from '../model/data.js';

export interface RunInput {
  noderole: { id: number; uuid: string; run_count: number; failures: number };
  role: { name: string; jig: string; jig_config: Data; flags: string[]; timeout_s: number };
  node: { id: number; uuid: string; name: string; bootenv: string; provider: string; admin: boolean; hints: Data };
  deployment: { id: number; name: string };
  /** role template < deployment role < node profiles < node hints < wanted attribs < system data < user data */
  data: Data;
  /** The value of every attrib the noderole can see, by attrib name. */
  attribs: Record<string, unknown>;
}

export async function buildRunInput(tx: Sql, noderoleId: number): Promise<RunInput> {
  const { rows: [nr] } = await tx.query(
    `SELECT nr.*, ro.name AS role_name, ro.jig, ro.jig_config, ro.flags, ro.timeout_s, ro.template, ro.wants_attribs,
            n.uuid AS node_uuid, n.name AS node_name, n.bootenv, n.provider, n.admin, n.hints,
            d.name AS deployment_name, dr.committed_data AS dr_data
       FROM noderoles nr JOIN roles ro ON ro.id = nr.role_id JOIN nodes n ON n.id = nr.node_id
       JOIN deployments d ON d.id = nr.deployment_id
       LEFT JOIN deployment_roles dr ON dr.deployment_id = nr.deployment_id AND dr.role_id = nr.role_id
      WHERE nr.id = $1`, [noderoleId]);
  const attribs = (await tx.query(
    `SELECT a.name, a.map, a.role_id, r.name AS role_name FROM attribs a LEFT JOIN roles r ON r.id = a.role_id
      WHERE a.role_id IS NULL OR a.role_id = $1 OR a.name = ANY($2)`,
    [nr.role_id, nr.wants_attribs])).rows as Array<{ name: string; map: string; role_id: number | null; role_name: string | null }>;
  const mapOf = (name: string) => attribs.find((a) => a.name === name)?.map;
  const profiles = (await tx.query(
    `SELECT p.values FROM node_profiles np JOIN profiles p ON p.id = np.profile_id WHERE np.node_id = $1 ORDER BY np.position, p.name`,
    [nr.node_id])).rows.map((p) => byMap(p.values, mapOf));

  let wanted: Data = {};
  const wantedNames = nr.wants_attribs as string[];
  if (wantedNames.length) {
    // Each wanted attrib is read from the lowest-id hard parent whose role owns (or provides) it.
    const providers = (await tx.query(
      `SELECT p.id, p.role_id, pr.name AS role_name, pr.provides, p.sys_data, p.committed_data, p.wall, pr.template, pdr.committed_data AS dr_data
         FROM noderole_edges e JOIN noderoles p ON p.id = e.parent_id JOIN roles pr ON pr.id = p.role_id
         LEFT JOIN deployment_roles pdr ON pdr.deployment_id = p.deployment_id AND pdr.role_id = p.role_id
        WHERE e.child_id = $1 AND e.kind = 'hard' ORDER BY p.id`, [noderoleId])).rows;
    for (const a of attribs.filter((x) => wantedNames.includes(x.name))) {
      // The owning role's noderole, or one of a role that `provides` it (abstract owners).
      const p = providers.find((x) => x.role_id === a.role_id) ?? providers.find((x) => a.role_name && x.provides.includes(a.role_name));
      if (!p) continue;
      const value = getPath(mergeLayers([p.template, p.dr_data ?? {}, p.sys_data, p.committed_data, p.wall]), a.map);
      if (value !== undefined) wanted = mergeLayers([wanted, byMap({ [a.name]: value }, mapOf)]);
    }
  }
  const data = mergeLayers([nr.template, nr.dr_data ?? {}, ...profiles, byMap(nr.hints, mapOf), wanted, nr.sys_data, nr.committed_data]);
  const values: Record<string, unknown> = {};
  for (const a of attribs) {
    const v = getPath(data, a.map);
    if (v !== undefined) values[a.name] = v;
  }
  return {
    noderole: { id: nr.id, uuid: nr.uuid, run_count: nr.run_count, failures: nr.failures },
    role: { name: nr.role_name, jig: nr.jig, jig_config: nr.jig_config, flags: nr.flags, timeout_s: nr.timeout_s },
    node: { id: nr.node_id, uuid: nr.node_uuid, name: nr.node_name, bootenv: nr.bootenv, provider: nr.provider, admin: nr.admin, hints: nr.hints },
    deployment: { id: nr.deployment_id, name: nr.deployment_name },
    data,
    attribs: values,
  };
}
