// The `ansible` jig (DESIGN.md §2 "Jigs"): the server runs `ansible-playbook` (Debian's ansible)
// against the noderole's node — every node of the deployment for a role bound on the service
// pseudo-node — with an inventory generated from the deployment and the run data as extra vars.
// Output is streamed into the job log as it comes. Results come back through Ansible's fact cache:
// a playbook that sets the cacheable fact `fulcrum_wall` (attrib name -> value) reports those
// values, which land at their attribs' map paths in the wall. Connection as for the ssh jig: the
// server's key pair, host keys pinned on first contact; node hints `ssh-host`/`ansible-host`,
// `ssh-user`, `ssh-port`, `ansible-connection` (docs/content-packs.md "The ansible jig").
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Store, Sql } from '../store/db.js';
import type { Jig, JigResult } from './jigs.js';
import { emit } from '../events/outbox.js';
import { setPath, type Data } from '../model/data.js';
import { keyClause } from '../model/lookup.js';
import { notFound } from '../model/errors.js';
import { nodeAddresses } from '../services/node-address.js';
import { ensureSshKey } from '../agent/ssh-jig.js';

export interface InventoryHost { name: string; vars: Data; groups: string[] }

/** Ansible group names allow letters, digits and underscores. */
export const groupName = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_');

/**
 * The hosts of a deployment (every deployment when null) with their connection variables and
 * groups: one per role bound on them (`etcd`, `core_ssh_keys`) and one per deployment
 * (`deployment_<name>`). Service pseudo-nodes are not hosts.
 */
export async function inventoryHosts(sql: Sql, deploymentId: number | null): Promise<InventoryHost[]> {
  const nodes = (await sql.query(
    `SELECT n.id, n.name, n.hints, d.name AS deployment,
            ARRAY(SELECT DISTINCT r.name FROM noderoles nr JOIN roles r ON r.id = nr.role_id WHERE nr.node_id = n.id ORDER BY r.name) AS roles
       FROM nodes n JOIN deployments d ON d.id = n.deployment_id
      WHERE NOT n.service AND ($1::bigint IS NULL OR n.deployment_id = $1
            OR n.id IN (SELECT node_id FROM noderoles WHERE deployment_id = $1))
      ORDER BY n.name`, [deploymentId])).rows;
  const addresses = await nodeAddresses(sql, nodes.map((n) => n.id));
  return nodes.map((n) => {
    const h = n.hints ?? {};
    const vars: Data = {
      ansible_host: String(h['ansible-host'] ?? h['ssh-host'] ?? addresses.get(n.id) ?? n.name),
      ansible_user: String(h['ssh-user'] ?? 'root'),
      ansible_port: Number(h['ssh-port'] ?? 22),
      fulcrum_node: n.name,
      fulcrum_node_id: n.id,
      fulcrum_deployment: n.deployment,
    };
    if (h['ansible-connection']) vars.ansible_connection = String(h['ansible-connection']);
    return { name: n.name, vars, groups: [`deployment_${groupName(n.deployment)}`, ...n.roles.map(groupName)] };
  });
}

/** Ansible's dynamic-inventory JSON (`--list`): groups with hosts, hostvars under _meta. */
export function dynamicInventory(hosts: InventoryHost[]): Data {
  const out: Record<string, any> = { _meta: { hostvars: {} }, all: { hosts: hosts.map((h) => h.name), children: [] as string[] } };
  for (const h of hosts) {
    out._meta.hostvars[h.name] = h.vars;
    for (const g of h.groups) (out[g] ??= { hosts: [] as string[] }).hosts.push(h.name);
  }
  out.all.children = Object.keys(out).filter((k) => k !== '_meta' && k !== 'all').sort();
  return out;
}

