// The web UI in a real browser (Debian's Chromium through playwright-core, headless) against a real
// `fulcrum server` with simulated nodes: the setup wizard on an empty system, login, 10,000 nodes
// searched by MAC, drag a node onto a role and commit and watch the states turn ACTIVE live, a
// failing role seen in the annealer view with its log and retried, node detail, networks, content
// packs, keyboard and a narrow window. Screenshots of each page go to test-artifacts/ui/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page, type Request } from 'playwright-core';
import { readPack } from '../src/content/pack.js';
import { projectRoot } from '../src/paths.js';
import { Store } from '../src/store/db.js';
import { startTestServer, httpJson, waitFor, ADMIN_PASSWORD, type TestServer } from './support/server.js';
import { freshDatabaseUrl, stopOwnCluster } from './support/db.js';
import { ensurePackages } from './support/packages.js';

const ART = path.join(projectRoot, 'test-artifacts', 'ui');
const NEW_PASSWORD = 'a-new-admin-password-1';
const NODES = 10000;
type NodeRowLike = { name: string };

let t: TestServer;
let store: Store;
let browser: Browser;
let token = '';
const api = (m: string, p: string, b?: unknown) => httpJson(t.url, token, m, p, b);

before(async () => {
  await ensurePackages('browser');
  await fs.mkdir(ART, { recursive: true });
  const databaseUrl = await freshDatabaseUrl();
  t = await startTestServer({ mode: 'external', databaseUrl, annealer: { sweepMs: 200, deadAfterMs: 3000 }, log: (m) => { if (/internal error|event stream|consumers/.test(m)) console.log(`[server] ${m.slice(0, 1500)}`); } });
  token = t.token;
  store = new Store(databaseUrl);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium', headless: true, timeout: 60000,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage', '--disable-gpu'],
  });
});
after(async () => {
  await browser?.close();
  await store?.close();
  await t?.close();
  await stopOwnCluster();
});

async function newPage(width = 1400, height = 900): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width, height } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  (page as any).jsErrors = errors;
  return page;
}
/** A page already logged in (the session token put where the UI keeps it). */
async function loggedIn(width?: number, height?: number): Promise<Page> {
  const page = await newPage(width, height);
  await page.addInitScript((s) => sessionStorage.setItem('fulcrum.session', s), JSON.stringify({ user: 'admin', token }));
  return page;
}
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ART, `${name}.png`), fullPage: true });
const noJsErrors = (page: Page) => assert.deepEqual((page as any).jsErrors, [], 'no uncaught errors in the page');

