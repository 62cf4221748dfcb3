// The ansible jig (issue 5, item 4) against a real OpenSSH server in a lab namespace and Debian's
// ansible: the core role core-ssh-keys-ansible is a playbook the server runs over SSH, with an
// inventory generated from the deployment and the run data as extra vars; its output streams into
// the job log; the fact it sets comes back into the wall; a failing task is an ERROR with Ansible's
// message; the inventory is also served at /api/v1/ansible/inventory in dynamic-inventory JSON.
//
// Why SSH and not `ansible_connection=local` under `ip netns exec`: SSH is the path production
// takes (nodes that run no agent, the ssh jig's key pair and pinned host keys), and it needs no
// test-only wrapping of the server's child processes; a namespace with sshd is a real remote host.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { withLab } from '../src/lab/lab.js';
import { projectRoot } from '../src/paths.js';
import { readPack } from '../src/content/pack.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net', 'workload'); });

const KEY1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAnsibleJigTestKeyOne op1@site';
const KEY2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAnsibleJigTestKeyTwo op2@site';

test('ansible jig: a core role as a playbook over SSH; inventory, streamed log, wall, failure', { timeout: 300_000 }, async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.91.0.1/24' });
    const server = await startServerIn(lab, srv, '10.91.0.1', ['--no-dhcp']);
    const api = server.api;

    // The node: sshd in its own namespace, authorizing the server's key; a private root directory.
    const target = await lab.namespace('target');
    await lab.link(target, lan, { ifaceA: 'eth0', addressA: '10.91.0.20/24' });
    const dir = lab.makeDir('sshd');
    const root = path.join(dir, 'root');
    fs.mkdirSync(path.join(root, 'root', '.ssh'), { recursive: true });
    // A key the operator put there by hand: outside Fulcrum's block, it must survive.
    fs.writeFileSync(path.join(root, 'root', '.ssh', 'authorized_keys'), 'ssh-rsa AAAAB3NzaC1yc2EHandPlaced hand@placed\n');
    await target.exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_ed25519')]);
    fs.writeFileSync(path.join(dir, 'authorized_keys'), String((await api('GET', '/api/v1/ssh-key')).body), { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'sshd_config'), [
      'Port 22', 'ListenAddress 10.91.0.20', `HostKey ${dir}/host_ed25519`, `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
      'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
    ].join('\n') + '\n');
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const sshd = target.spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { label: 'sshd' });
    await waitFor('sshd listening', async () => /Server listening on 10\.91\.0\.20/.test(sshd.output()), 10000, 100);

    assert.equal((await api('POST', '/api/v1/content-packs', await readPack(path.join(projectRoot, 'content', 'core')))).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments', { name: 'legacy' })).status, 201);
    const node = 'old1.legacy.test';
    assert.equal((await api('POST', '/api/v1/nodes', { name: node, deployment: 'legacy', alive: true, bootenv: 'local',
      hints: { address: '10.91.0.20', 'core-root': root } })).status, 201);
    const bound = await api('POST', '/api/v1/noderoles', { role: 'core-ssh-keys-ansible', node, deployment: 'legacy' });
    assert.equal(bound.status, 201);
    const dr = ((await api('GET', '/api/v1/deployment-roles?deployment=legacy&role=core-ssh-keys-ansible')).body as any[])[0];
    assert.equal((await api('PATCH', `/api/v1/deployment-roles/${dr.id}`, { proposed_data: { core: { ssh: { authorized_keys: [KEY1, KEY2] } } } })).status, 200);

    // The inventory, as Ansible's dynamic inventory (`--list`) shape.
    const inv = (await api('GET', '/api/v1/ansible/inventory?deployment=legacy')).body;
    assert.deepEqual(inv.all.hosts, [node]);
    assert.equal(inv._meta.hostvars[node].ansible_host, '10.91.0.20', 'the node hint address');
    assert.equal(inv._meta.hostvars[node].ansible_user, 'root');
    assert.deepEqual(inv.core_ssh_keys_ansible.hosts, [node], 'a group per bound role');
    assert.deepEqual(inv.deployment_legacy.hosts, [node]);
    assert.ok(!JSON.stringify(inv).includes('id_ed25519'), 'no server-side key paths in the API output');
    assert.equal((await api('GET', '/api/v1/ansible/inventory?deployment=nope')).status, 404);

    assert.equal((await api('POST', '/api/v1/deployments/legacy/commit')).status, 200);
    const ok = await waitFor('core-ssh-keys-ansible ACTIVE', async () => {
      const nr = (await api('GET', `/api/v1/noderoles/${bound.body.id}`)).body;
      if (nr.state === 'ERROR') throw new Error(`ERROR: ${nr.runlog}`);
      return nr.state === 'ACTIVE' && nr;
    }, 120000, 250);
    const file = fs.readFileSync(path.join(root, 'root', '.ssh', 'authorized_keys'), 'utf8');
    assert.match(file, /^ssh-rsa AAAAB3NzaC1yc2EHandPlaced hand@placed$/m, 'lines outside the block are kept');
    assert.match(file, new RegExp(`# BEGIN fulcrum core-ssh-keys\\n${KEY1}\\n${KEY2}\\n# END fulcrum core-ssh-keys`));
    assert.equal(Number(ok.wall.core.ssh.key_count), 2, 'the cacheable fact fulcrum_wall came back at the attrib map path');
    const job = ((await api('GET', `/api/v1/jobs?noderole=${ok.id}`)).body as any[])[0];
    const log = (await api('GET', `/api/v1/jobs/${job.id}`)).body.log as string;
    assert.match(log, /TASK \[The managed block of authorized keys\]/);
    assert.match(log, /PLAY RECAP \*+\n.*old1\.legacy\.test\s+: ok=\d+\s+changed=\d+/);
    const chunks = ((await api('GET', `/api/v1/events?type=job.log&object_kind=job&object_id=${job.id}&limit=1000`)).body as any[]);
    assert.ok(chunks.length >= 2, `output streamed into the job log as it came (${chunks.length} chunks)`);

    // A bad key in the deployment data: the playbook's assertion fails, and the ERROR carries its message.
    assert.equal((await api('PATCH', `/api/v1/deployment-roles/${dr.id}`, { proposed_data: { core: { ssh: { authorized_keys: [KEY1, 'not-a-key'] } } } })).status, 200);
    assert.equal((await api('POST', '/api/v1/deployments/legacy/commit')).status, 200);
    const failed = await waitFor('core-ssh-keys-ansible ERROR', async () => {
      const nr = (await api('GET', `/api/v1/noderoles/${bound.body.id}`)).body;
      return nr.state === 'ERROR' && nr;
    }, 120000, 250);
    assert.match(failed.runlog, /playbook of role core-ssh-keys-ansible failed on old1\.legacy\.test \(ansible-playbook exit 2\)/);
    assert.match(failed.runlog, /not an OpenSSH public key: not-a-key/);
    assert.match(fs.readFileSync(path.join(root, 'root', '.ssh', 'authorized_keys'), 'utf8'), new RegExp(KEY2), 'nothing was written by the failed run');

    // ready-state bound on the node uses the playbook role: it provides core-ssh-keys.
    assert.equal((await api('POST', '/api/v1/noderoles', { role: 'ready-state', node, deployment: 'legacy' })).status, 201);
    const roles = ((await api('GET', `/api/v1/noderoles?node=${node}`)).body as any[]).map((x) => x.role).sort();
    assert.ok(!roles.includes('core-ssh-keys'), `the script role was not bound: ${roles.join(', ')}`);
    assert.ok(roles.includes('core-ntp') && roles.includes('ready-state'));
    await server.stop();
  });
});