/** The same inventory in the YAML inventory plugin's shape (a JSON file is valid YAML). */
function staticInventory(hosts: InventoryHost[], extra: Data): Data {
  const children: Record<string, { hosts: Record<string, object> }> = {};
  for (const h of hosts) for (const g of h.groups) (children[g] ??= { hosts: {} }).hosts[h.name] = {};
  return { all: { hosts: Object.fromEntries(hosts.map((h) => [h.name, { ...h.vars, ...extra }])), children } };
}

export function registerAnsibleApi(app: FastifyInstance, store: Store): void {
  app.get('/api/v1/ansible/inventory', { config: { capability: 'nodes:read' }, schema: { tags: ['ansible'] } }, async (req) => {
    const q = req.query as { deployment?: string };
    let depId: number | null = null;
    if (q.deployment) {
      const { where, value } = keyClause(q.deployment);
      const d = await store.query(`SELECT id FROM deployments WHERE ${where}`, [value]);
      if (!d.rowCount) throw notFound('deployment', q.deployment, 'query.deployment');
      depId = d.rows[0].id;
    }
    return dynamicInventory(await inventoryHosts(store, depId));
  });
}

const TAIL = 20;

export function ansibleJig(dataDir: string, store: Store): Jig {
  return {
    name: 'ansible',
    inProcess: true,
    async run({ job, input, signal }): Promise<JigResult> {
      const playbook = (input.role.jig_config as { playbook?: unknown }).playbook;
      if (typeof playbook !== 'string' || playbook.trim() === '') {
        return { status: 'failed', message: `role ${input.role.name} uses the ansible jig but its jig_config has no playbook (jig_config.playbook: file:playbooks/<name>.yml)` };
      }
      const { key, knownHosts } = await ensureSshKey(dataDir);
      const work = await fs.mkdtemp(path.join(await ensureDir(path.join(dataDir, 'ansible')), `job-${job}-`));
      try {
        const hosts = await inventoryHosts(store, input.deployment.id);
        const service = (await store.query(`SELECT service FROM nodes WHERE id = $1`, [input.node.id])).rows[0]?.service === true;
        const targets = service ? hosts.map((h) => h.name) : [input.node.name];
        if (!service && !hosts.some((h) => h.name === input.node.name)) {
          const [own] = await inventoryHosts(store, null).then((all) => all.filter((h) => h.name === input.node.name));
          if (own) hosts.push(own);
        }
        if (targets.length === 0) return { status: 'failed', message: `role ${input.role.name}: deployment ${input.deployment.name} has no nodes to run the playbook against` };
        const sshArgs = `-o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${knownHosts} -o ConnectTimeout=10`;
        await fs.writeFile(path.join(work, 'inventory.json'), JSON.stringify(staticInventory(hosts, {
          ansible_ssh_private_key_file: key, ansible_ssh_common_args: sshArgs, ansible_python_interpreter: 'auto_silent',
        })));
        await fs.writeFile(path.join(work, 'playbook.yml'), playbook);
        // Run data as extra vars: top-level data keys that are variable names, plus the whole of it.
        const vars: Data = {};
        for (const [k, v] of Object.entries(input.data)) if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) vars[k] = v;
        Object.assign(vars, {
          fulcrum: { job, role: input.role.name, node: input.node.name, node_id: input.node.id, deployment: input.deployment.name, noderole: input.noderole.id },
          fulcrum_data: input.data, fulcrum_attribs: input.attribs,
        });
        await fs.writeFile(path.join(work, 'vars.json'), JSON.stringify(vars), { mode: 0o600 });
        await fs.mkdir(path.join(work, 'facts'));
        const log = logStreamer(store, job, input.node.id, input.noderole.id);
        await log.add(`ansible-playbook ${input.role.name} against ${targets.join(', ')}\n`);
        const result = await new Promise<{ code: number | null; error?: string }>((resolve) => {
          const child = spawn('ansible-playbook', ['-i', 'inventory.json', '--limit', targets.join(','), '-e', '@vars.json', 'playbook.yml'], {
            cwd: work, stdio: ['ignore', 'pipe', 'pipe'], signal,
            env: {
              ...process.env, ANSIBLE_HOME: path.join(dataDir, 'ansible', 'home'), ANSIBLE_LOCAL_TEMP: path.join(work, 'tmp'),
              ANSIBLE_REMOTE_TMP: '/tmp/.fulcrum-ansible', ANSIBLE_GATHERING: 'explicit', ANSIBLE_NOCOLOR: '1', ANSIBLE_RETRY_FILES_ENABLED: '0',
              ANSIBLE_CACHE_PLUGIN: 'jsonfile', ANSIBLE_CACHE_PLUGIN_CONNECTION: path.join(work, 'facts'), ANSIBLE_CACHE_PLUGIN_TIMEOUT: '0',
              ANSIBLE_DEPRECATION_WARNINGS: '0', ANSIBLE_LOCALHOST_WARNING: '0', PYTHONUNBUFFERED: '1',
            },
          });
          child.stdout.on('data', (d) => void log.add(String(d)));
          child.stderr.on('data', (d) => void log.add(String(d)));
          child.on('error', (err) => resolve({ code: null, error: err.message }));
          child.on('close', (code) => resolve({ code }));
        });
        const output = await log.close();
        if (result.code !== 0) {
          const tail = output.trim().split('\n').filter((l) => l.trim()).slice(-TAIL).join('\n');
          return { status: 'failed', message: result.code === null
            ? `ansible-playbook could not run (${result.error}); install Debian's ansible on the server`
            : `playbook of role ${input.role.name} failed on ${targets.join(', ')} (ansible-playbook exit ${result.code}); last output:\n${tail}` };
        }
        return { status: 'succeeded', wall: await wallFromFacts(store, path.join(work, 'facts'), targets) };
      } finally {
        await fs.rm(work, { recursive: true, force: true });
      }
    },
  };
}

