#!/usr/bin/env node
// `npm test`: every suite, against real PostgreSQL. One cluster is started here from the
// npm-packaged binaries, outside the code under test — the "external" store (DATABASE_URL). The
// engine suites then run a second time with each server starting its own embedded PostgreSQL.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { startEmbeddedPostgres } = await import(path.join(root, 'dist/src/store/embedded.js'));

function testFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const all = [...testFiles(path.join(root, 'dist/src')), ...testFiles(path.join(root, 'dist/test'))];
const engine = all.filter((f) => /dist\/test\/engine[^/]*\.test\.js$/.test(f));
const only = process.argv.slice(2);
const selected = only.length ? all.filter((f) => only.some((o) => f.includes(o))) : all;

// System packages the network suites need, installed once before suites run in parallel (as root;
// otherwise the suites that need them fail and say what is missing).
if (process.getuid?.() === 0) {
  const groups = (process.env.FULCRUM_TEST_PACKAGES ?? 'net vm workload browser dns').split(/[ ,]+/).filter(Boolean);
  const r = spawnSync('sh', [path.join(root, 'scripts', 'install-system-packages.sh'), ...groups], { stdio: 'inherit' });
  if (r.status !== 0) { console.error(`installing system packages (${groups.join(' ')}) failed`); process.exit(1); }
}

const pgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-external-pg-'));
const pg = await startEmbeddedPostgres(pgDir, (m) => console.log(`[external postgres] ${m}`));
const maintenance = pg.url.replace(/\/fulcrum$/, '/postgres');

let passed = 0, failed = 0, skipped = 0;
function run(label, files, env) {
  if (files.length === 0) return;
  console.log(`\n=== ${label}: ${files.length} file(s) ===`);
  const tap = path.join(pgDir, `${label.replace(/\W+/g, '-')}.tap`);
  const r = spawnSync(process.execPath, [
    '--test', '--test-concurrency=2', '--test-timeout=900000',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...files,
  ], { stdio: 'inherit', env: { ...process.env, ...env }, cwd: root });
  const text = fs.existsSync(tap) ? fs.readFileSync(tap, 'utf8') : '';
  const count = (k) => [...text.matchAll(new RegExp(`^# ${k} (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
  passed += count('pass'); failed += count('fail') + count('cancelled'); skipped += count('skipped') + count('todo');
  if (r.status !== 0 && count('fail') === 0) failed += 1;
}

try {
  run('all suites, external PostgreSQL', selected, { FULCRUM_TEST_DATABASE_URL: maintenance, FULCRUM_TEST_STORE: 'external' });
  const engineSelected = engine.filter((f) => selected.includes(f));
  run('engine suites, embedded PostgreSQL', engineSelected, { FULCRUM_TEST_DATABASE_URL: maintenance, FULCRUM_TEST_STORE: 'embedded' });
} finally {
  await pg.stop();
  fs.rmSync(pgDir, { recursive: true, force: true });
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
