// An agent session ends when the machine boots again. A node powered off hard leaves its agent's
// long-poll open on the server (no FIN ever comes); when the machine registers again, that stale
// request must not claim the node's next job — the new agent must get it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, waitFor, type TestServer } from './support/server.js';
import { stopOwnCluster } from './support/db.js';

let t: TestServer;
before(async () => { t = await startTestServer(); });
after(async () => { await t?.close(); await stopOwnCluster(); });

async function agentCall(method: string, path: string, token: string | null, body?: string): Promise<{ status: number; lines: Map<string, string>; text: string }> {
  const res = await fetch(t.url + path, {
    method,
    headers: { accept: 'text/plain', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'text/plain' } : {}) },
    body,
  });
  const text = await res.text();
  return { status: res.status, text, lines: new Map(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) };
}

test('a stale long-poll of the last boot never claims the job of the new boot', async () => {
  const identity = 'macs=52:54:00:5e:55:01\nuuid=5e550000-0000-4000-8000-000000000001\ninventory={}\n';
  const first = await agentCall('POST', '/api/v1/agent/register', null, identity);
  assert.equal(first.status, 201, first.text);
  const old = first.lines.get('token')!;
  // The first boot's agent waits for work; then the machine loses power (the request stays open).
  const stale = agentCall('GET', '/api/v1/agent/jobs/next?wait=8', old);
  await new Promise((r) => setTimeout(r, 300));
  const second = await agentCall('POST', '/api/v1/agent/register', null, identity);
  assert.equal(second.status, 200, second.text);
  const fresh = second.lines.get('token')!;
  assert.notEqual(fresh, old);
  assert.equal((await agentCall('GET', '/api/v1/agent/whoami', old)).status, 401, 'the old boot\'s token is gone');

  const name = second.lines.get('name')!;
  assert.equal((await t.api('POST', '/api/v1/roles', { name: 'session-work', jig: 'script', jig_config: { scripts: { '10.sh': 'true\n' } } })).status, 201);
  assert.equal((await t.api('POST', '/api/v1/deployments', { name: 'sessions' })).status, 201);
  assert.equal((await t.api('POST', '/api/v1/noderoles', { role: 'session-work', node: name, deployment: 'sessions' })).status, 201);
  assert.equal((await t.api('POST', '/api/v1/deployments/sessions/commit')).status, 200);
  // The job starts while only the stale request is waiting: that is when it would steal it.
  await waitFor('the job to start', async () => ((await t.api('GET', '/api/v1/noderoles?role=session-work')).body as any[])[0]?.state === 'TRANSITION', 10000, 50);
  await new Promise((r) => setTimeout(r, 1500));
  const work = await agentCall('GET', '/api/v1/agent/jobs/next?wait=10', fresh);
  assert.equal(work.status, 200, `the new boot's agent gets the job: ${work.status} ${work.text.slice(0, 200)}`);
  assert.match(work.text, /session-work/);
  assert.equal((await stale).status, 204, 'the stale long-poll ends without work');
});
