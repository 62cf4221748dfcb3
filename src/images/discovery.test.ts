// The discovery image: built from Debian packages, reproducible, cached, and booted for real in
// QEMU (TCG): DHCP through QEMU's user-mode network, a virtio NIC and disk seen, the agent started
// against fulcrum.api, the debug shell. Needs root-installed qemu-system-x86 and busybox-static
// (installed here with scripts/install-system-packages.sh vm when missing) and apt access.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import zlib from 'node:zlib';
import { projectRoot } from '../paths.js';
import { readCpio, writeCpio } from './cpio.js';
import { AGENT_SCRIPT, buildDiscoveryImage, renderInit, runImageBuild, type BuildResult } from './discovery.js';
import { modulesDep, parseModinfo, resolveClosure } from './modinfo.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-image-test-'));
// FULCRUM_IMAGE_TEST_CACHE keeps downloaded packages between runs (built images are keyed anyway).
const cacheDir = process.env.FULCRUM_IMAGE_TEST_CACHE || path.join(root, 'cache');
const log = (m: string) => console.log(`  [image] ${m}`);
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

before(() => {
  if (!have('qemu-system-x86_64') || !fs.existsSync('/bin/busybox')) {
    const r = spawnSync('sh', [path.join(projectRoot, 'scripts', 'install-system-packages.sh'), 'vm'], { encoding: 'utf8' });
    if (r.status !== 0 || !have('qemu-system-x86_64')) {
      throw new Error(`the discovery image tests need qemu-system-x86 and busybox-static; installing them failed (exit ${r.status}): ` +
        `${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' / ')} — run as root: sh scripts/install-system-packages.sh vm`);
    }
  }
  for (const t of ['apt-get', 'apt-cache', 'dpkg-deb']) if (!have(t)) throw new Error(`${t} not found: the discovery image is built from Debian packages`);
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

interface Boot { code: number | null; signal: NodeJS.Signals | null; serial: string; ms: number; timedOut: boolean; stopped: boolean }
interface Console { write(s: string): void; stop(): void }

/**
 * Boot kernel+initrd in QEMU (TCG: KVM is unusable here, LAB-NOTES) with a virtio NIC on QEMU's
 * user-mode network and a 64 MB raw virtio disk; the serial console on stdout. `onSerial` sees the
 * console as it grows, and may type on it or stop the VM (SIGKILL of the QEMU started here).
 */
function boot(img: { kernel: string; initrd: string }, append: string, opts: { timeoutMs?: number; nic?: boolean; onSerial?: (all: string, con: Console) => void } = {}): Promise<Boot> {
  const disk = path.join(root, `disk-${crypto.randomBytes(4).toString('hex')}.raw`);
  fs.writeFileSync(disk, '');
  fs.truncateSync(disk, 64 << 20); // a raw image is the bytes of the disk: what `qemu-img create -f raw` makes
  const args = [
    '-accel', 'tcg', '-m', '512', '-smp', '1', '-kernel', img.kernel, '-initrd', img.initrd, '-append', append,
    '-nographic', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
    ...(opts.nic === false ? ['-nic', 'none'] : ['-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56']),
    '-drive', `file=${disk},format=raw,if=virtio`,
  ];
  const t0 = Date.now();
  const q = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let serial = '', timedOut = false, stopped = false;
  const con: Console = { write: (s) => { q.stdin.write(s); }, stop: () => { stopped = true; q.kill('SIGKILL'); } };
  q.stdout.on('data', (d: Buffer) => { serial += d.toString('latin1'); if (!stopped) opts.onSerial?.(serial, con); });
  q.stderr.on('data', (d: Buffer) => { serial += d.toString('latin1'); });
  q.stdin.on('error', () => {});
  const timer = setTimeout(() => { timedOut = true; q.kill('SIGKILL'); }, opts.timeoutMs ?? 90_000);
  return new Promise((resolve, reject) => {
    q.on('error', reject);
    q.on('close', (code, signal) => {
      clearTimeout(timer);
      fs.rmSync(disk, { force: true });
      resolve({ code, signal, serial: serial.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, ''), ms: Date.now() - t0, timedOut, stopped });
    });
  });
}

const markers = (serial: string) => serial.split(/\r?\n/).filter((l) => l.startsWith('FULCRUM-TEST '));

let first: BuildResult;
const out1 = path.join(root, 'out1'), out2 = path.join(root, 'out2'), out3 = path.join(root, 'out3');

test('cpio newc: sorted, fixed fields, readable by busybox cpio', () => {
  const entries = [
    { path: 'bin', type: 'dir' as const },
    { path: 'bin/sh', type: 'symlink' as const, target: '/bin/busybox' },
    { path: 'bin/busybox', type: 'file' as const, data: Buffer.from('#!x\n'), mode: 0o755 },
    { path: 'dev', type: 'dir' as const },
    { path: 'dev/console', type: 'char' as const, major: 5, minor: 1 },
    { path: 'init', type: 'file' as const, data: Buffer.from('hello, world\n'), mode: 0o755 },
  ];
  const a = writeCpio(entries, 1234), b = writeCpio([...entries].reverse(), 1234);
  assert.deepEqual(a, b, 'order of the input does not matter');
  const back = readCpio(a);
  assert.deepEqual(back.map((e) => e.path), ['bin', 'bin/busybox', 'bin/sh', 'dev', 'dev/console', 'init']);
  assert.ok(back.every((e) => e.mtime === 1234));
  assert.equal(back.find((e) => e.path === 'init')!.data.toString(), 'hello, world\n');
  assert.equal(back.find((e) => e.path === 'init')!.mode, 0o100755);
  const con = back.find((e) => e.path === 'dev/console')!;
  assert.deepEqual([con.mode, con.rdevMajor, con.rdevMinor], [0o020600, 5, 1]);
  assert.throws(() => writeCpio([{ path: 'a/b', type: 'dir' }], 0), /without its directory/);
  assert.throws(() => writeCpio([{ path: '../x', type: 'dir' }], 0), /bad path/);
  const listed = spawnSync('busybox', ['cpio', '-t'], { input: a, encoding: 'utf8' });
  assert.equal(listed.status, 0, listed.stderr);
  assert.deepEqual(listed.stdout.trim().split('\n'), ['bin', 'bin/busybox', 'bin/sh', 'dev', 'dev/console', 'init']);
});

test('init template placeholders: all known, none left', () => {
  const tpl = fs.readFileSync(path.join(projectRoot, 'src', 'images', 'discovery-init.sh'), 'utf8');
  const init = renderInit(tpl, { IMAGE_ID: 'abc', KERNEL_RELEASE: '6.1.0-1-amd64', AGENT: 'no' });
  assert.doesNotMatch(init, /@@/);
  assert.match(init, /IMAGE_ID='abc'/);
  assert.throws(() => renderInit('@@NOPE@@', {}), /unknown placeholder/);
  for (const f of ['discovery-init.sh', 'udhcpc.script']) {
    const r = spawnSync('busybox', ['sh', '-n', path.join(projectRoot, 'src', 'images', f)], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
  }
});

test('first build: kernel, initrd, modules and their dependencies from Debian packages', { timeout: 600_000 }, async () => {
  const t0 = Date.now();
  first = await buildDiscoveryImage({ outDir: out1, cacheDir, log });
  log(`first build ${Date.now() - t0} ms; initrd ${first.sizeBytes.initrd} bytes (${first.cpioBytes} uncompressed), kernel ${first.sizeBytes.kernel}`);
  assert.equal(first.cached, false);
  assert.match(first.kernelRelease, /^\d+\.\d+\.\d+-\d+-amd64$/);
  assert.ok(first.sizeBytes.kernel > 4e6 && first.sizeBytes.initrd > 1e6, JSON.stringify(first.sizeBytes));
  assert.equal(fs.statSync(first.initrd).size, first.sizeBytes.initrd);
  for (const m of ['virtio_net', 'virtio_pci', 'virtio_blk', 'e1000', 'ahci', 'nvme', 'sd_mod', 'virtio_ring', 'failover', 'net_failover']) {
    assert.ok(first.modules.includes(m), `${m} in ${first.modules.join(' ')}`);
  }
  // The gzip header is fixed: no name, no time.
  const gz = fs.readFileSync(first.initrd);
  assert.deepEqual([...gz.subarray(0, 8)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
  const files = readCpio(zlib.gunzipSync(gz));
  const byPath = new Map(files.map((f) => [f.path, f]));
  for (const p of ['init', 'bin/busybox', 'bin/sh', 'sbin/modprobe', 'usr/bin/wget', 'usr/bin/timeout', 'usr/share/udhcpc/default.script', 'dev/console',
    `lib/modules/${first.kernelRelease}/modules.dep`, `lib/modules/${first.kernelRelease}/modules.alias`]) {
    assert.ok(byPath.has(p), `${p} in the initramfs`);
  }
  assert.equal(byPath.get('bin/busybox')!.mode & 0o170000, 0o100000, 'busybox is the binary, not a link to itself');
  assert.ok(files.every((f) => f.mtime === 0), 'one fixed mtime');
  assert.equal(first.agent, fs.existsSync(AGENT_SCRIPT));
  if (first.agent) assert.deepEqual(byPath.get('usr/bin/fulcrum-agent')!.data, fs.readFileSync(AGENT_SCRIPT));
  const dep = byPath.get(`lib/modules/${first.kernelRelease}/modules.dep`)!.data.toString();
  const line = dep.split('\n').find((l) => l.includes('/virtio_net.ko:'))!;
  const deps = line.split(': ')[1].split(' ').map((p) => path.basename(p, '.ko'));
  assert.deepEqual([...deps].sort(), ['failover', 'net_failover', 'virtio', 'virtio_ring']);
  // kmod's order: the last one listed loads first, so a module is listed before its dependencies.
  assert.ok(deps.indexOf('net_failover') < deps.indexOf('failover') && deps.indexOf('virtio') < deps.indexOf('virtio_ring'), line);
});

test('reproducible: a second build from scratch gives the same bytes', { timeout: 600_000 }, async () => {
  const r = await buildDiscoveryImage({ outDir: out2, cacheDir, log, force: true });
  assert.equal(r.cached, false);
  assert.equal(sha(r.initrd), sha(first.initrd));
  assert.equal(sha(r.kernel), sha(first.kernel));
  assert.equal(r.sha256.initrd, first.sha256.initrd);
});

test('cache: the same inputs again are a hit, well under a second', async () => {
  const t0 = Date.now();
  const r = await buildDiscoveryImage({ outDir: out3, cacheDir, log });
  const ms = Date.now() - t0;
  log(`cache hit in ${ms} ms`);
  assert.equal(r.cached, true);
  assert.ok(ms < 1000, `${ms} ms`);
  assert.equal(sha(r.initrd), first.sha256.initrd);
  assert.equal(r.key, first.key);
});

test('QEMU boot: modules, DHCP on the virtio NIC, the virtio disk seen, fulcrum.test=poweroff ends the VM', { timeout: 150_000 }, async () => {
  const b = await boot(first, 'console=ttyS0 fulcrum.api=http://10.0.2.2:1/ fulcrum.test=poweroff');
  const lines = markers(b.serial);
  log(`boot to poweroff: ${b.ms} ms; ${lines.find((l) => l.includes(' ready '))}`);
  assert.equal(b.timedOut, false, `QEMU did not exit in time:\n${b.serial.slice(-3000)}`);
  assert.equal(b.code, 0, b.serial.slice(-3000));
  const ready = lines.find((l) => l.startsWith('FULCRUM-TEST ready '));
  assert.ok(ready, `no ready marker:\n${b.serial.slice(-3000)}`);
  assert.match(ready, / ip=10\.0\.2\.15 /);
  assert.match(ready, / nics=eth0 /);
  assert.match(ready, / disks=vda /);
  assert.match(ready, / api=unreachable /, 'wget (bounded by timeout) to port 1 fails fast');
  assert.match(ready, /modules=\S*virtio_net/);
  assert.ok(lines.includes('FULCRUM-TEST nic eth0 mac=52:54:00:12:34:56 driver=virtio_net carrier=1 ip=10.0.2.15/24'), lines.join('\n'));
  const disk = lines.find((l) => l.startsWith('FULCRUM-TEST disk vda '));
  assert.match(disk ?? '', /size_bytes=67108864 rotational=[01] removable=0 driver=virtio_blk/);
});

/** A stand-in for the agent API: register, whoami, inventory, one job (confirmed, logged, completed) that powers the node off. */
function fakeFulcrum() {
  const seen: Array<{ method: string; url: string; auth?: string; body: string }> = [];
  let jobsServed = 0;
  const bundle = [
    '# fulcrum job bundle', 'set -e', 'mkdir -p scripts attribs',
    "cat > env <<'EOF'", 'FULCRUM_JOB=7', "FULCRUM_ROLE='test-discovery'", "FULCRUM_NODE='d52-54-00-12-34-56'", 'FULCRUM_NODE_ID=1',
    "FULCRUM_DEPLOYMENT='system'", 'FULCRUM_NODEROLE=1', 'export FULCRUM_JOB FULCRUM_ROLE FULCRUM_NODE FULCRUM_NODE_ID FULCRUM_DEPLOYMENT FULCRUM_NODEROLE', 'EOF',
    "cat > scripts/10-hello <<'EOF'", 'echo "hello from the discovery ramdisk on $(uname -r)"', 'exit 32', 'EOF', '',
  ].join('\n');
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
      const url = req.url!;
      const send = (code: number, text = '') => { res.writeHead(code, { 'content-type': 'text/plain' }); res.end(text); };
      if (url === '/api/v1/agent/fulcrum-agent.sh') return send(200, fs.readFileSync(AGENT_SCRIPT, 'utf8'));
      if (url === '/api/v1/agent/register') return send(201, 'node=1\nname=d52-54-00-12-34-56\ntoken=tok-123\n');
      if (req.headers.authorization !== 'Bearer tok-123') return send(401, 'error=unauthorized\n');
      if (url === '/api/v1/agent/whoami') return send(200, 'node=1\nname=d52-54-00-12-34-56\n');
      if (url === '/api/v1/agent/inventory') return send(200, 'ok=1\n');
      if (url.startsWith('/api/v1/agent/jobs/next')) return jobsServed++ === 0 ? send(200, bundle) : setTimeout(() => send(204), 1000);
      if (/^\/api\/v1\/agent\/jobs\/7\/(ack|log|complete)$/.test(url)) return send(200, 'ok=1\n');
      send(404);
    });
  });
  return { server, seen, listen: () => new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port))) };
}

