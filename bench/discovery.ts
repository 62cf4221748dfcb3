// Discovery figures (issue "Discovery", numbers to report), measured on this machine:
//  - the discovery ramdisk: kernel and initramfs size, module count (built or taken from the cache);
//  - one QEMU VM (TCG) PXE-booting through Fulcrum: VM start → registered with its inventory;
//  - ten namespace nodes running the real agent (five under dash + curl, five under busybox ash +
//    wget, as in the ramdisk): time for all ten to register; job dispatch latency from the commit
//    and from the annealer starting the job to the script running on the node;
//  - the agent while idle (long-polling for work): resident memory and CPU, per agent, including
//    its curl/wget children, over a 20 s window.
// Needs root (namespaces, QEMU). Results are documented in docs/performance.md.
import crypto from 'node:crypto';
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withLab, udhcpc, type Lab, type LabProcess, type Namespace } from '../src/lab/lab.js';
import { buildDiscoveryImage } from '../src/images/discovery.js';
import { projectRoot } from '../src/paths.js';
import { startServerIn } from '../test/support/ns-server.js';
import { ensurePackages } from '../test/support/packages.js';
import { waitFor } from '../test/support/server.js';
import { startVm } from '../test/support/vm.js';

const AGENT = path.join(projectRoot, 'src', 'agent', 'fulcrum-agent.sh');
const CACHE = path.join(os.tmpdir(), 'fulcrum-image-cache');
const IDLE_WINDOW_MS = 20_000;

export interface DiscoveryReport {
  image: { kernelMB: number; initrdMB: number; modules: number };
  vmRegisteredS: number;
  allRegisteredS: number;
  dispatchFromCommitMs: { p50: number; max: number };
  dispatchFromJobStartMs: { p50: number; max: number };
  idle: Array<{ shell: string; rssKB: number; cpuPercent: number }>;
}

/** Every descendant of `pid`, itself included. */
function tree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(fs.readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { out.push(p); for (const c of children.get(p) ?? []) walk(c); };
  walk(pid);
  return out;
}

/** Resident memory (kB) and CPU ticks of a process tree (children that already exited: their ticks are in cutime/cstime). */
function usage(pid: number): { rssKB: number; ticks: number } {
  let rssKB = 0;
  let ticks = 0;
  for (const p of tree(pid)) {
    try {
      rssKB += Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
      const f = fs.readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      ticks += Number(f[11]) + Number(f[12]) + (p === pid ? Number(f[13]) + Number(f[14]) : 0);
    } catch { /* gone */ }
  }
  return { rssKB, ticks };
}