test('static serving: content types, caching, SPA fallback that leaves the server paths alone', async () => {
  const index = await fetch(`${t.url}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type')!, /^text\/html/);
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  assert.match(index.headers.get('content-security-policy')!, /script-src 'self'/);
  const html = await index.text();
  const js = html.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
  assert.ok(js, 'index.html names a hashed script');
  const asset = await fetch(`${t.url}${js}`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get('content-type')!, /^text\/javascript/);
  assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal(asset.headers.get('content-encoding'), 'gzip');
  assert.ok((await asset.text()).length > 10000, 'the script arrives whole');
  const route = await fetch(`${t.url}/nodes/some-node`);
  assert.equal(route.status, 200, 'a client route gets the app');
  assert.match(await route.text(), /<div id="root">/);
  assert.equal((await fetch(`${t.url}/assets/missing-abc.js`)).status, 404, 'a missing asset is not the app');
  assert.equal((await fetch(`${t.url}/favicon.ico`)).status, 404);
  assert.equal((await fetch(`${t.url}/nodes/%E0%A4%A`)).status, 400, 'a malformed path is refused, not a server error');
  assert.equal((await fetch(`${t.url}/assets/..%2f..%2fpackage.json`)).status, 404, 'only built files are served');
  assert.equal((await fetch(`${t.url}/nodes/n1.rack2.example.internal`)).status, 200, 'a node name with dots is a client route');
  for (const p of ['/api/v1/no-such-thing', '/boot/no-such-file', '/healthz', '/metrics']) {
    const r = await fetch(`${t.url}${p}`);
    assert.doesNotMatch(r.headers.get('content-type') ?? '', /text\/html/, `${p} is not swallowed by the UI`);
  }
  assert.equal((await fetch(`${t.url}/api/v1/no-such-thing`, { headers: { authorization: `Bearer ${token}` } })).status, 404);
});

test('first load under 1 s, and the setup wizard turns an empty system into a working configuration', async () => {
  assert.equal((await api('GET', '/api/v1/setup')).body.needed, true);
  // Chromium's own start-up (its first page in a fresh process) is not the UI's load time: warm it on a non-UI page.
  const warm = await newPage();
  await warm.goto(t.url + '/healthz');
  await warm.context().close();
  // A fresh context each time (nothing cached), best of three: the test machine is shared.
  const loads: number[] = [];
  let page!: Page;
  for (let i = 0; i < 3; i++) {
    if (page) await page.context().close();
    page = await newPage();
    const t0 = Date.now();
    await page.goto(t.url + '/');
    await page.getByRole('heading', { name: 'Set up Fulcrum' }).waitFor();
    loads.push(Date.now() - t0);
  }
  const firstLoad = Math.min(...loads);
  const nav = await page.evaluate(() => { const n = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming; return { dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd }; });
  console.log(`first load: wizard visible after ${loads.join(', ')} ms (last: DOMContentLoaded ${Math.round(nav.dcl)} ms, load ${Math.round(nav.load)} ms)`);
  assert.ok(firstLoad < 1000, `first load took ${loads.join(', ')} ms`);

  // A wrong setup code: refused with a clear message, nothing stored.
  await page.getByLabel('Setup code').fill('not-the-code');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Network (CIDR)').fill('10.77.0.0/24');
  await page.getByLabel('Gateway').fill('10.77.0.1');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('DNS domain of the cluster').fill('lab.example.com');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('New admin password').fill(NEW_PASSWORD);
  await page.getByLabel('Repeat it').fill(NEW_PASSWORD);
  await shot(page, '01-setup-wizard');
  await page.getByRole('button', { name: 'Finish setup' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong setup code' }).waitFor();
  assert.equal((await api('GET', '/api/v1/subnets')).body.length, 0, 'a refused setup stores nothing');

  // The wizard went back to the code step; the rest is kept.
  await page.getByLabel('Setup code').fill(ADMIN_PASSWORD);
  for (let i = 0; i < 3; i++) await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('New admin password').fill(NEW_PASSWORD);
  await page.getByLabel('Repeat it').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Finish setup' }).click();
  await page.getByRole('heading', { name: 'Nodes' }).waitFor();
  noJsErrors(page);

  // The result: the admin subnet with gateway and pool, the domain, the new password; the old one and its tokens are gone.
  assert.equal((await api('GET', '/api/v1/nodes')).status, 401, 'tokens issued with the setup code no longer work');
  assert.equal((await httpJson(t.url, '', 'POST', '/api/v1/login', { user: 'admin', password: ADMIN_PASSWORD })).status, 401);
  const login = await httpJson(t.url, '', 'POST', '/api/v1/login', { user: 'admin', password: NEW_PASSWORD });
  assert.equal(login.status, 200);
  token = login.body.token;
  const subnets = (await api('GET', '/api/v1/subnets')).body;
  assert.equal(subnets.length, 1);
  assert.equal(subnets[0].cidr, '10.77.0.0/24');
  assert.deepEqual(subnets[0].routers, ['10.77.0.1']);
  assert.deepEqual(subnets[0].pools, [{ first: '10.77.0.128', last: '10.77.0.254' }]);
  assert.equal(subnets[0].domain, 'lab.example.com');
  const st = (await api('GET', '/api/v1/setup')).body;
  assert.deepEqual([st.needed, st.domain], [false, 'lab.example.com']);
  const again = await httpJson(t.url, '', 'POST', '/api/v1/setup', { setup_code: NEW_PASSWORD, admin_password: 'another-password', domain: 'x.example', network: { cidr: '10.1.0.0/24', gateway: '10.1.0.1' } });
  assert.equal(again.status, 409, 'setup runs once');
  await page.context().close();
});

test('setup input errors name the field and store nothing', async () => {
  // Setup already ran; the validation runs before that check only for the body shape.
  const bad = await httpJson(t.url, '', 'POST', '/api/v1/setup', { setup_code: 'x', admin_password: 'long-enough-pw', domain: 'Bad Domain!', network: { cidr: '10.1.0.0/24', gateway: '10.1.0.1' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, 'domain');
  const gw = await httpJson(t.url, '', 'POST', '/api/v1/setup', { setup_code: 'x', admin_password: 'long-enough-pw', domain: 'a.example', network: { cidr: '10.1.0.0/24', gateway: '10.2.0.1' } });
  assert.equal(gw.status, 400);
  assert.match(gw.body.message, /network.gateway: 10.2.0.1 is not a host address inside 10.1.0.0\/24/);
  const bits = await httpJson(t.url, '', 'POST', '/api/v1/setup', { setup_code: 'x', admin_password: 'long-enough-pw', domain: 'a.example', network: { cidr: '10.1.0.5/24', gateway: '10.1.0.1' } });
  assert.match(bits.body.message, /host bits set; the network is 10.1.0.0\/24/);
  assert.equal((await api('GET', '/api/v1/subnets')).body.length, 1);
});

test('login with the API users: a wrong password is refused, the right one opens the UI', async () => {
  const page = await newPage();
  await page.goto(t.url + '/nodes');
  await page.getByLabel('User').fill('admin');
  await page.getByLabel('Password').fill('wrong-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong user name or password' }).waitFor();
  await shot(page, '02-login');
  await page.getByLabel('Password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Nodes' }).waitFor();
  // A user without nodes:read sees the API's refusal, not an empty list.
  assert.equal((await api('POST', '/api/v1/users', { name: 'viewer', password: 'viewer-password', capabilities: ['events:read'] })).status, 201);
  const uiToken = await page.evaluate(() => JSON.parse(sessionStorage.getItem('fulcrum.session')!).token as string);
  assert.equal((await httpJson(t.url, uiToken, 'GET', '/api/v1/nodes?limit=1')).status, 200);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('User').fill('viewer');
  assert.equal((await httpJson(t.url, uiToken, 'GET', '/api/v1/nodes?limit=1')).status, 401, 'Log out revokes the token');
  assert.equal((await api('GET', '/api/v1/nodes?limit=1')).status, 200, 'other sessions stay');
  await page.getByLabel('Password').fill('viewer-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'lacks the capability nodes:read' }).waitFor();
  noJsErrors(page);
  await page.context().close();
});

test(`${NODES.toLocaleString()} nodes: the list is virtualised and paginated, and a MAC search finds one`, async () => {
  // Many nodes fast: straight into the tables (the API's sim endpoint creates them one by one).
  await store.query(
    `INSERT INTO nodes (name, alive, available, bootenv, provider, deployment_id)
     SELECT format('bulk-%s.sim.fulcrum.internal', lpad(g::text, 5, '0')), g % 7 <> 0, g % 5 <> 0, 'local', 'sim', (SELECT id FROM deployments WHERE system)
       FROM generate_series(1, $1::int) g`, [NODES]);
  await store.query(
    `INSERT INTO node_macs (mac, node_id)
     SELECT format('52:54:00:%s:%s:%s', lpad(to_hex((g >> 16) & 255), 2, '0'), lpad(to_hex((g >> 8) & 255), 2, '0'), lpad(to_hex(g & 255), 2, '0'))::macaddr, n.id
       FROM generate_series(1, $1::int) g JOIN nodes n ON n.name = format('bulk-%s.sim.fulcrum.internal', lpad(g::text, 5, '0'))`, [NODES]);
  // A system that grew to this size has planner statistics; a bulk insert has none until autovacuum runs.
  await store.query('ANALYZE nodes; ANALYZE node_macs');
  // The server reacts to 10,000 new MACs (DHCP and network sync) for a while; measure the UI on a settled system.
  let quiet = 0;
  await waitFor('the server to settle after the bulk insert', async () => {
    const a0 = Date.now();
    assert.equal((await api('GET', '/api/v1/nodes?limit=200')).status, 200);
    quiet = Date.now() - a0 < 100 ? quiet + 1 : 0;
    return quiet >= 3;
  }, 60000, 100);
  // First rows in a fresh browser context (no cache), best of three: the test machine is shared.
  const loads: number[] = [];
  let page!: Page;
  const requests: string[] = [];
  for (let i = 0; i < 3; i++) {
    if (page) await page.context().close();
    page = await loggedIn();
    requests.length = 0;
    page.on('request', (r: Request) => { if (r.url().includes('/api/v1/nodes?')) requests.push(r.url()); });
    const t0 = Date.now();
    await page.goto(t.url + '/nodes');
    await page.getByRole('link', { name: 'bulk-00001.sim.fulcrum.internal' }).waitFor();
    loads.push(Date.now() - t0);
  }
  const timing = await page.evaluate(() => performance.getEntriesByType('resource').filter((r) => r.name.includes('/api/')).map((r) => `${new URL(r.name).pathname} ${Math.round(r.startTime)}+${Math.round(r.duration)}`).join(', '));
  console.log(`nodes page with ${NODES} nodes: first rows after ${loads.join(', ')} ms (last: ${timing})`);
  assert.ok(Math.min(...loads) < 1000, `first rows after ${loads.join(', ')} ms`);
  await page.getByText(`${NODES.toLocaleString('en-US')} nodes`).waitFor();
  // Only a window of rows is in the DOM.
  const rendered = await page.locator('.vbody .vrow').count();
  assert.ok(rendered < 100, `${rendered} rows rendered for ${NODES} nodes`);
  await shot(page, '03-nodes-10000');

  // Scroll to the end: the last page is fetched on its own (offset), not the whole list.
  await page.locator('.vbody').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await page.getByRole('link', { name: `bulk-${String(NODES).padStart(5, '0')}.sim.fulcrum.internal` }).waitFor();
  assert.ok(requests.every((u) => /limit=200/.test(u)), 'every list call is one page');
  assert.ok(requests.length <= 6, `${requests.length} page requests`);

  // Search by MAC (upper case, dashes): one node.
  const target = 4321;
  const mac = `52-54-00-00-${(target >> 8).toString(16).padStart(2, '0')}-${(target & 255).toString(16).padStart(2, '0')}`.toUpperCase();
  const s0 = Date.now();
  await page.getByLabel('Search name, MAC or IP').fill(mac);
  await page.getByText('1 node', { exact: true }).waitFor();
  console.log(`MAC search over ${NODES} nodes: ${Date.now() - s0} ms (including the 250 ms typing pause)`);
  await page.getByRole('link', { name: 'bulk-04321.sim.fulcrum.internal' }).waitFor();
  assert.equal(await page.locator('.vbody .vrow').count(), 1);
  await shot(page, '04-nodes-search-mac');

  // Filters: dead nodes are every 7th.
  await page.getByLabel('Search name, MAC or IP').fill('');
  await page.getByLabel('Alive').selectOption('false');
  await page.getByText(`${Math.floor(NODES / 7).toLocaleString('en-US')} nodes`).waitFor();
  noJsErrors(page);
  await page.context().close();
});

test('bulk actions: make the selected nodes unavailable', async () => {
  const page = await loggedIn();
  await page.goto(t.url + '/nodes');
  await page.getByLabel('Search name, MAC or IP').fill('bulk-0001');
  await page.getByText('10 nodes', { exact: true }).waitFor();
  await page.getByLabel('Select the nodes on screen').check();
  await page.getByRole('button', { name: 'Make unavailable' }).click();
  await page.getByRole('status').filter({ hasText: 'available off: 10 of 10 done' }).waitFor();
  const rows = (await api('GET', '/api/v1/nodes?q=bulk-0001')).body as Array<{ available: boolean }>;
  assert.equal(rows.length, 10);
  assert.ok(rows.every((n) => !n.available));
  // A change made elsewhere appears in the list by itself (node events, coalesced reload).
  assert.equal((await api('PATCH', '/api/v1/nodes/bulk-00012.sim.fulcrum.internal', { available: true })).status, 200);
  await page.locator('.vrow').filter({ hasText: 'bulk-00012.sim.fulcrum.internal' }).getByText('available', { exact: true }).waitFor({ timeout: 10000 });
  noJsErrors(page);
  await page.context().close();
});

let depNodes: string[] = [];
test('drag a node onto a role, commit, and watch the states turn ACTIVE live', async () => {
  const pack = await readPack(path.join(projectRoot, 'content', 'test'));
  // Only the roles, attribs and profiles are needed here (importing the pack's bootenv is another suite's concern).
  const r = await api('POST', '/api/v1/content-packs', { ...pack, bootenvs: [] });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal((await api('POST', '/api/v1/deployments', { name: 'ui' })).status, 201);
  const sim = await api('POST', '/api/v1/sim/nodes', { count: 3, deployment: 'ui', prefix: 'web' });
  assert.equal(sim.status, 201, JSON.stringify(sim.body));
  depNodes = sim.body.nodes;
  const page = await loggedIn();
  const noderoleCalls: number[] = [];
  page.on('request', (r: Request) => { if (r.url().includes('/api/v1/noderoles?')) noderoleCalls.push(Date.now()); });
  await page.goto(t.url + '/deployments/ui');
  await page.getByRole('heading', { name: 'ui', exact: true }).waitFor();
  for (const n of depNodes.slice(0, 2)) {
    await page.dragAndDrop(`li.node-chip[data-node="${n}"]`, 'li.role-chip[data-role="test-consumer"]');
    await page.getByRole('status').filter({ hasText: `bind test-consumer to ${n}: done` }).waitFor();
  }
  // Bound with its parents, PROPOSED, shown in the matrix and the graph without a reload.
  const cell = (n: string, r: string) => page.locator(`td.cell[data-node="${n}"][data-role="${r}"]`);
  await waitFor('PROPOSED cells', async () => (await cell(depNodes[0], 'test-consumer').getAttribute('data-state')) === 'PROPOSED', 10000);
  assert.equal(await cell(depNodes[0], 'test-implicit').getAttribute('data-state'), 'PROPOSED', 'the implicit parent is bound too');
  assert.ok(await page.locator('svg .gnode').count() >= 4, 'the graph shows the noderoles');
  assert.ok(await page.locator('svg path.edge.hard').count() >= 2, 'with hard edges');
  await shot(page, '05-deployment-proposed');

  // test-consumer on the second node shares the first node's test-base (not implicit: found in the deployment).
  const bound = ((await api('GET', '/api/v1/noderoles?deployment=ui&limit=100')).body as unknown[]).length;
  assert.equal(bound, 5, 'test-consumer and test-implicit on each node, one shared test-base');
  await waitFor('every bound noderole in the matrix', async () => (await page.locator('td.cell[data-state="PROPOSED"]').count()) === bound, 10000);
  const t0 = Date.now();
  await page.getByRole('button', { name: 'Commit' }).click();
  await waitFor('every cell ACTIVE, live', async () => {
    const states = await page.locator('td.cell[data-state]:not([data-state=""])').evaluateAll((els) => els.map((e) => e.getAttribute('data-state')));
    return states.length === bound && states.every((s) => s === 'ACTIVE');
  }, 60000, 200).catch(async (e) => { await shot(page, 'failed-deployment-active'); throw e; });
  const took = (Date.now() - t0) / 1000;
  const during = noderoleCalls.filter((x) => x >= t0).length;
  console.log(`commit to all ACTIVE in the browser: ${took.toFixed(1)} s, ${during} noderole list reloads`);
  // Live from the event stream, coalesced: about one reload a second at most, not one per event.
  assert.ok(during <= Math.ceil(took) + 2, `${during} reloads in ${took.toFixed(1)} s`);
  const api_ = (await api('GET', '/api/v1/noderoles?deployment=ui&limit=100')).body as Array<{ state: string }>;
  assert.ok(api_.every((x) => x.state === 'ACTIVE'));
  await page.getByText('active', { exact: true }).first().waitFor();
  await shot(page, '06-deployment-active');

  noJsErrors(page);
  await page.context().close();
});

test('the annealer view shows a run while it runs, then the queue empty, live', async () => {
  const n = depNodes[1];
  assert.equal((await api('PATCH', `/api/v1/nodes/${n}`, { hints: { 'test-delay': 2500 } })).status, 200);
  assert.equal((await api('POST', '/api/v1/deployments/ui/propose')).status, 200);
  assert.equal((await api('POST', '/api/v1/noderoles', { node: n, role: 'test-destructive', deployment: 'ui' })).status, 201);
  const page = await loggedIn();
  await page.goto(t.url + '/annealer');
  await page.locator('.live.on').waitFor();
  assert.equal((await api('POST', '/api/v1/deployments/ui/commit')).status, 200);
  const running = page.locator('li').filter({ hasText: 'test-destructive' }).filter({ hasText: n });
  await running.waitFor({ timeout: 5000 });
  await shot(page, '07a-annealer-running');
  await running.waitFor({ state: 'detached', timeout: 15000 });
  await page.getByText('Nothing running.').waitFor();
  await page.locator('progress').evaluate((el: HTMLProgressElement) => el.value === el.max).then((full) => assert.ok(full, 'progress is full when all is ACTIVE'));
  assert.equal((await api('PATCH', `/api/v1/nodes/${n}`, { hints: { 'test-delay': null } })).status, 200);
  noJsErrors(page);
  await page.context().close();
});

test('a failing role shows in the annealer view with its log, and Retry converges', async () => {
  const victim = depNodes[2];
  assert.equal((await api('PATCH', `/api/v1/nodes/${victim}`, { profiles: ['test-fail-profile'] })).status, 200);
  assert.equal((await api('POST', '/api/v1/deployments/ui/propose')).status, 200);
  assert.equal((await api('POST', '/api/v1/noderoles', { node: victim, role: 'test-base', deployment: 'ui' })).status, 201);
  assert.equal((await api('POST', '/api/v1/noderoles', { node: victim, role: 'test-destructive', deployment: 'ui' })).status, 201);
  const page = await loggedIn();
  await page.goto(t.url + '/annealer');
  await page.getByRole('heading', { name: 'Annealer' }).waitFor();
  await page.locator('.live.on').waitFor();
  assert.equal((await api('POST', '/api/v1/deployments/ui/commit')).status, 200);
  // Appears live, with the log of the failed run.
  const item = page.locator('.error-item').filter({ hasText: victim });
  await item.waitFor({ timeout: 30000 });
  await item.locator('pre.log').filter({ hasText: 'test jig asked to fail' }).waitFor();
  await shot(page, '07-annealer-error');
  // The child waits, and the graph says why on hover (the SVG title), naming the failed parent.
  const graph = await loggedIn();
  await graph.goto(t.url + '/deployments/ui');
  const short = victim.split('.')[0];
  await waitFor('the blocked reason in the graph', async () => (await graph.locator('svg g.gnode title').allTextContents())
    .some((x) => x.startsWith(`test-destructive on ${victim}: BLOCKED — test-base on ${short} failed (ERROR)`)), 10000, 200);
  await graph.context().close();
  // Fix the cause, then Retry from the page: the error leaves the list and the node converges.
  assert.equal((await api('PATCH', `/api/v1/nodes/${victim}`, { profiles: [] })).status, 200);
  await item.getByRole('button', { name: 'Retry' }).click();
  await item.waitFor({ state: 'detached', timeout: 30000 });
  await waitFor(`${victim} ACTIVE`, async () => {
    const rows = (await api('GET', `/api/v1/noderoles?node=${victim}&deployment=ui`)).body as Array<{ state: string }>;
    return rows.length > 0 && rows.every((r) => r.state === 'ACTIVE');
  }, 30000, 200);
  await page.getByText('No errors.').waitFor();
  await shot(page, '08-annealer-clear');
  noJsErrors(page);
  await page.context().close();
});

test('deployment-role attribs are edited against their schema', async () => {
  const attrib = await api('POST', '/api/v1/attribs', { name: 'ui-port', role: 'test-producer', map: 'ui/port', schema: { type: 'integer', minimum: 1, maximum: 65535 } });
  assert.equal(attrib.status, 201, JSON.stringify(attrib.body));
  assert.equal((await api('POST', '/api/v1/deployments/ui/propose')).status, 200);
  assert.equal((await api('POST', '/api/v1/noderoles', { node: depNodes[0], role: 'test-producer', deployment: 'ui' })).status, 201);
  const page = await loggedIn();
  await page.goto(t.url + '/deployments/ui');
  const form = page.getByRole('form', { name: 'Attribs of test-producer' });
  const port = form.getByLabel(/^ui-port/);
  const save = form.getByRole('button', { name: 'Save test-producer attribs' });
  await port.fill('soon');
  await save.click();
  await form.getByText('ui-port must be an integer').waitFor();
  await port.fill('70000');
  await save.click();
  await form.getByText('ui-port must be ≤ 65535').waitFor();
  const dr = async () => ((await api('GET', '/api/v1/deployment-roles?deployment=ui&role=test-producer')).body as Array<{ proposed_data: any }>)[0];
  assert.equal((await dr()).proposed_data?.ui?.port, undefined, 'nothing stored while invalid');
  await port.fill('8080');
  await form.getByLabel(/^test-token/).fill('from-the-ui');
  await save.click();
  await form.getByText('Saved to proposed data').waitFor();
  const saved = (await dr()).proposed_data;
  assert.equal(saved.ui.port, 8080, 'the value is stored as a number at its map path');
  assert.equal(saved.test.token, 'from-the-ui');
  await shot(page, '06a-deployment-attribs');
  await page.getByRole('button', { name: 'Commit' }).click();
  await page.getByRole('status').filter({ hasText: 'commit: done' }).waitFor();
  noJsErrors(page);
  await page.context().close();
});

test('node detail: inventory, addresses, noderoles with their logs, events', async () => {
  const n = depNodes[0];
  const inventory = {
    cpu: { count: 16, model: 'Test CPU 3000' }, memory_kb: 64 * 1024 * 1024,
    disks: [{ name: 'nvme0n1', size_bytes: 960e9, kind: 'SSD', rotational: false, model: 'Fast Disk' }, { name: 'sda', size_bytes: 4e12, kind: 'HDD', rotational: true, model: 'Big Disk' }],
    nics: [{ name: 'eno1', mac: '52:54:00:aa:bb:01', link: true, speed_mbps: 10000 }],
  };
  assert.equal((await api('PATCH', `/api/v1/nodes/${n}`, { inventory, macs: ['52:54:00:aa:bb:01'] })).status, 200);
  const sub = (await api('GET', '/api/v1/subnets')).body[0];
  assert.equal((await api('POST', '/api/v1/reservations', { mac: '52:54:00:aa:bb:01', subnet: sub.name, address: '10.77.0.20', node: n })).status, 201);
  const page = await loggedIn();
  // From the list, filtered by role, to the node.
  await page.goto(`${t.url}/nodes`);
  await page.getByLabel('Role', { exact: true }).fill('test-consumer');
  await page.getByText('2 nodes', { exact: true }).waitFor();
  assert.deepEqual((await page.locator('.vbody .c-name').allTextContents()).sort(), depNodes.slice(0, 2).sort());
  await page.getByRole('link', { name: n }).click();
  await page.getByRole('heading', { name: n }).waitFor().catch(async (e) => { await shot(page, 'failed-node-detail'); throw e; });
  await page.getByText('16 × Test CPU 3000').waitFor();
  await page.getByText('64.0 GiB').or(page.getByText('64 GiB')).first().waitFor();
  await page.getByRole('cell', { name: 'SSD' }).waitFor();
  await page.getByRole('cell', { name: 'HDD' }).waitFor();
  await page.getByRole('cell', { name: '10.77.0.20' }).waitFor();
  // The node list's search finds it by that address, and by a fragment of its MAC typed with dashes.
  assert.deepEqual(((await api('GET', '/api/v1/nodes?q=10.77.0.20')).body as NodeRowLike[]).map((x) => x.name), [n]);
  assert.deepEqual(((await api('GET', '/api/v1/nodes?q=AA-BB-0')).body as NodeRowLike[]).map((x) => x.name), [n]);
  await page.getByRole('row').filter({ hasText: 'test-consumer' }).getByRole('button', { name: 'Show log' }).click();
  await page.getByLabel('Run log').waitFor();
  await page.locator('ol.events li').filter({ hasText: 'noderole.state' }).first().waitFor();
  // Live: a change made elsewhere shows up without a reload.
  assert.equal((await api('PATCH', `/api/v1/nodes/${n}`, { available: false })).status, 200);
  await page.locator('.page-head .badge').filter({ hasText: 'reserved' }).waitFor();
  await shot(page, '09-node-detail');
  noJsErrors(page);
  await page.context().close();
});

test('networks and content packs pages; upload import', async () => {
  const r = await api('POST', '/api/v1/reservations', { mac: '52:54:00:aa:bb:99', subnet: 'admin', address: '10.77.0.21', hostname: 'spare' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const zone = await api('POST', '/api/v1/dns-zones', { name: 'lab.example.com' });
  assert.equal(zone.status, 201, JSON.stringify(zone.body));
  assert.equal((await api('POST', '/api/v1/dns-records', { zone: 'lab.example.com', name: 'gw', type: 'A', data: '10.77.0.1' })).status, 201);
  const page = await loggedIn();
  await page.goto(`${t.url}/networks`);
  await page.getByRole('cell', { name: '10.77.0.0/24' }).waitFor().catch(async (e) => { await shot(page, 'failed-networks'); throw e; });
  await page.getByRole('cell', { name: '52:54:00:aa:bb:99' }).waitFor().catch(async (e) => { await shot(page, 'failed-networks'); throw e; });
  await page.getByRole('row').filter({ hasText: 'gw' }).filter({ hasText: '10.77.0.1' }).waitFor();
  await shot(page, '10-networks');
  await page.getByRole('link', { name: 'Content packs' }).click();
  await page.getByRole('cell', { name: 'test', exact: true }).waitFor();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fulcrum-ui-pack-'));
  try {
    const file = path.join(dir, 'pack.yaml');
    await fs.writeFile(file, 'name: uploaded\nversion: 0.1.0\ndescription: Uploaded from the browser\nroles:\n  - name: uploaded-role\n    jig: noop\n');
    await page.getByLabel(/Pack bundle/).setInputFiles(file);
    await page.getByText('Imported uploaded 0.1.0.').waitFor();
    await page.getByRole('cell', { name: 'uploaded', exact: true }).waitFor();
    await page.getByRole('row').filter({ hasText: 'Uploaded from the browser' }).getByRole('button', { name: 'Show what it provides' }).click();
    await page.getByText('uploaded-role').waitFor();
    await fs.writeFile(file, 'name: Broken Name\nversion: 1\n');
    await page.getByLabel(/Pack bundle/).setInputFiles(file);
    await page.getByRole('alert').filter({ hasText: 'Import refused' }).waitFor();
  } finally { await fs.rm(dir, { recursive: true, force: true }); }
  assert.equal((await api('GET', '/api/v1/content-packs?name=uploaded')).body.length, 1);
  await shot(page, '11-content-packs');
  noJsErrors(page);
  await page.context().close();
});

test('accessibility basics: skip link and focus order, labels, a narrow window without page overflow', async () => {
  const page = await loggedIn(390, 800);
  for (const p of ['/nodes', '/deployments/ui', '/annealer', '/networks', '/content', `/nodes/${depNodes[0]}`]) {
    await page.goto(t.url + p);
    await page.locator('main h1').first().waitFor();
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) await shot(page, `failed-narrow-${p.split('/')[1]}`);
    const wide = overflow > 1 ? await page.evaluate(() => [...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.vtable, .matrix-wrap, .graph-wrap, .scroll-x')).slice(0, 3).map((e) => e.outerHTML.slice(0, 100))) : [];
    assert.ok(overflow <= 1, `${p}: the page is ${overflow} px wider than a 390 px window: ${wide.join(' | ')}`);
    // Every form control has an accessible name.
    const unlabeled = await page.locator('input:not([type=hidden]), select, textarea').evaluateAll((els) =>
      els.filter((e) => !(e as HTMLInputElement).labels?.length && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')).map((e) => e.outerHTML.slice(0, 80)));
    assert.deepEqual(unlabeled, [], `${p}: unlabeled controls`);
  }
  await shot(page, '12-narrow-node-detail');
  // Drag and drop has a form alternative that works from the keyboard.
  await page.goto(t.url + '/deployments/ui');
  await page.getByRole('button', { name: 'Propose' }).click();
  await page.getByRole('status').filter({ hasText: 'propose: done' }).waitFor();
  const bindNode = page.getByRole('combobox', { name: 'Node', exact: true });
  await bindNode.focus();
  await bindNode.selectOption(depNodes[2]);
  await page.getByRole('combobox', { name: 'Role', exact: true }).selectOption('test-consumer');
  await page.getByRole('button', { name: 'Bind', exact: true }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: `bind test-consumer to ${depNodes[2]}: done` }).waitFor();
  await page.locator(`td.cell[data-node="${depNodes[2]}"][data-role="test-consumer"][data-state="PROPOSED"]`).waitFor();
  await page.goto(t.url + '/nodes');
  await page.locator('main h1').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Fulcrum');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused element shows a focus ring');
  await page.context().close();
});