async function agentBoot(img: { kernel: string; initrd: string }) {
  const api = fakeFulcrum();
  const port = await api.listen();
  try {
    // QEMU's user-mode network: the guest reaches the host's 127.0.0.1 as 10.0.2.2.
    const b = await boot(img, `console=ttyS0 fulcrum.api=http://10.0.2.2:${port} fulcrum.mac=52-54-00-12-34-56 quiet`);
    return { b, seen: api.seen };
  } finally {
    api.server.close();
  }
}

function assertAgentRan(b: Boot, seen: Array<{ method: string; url: string; auth?: string; body: string }>) {
  assert.equal(b.timedOut, false, `QEMU did not exit in time:\n${b.serial.slice(-3000)}`);
  const reg = seen.find((s) => s.url === '/api/v1/agent/register');
  assert.ok(reg, `the agent registered:\n${b.serial.slice(-3000)}`);
  assert.match(reg.body, /^macs=52:54:00:12:34:56$/m);
  assert.match(reg.body, /"name":"vda"/, 'inventory has the virtio disk');
  assert.match(reg.body, /"driver":"virtio_net"/, 'inventory has the virtio NIC');
  const logLine = seen.find((s) => s.url === '/api/v1/agent/jobs/7/log' && s.body.includes('hello from the discovery ramdisk'));
  assert.ok(logLine, seen.map((s) => `${s.method} ${s.url}`).join('\n'));
  assert.equal(logLine.auth, 'Bearer tok-123');
  const done = seen.find((s) => s.url === '/api/v1/agent/jobs/7/complete');
  assert.match(done?.body ?? '', /^exit_code=32$/m);
  assert.equal(b.code, 0, 'exit bit 32: the agent powered the VM off');
  assert.match(b.serial, /fulcrum-init\[[\d.]+\]: starting fulcrum-agent --api http:\/\/10\.0\.2\.2:\d+ \(eth0=10\.0\.2\.15\/24 \)/);
}

