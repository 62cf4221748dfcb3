// The ssh jig against a real OpenSSH server in a lab namespace: the role's scripts run on the
// node over SSH (no agent there), in order with set -e, wall values come back, a failure is an
// ERROR with the output, and an unreachable node is an ERROR naming the target.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { withLab } from '../src/lab/lab.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net'); });

test('ssh jig: scripts run on an agentless node over SSH; results, failures and unreachable nodes', async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.89.0.1/24' });
    const server = await startServerIn(lab, srv, '10.89.0.1', ['--no-dhcp']);
    const api = server.api;

    // A node that runs no agent: sshd with its own host key and authorized_keys.
    const target = await lab.namespace('target');
    await lab.link(target, lan, { ifaceA: 'eth0', addressA: '10.89.0.20/24' });
    const dir = lab.makeDir('sshd');
    await target.exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_ed25519')]);
    const key = await api('GET', '/api/v1/ssh-key');
    assert.equal(key.status, 200);
    assert.match(String(key.body), /^ssh-ed25519 /);
    fs.writeFileSync(path.join(dir, 'authorized_keys'), String(key.body), { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'sshd_config'), [
      'Port 22', 'ListenAddress 10.89.0.20', `HostKey ${dir}/host_ed25519`, `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
      'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'LogLevel VERBOSE',
    ].join('\n') + '\n');
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const sshd = target.spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { label: 'sshd' });
    await waitFor('sshd listening', async () => /Server listening on 10\.89\.0\.20/.test(sshd.output()), 10000, 100);

    assert.equal((await api('POST', '/api/v1/attribs', { name: 'ssh-seen-address', map: 'ssh/seen_address', schema: { type: 'string' } })).status, 201);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'over-ssh', jig: 'ssh', jig_config: { scripts: {
      '10-where.sh': 'echo "running as $(id -un) for $FULCRUM_NODE"\nfulcrum-wall ssh-seen-address "$(ip -4 -o addr show eth0 | awk \'{print $4}\')"\n',
      '20-after.sh': 'echo second\n',
    } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'over-ssh-fails', jig: 'ssh', jig_config: { scripts: { '10-x.sh': 'echo before\nexit 3\necho after\n' } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments', { name: 'legacy' })).status, 201);
    for (const [name, host] of [['old.legacy.test', '10.89.0.20'], ['gone.legacy.test', '10.89.0.99']]) {
      assert.equal((await api('POST', '/api/v1/nodes', { name, deployment: 'legacy', alive: true, bootenv: 'local', hints: { 'ssh-host': host } })).status, 201);
    }
    await api('POST', '/api/v1/noderoles', { role: 'over-ssh', node: 'old.legacy.test', deployment: 'legacy' });
    await api('POST', '/api/v1/noderoles', { role: 'over-ssh', node: 'gone.legacy.test', deployment: 'legacy' });
    assert.equal((await api('POST', '/api/v1/deployments/legacy/commit')).status, 200);

    const ok = await waitFor('over-ssh ACTIVE on the reachable node', async () => {
      const nr = ((await api('GET', '/api/v1/noderoles?role=over-ssh&node=old.legacy.test')).body as any[])[0];
      return nr?.state === 'ACTIVE' && nr;
    }, 30000, 200);
    assert.equal(ok.wall.ssh.seen_address, '10.89.0.20/24', 'the script ran on the target node');
    const job = ((await api('GET', `/api/v1/jobs?noderole=${ok.id}`)).body as any[])[0];
    const log = (await api('GET', `/api/v1/jobs/${job.id}`)).body.log;
    assert.match(log, /running as root for old\.legacy\.test/);
    assert.match(log, /== 10-where\.sh[\s\S]*== 20-after\.sh\nsecond/, 'lexical order');

    const gone = await waitFor('unreachable node ERROR', async () => {
      const nr = ((await api('GET', '/api/v1/noderoles?role=over-ssh&node=gone.legacy.test')).body as any[])[0];
      return nr?.state === 'ERROR' && nr;
    }, 40000, 250);
    assert.match((await api('GET', `/api/v1/noderoles/${gone.id}`)).body.runlog, /ssh to root@10\.89\.0\.99:22 failed/);

    await api('POST', '/api/v1/noderoles', { role: 'over-ssh-fails', node: 'old.legacy.test', deployment: 'legacy' });
    await api('POST', '/api/v1/deployments/legacy/commit');
    const failed = await waitFor('over-ssh-fails ERROR', async () => {
      const nr = ((await api('GET', '/api/v1/noderoles?role=over-ssh-fails')).body as any[])[0];
      return nr?.state === 'ERROR' && nr;
    }, 30000, 200);
    const runlog = (await api('GET', `/api/v1/noderoles/${failed.id}`)).body.runlog;
    assert.match(runlog, /exit code 3/);
    assert.match(runlog, /before/);
    assert.doesNotMatch(runlog, /after/);
    await server.stop();
  });
});