const ensureDir = async (dir: string) => { await fs.mkdir(dir, { recursive: true, mode: 0o700 }); return dir; };

/** `fulcrum_wall` from each target's fact cache file, placed at the attribs' map paths. */
async function wallFromFacts(sql: Sql, dir: string, targets: string[]): Promise<Data> {
  const maps = new Map((await sql.query(`SELECT name, map FROM attribs`)).rows.map((a) => [a.name as string, a.map as string]));
  let wall: Data = {};
  for (const t of targets) {
    const facts = await fs.readFile(path.join(dir, t), 'utf8').then((s) => JSON.parse(s) as Data, () => ({} as Data));
    const values = facts.fulcrum_wall;
    if (!values || typeof values !== 'object' || Array.isArray(values)) continue;
    for (const [name, value] of Object.entries(values)) wall = setPath(wall, maps.get(name) ?? name, value);
  }
  return wall;
}

/** Appends output to the job log in batches (and as `job.log` events), like the agent does. */
function logStreamer(store: Store, job: number, nodeId: number, noderole: number) {
  let all = '';
  let pending = '';
  let timer: NodeJS.Timeout | undefined;
  let writing = Promise.resolve();
  const flush = () => {
    timer = undefined;
    const chunk = pending;
    pending = '';
    if (!chunk) return writing;
    writing = writing.then(() => store.tx(async (tx) => {
      await tx.query(`UPDATE jobs SET log = right(log || $2, 1000000) WHERE id = $1`, [job, chunk]);
      await emit(tx, { type: 'job.log', object_kind: 'job', object_id: job, node_id: nodeId, payload: { noderole, text: chunk.slice(0, 4000) } });
    })).catch(() => undefined);
    return writing;
  };
  return {
    async add(text: string) {
      all += text;
      pending += text;
      timer ??= setTimeout(() => void flush(), 250);
    },
    async close() {
      if (timer) clearTimeout(timer);
      await flush();
      return all;
    },
  };
}