test('QEMU boot against a stand-in agent API (user-mode networking reaches no lab server; the real path is test/discovery-vm.test.ts): /init starts the agent with --api; a job powers it off', { timeout: 150_000 }, async (t) => {
  if (!first.agent) return t.skip(`no agent at ${AGENT_SCRIPT}`);
  const { b, seen } = await agentBoot(first);
  log(`agent boot: ${b.ms} ms to the job's poweroff`);
  assertAgentRan(b, seen);
  assert.ok(!seen.some((s) => s.url === '/api/v1/agent/fulcrum-agent.sh'), 'the agent in the image is used');
});

test('an image without the agent says so, and fetches it from the (stand-in) server', { timeout: 600_000 }, async (t) => {
  if (!fs.existsSync(AGENT_SCRIPT)) return t.skip(`no agent at ${AGENT_SCRIPT} to serve`);
  const r = await buildDiscoveryImage({ outDir: path.join(root, 'out-noagent'), cacheDir, log, agentScript: null });
  assert.equal(r.agent, false);
  assert.notEqual(r.key, first.key);
  const files = readCpio(zlib.gunzipSync(fs.readFileSync(r.initrd)));
  assert.ok(!files.some((f) => f.path === 'usr/bin/fulcrum-agent'));
  const { b, seen } = await agentBoot(r);
  assert.match(b.serial, /fulcrum-init\[[\d.]+\]: no agent in this image/);
  assert.ok(seen.some((s) => s.url === '/api/v1/agent/fulcrum-agent.sh'));
  assertAgentRan(b, seen);
});

