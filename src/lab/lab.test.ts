import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import {
  DhcpNoLeaseError, Lab, LabError, dhclient, dhcpcd, dnsmasq, labPrerequisitesMissing, sweepStaleLabs, udhcpc, withLab,
  type DhcpClientSession, type DhcpcdOptions, type Namespace,
} from './lab.js';
import { projectRoot } from '../paths.js';
import { isSameProcess, netnsInodeOf, readCmdline, run, signalVerified } from './processes.js';

const PROGRAMS: Array<[string, string]> = [
  ['ping', 'iputils-ping'], ['sleep', 'coreutils'], ['unshare', 'util-linux'],
  ['dnsmasq', 'dnsmasq-base'], ['dhclient', 'isc-dhcp-client'], ['udhcpc', 'udhcpc'], ['dhcpcd', 'dhcpcd-base'],
];

// Missing programs are installed with the project's script (as root); otherwise the suite fails
// with the reason: never a silent skip.
before(async () => {
  let missing = labPrerequisitesMissing(PROGRAMS);
  if (missing && process.getuid?.() === 0) {
    await run(['sh', path.join(projectRoot, 'scripts', 'install-system-packages.sh'), 'net'], { timeoutMs: 15 * 60_000 });
    missing = labPrerequisitesMissing(PROGRAMS);
  }
  if (missing) throw new LabError(`the lab tests cannot run: ${missing}`);
});

