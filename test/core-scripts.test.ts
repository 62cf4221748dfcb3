// The core pack's scripts on their own, under dash and busybox ash (the discovery image's shell),
// with the helpers every job bundle brings (fulcrum-attr / fulcrum-wall / fulcrum-put) over a job directory: they write only
// under core-root, a second run changes nothing, and bad input fails with a message that says
// what to do. (On namespace nodes through the agent: test/etcd-cluster.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { readPack } from '../src/content/pack.js';
import { projectRoot } from '../src/paths.js';
import { HELPERS } from '../src/agent/bundle.js';

const SHELLS = [['dash'], ['busybox', 'sh']].filter(([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0);

interface Job { dir: string; root: string; run(script: string, attribs: Record<string, unknown>): { code: number | null; out: string; wall: Record<string, string> } }

function job(shell: string[]): Job {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-core-scripts-'));
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  // The helpers a job bundle writes (src/agent/bundle.ts).
  for (const [name, text] of Object.entries(HELPERS)) fs.writeFileSync(path.join(bin, name), text, { mode: 0o755 });
  return {
    dir, root,
    run(script, attribs) {
      for (const d of ['attribs', 'wall']) { fs.rmSync(path.join(dir, d), { recursive: true, force: true }); fs.mkdirSync(path.join(dir, d)); }
      for (const [k, v] of Object.entries({ 'core-root': root, ...attribs })) if (v !== undefined) fs.writeFileSync(path.join(dir, 'attribs', k), typeof v === 'string' ? v : JSON.stringify(v));
      const r = spawnSync(shell[0], [...shell.slice(1), '-e', script], {
        env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, FULCRUM_DIR: dir, FULCRUM_NODE: 'n1.site.example', FULCRUM_DEPLOYMENT: 'prod' }, encoding: 'utf8', timeout: 20000,
      });
      const wall = Object.fromEntries(fs.readdirSync(path.join(dir, 'wall')).map((f) => [f, fs.readFileSync(path.join(dir, 'wall', f), 'utf8')]));
      return { code: r.status, out: (r.stdout ?? '') + (r.stderr ?? ''), wall };
    },
  };
}

/** Every file under `root`, relative. */
const files = (root: string): string[] => fs.readdirSync(root, { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile()).map((e) => path.relative(root, path.join(e.parentPath, e.name))).sort();

for (const shell of SHELLS) {
  test(`core scripts under ${shell.join(' ')}: only under core-root, idempotent, clear errors`, async () => {
    const pack = await readPack(path.join(projectRoot, 'content', 'core'));
    const scripts = Object.fromEntries(pack.roles.filter((r) => r.jig === 'script').map((r) => [r.name, Object.values((r.jig_config as any).scripts)[0] as string]));
    const j = job(shell);
    try {
      const write = (name: string) => { const f = path.join(j.dir, `${name}.sh`); fs.writeFileSync(f, scripts[name]); return f; };
      const attribs = {
        'service-ntp': ['10.0.0.5', '10.0.0.6'], 'service-dns': ['10.0.0.53'], 'core-dns-search': ['site.example'],
        'core-ssh-authorized-keys': ['ssh-ed25519 AAAAkey1 one@site', 'ssh-rsa AAAAkey2 two@site'],
        'service-logging': ['10.0.0.9'], 'service-logging-port': 6514, 'service-packages': 'http://mirror.site/debian',
      };
      const roles = ['core-hostname', 'core-ntp', 'core-dns-client', 'core-ssh-keys', 'core-package-sources', 'core-logging'];
      // A hand-placed key outside Fulcrum's block survives.
      fs.mkdirSync(path.join(j.root, 'root/.ssh'), { recursive: true });
      fs.writeFileSync(path.join(j.root, 'root/.ssh/authorized_keys'), 'ssh-rsa AAAAhand hand@placed\n');
      for (const r of roles) {
        const res = j.run(write(r), attribs);
        assert.equal(res.code, 0, `${r}: ${res.out}`);
        assert.match(res.out, /wrote: /, `${r} wrote its file`);
      }
      assert.deepEqual(files(j.root), [
        'etc/apt/sources.list.d/fulcrum.list', 'etc/chrony/sources.d/fulcrum.sources', 'etc/hostname', 'etc/hosts',
        'etc/resolv.conf', 'etc/rsyslog.d/60-fulcrum.conf', 'etc/systemd/timesyncd.conf.d/fulcrum.conf', 'root/.ssh/authorized_keys',
      ], 'every file is under core-root');
      const read = (f: string) => fs.readFileSync(path.join(j.root, f), 'utf8');
      assert.equal(read('etc/hostname'), 'n1\n');
      assert.match(read('etc/hosts'), /^127\.0\.1\.1\tn1\.site\.example n1 # fulcrum-hostname$/m);
      assert.match(read('etc/chrony/sources.d/fulcrum.sources'), /^server 10\.0\.0\.5 iburst\nserver 10\.0\.0\.6 iburst\n$/m);
      assert.match(read('etc/systemd/timesyncd.conf.d/fulcrum.conf'), /^NTP=10\.0\.0\.5 10\.0\.0\.6$/m);
      assert.match(read('etc/resolv.conf'), /^search site\.example\nnameserver 10\.0\.0\.53\n$/m);
      assert.equal(read('root/.ssh/authorized_keys'), 'ssh-rsa AAAAhand hand@placed\n# BEGIN fulcrum core-ssh-keys\nssh-ed25519 AAAAkey1 one@site\nssh-rsa AAAAkey2 two@site\n# END fulcrum core-ssh-keys\n');
      assert.match(read('etc/apt/sources.list.d/fulcrum.list'), /^deb http:\/\/mirror\.site\/debian bookworm main$/m, 'the registry\'s packages service wins');
      assert.match(read('etc/rsyslog.d/60-fulcrum.conf'), /^\*\.\* @@10\.0\.0\.9:6514$/m);

      // Run again: nothing changes, and each says so.
      const before = files(j.root).map((f) => [f, fs.statSync(path.join(j.root, f)).mtimeMs, read(f)]);
      for (const r of roles) {
        const res = j.run(write(r), attribs);
        assert.equal(res.code, 0, `${r} again: ${res.out}`);
        assert.doesNotMatch(res.out, /wrote: /, `${r} again wrote nothing: ${res.out}`);
      }
      assert.deepEqual(files(j.root).map((f) => [f, fs.statSync(path.join(j.root, f)).mtimeMs, read(f)]), before);
      const keys = j.run(write('core-ssh-keys'), attribs);
      assert.equal(keys.wall['core-ssh-key-count'], '2');
      assert.equal(j.run(write('core-ntp'), attribs).wall['core-ntp-servers'], '["10.0.0.5","10.0.0.6"]');

      // The registry loses its logging service: forwarding off, the file removed.
      const off = j.run(write('core-logging'), { ...attribs, 'service-logging': null });
      assert.equal(off.code, 0, off.out);
      assert.match(off.out, /log forwarding is off/);
      assert.ok(!fs.existsSync(path.join(j.root, 'etc/rsyslog.d/60-fulcrum.conf')));

      // Errors say what is wrong and what to do; nothing is written.
      const noNtp = j.run(write('core-ntp'), { ...attribs, 'service-ntp': undefined });
      assert.notEqual(noNtp.code, 0);
      assert.match(noNtp.out, /no NTP service; register one: fulcrum services create --set name=ntp/);
      const badKey = j.run(write('core-ssh-keys'), { ...attribs, 'core-ssh-authorized-keys': ['ssh-ed25519 AAAAkey1 one@site', 'not a key'] });
      assert.notEqual(badKey.code, 0);
      assert.match(badKey.out, /entry 2 of core-ssh-authorized-keys is not an OpenSSH public key: 'not a key'/);
      assert.match(read('root/.ssh/authorized_keys'), /AAAAkey2/, 'the refused run left the keys as they were');
      const badName = j.run(write('core-hostname'), { ...attribs, 'core-hostname': 'bad name!' });
      assert.notEqual(badName.code, 0);
      assert.match(badName.out, /invalid host name 'bad name!'/);
    } finally {
      fs.rmSync(j.dir, { recursive: true, force: true });
    }
  });
}