const pct = (xs: number[], q: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

function startAgent(lab: Lab, ns: Namespace, i: number): { proc: LabProcess; shell: string } {
  const state = lab.makeDir(`agent${i}`);
  const env: NodeJS.ProcessEnv = { FULCRUM_MACHINE_UUID: crypto.randomUUID(), PATH: process.env.PATH };
  if (i % 2 === 1) {
    const bin = lab.makeDir('busybox-bin');
    const busybox = execSync('command -v busybox', { shell: '/bin/sh' }).toString().trim();
    for (const applet of ['wget', 'timeout', 'base64', 'sed', 'awk', 'grep', 'tr']) fs.symlinkSync(busybox, path.join(bin, applet));
    env.PATH = `${bin}:${process.env.PATH}`;
    env.FULCRUM_HTTP = 'wget';
    return { proc: ns.spawn('busybox', ['sh', AGENT, '--api', 'http://10.86.0.1:8091', '--state', state], { env, label: `agent${i}` }), shell: 'busybox ash + wget' };
  }
  return { proc: ns.spawn('sh', [AGENT, '--api', 'http://10.86.0.1:8091', '--state', state], { env, label: `agent${i}` }), shell: 'dash + curl' };
}

export async function runDiscoveryBench(log: (m: string) => void = console.log): Promise<DiscoveryReport> {
  await ensurePackages('net', 'vm');
  return withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.86.0.1/24' });
    const server = await startServerIn(lab, srv, '10.86.0.1');
    const api = server.api;
    const img = await buildDiscoveryImage({ outDir: path.join(server.dataDir, 'boot', 'discovery'), cacheDir: CACHE });
    const image = { kernelMB: img.sizeBytes.kernel / 1e6, initrdMB: img.sizeBytes.initrd / 1e6, modules: img.modules.length };
    log(`discovery ramdisk: kernel ${image.kernelMB.toFixed(1)} MB, initramfs ${image.initrdMB.toFixed(2)} MB, ${image.modules} modules`);
    const subnet = await api('POST', '/api/v1/subnets', { name: 'lan', cidr: '10.86.0.0/24', server_address: '10.86.0.1', pools: [{ first: '10.86.0.100', last: '10.86.0.200' }], probe: false });
    if (subnet.status !== 201) throw new Error(`subnet: ${JSON.stringify(subnet.body)}`);

    // One VM through the whole PXE path.
    const mac = '52:54:00:be:0c:01';
    const disk = path.join(lab.makeDir('disk'), 'blank.raw');
    fs.writeFileSync(disk, '');
    fs.truncateSync(disk, 64 * 1024 * 1024);
    const t0 = Date.now();
    const vm = await startVm(lab, lan, { name: 'bench', mac, uuid: crypto.randomUUID(), memoryMb: 512, disk });
    await waitFor('the VM to register', async () => ((await api('GET', '/api/v1/nodes?provider=metal')).body as any[]).find((n) => n.macs.includes(mac) && n.inventory?.disks), 180_000, 200)
      .catch((e) => { throw new Error(`${(e as Error).message}\n${vm.serial().slice(-2000)}`); });
    const vmRegisteredS = (Date.now() - t0) / 1000;
    log(`VM start → registered: ${vmRegisteredS.toFixed(1)} s (TCG)`);
    await vm.stop();

    // Ten namespace nodes.
    const agents: Array<{ proc: LabProcess; shell: string }> = [];
    const t1 = Date.now();
    for (let i = 0; i < 10; i++) {
      const ns = await lab.namespace(`node${i}`);
      await lab.link(ns, lan, { ifaceA: 'eth0' });
      await udhcpc(ns, 'eth0', { timeoutMs: 30_000 });
      agents.push(startAgent(lab, ns, i));
    }
    const nodes = await waitFor('ten agents registered', async () => {
      const ns = ((await api('GET', '/api/v1/nodes?provider=metal&limit=100')).body as any[]).filter((n) => !n.macs.includes(mac) && n.inventory?.nics);
      return ns.length === 10 && ns;
    }, 60_000, 100);
    const allRegisteredS = (Date.now() - t1) / 1000;
    log(`ten namespace nodes: DHCP + agent start → all registered ${allRegisteredS.toFixed(1)} s`);

    await api('POST', '/api/v1/roles', { name: 'bench-dispatch', jig: 'script', jig_config: { scripts: { '10-t.sh': 'fulcrum-wall bench-started "$(/bin/date +%s%3N)"\n' } } });
    await api('POST', '/api/v1/attribs', { name: 'bench-started', role: 'bench-dispatch', map: 'bench/started', schema: { type: 'integer' } });
    await api('POST', '/api/v1/deployments', { name: 'bench' });
    for (const n of nodes) await api('POST', '/api/v1/noderoles', { role: 'bench-dispatch', node: n.name, deployment: 'bench' });
    // Agents are idle in their long-poll when the commit lands.
    await new Promise((r) => setTimeout(r, 2000));
    const commitAt = Date.now();
    await api('POST', '/api/v1/deployments/bench/commit');
    const done = await waitFor('ten dispatch noderoles ACTIVE', async () => {
      const nrs = (await api('GET', '/api/v1/noderoles?role=bench-dispatch&limit=100')).body as any[];
      return nrs.length === 10 && nrs.every((x) => x.state === 'ACTIVE') && nrs;
    }, 60_000, 100);
    const jobs = (await api('GET', '/api/v1/jobs?limit=1000')).body as any[];
    const claims = (await api('GET', '/api/v1/events?type=job.claimed&limit=100')).body as any[];
    const fromCommit: number[] = [];
    const fromStart: number[] = [];
    const toClaim: number[] = [];
    const claimToScript: number[] = [];
    for (const nr of done) {
      const started = Number(nr.wall.bench.started);
      fromCommit.push(started - commitAt);
      const job = jobs.find((j) => j.noderole === nr.id);
      if (job?.started_at) fromStart.push(started - Date.parse(job.started_at));
      const claim = claims.find((e) => e.object_id === job?.id);
      if (claim && job?.started_at) {
        toClaim.push(Date.parse(claim.at) - Date.parse(job.started_at));
        claimToScript.push(started - Date.parse(claim.at));
      }
    }
    const dispatchFromCommitMs = { p50: pct(fromCommit, 0.5), max: Math.max(...fromCommit) };
    const dispatchFromJobStartMs = { p50: pct(fromStart, 0.5), max: Math.max(...fromStart) };
    log(`dispatch over ten nodes: commit → script started p50 ${dispatchFromCommitMs.p50} ms, max ${dispatchFromCommitMs.max} ms; job started → script started p50 ${dispatchFromJobStartMs.p50} ms, max ${dispatchFromJobStartMs.max} ms`);
    log(`  of which job started → claimed by the agent p50 ${pct(toClaim, 0.5)} ms, claimed → script started p50 ${pct(claimToScript, 0.5)} ms`);

    // Idle agents.
    const hz = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
    const before = agents.map((a) => usage(a.proc.pid));
    await new Promise((r) => setTimeout(r, IDLE_WINDOW_MS));
    const after = agents.map((a) => usage(a.proc.pid));
    const idle = agents.map((a, i) => ({
      shell: a.shell,
      rssKB: Math.max(before[i].rssKB, after[i].rssKB),
      cpuPercent: ((after[i].ticks - before[i].ticks) / hz) / (IDLE_WINDOW_MS / 1000) * 100,
    }));
    for (const shell of [...new Set(idle.map((x) => x.shell))]) {
      const xs = idle.filter((x) => x.shell === shell);
      log(`idle agent (${shell}): RSS ${Math.round(xs.reduce((s, x) => s + x.rssKB, 0) / xs.length)} kB, CPU ${(xs.reduce((s, x) => s + x.cpuPercent, 0) / xs.length).toFixed(3)} %`);
    }
    await server.stop();
    return { image, vmRegisteredS, allRegisteredS, dispatchFromCommitMs, dispatchFromJobStartMs, idle };
  });
}
