// Namespace nodes (DESIGN.md §3 "Agent", issue: discovery): each is a network namespace with a veth
// on the lab segment and a private state directory, running the real POSIX agent. They get their
// addresses from Fulcrum's DHCP, register, report inventory, and run script-jig jobs; an agent
// killed mid-job leads to the TRANSITION timeout, and a retry after it returns works.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { execSync } from 'node:child_process';
import crypto from 'node:crypto';
import { withLab, udhcpc, type LabProcess, type Namespace, type Lab } from '../src/lab/lab.js';
import { projectRoot } from '../src/paths.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net'); });

const AGENT = path.join(projectRoot, 'src', 'agent', 'fulcrum-agent.sh');
const API = 'http://10.88.0.1:8091';

/** The agent under dash (curl), busybox ash (busybox wget, as in the discovery image) and bash. */
const SHELLS = [['sh'], ['busybox', 'sh'], ['bash']] as const;

function startAgent(lab: Lab, ns: Namespace, state: string, uuid: string, i: number): LabProcess {
  const [cmd, ...pre] = SHELLS[i % SHELLS.length];
  let PATH = process.env.PATH;
  const env: NodeJS.ProcessEnv = { FULCRUM_MACHINE_UUID: uuid };
  if (cmd === 'busybox') {
    const bin = lab.makeDir('busybox-bin');
    for (const applet of ['wget', 'timeout', 'base64', 'sed', 'awk', 'grep', 'tr']) fs.symlinkSync(execSync('command -v busybox', { shell: '/bin/sh' }).toString().trim(), path.join(bin, applet));
    PATH = `${bin}:${PATH}`;
    env.FULCRUM_HTTP = 'wget';
  }
  return ns.spawn(cmd, [...pre, AGENT, '--api', API, '--state', state], { env: { ...env, PATH }, label: `agent (${SHELLS[i % SHELLS.length].join(' ')}) in ${ns.name}` });
}

