// The first real cluster workload (issue 5, "How it will be checked"): namespace nodes running the
// real agent, addressed by Fulcrum's DHCP, converge ready-state (content pack core) and a real etcd
// cluster (content pack etcd, Debian's etcd-server), each member listening on its node's own
// address with its data under the node's private directory. Three members form a cluster; a key
// written through one is read through another; a fourth bound later joins while the others keep
// serving and are not restarted; an unbound member leaves; a killed member turns its noderole ERROR
// with etcd's message on a re-run, and starting it again + retry brings it back to ACTIVE. The
// server's DNS answers etcd.<domain> with the members' addresses (a name filter on the etcd role),
// asked with dig from the nodes: three, then four, then three again.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { withLab, udhcpc, type LabProcess, type Namespace } from '../src/lab/lab.js';
import { projectRoot } from '../src/paths.js';
import { readPack } from '../src/content/pack.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { waitFor, countBy } from './support/server.js';

before(async () => { await ensurePackages('net', 'workload', 'dns'); });

const AGENT = path.join(projectRoot, 'src', 'agent', 'fulcrum-agent.sh');
const SRV = '10.90.0.1';
const API = `http://${SRV}:8091`;
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', ETCDCTL_API: '3' };

interface TestNode { ns: Namespace; agent: LabProcess; state: string; root: string; mac: string; address: string; name: string }

/** The etcd pid a role started on a node, if that process is alive and is etcd. */
function etcdPid(n: TestNode): number | null {
  const file = path.join(n.root, 'run', 'etcd.pid');
  if (!fs.existsSync(file)) return null;
  const pid = Number(fs.readFileSync(file, 'utf8').trim());
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0].endsWith('etcd') ? pid : null;
  } catch { return null; }
}

const DOMAIN = 'cluster.test';
const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

/** The A records of etcd.<domain>, asked from a node's namespace with dig (the real client). */
async function etcdPool(n: TestNode): Promise<string[]> {
  const r = await n.ns.exec('dig', [`@${SRV}`, '+short', '+time=2', '+tries=1', `etcd.${DOMAIN}`, 'A'], { timeoutMs: 10000, check: false });
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l));
}