test('fulcrum.debug: no NIC → a shell on the console; without it → retries', { timeout: 150_000 }, async () => {
  let sent = false;
  const b = await boot(first, 'console=ttyS0 fulcrum.debug quiet', {
    nic: false,
    onSerial: (all, con) => {
      if (!sent && /fulcrum-discovery:\/# /.test(all)) { sent = true; con.write('echo SHELL-OK-$((6*7)); poweroff -f\n'); }
    },
  });
  assert.equal(b.timedOut, false, b.serial.slice(-3000));
  assert.match(b.serial, /fulcrum-init\[[\d.]+\]: no network interface found/);
  assert.match(b.serial, /SHELL-OK-42/);

  const quiet = await boot(first, 'console=ttyS0 quiet', {
    nic: false, timeoutMs: 60_000,
    onSerial: (all, con) => { if (/retrying in 10s/.test(all)) con.stop(); },
  });
  assert.ok(quiet.stopped && !quiet.timedOut, `without fulcrum.debug the ramdisk keeps retrying (stopped by the test):\n${quiet.serial.slice(-2000)}`);
  assert.match(quiet.serial, /no network interface found[\s\S]*retrying in 5s[\s\S]*retrying in 10s/);
  assert.doesNotMatch(quiet.serial, /built-in shell/);
});

test('CLI hook: fulcrum image build discovery', { timeout: 120_000 }, async () => {
  let out = '', err = '';
  const io = { out: (s: string) => { out += s; }, err: (s: string) => { err += s; } };
  assert.equal(await runImageBuild(['nope'], io), 2);
  assert.match(err, /unknown image "nope"/);
  assert.equal(await runImageBuild(['discovery', '--bogus'], io), 2);
  const dataDir = path.join(root, 'data');
  out = ''; err = '';
  assert.equal(await runImageBuild(['discovery', '--data-dir', dataDir, '--cache', cacheDir], io), 0, err);
  assert.match(out, /discovery image [0-9a-f]{16} \(cached\)/);
  assert.equal(sha(path.join(dataDir, 'boot', 'discovery', 'initrd.img')), first.sha256.initrd);
  assert.ok(fs.existsSync(path.join(dataDir, 'boot', 'discovery', 'vmlinuz')));
});

test('modinfo: dependencies in load order, kmod-style modules.dep', () => {
  // Synthetic modules: ELF64 with a .modinfo section, as the kernel build writes them.
  const elf = (fields: string[]) => {
    const modinfo = Buffer.from(fields.map((f) => f + '\0').join(''));
    const shstr = Buffer.from('\0.modinfo\0.shstrtab\0');
    const shoff = 64 + modinfo.length + shstr.length;
    const b = Buffer.alloc(shoff + 3 * 64);
    b.writeUInt32BE(0x7f454c46, 0); b[4] = 2; b[5] = 1;
    b.writeBigUInt64LE(BigInt(shoff), 0x28); b.writeUInt16LE(64, 0x3a); b.writeUInt16LE(3, 0x3c); b.writeUInt16LE(2, 0x3e);
    modinfo.copy(b, 64); shstr.copy(b, 64 + modinfo.length);
    const sh = (i: number, name: number, off: number, size: number) => {
      b.writeUInt32LE(name, shoff + i * 64); b.writeBigUInt64LE(BigInt(off), shoff + i * 64 + 0x18); b.writeBigUInt64LE(BigInt(size), shoff + i * 64 + 0x20);
    };
    sh(1, 1, 64, modinfo.length); sh(2, 10, 64 + modinfo.length, shstr.length);
    return b;
  };
  const mods: Record<string, Buffer> = {
    'kernel/a.ko': elf(['name=a', 'depends=b,c', 'alias=pci:v0001d*']),
    'kernel/b.ko': elf(['name=b', 'depends=c', 'softdep=pre: d']),
    'kernel/c.ko': elf(['name=c', 'depends=']),
    'kernel/d.ko': elf(['name=d', 'firmware=x/y.bin']),
  };
  assert.deepEqual(parseModinfo('kernel/a.ko', mods['kernel/a.ko']).aliases, ['pci:v0001d*']);
  const index = new Map(Object.keys(mods).map((k) => [path.basename(k, '.ko'), k]));
  const c = resolveClosure(['a', 'zz', 'bi'], index, new Set(['bi']), (rel) => mods[rel]);
  assert.deepEqual(c.order.map((m) => m.name), ['c', 'd', 'b', 'a']);
  assert.deepEqual(c.missing, ['zz']);
  assert.deepEqual(c.builtin, ['bi']);
  assert.equal(modulesDep(c.order), 'kernel/c.ko:\nkernel/d.ko:\nkernel/b.ko: kernel/c.ko\nkernel/a.ko: kernel/b.ko kernel/c.ko\n');
});
