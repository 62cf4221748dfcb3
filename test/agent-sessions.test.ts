// A job handed to an agent is the agent's only once it confirms it. A node powered off hard leaves
// its agent's long-poll open on the server (no FIN ever comes): when a job appears, that stale
// request takes it and sends it nowhere. The claim then lapses unconfirmed and the machine's next
// agent gets the job; the stale agent, should it ever come back, cannot confirm it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, waitFor, type TestServer } from './support/server.js';
import { stopOwnCluster } from './support/db.js';
import { CLAIM_CONFIRM_S } from '../src/agent/agent-api.js';

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

const jobOf = (bundle: string) => Number(/FULCRUM_JOB=(\d+)/.exec(bundle)?.[1]);

test('a job taken by a dead boot\'s long-poll lapses unconfirmed and goes to the next boot\'s agent', async () => {
  const identity = 'macs=52:54:00:5e:55:01\nuuid=5e550000-0000-4000-8000-000000000001\ninventory={}\n';
  const first = await agentCall('POST', '/api/v1/agent/register', null, identity);
  assert.equal(first.status, 201, first.text);
  const old = first.lines.get('token')!;
  const name = first.lines.get('name')!;
  // The first boot's agent waits for work; then the machine loses power (its request stays open).
  const stale = agentCall('GET', '/api/v1/agent/jobs/next?wait=20', old);
  await new Promise((r) => setTimeout(r, 300));
  const second = await agentCall('POST', '/api/v1/agent/register', null, identity);
  assert.equal(second.status, 200, second.text);
  const fresh = second.lines.get('token')!;

  assert.equal((await t.api('POST', '/api/v1/roles', { name: 'session-work', jig: 'script', jig_config: { scripts: { '10.sh': 'true\n' } } })).status, 201);
  assert.equal((await t.api('POST', '/api/v1/deployments', { name: 'sessions' })).status, 201);
  assert.equal((await t.api('POST', '/api/v1/noderoles', { role: 'session-work', node: name, deployment: 'sessions' })).status, 201);
  assert.equal((await t.api('POST', '/api/v1/deployments/sessions/commit')).status, 200);
  // Only the stale request is waiting when the job starts: it takes it (and nobody receives it).
  const lost = await stale;
  assert.equal(lost.status, 200);
  const job = jobOf(lost.text);
  assert.ok(job > 0);

  const startedAt = Date.now();
  const work = await agentCall('GET', `/api/v1/agent/jobs/next?wait=${CLAIM_CONFIRM_S + 10}`, fresh);
  const waitedS = (Date.now() - startedAt) / 1000;
  assert.equal(work.status, 200, `the new boot's agent gets the job: ${work.status} ${work.text.slice(0, 200)}`);
  assert.equal(jobOf(work.text), job, 'the same job, handed out again');
  assert.ok(waitedS >= CLAIM_CONFIRM_S - 1 && waitedS < CLAIM_CONFIRM_S + 3, `handed out again once the claim lapsed (${waitedS.toFixed(1)} s)`);
  assert.equal((await agentCall('POST', `/api/v1/agent/jobs/${job}/ack`, old)).status, 409, 'the stale agent cannot confirm it any more');
  assert.equal((await agentCall('POST', `/api/v1/agent/jobs/${job}/ack`, fresh)).status, 200);
  assert.equal((await agentCall('POST', `/api/v1/agent/jobs/${job}/ack`, fresh)).status, 409, 'confirmed once');
  assert.equal((await agentCall('GET', '/api/v1/agent/whoami', old)).status, 200, 'registering again does not cut off another agent of the node');
  assert.equal((await agentCall('POST', `/api/v1/agent/jobs/${job}/complete`, fresh, 'exit_code=0\n')).status, 200);
  await waitFor('the noderole ACTIVE', async () => ((await t.api('GET', '/api/v1/noderoles?role=session-work')).body as any[])[0]?.state === 'ACTIVE', 10000, 100);
});