test('etcd on namespace nodes: ready-state, a three-member cluster, grow to four, shrink, break and repair', { timeout: 600_000 }, async () => {
  await withLab(async (lab) => {
    const nodes: TestNode[] = [];
    let serving = true;
    try {
      const srv = await lab.namespace('srv');
      const lan = await lab.bridge('lan');
      await lab.link(srv, lan, { ifaceA: 'eth0', addressA: `${SRV}/24` });
      // The server also answers DNS for the cluster domain: etcd.<domain> is the members' pool.
      const server = await startServerIn(lab, srv, SRV, ['--dns-listen', `${SRV}:53`]);
      const api = server.api;
      assert.equal((await api('POST', '/api/v1/subnets', { name: 'lan', cidr: '10.90.0.0/24', server_address: SRV, pools: [{ first: '10.90.0.100', last: '10.90.0.200' }], probe: false })).status, 201);
      assert.equal((await api('POST', '/api/v1/dns-zones', { name: DOMAIN, ns_addresses: [SRV], minimum: 5 })).status, 201);
      const pool = await api('POST', '/api/v1/dns-name-filters', { name: 'etcd', zone: DOMAIN, match: { role: 'etcd' }, template: 'etcd', ptr: false, ttl: 5 });
      assert.equal(pool.status, 201, JSON.stringify(pool.body));
      for (const pack of ['core', 'etcd']) {
        const r = await api('POST', '/api/v1/content-packs', await readPack(path.join(projectRoot, 'content', pack)));
        assert.equal(r.status, 201, `import ${pack}: ${JSON.stringify(r.body)}`);
      }
      // The site's NTP and DNS servers, registered by the operator (this server runs neither): NTP
      // with the CLI (run beside the server, on its boot address), DNS through the API.
      const cliConfig = path.join(lab.makeDir('cli'), 'config.json');
      const fulcrum = (...args: string[]) => srv.exec(process.execPath, [path.join(projectRoot, 'bin', 'fulcrum.js'), '--endpoint', `http://${SRV}:8091`, '--token', api.token, ...args],
        { env: { ...ENV, FULCRUM_CONFIG: cliConfig }, timeoutMs: 250000, check: false });
      const ntp = await fulcrum('services', 'create', '--set', 'name=ntp', '--set', `addresses=["${SRV}"]`, '--set', 'description=site NTP', '-o', 'json');
      assert.equal(ntp.code, 0, ntp.stderr);
      assert.equal(JSON.parse(ntp.stdout).source, 'external');
      const badCli = await fulcrum('services', 'create', '--set', 'name=ntp', '--set', `addresses=["${SRV}"]`);
      assert.equal(badCli.code, 1, 'a second external ntp is refused');
      assert.match(badCli.stderr, /already registered/);
      assert.equal((await api('POST', '/api/v1/services', { name: 'dns', addresses: [SRV] })).status, 201);
      const internal = (await api('GET', '/api/v1/service-registry')).body;
      assert.deepEqual(internal.api.addresses, [SRV], 'the server registered its own API on the boot address');
      assert.deepEqual(internal.dhcp.addresses, [SRV]);

      // Four namespace nodes: DHCP from Fulcrum, then the agent; each has a private root directory.
      for (let i = 0; i < 4; i++) {
        const ns = await lab.namespace(`etcd${i}`);
        const link = await lab.link(ns, lan, { ifaceA: 'eth0' });
        const address = (await udhcpc(ns, 'eth0', { timeoutMs: 30000 })).lease.address;
        const state = lab.makeDir(`agent${i}`);
        const root = path.join(state, 'root');
        fs.mkdirSync(root);
        const agent = ns.spawn('sh', [AGENT, '--api', API, '--state', state], { env: { ...ENV, FULCRUM_MACHINE_UUID: crypto.randomUUID() }, label: `agent in ${ns.name}` });
        nodes.push({ ns, agent, state, root, mac: link.a.mac, address, name: '' });
      }
      const registered = await waitFor('four nodes registered', async () => {
        const all = ((await api('GET', '/api/v1/nodes?provider=metal&limit=100')).body as any[]).filter((n) => n.alive);
        return all.length === 4 && all;
      }, 60000, 250);
      for (const n of nodes) {
        n.name = registered.find((x: any) => x.macs.includes(n.mac)).name;
        // Roles write under this directory, never the host's /etc.
        assert.equal((await api('PATCH', `/api/v1/nodes/${n.name}`, { hints: { 'core-root': n.root } })).status, 200);
      }
      assert.equal((await api('POST', '/api/v1/deployments', { name: 'etcd' })).status, 201);

      const anneal = async () => (await api('GET', '/api/v1/anneal?deployment=etcd')).body;
      const converged = (what: string, ms: number) => waitFor(what, async () => {
        const a = await anneal();
        if (a.failed) throw new Error(`${what}: failed noderoles ${JSON.stringify(a.errors.map((e: any) => [e.node, e.role, e.runlog]))}`);
        return a.total > 0 && a.finished === a.total && a;
      }, ms, 250).catch(async (e) => {
        const nrs = ((await api('GET', '/api/v1/noderoles?deployment=etcd&limit=1000')).body as any[]).filter((x) => x.state !== 'ACTIVE');
        throw new Error(`${e.message}; not ACTIVE: ${JSON.stringify(nrs.map((x) => [x.node, x.role, x.state, x.blocked_by]))}; running: ${JSON.stringify((await anneal()).running)}`);
      });
      const etcdctl = async (n: TestNode, args: string[], check = true) =>
        n.ns.exec('etcdctl', [`--endpoints=http://${n.address}:2379`, '--command-timeout=5s', ...args], { env: ENV, check, timeoutMs: 15000 });
      const memberCount = async (n: TestNode) => (await etcdctl(n, ['member', 'list'])).stdout.trim().split('\n').filter(Boolean).length;

      // --- Three members, plus a consumer of the endpoints on the first node. ---
      for (const n of nodes.slice(0, 3)) assert.equal((await api('POST', '/api/v1/noderoles', { role: 'etcd', node: n.name, deployment: 'etcd' })).status, 201);
      // The SSH keys the deployment authorizes (deployment-role data of core-ssh-keys).
      const keys = (await api('GET', '/api/v1/deployment-roles?deployment=etcd&role=core-ssh-keys')).body[0];
      assert.equal((await api('PATCH', `/api/v1/deployment-roles/${keys.id}`, { proposed_data: { core: { ssh: { authorized_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFulcrumTestKeyOne op@site'] } } } })).status, 200);
      assert.equal((await api('POST', '/api/v1/noderoles', { role: 'etcd-client', node: nodes[0].name, deployment: 'etcd' })).status, 201);
      const commit1 = Date.now();
      assert.equal((await api('POST', '/api/v1/deployments/etcd/commit')).status, 200);
      await converged('ready-state and a three-member etcd cluster', 240000);
      for (const n of nodes.slice(0, 3)) {
        const health = await etcdctl(n, ['endpoint', 'health']);
        assert.match(health.stdout + health.stderr, /is healthy/);
      }
      const to3 = Date.now() - commit1;
      assert.equal(await memberCount(nodes[0]), 3);

      // Ready state really happened, under each node's own root.
      for (const n of nodes.slice(0, 3)) {
        assert.equal(fs.readFileSync(path.join(n.root, 'etc/hostname'), 'utf8'), `${n.name.split('.')[0]}\n`);
        assert.match(fs.readFileSync(path.join(n.root, 'etc/chrony/sources.d/fulcrum.sources'), 'utf8'), new RegExp(`^server ${SRV.replace(/\./g, '\\.')} iburst$`, 'm'));
        assert.match(fs.readFileSync(path.join(n.root, 'etc/resolv.conf'), 'utf8'), new RegExp(`^nameserver ${SRV.replace(/\./g, '\\.')}$`, 'm'));
        assert.match(fs.readFileSync(path.join(n.root, 'root/.ssh/authorized_keys'), 'utf8'), /# BEGIN fulcrum core-ssh-keys\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFulcrumTestKeyOne op@site\n# END/);
        assert.match(fs.readFileSync(path.join(n.root, 'etc/apt/sources.list.d/fulcrum.list'), 'utf8'), /^deb http:\/\/deb\.debian\.org\/debian \S+ main$/m);
        assert.ok(!fs.existsSync(path.join(n.root, 'etc/rsyslog.d/60-fulcrum.conf')), 'no logging service: forwarding off');
        assert.match(fs.readFileSync(path.join(n.root, 'etc/default/etcd'), 'utf8'), new RegExp(`ETCD_LISTEN_CLIENT_URLS="http://${n.address.replace(/\./g, '\\.')}:2379"`));
        assert.ok(fs.existsSync(path.join(n.root, 'var/lib/etcd/default/member')), 'data under the node\'s root');
      }
      const ready = ((await api('GET', '/api/v1/noderoles?role=ready-state&deployment=etcd')).body as any[]);
      assert.equal(ready.length, 3);
      assert.ok(ready.every((r) => r.state === 'ACTIVE'));

      // A key written through one member is read through another.
      await etcdctl(nodes[0], ['put', 'fulcrum/hello', 'world']);
      assert.equal((await etcdctl(nodes[2], ['get', '--print-value-only', 'fulcrum/hello'])).stdout.trim(), 'world');
      const endpoints3 = nodes.slice(0, 3).map((n) => `http://${n.address}:2379`);
      assert.match(fs.readFileSync(path.join(nodes[0].root, 'etc/default/etcdctl'), 'utf8'), new RegExp(`ETCDCTL_ENDPOINTS=${endpoints3.join(',').replace(/[./]/g, '\\$&')}\n`));
      await waitFor(`etcd.${DOMAIN} answering with the three members`, async () => sameSet(await etcdPool(nodes[2]), nodes.slice(0, 3).map((n) => n.address)), 30000, 250);
      const pids3 = nodes.slice(0, 3).map(etcdPid);
      assert.ok(pids3.every((p) => p !== null), 'three etcd processes');
      const jobsAfter3 = ((await api('GET', '/api/v1/jobs?limit=1000')).body as any[]).length;

      // --- A fourth member joins while the first three keep serving. ---
      let writes = 0;
      const servingErrors: string[] = [];
      const traffic = (async () => {
        for (let i = 0; serving && i < 2000; i++) {
          const via = nodes[i % 3];
          const r = await etcdctl(via, ['put', `fulcrum/during-join/${i}`, String(i)], false).catch((e) => ({ code: -1, stderr: (e as Error).message }));
          if (!serving) break;
          if (r.code === 0) writes++; else servingErrors.push(`${via.name}: ${r.stderr.trim()}`);
          await new Promise((res) => setTimeout(res, 200));
        }
      })();
      assert.equal((await api('POST', '/api/v1/noderoles', { role: 'etcd', node: nodes[3].name, deployment: 'etcd' })).status, 201);
      const commit2 = Date.now();
      assert.equal((await api('POST', '/api/v1/deployments/etcd/commit')).status, 200);
      // The operator's view: `fulcrum converge` with live progress (run beside the server, on its boot address).
      const cli = await fulcrum('converge', 'etcd', '--timeout', '240');
      assert.equal(cli.code, 0, `fulcrum converge: ${cli.stdout}${cli.stderr}`);
      assert.match(cli.stdout, /converged/);
      assert.match(cli.stderr, /\d+\/\d+ finished/, 'progress lines while it waits');
      process.stdout.write(`# fulcrum converge etcd (grow): ${cli.stderr.trim().split('\n').slice(0, 4).join(' | ')} ... ${cli.stdout.trim()}\n`);
      await waitFor('four members', async () => (await memberCount(nodes[0]).catch(() => 0)) === 4, 240000, 500);
      await converged('the grown cluster', 240000);
      const to4 = Date.now() - commit2;
      // The endpoint list the dependents consume has all four (republished by the first member).
      await waitFor('etcd-client configured with four endpoints', async () =>
        /ETCDCTL_ENDPOINTS=(http:\/\/[^,\n]+,){3}http:\/\/[^,\n]+\n/.test(fs.readFileSync(path.join(nodes[0].root, 'etc/default/etcdctl'), 'utf8')) && (await anneal()).finished === (await anneal()).total, 60000, 250)
        .catch(async (e) => {
          throw new Error(`${e.message}: ${fs.readFileSync(path.join(nodes[0].root, 'etc/default/etcdctl'), 'utf8')}; server: ${server.proc.output().split('\n').filter((l) => /members changed|peers|hook|error/i.test(l)).slice(-10).join(' / ')}`);
        });
      serving = false;
      await traffic;
      assert.deepEqual(servingErrors, [], 'the first three kept serving during the join');
      assert.ok(writes > 0);
      assert.deepEqual(nodes.slice(0, 3).map(etcdPid), pids3, 'the first three members were not restarted');
      assert.match(fs.readFileSync(path.join(nodes[3].root, 'etc/default/etcd'), 'utf8'), /ETCD_INITIAL_CLUSTER_STATE="existing"/);
      await waitFor(`etcd.${DOMAIN} answering with four members`, async () => sameSet(await etcdPool(nodes[3]), nodes.map((n) => n.address)), 30000, 250);
      const health4 = await etcdctl(nodes[3], ['endpoint', 'health', '--cluster']);
      assert.equal(((health4.stdout + health4.stderr).match(/is healthy/g) ?? []).length, 4, health4.stdout + health4.stderr);
      assert.equal((await etcdctl(nodes[3], ['get', '--print-value-only', 'fulcrum/hello'])).stdout.trim(), 'world');
      const jobs4 = ((await api('GET', '/api/v1/jobs?limit=1000')).body as any[]).filter((j) => j.state !== 'skipped');
      const jobsAfter4 = jobs4.length;

      // --- The operator registers a log collector: the nodes start forwarding, nothing else changes. ---
      // Every member runs again below core-logging: none is restarted, and none removes another.
      const pidsBefore = nodes.map(etcdPid);
      const ntpJobs = async () => ((await api('GET', `/api/v1/jobs?role=core-ntp&limit=1000`)).body as any[]).length;
      const ntpBefore = await ntpJobs();
      assert.equal((await api('POST', '/api/v1/services', { name: 'logging', addresses: [SRV], port: 6514 })).status, 201);
      await waitFor('every node forwarding its logs', async () => nodes.every((n) => {
        const f = path.join(n.root, 'etc/rsyslog.d/60-fulcrum.conf');
        return fs.existsSync(f) && fs.readFileSync(f, 'utf8').includes(`*.* @@${SRV}:6514`);
      }), 120000, 250);
      await waitFor('core roles re-run', async () => (await ntpJobs()) === ntpBefore + 4, 120000, 250);
      await converged('after the registry change', 120000);
      const ntpJob = ((await api('GET', `/api/v1/jobs?role=core-ntp&node=${nodes[0].name}&limit=1000`)).body as any[]).at(-1);
      assert.match((await api('GET', `/api/v1/jobs/${ntpJob.id}`)).body.log, /unchanged: .*fulcrum\.sources/, 'a re-run changes nothing it need not');
      assert.deepEqual(nodes.map(etcdPid), pidsBefore, 'the members were re-run (below core-logging), not restarted');
      assert.equal(await memberCount(nodes[0]), 4, 're-runs with older peers lists removed nobody');

      // --- Unbind the fourth: it leaves the cluster and stops. ---
      const fourth = ((await api('GET', `/api/v1/noderoles?role=etcd&node=${nodes[3].name}`)).body as any[])[0];
      const refused = await api('DELETE', `/api/v1/noderoles/${fourth.id}`);
      assert.equal(refused.status, 409, 'a member with a dependent is not unbound behind the dependent\'s back');
      assert.match(refused.body.message, /dependent noderoles/);
      const client = ((await api('GET', '/api/v1/noderoles?role=etcd-client')).body as any[])[0];
      assert.equal((await api('DELETE', `/api/v1/noderoles/${client.id}`)).status, 204);
      const pid4 = etcdPid(nodes[3]);
      assert.ok(pid4);
      assert.equal((await api('DELETE', `/api/v1/noderoles/${fourth.id}`)).status, 204);
      await waitFor('three members again', async () => (await memberCount(nodes[0]).catch(() => 0)) === 3, 120000, 500);
      await waitFor('the removed member stopped', async () => etcdPid(nodes[3]) === null, 30000, 250);
      await waitFor(`etcd.${DOMAIN} back to three members`, async () => sameSet(await etcdPool(nodes[0]), nodes.slice(0, 3).map((n) => n.address)), 30000, 250);
      await converged('the shrunk cluster', 120000);
      assert.equal((await etcdctl(nodes[1], ['get', '--print-value-only', 'fulcrum/hello'])).stdout.trim(), 'world');
      assert.deepEqual(nodes.slice(0, 3).map(etcdPid), pids3, 'the remaining members were not restarted');

      // --- A broken member: killed, its noderole re-run -> ERROR with etcd's message. ---
      const victim = nodes[1];
      const vnr = ((await api('GET', `/api/v1/noderoles?role=etcd&node=${victim.name}`)).body as any[])[0];
      process.kill(etcdPid(victim)!, 'SIGKILL');
      await waitFor('the member is dead', async () => etcdPid(victim) === null, 10000, 100);
      // An operator re-runs the noderole by changing its data and committing.
      assert.equal((await api('PATCH', `/api/v1/noderoles/${vnr.id}`, { proposed_data: { etcd: { check: 1 } } })).status, 200);
      assert.equal((await api('POST', '/api/v1/deployments/etcd/commit')).status, 200);
      const broken = await waitFor('the killed member ERROR', async () => {
        const nr = (await api('GET', `/api/v1/noderoles/${vnr.id}`)).body;
        return nr.state === 'ERROR' && nr;
      }, 120000, 250);
      assert.match(broken.runlog, /is not running/);
      assert.match(broken.runlog, /connection refused|unhealthy|context deadline exceeded/, 'etcd\'s own message is in the run log');
      assert.match(broken.runlog, /fulcrum-etcd-start/, 'the log says how to start it');
      // The fix: start the member again (as systemctl start etcd would), then retry.
      await victim.ns.exec('sh', [path.join(victim.root, 'usr/local/sbin/fulcrum-etcd-start')], { env: ENV });
      assert.equal((await api('POST', `/api/v1/noderoles/${vnr.id}/retry`)).status, 200);
      await waitFor('the repaired member ACTIVE', async () => (await api('GET', `/api/v1/noderoles/${vnr.id}`)).body.state === 'ACTIVE', 120000, 250);
      { const h = await etcdctl(victim, ["endpoint", "health"]); assert.match(h.stdout + h.stderr, /is healthy/); }
      assert.equal(await memberCount(victim), 3);

      // --- The unbound node bound again: its old data is discarded and it joins afresh. ---
      assert.equal((await api('POST', '/api/v1/noderoles', { role: 'etcd', node: nodes[3].name, deployment: 'etcd' })).status, 201);
      assert.equal((await api('POST', '/api/v1/deployments/etcd/commit')).status, 200);
      await converged('the fourth member back', 120000);
      await waitFor('four members again', async () => (await memberCount(nodes[0]).catch(() => 0)) === 4, 60000, 500);
      const rejoin = ((await api('GET', `/api/v1/noderoles?role=etcd&node=${nodes[3].name}`)).body as any[])[0];
      assert.match((await api('GET', `/api/v1/noderoles/${rejoin.id}`)).body.runlog, /removed earlier\): discarding the old data[\s\S]*joining the existing cluster/);
      assert.equal((await etcdctl(nodes[3], ['get', '--print-value-only', 'fulcrum/hello'])).stdout.trim(), 'world');

      // --- Figures. ---
      // Jobs of unbound noderoles go with them: the figures are taken at four members.
      const perNode = countBy(jobs4, (j) => j.node);
      const perRole = countBy(jobs4, (j) => j.role);
      process.stdout.write(`# etcd: commit -> healthy 3-member cluster ${(to3 / 1000).toFixed(1)} s; commit -> 4 members ${(to4 / 1000).toFixed(1)} s\n`);
      process.stdout.write(`# etcd: jobs ${jobsAfter3} to form the cluster (3 nodes + services), ${jobsAfter4 - jobsAfter3} to grow it (${jobsAfter4} at four members)\n`);
      process.stdout.write(`# etcd: jobs per node at four members ${JSON.stringify(perNode)}\n# etcd: jobs per role at four members ${JSON.stringify(perRole)}\n`);
      process.stdout.write(`# etcd: ${writes} writes through the first three members during the join, none failed\n`);
      // Nothing ran needlessly twice while forming the cluster: one job per noderole.
      const formed = ((await api('GET', '/api/v1/jobs?limit=1000')).body as any[]).slice(0, jobsAfter3);
      const perNoderole = countBy(formed, (j) => String(j.noderole));
      assert.ok(Object.values(perNoderole).every((c) => c === 1), `one run per noderole while forming: ${JSON.stringify(perNoderole)}`);
      await server.stop();
    } finally {
      serving = false;
      // Processes the roles started: the etcd members (the lab would find them too).
      for (const n of nodes) { const p = etcdPid(n); if (p) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    }
  });
});