test('ten namespace nodes register and converge a three-role script graph; a killed agent times out and recovers', async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.88.0.1/24' });
    const server = await startServerIn(lab, srv, '10.88.0.1');
    const api = server.api;
    assert.equal((await api('POST', '/api/v1/subnets', { name: 'lan', cidr: '10.88.0.0/24', server_address: '10.88.0.1', pools: [{ first: '10.88.0.100', last: '10.88.0.200' }], probe: false })).status, 201);

    // Roles: a writes a wall value; b wants it (attribute injection) and checks it; c requires b.
    // a and b are per-node prerequisites: implicit, so each node gets its own.
    assert.equal((await api('POST', '/api/v1/roles', { name: 'script-a', jig: 'script', flags: ['implicit'], jig_config: { scripts: {
      '10-hello.sh': 'echo "hello from $FULCRUM_NODE"\nfulcrum-wall script-a-token "token-of-$FULCRUM_NODE"\n',
    } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/attribs', { name: 'script-a-token', role: 'script-a', map: 'script/a_token', schema: { type: 'string' } })).status, 201);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'script-b', jig: 'script', flags: ['implicit'], wants_attribs: ['script-a-token'], jig_config: { scripts: {
      '10-check.sh': 'v=$(fulcrum-attr script-a-token)\necho "got $v"\n[ "$v" = "token-of-$FULCRUM_NODE" ]\n',
      '20-second.sh': 'echo second script ran\n',
    } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'script-c', jig: 'script', requires: ['script-b'], jig_config: { scripts: {
      '10-done.sh': 'fulcrum-wall script-c-done true\n',
    } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments', { name: 'agents' })).status, 201);

    // Ten namespace nodes: DHCP from Fulcrum, then the agent.
    const agents: Array<{ ns: Namespace; proc: LabProcess; state: string; uuid: string; mac: string; address: string }> = [];
    for (let i = 0; i < 10; i++) {
      const ns = await lab.namespace(`node${i}`);
      const link = await lab.link(ns, lan, { ifaceA: 'eth0' });
      const lease = (await udhcpc(ns, 'eth0', { timeoutMs: 30000 })).lease;
      assert.match(lease.address, /^10\.88\.0\.(1\d\d|200)$/);
      const state = lab.makeDir(`agent${i}`);
      const uuid = crypto.randomUUID();
      agents.push({ ns, proc: startAgent(lab, ns, state, uuid, i), state, uuid, mac: link.a.mac, address: lease.address });
    }
    const registered = await waitFor('ten nodes registered with inventory', async () => {
      const nodes = ((await api('GET', '/api/v1/nodes?provider=metal&limit=100')).body as any[]).filter((n) => n.alive && n.inventory?.nics);
      return nodes.length === 10 && nodes;
    }, 60000, 250);
    for (const a of agents) {
      const n = registered.find((x: any) => x.macs.includes(a.mac));
      assert.ok(n, `node with MAC ${a.mac} registered`);
      assert.equal(n.name, `d${a.mac.replace(/:/g, '')}.fulcrum.internal`);
      const nic = n.inventory.nics.find((x: any) => x.mac === a.mac);
      assert.ok(nic, 'the NIC is in the inventory');
      assert.equal(nic.link, true);
      assert.equal(nic.pci_path, '', 'a veth has no PCI device (real NICs report driver and PCI path)');
      assert.ok(n.inventory.memory_kb > 0 && n.inventory.cpu.count > 0);
      assert.equal(n.inventory.dmi.uuid, a.uuid);
      assert.ok(Array.isArray(n.inventory.disks));
    }

    const bindAt = Date.now();
    for (const n of registered) assert.equal((await api('POST', '/api/v1/noderoles', { role: 'script-c', node: n.name, deployment: 'agents' })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments/agents/commit')).status, 200);
    const done = await waitFor('30 script noderoles ACTIVE', async () => {
      const a = (await api('GET', '/api/v1/anneal?deployment=agents')).body;
      if (a.failed) throw new Error(`failed: ${JSON.stringify(a.errors.map((e: any) => [e.node, e.role, e.runlog]))}`);
      return a.total === 30 && a.finished === 30 && a;
    }, 120000, 250);
    const convergeMs = Date.now() - bindAt;
    assert.equal(done.failed, 0);
    const jobs = ((await api('GET', '/api/v1/jobs?jig=script&limit=1000')).body as any[]);
    assert.equal(jobs.filter((j) => j.state === 'succeeded').length, 30, 'each noderole ran once');
    const c = ((await api('GET', '/api/v1/noderoles?role=script-c&limit=100')).body as any[]);
    assert.ok(c.every((x) => x.wall?.['script-c-done'] === true), 'wall values came back');
    const a1 = ((await api('GET', '/api/v1/noderoles?role=script-a&limit=100')).body as any[])[0];
    assert.match(a1.wall.script.a_token, /^token-of-d[0-9a-f]{12}\.fulcrum\.internal$/, 'wall stored at the attrib map path');
    const b1 = (await api('GET', `/api/v1/jobs/${jobs.find((j) => j.role === 'script-b').id}`)).body;
    assert.match(b1.log, /got token-of-/);
    assert.match(b1.log, /second script ran/, 'scripts run in lexical order');
    // Dispatch latency: from the job being started to the agent claiming it.
    const claimed = ((await api('GET', '/api/v1/events?type=job.claimed&limit=1000')).body as any[]);
    const claimedAt = new Map(claimed.map((e: any) => [e.object_id, new Date(e.at).getTime()]));
    const lat = jobs.map((j) => claimedAt.get(j.id)! - new Date(j.started_at).getTime()).filter((x) => x >= 0).sort((x, y) => x - y);
    process.stdout.write(`# ten namespace nodes: 30 script jobs converged ${convergeMs} ms after bind; dispatch (started -> claimed) p50 ${lat[Math.floor(lat.length / 2)]} ms, max ${lat.at(-1)} ms\n`);

    // A failing script: ERROR with the log tail.
    assert.equal((await api('POST', '/api/v1/roles', { name: 'script-fail', jig: 'script', jig_config: { scripts: { '10-fail.sh': 'echo about to fail\nfalse\necho never\n' } } })).status, 201);
    const victim = registered.find((x: any) => x.macs.includes(agents[0].mac)).name;
    await api('POST', '/api/v1/noderoles', { role: 'script-fail', node: victim, deployment: 'agents' });
    await api('POST', '/api/v1/deployments/agents/commit');
    const failed = await waitFor('script-fail ERROR', async () => {
      const nr = ((await api('GET', `/api/v1/noderoles?role=script-fail`)).body as any[])[0];
      return nr?.state === 'ERROR' && nr;
    }, 60000, 250);
    const detail = (await api('GET', `/api/v1/noderoles/${failed.id}`)).body;
    assert.match(detail.runlog, /exit code 1/);
    assert.match(detail.runlog, /about to fail/);
    assert.doesNotMatch(detail.runlog, /never/, 'set -e stopped the script');

    // Kill an agent mid-job: the TRANSITION timeout turns it into ERROR; after the agent is back, retry works.
    // (On another node than the failed script: by default a node with an ERROR runs nothing more.)
    assert.equal((await api('POST', '/api/v1/roles', { name: 'script-slow', jig: 'script', timeout: 4, jig_config: { scripts: {
      '10-slow.sh': 'if [ ! -e "$FULCRUM_DIR/../ran-once" ]; then touch "$FULCRUM_DIR/../ran-once"; echo sleeping; sleep 60; fi\necho quick this time\n',
    } } })).status, 201);
    const target = agents[1];
    const targetNode = registered.find((x: any) => x.macs.includes(target.mac)).name;
    await api('POST', '/api/v1/noderoles', { role: 'script-slow', node: targetNode, deployment: 'agents' });
    await api('POST', '/api/v1/deployments/agents/commit');
    // Killed mid-job: once the script is running (it has left its marker).
    await waitFor('the slow script running', async () => fs.existsSync(path.join(target.state, 'ran-once')), 30000, 100);
    await target.proc.stop({ signal: 'SIGKILL' });
    await target.ns.exec('sh', ['-c', 'pkill -KILL -f "sleep 60" || true'], { check: false });
    const timedOut = await waitFor('script-slow ERROR by timeout', async () => {
      const nr = ((await api('GET', `/api/v1/noderoles?role=script-slow`)).body as any[])[0];
      return nr?.state === 'ERROR' && nr;
    }, 30000, 250);
    assert.match((await api('GET', `/api/v1/noderoles/${timedOut.id}`)).body.runlog, /timed out after 4 s in TRANSITION \(role script-slow on node /);
    target.proc = startAgent(lab, target.ns, target.state, target.uuid, 1);
    assert.equal((await api('POST', `/api/v1/noderoles/${timedOut.id}/retry`)).status, 200);
    await waitFor('script-slow ACTIVE after retry', async () => ((await api('GET', `/api/v1/noderoles/${timedOut.id}`)).body.state === 'ACTIVE'), 30000, 250)
      .catch(async (e) => {
        const nr = (await api('GET', `/api/v1/noderoles/${timedOut.id}`)).body;
        const js = (await api('GET', `/api/v1/jobs?noderole=${timedOut.id}`)).body;
        throw new Error(`${e.message}: noderole ${nr.state} ${JSON.stringify(nr.blocked_by)}; jobs ${JSON.stringify(js.map((j: any) => [j.id, j.state, j.message]))}; agent: ${target.proc.output().slice(-1500)}`);
      });

    await server.stop();
  });
});