async function hostNamespaces(): Promise<string[]> {
  return (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

async function hostLinks(): Promise<string[]> {
  return (JSON.parse((await run(['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}

function alive(pid: number): boolean {
  return readCmdline(pid) !== undefined;
}

test('two namespaces on a bridge reach each other and have no route out', async () => {
  const linksBefore = await hostLinks();
  await withLab(async (lab) => {
    const a = await lab.namespace('a');
    const b = await lab.namespace('b');
    const br = await lab.bridge('br0');
    assert.equal(br.ns.label, 'switch', 'bridges live in the switch namespace by default');
    const la = await lab.link(a, br, { addressA: '10.77.0.1/24', macA: '52:54:00:77:00:01' });
    await lab.link(b, br, { addressA: '10.77.0.2/24' });
    assert.deepEqual({ iface: la.a.iface, mac: la.a.mac, port: la.b.iface }, { iface: 'eth0', mac: '52:54:00:77:00:01', port: 'br0p0' });
    assert.deepEqual(br.ports, ['br0p0', 'br0p1']);

    const ping = await a.exec('ping', ['-c', '1', '-W', '2', '10.77.0.2']);
    assert.match(ping.stdout, /1 received/);

    // Only the on-link route of the lab subnet; nothing to the host or beyond.
    const routes = await a.routes();
    assert.deepEqual(routes.map((r) => ({ dst: r.dst, dev: r.dev, scope: r.scope, gateway: r.gateway })),
      [{ dst: '10.77.0.0/24', dev: 'eth0', scope: 'link', gateway: undefined }]);
    assert.deepEqual((await a.routes(6)).filter((r) => r.dst === 'default'), []);
    const out = await a.exec('ip', ['route', 'get', '192.0.2.1'], { check: false });
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, /unreachable/i);
    const noPing = await a.exec('ping', ['-c', '1', '-W', '1', '192.0.2.1'], { check: false });
    assert.notEqual(noPing.code, 0);
    await lab.assertIsolated();

    // The host namespace never saw a lab interface.
    assert.deepEqual(await hostLinks(), linksBefore);
    assert.deepEqual((await hostNamespaces()).filter((n) => n.startsWith(lab.id)).sort(), [`${lab.id}-a`, `${lab.id}-b`, `${lab.id}-switch`]);
  });
  assert.deepEqual(await hostLinks(), linksBefore);
});

test('direct links, bridges inside a namespace, and isolation violations are reported', async () => {
  await withLab(async (lab) => {
    const router = await lab.namespace('router');
    const host = await lab.namespace('host');
    const seg = await lab.bridge('seg', { in: router, address: '10.78.0.1/24' });
    const l = await lab.link(host, seg, { addressA: '10.78.0.10/24' });
    assert.equal(l.b.ns, router);
    const p2p = await lab.link(router, host, { addressA: '10.79.0.1/30', addressB: '10.79.0.2/30' });
    assert.deepEqual([p2p.a.iface, p2p.b.iface], ['eth0', 'eth1']);
    await host.exec('ping', ['-c', '1', '-W', '2', '10.78.0.1']);
    await host.exec('ping', ['-c', '1', '-W', '2', '10.79.0.1']);
    assert.deepEqual((await host.addresses()).map((x) => `${x.iface} ${x.cidr}`).sort(), ['eth0 10.78.0.10/24', 'eth1 10.79.0.2/30', 'lo 127.0.0.1/8']);
    await lab.assertIsolated();
    // A default route, even inside the lab, is flagged: tests must not rely on one.
    await host.ip('route', 'add', 'default', 'via', '10.78.0.1');
    await assert.rejects(lab.assertIsolated(), /IPv4 default route via 10\.78\.0\.1/);
  });
});

test('names are checked before anything is created', async () => {
  await withLab(async (lab) => {
    const a = await lab.namespace('a');
    await assert.rejects(lab.namespace('a'), /already has a namespace 'a'/);
    await assert.rejects(lab.namespace('Bad_Name'), /namespace label 'Bad_Name'/);
    await assert.rejects(lab.namespace('switch'), /reserved/);
    await assert.rejects(lab.bridge('a-very-long-bridge'), /'a-very-long-bridge' is not a valid interface name/);
    const b = await lab.namespace('b');
    await assert.rejects(lab.link(a, b, { addressA: '10.0.0.1' }), /not an IPv4 address with prefix length/);
    await lab.link(a, b);
    await assert.rejects(lab.link(a, b, { ifaceA: 'eth0' }), /already has an interface 'eth0'/);
    const br = await lab.bridge('br0');
    await assert.rejects(lab.link(a, br, { addressB: '10.0.0.2/24' }), /bridge port takes no address/);
    // Names that are also ip(8) keywords ('br' abbreviates 'broadcast') are passed as names.
    const br2 = await lab.bridge('br');
    const l = await lab.link(b, br2, { ifaceA: 'up' });
    assert.deepEqual([l.a.iface, l.b.iface], ['up', 'brp0']);
    assert.ok((await b.interfaces()).includes('up'));
  });
});

test('cleanup removes namespaces, links and processes even when the body throws, and is idempotent', async () => {
  const linksBefore = await hostLinks();
  let lab: Lab | undefined;
  let pids: number[] = [];
  await assert.rejects(withLab(async (l) => {
    lab = l;
    const a = await l.namespace('a');
    const b = await l.namespace('b');
    await l.link(a, b, { addressA: '10.80.0.1/24', addressB: '10.80.0.2/24' });
    const br = await l.bridge('br0');
    await l.link(a, br);
    const fg = a.spawn('sleep', ['300']);
    const pidFile = path.join(l.makeDir('daemon'), 'sleep.pid');
    const d = await b.daemon('/bin/sh', ['-c', `sleep 301 & echo $! > ${pidFile}`], { pidFile, match: 'sleep 301' });
    // A grandchild the lab never heard of: found through `ip netns pids`.
    await b.exec('/bin/sh', ['-c', 'sleep 302 >/dev/null 2>&1 &']);
    pids = [fg.pid, d.pid];
    assert.ok(pids.every(alive));
    assert.equal(netnsInodeOf(d.pid), b.netnsInode);
    throw new Error('boom');
  }), /boom/);
  assert.ok(lab);
  assert.deepEqual((await hostNamespaces()).filter((n) => n.startsWith(lab!.id)), []);
  assert.deepEqual(await hostLinks(), linksBefore);
  assert.ok(!pids.some(alive), 'lab processes are gone');
  assert.equal(fs.existsSync(lab.dir), lab.keepFiles);
  const again = await lab.cleanup();
  assert.deepEqual(again.errors, []);
  assert.equal(again.namespacesRemoved.length, 3);
  assert.ok(again.strays >= 1, 'the unknown grandchild was found and stopped');
  await assert.rejects(lab.namespace('c'), /cleaned up/);
});

test('only the process a pid file names is signalled, after its command line is checked', async () => {
  // A stale pid file pointing at an unrelated live process (here: this test process).
  assert.equal(isSameProcess(process.pid, { match: 'dnsmasq --keep-in-foreground' }), false);
  assert.equal(signalVerified(process.pid, 'SIGTERM', { match: 'dnsmasq --keep-in-foreground' }), false);
  assert.equal(isSameProcess(process.pid, { match: 'node' }), true);
  // Right command line, wrong namespace: refused too.
  assert.equal(isSameProcess(process.pid, { match: 'node', netnsInode: 1 }), false);
});

/** Start a child Node process holding a lab; returns its namespaces and the PID of a process in them. */
async function childWithLab(): Promise<{ child: ReturnType<typeof spawn>; names: string[]; dir: string; sleeper: number }> {
  const scriptDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-lab-child-'));
  const script = path.join(scriptDir, 'child.mjs');
  fs.writeFileSync(script, `
    import { Lab } from ${JSON.stringify(new URL('./lab.js', import.meta.url).href)};
    const lab = new Lab();
    const a = await lab.namespace('a');
    const b = await lab.namespace('b');
    await lab.link(a, b, { addressA: '10.81.0.1/24' });
    const s = a.spawn('sleep', ['300']);
    console.log(JSON.stringify({ names: lab.namespaces.map((n) => n.name), dir: lab.dir, sleeper: s.pid }));
    setInterval(() => {}, 1000);
  `);
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d) => { buf += d; if (buf.includes('\n')) resolve(buf.split('\n')[0]); });
    child.on('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    setTimeout(() => reject(new Error('child did not report its lab within 10 s')), 10_000).unref();
  });
  fs.rmSync(scriptDir, { recursive: true, force: true });
  return { child, ...JSON.parse(line) };
}

test('a test process stopped by SIGTERM removes its lab on the way out', async () => {
  const { child, names, dir, sleeper } = await childWithLab();
  assert.ok(names.every((n) => fs.existsSync(`/run/netns/${n}`)));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, s) => resolve(s)));
  child.kill('SIGTERM');
  assert.equal(await exited, 'SIGTERM', 'the child still dies of the signal');
  assert.deepEqual((await hostNamespaces()).filter((n) => names.includes(n)), []);
  assert.equal(fs.existsSync(dir), false);
  assert.equal(alive(sleeper), false);
});

test('leftovers of a SIGKILLed test process are swept', async () => {
  const { child, names, dir, sleeper } = await childWithLab();
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  assert.ok(names.every((n) => fs.existsSync(`/run/netns/${n}`)), 'SIGKILL leaves the namespaces behind');
  const removed = await sweepStaleLabs();
  for (const n of names) assert.ok(removed.includes(n), `${n} swept`);
  assert.ok(removed.includes(dir));
  assert.deepEqual((await hostNamespaces()).filter((n) => names.includes(n)), []);
  assert.equal(alive(sleeper), false);
});

// ---- DHCP clients against dnsmasq ------------------------------------------------------------------

interface HostFiles { [file: string]: string }

/** What a DHCP client could touch on the host: must be identical before and after. */
function hostFiles(): HostFiles {
  const snap: HostFiles = {};
  for (const f of ['/etc/resolv.conf', '/etc/hostname', '/etc/hosts', '/etc/dhcpcd.conf', '/etc/dhcp/dhclient.conf']) {
    try {
      const st = fs.statSync(f);
      snap[f] = `${st.mtimeMs} ${fs.readFileSync(f, 'utf8')}`;
    } catch {
      snap[f] = 'absent';
    }
  }
  for (const d of ['/var/lib/dhcp', '/var/lib/dhcpcd', '/run/dhcpcd', '/var/run', '/run/udhcpc']) {
    try {
      snap[d] = fs.readdirSync(d).filter((n) => /dhc|udhcp|lease/.test(n) || d.includes('dhcp')).sort().join(',');
    } catch {
      snap[d] = 'absent';
    }
  }
  return snap;
}

async function dhcpSegment(lab: Lab, clients: string[]): Promise<{ server: Namespace; clients: Namespace[] }> {
  const server = await lab.namespace('server');
  const seg = await lab.bridge('seg');
  await lab.link(server, seg, { addressA: '10.90.0.1/24' });
  const out: Namespace[] = [];
  for (const [i, label] of clients.entries()) {
    const ns = await lab.namespace(label);
    await lab.link(ns, seg, { macA: `52:54:00:90:00:${(i + 1).toString(16).padStart(2, '0')}` });
    out.push(ns);
  }
  return { server, clients: out };
}

type Start = (ns: Namespace, iface: string, opts: DhcpcdOptions) => Promise<DhcpClientSession>;
const CLIENTS: Array<[string, Start]> = [['dhclient', dhclient], ['udhcpc', udhcpc], ['dhcpcd', dhcpcd]];

for (const [kind, start] of CLIENTS) {
  test(`${kind} obtains and releases a lease from dnsmasq without touching host files`, async () => {
    const before = hostFiles();
    await withLab(async (lab) => {
      const { server, clients: [c] } = await dhcpSegment(lab, ['client']);
      const srv = await dnsmasq(server, {
        iface: 'eth0', range: '10.90.0.100,10.90.0.150,255.255.255.0,1h',
        extraArgs: ['--dhcp-boot=undionly.kpxe,boot,10.90.0.1', '--dhcp-option=option:dns-server,10.90.0.53'],
      });
      const hookOut = path.join(lab.makeDir('hook'), 'events');
      const hook = path.join(path.dirname(hookOut), 'hook.sh');
      fs.writeFileSync(hook, `#!/bin/sh\necho "\${1:-$reason}" >> ${hookOut}\n`, { mode: 0o755 });
      const session = await start(c, 'eth0', {
        hostname: `node-${kind}`, clientId: '01:52:54:00:90:00:01', vendorClass: 'PXEClient:Arch:00000:UNDI:002001', hook, timeoutMs: 15_000,
      });
      const lease = session.lease;
      assert.match(lease.address, /^10\.90\.0\.(1[0-4]\d|150)$/);
      assert.equal(lease.prefixLength, 24);
      assert.equal(lease.serverId, '10.90.0.1');
      assert.equal(lease.leaseSeconds, 3600);
      assert.deepEqual(lease.dns, ['10.90.0.53']);
      assert.equal(lease.bootFile, 'undionly.kpxe');
      assert.equal(lease.nextServer, '10.90.0.1');
      assert.ok(session.elapsedMs < 15_000);
      assert.deepEqual((await c.addresses('eth0')).map((a) => a.cidr), [lease.cidr]);
      // Address only: no default route although dnsmasq offered router 10.90.0.1.
      assert.deepEqual((await c.routes()).filter((r) => r.dst === 'default'), []);
      const leases = await srv.waitForLeases((l) => l.length === 1);
      assert.deepEqual({ mac: leases[0].mac, address: leases[0].address, hostname: leases[0].hostname, clientId: leases[0].clientId },
        { mac: '52:54:00:90:00:01', address: lease.address, hostname: `node-${kind}`, clientId: '01:52:54:00:90:00:01' });
      assert.match(srv.process.output(), /vendor class: PXEClient:Arch:00000:UNDI:002001/);
      assert.match(fs.readFileSync(hookOut, 'utf8'), /^(BOUND|bound)$/m, 'the hook ran after the lab script');
      // Reachable over the leased address.
      await server.exec('ping', ['-c', '1', '-W', '2', lease.address]);

      const rel = await session.release();
      assert.equal(rel.released, true, `${kind} sent DHCPRELEASE`);
      assert.equal(rel.addressRemoved, true);
      assert.equal(session.running, false);
      await srv.waitForLeases((l) => l.length === 0);
      await lab.assertIsolated();
    });
    assert.deepEqual(hostFiles(), before);
  });
}

test('without a server every client gives up within its bound with DhcpNoLeaseError', async () => {
  await withLab(async (lab) => {
    const { clients } = await dhcpSegment(lab, ['c1', 'c2', 'c3']);
    const started = Date.now();
    const results = await Promise.allSettled(CLIENTS.map(([, start], i) => start(clients[i], 'eth0', { timeoutMs: 3000 })));
    const elapsed = Date.now() - started;
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 'rejected', CLIENTS[i][0]);
      const err = (r as PromiseRejectedResult).reason;
      assert.ok(err instanceof DhcpNoLeaseError, `${CLIENTS[i][0]}: ${err}`);
      assert.equal(err.kind, CLIENTS[i][0]);
      assert.ok(err instanceof LabError);
    }
    assert.ok(elapsed < 8000, `gave up after ${elapsed} ms`);
    for (const c of clients) assert.deepEqual(await c.pids(), [], `no client left running in ${c.name}`);
  });
});

test('three different clients share one segment and get distinct addresses', async () => {
  await withLab(async (lab) => {
    const { server, clients } = await dhcpSegment(lab, ['c1', 'c2', 'c3']);
    const srv = await dnsmasq(server, { iface: 'eth0', range: '10.90.0.100,10.90.0.150,255.255.255.0,10m' });
    const sessions = await Promise.all(CLIENTS.map(([, start], i) => start(clients[i], 'eth0', { timeoutMs: 15_000 })));
    const addrs = sessions.map((s) => s.lease.address);
    assert.equal(new Set(addrs).size, 3);
    assert.deepEqual(srv.leases().map((l) => l.address).sort(), [...addrs].sort());
    // The clients see each other through the switch.
    await clients[0].exec('ping', ['-c', '1', '-W', '2', addrs[2]]);
    // Stopped, not released: dnsmasq keeps the leases.
    for (const s of sessions) await s.stop();
    assert.equal(srv.leases().length, 3);
  });
});
