// Rebooting into a new bootenv, on a namespace node running the real agent: a role asks for a
// reboot into `install-kx` → the bootenv switches with the job's completion → the agent waits
// until Fulcrum says the new boot files are served → it downloads the kernel and initrds the
// node's iPXE script names and hands them to kexec with the rendered command line. The node's
// "kexec" is a recorder (a namespace node shares the host's kernel: a real kexec would replace
// the machine running the tests); FULCRUM_REBOOT likewise records instead of rebooting. A job
// asking for an unknown bootenv fails naming it, and the agent does not reboot.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withLab, udhcpc } from '../src/lab/lab.js';
import { projectRoot } from '../src/paths.js';
import { run } from '../src/lab/processes.js';
import { ensurePackages } from './support/packages.js';
import { startServerIn } from './support/ns-server.js';
import { waitFor } from './support/server.js';

before(async () => { await ensurePackages('net'); });

const AGENT = path.join(projectRoot, 'src', 'agent', 'fulcrum-agent.sh');

test('reboot into a new bootenv: served first, then kexec of exactly what the iPXE script names (recorded kexec on a namespace node)', async () => {
  await withLab(async (lab) => {
    const srv = await lab.namespace('srv');
    const lan = await lab.bridge('lan');
    await lab.link(srv, lan, { ifaceA: 'eth0', addressA: '10.87.0.1/24' });
    const server = await startServerIn(lab, srv, '10.87.0.1');
    const api = server.api;
    assert.equal((await api('POST', '/api/v1/subnets', { name: 'lan', cidr: '10.87.0.0/24', server_address: '10.87.0.1', pools: [{ first: '10.87.0.100', last: '10.87.0.200' }], probe: false })).status, 201);
    const kx = path.join(server.dataDir, 'boot', 'kx');
    fs.mkdirSync(kx, { recursive: true });
    fs.writeFileSync(path.join(kx, 'vmlinuz'), Buffer.alloc(300_000, 7));
    fs.writeFileSync(path.join(kx, 'a.img'), 'first-initrd|');
    fs.writeFileSync(path.join(kx, 'b.img'), 'second-initrd');
    const be = await api('POST', '/api/v1/bootenvs', { name: 'install-kx', kexec: true, kernel: 'kx/vmlinuz', initrds: ['kx/a.img', 'kx/b.img'], boot_params: 'console=ttyS0 fulcrum.test={{ node.name }} ro' });
    assert.equal(be.status, 201, JSON.stringify(be.body));
    assert.equal(be.body.kexec, true);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'go-install', jig: 'script', jig_config: { scripts: { '10-go.sh': 'echo switching\nfulcrum-reboot install-kx\n' } } })).status, 201);
    assert.equal((await api('POST', '/api/v1/roles', { name: 'go-nowhere', jig: 'script', jig_config: { scripts: { '10-go.sh': 'fulcrum-reboot no-such-bootenv\n' } } })).status, 201);

    // The node: a namespace on the lab bridge, with a recording kexec and reboot.
    const ns = await lab.namespace('node');
    await lab.link(ns, lan, { ifaceA: 'eth0' });
    assert.match((await udhcpc(ns, 'eth0', { timeoutMs: 30000 })).lease.address, /^10\.87\.0\.1\d\d$/);
    const state = lab.makeDir('agent-state');
    const calls = path.join(state, 'kexec-calls');
    const kexec = path.join(lab.makeDir('bin'), 'kexec');
    // -l: record the arguments and what the files hold; -e: record, then end the agent as a real kexec would.
    fs.writeFileSync(kexec, `#!/bin/sh\nif [ "$1" = -l ]; then echo "load $*" >> ${calls}; wc -c < "$2" >> ${calls}; for a; do case $a in --initrd=*) cat "\${a#--initrd=}" >> ${calls}; echo >> ${calls};; esac; done; else echo "exec $*" >> ${calls}; kill -9 $PPID; fi\n`, { mode: 0o755 });
    const agent = ns.spawn('sh', [AGENT, '--api', 'http://10.87.0.1:8091', '--state', state], {
      env: { PATH: process.env.PATH, FULCRUM_MACHINE_UUID: '87878787-0000-4000-8000-000000000001', FULCRUM_KEXEC: kexec, FULCRUM_REBOOT: `touch ${state}/rebooted` },
      label: 'agent in node',
    });
    const node = await waitFor('the agent to register', async () => ((await api('GET', '/api/v1/nodes?provider=metal')).body as any[])[0], 30000, 200)
      .catch((e) => { throw new Error(`${e.message}\n${agent.output()}`); });

    // A job asking for an unknown bootenv fails, naming it; the agent stays (no reboot).
    assert.equal((await api('POST', '/api/v1/deployments', { name: 'kx' })).status, 201);
    assert.equal((await api('POST', '/api/v1/noderoles', { role: 'go-nowhere', node: node.name, deployment: 'kx' })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments/kx/commit')).status, 200);
    const failed = await waitFor('go-nowhere to fail', async () => {
      const nr = ((await api('GET', '/api/v1/noderoles?role=go-nowhere')).body as any[])[0];
      return nr?.state === 'ERROR' && nr;
    }, 30000, 200);
    assert.match((await api('GET', `/api/v1/noderoles/${failed.id}`)).body.runlog, /no-such-bootenv.*does not exist/);
    assert.equal(fs.existsSync(path.join(state, 'rebooted')), false);
    assert.equal(fs.existsSync(calls), false, 'no kexec');
    assert.equal(agent.running, true, 'the agent keeps working');
    assert.equal((await api('GET', `/api/v1/nodes/${node.name}`)).body.bootenv, 'discovery');
    // A node with a noderole in ERROR gets no more work: the operator removes the bad binding.
    assert.equal((await api('DELETE', `/api/v1/noderoles/${failed.id}`)).status, 204);

    // The real switch: the bootenv changes with the job, then the agent kexecs into it.
    assert.equal((await api('POST', '/api/v1/noderoles', { role: 'go-install', node: node.name, deployment: 'kx' })).status, 201);
    assert.equal((await api('POST', '/api/v1/deployments/kx/commit')).status, 200);
    await waitFor('the agent to kexec', async () => fs.existsSync(calls) && fs.readFileSync(calls, 'utf8').includes('exec -e'), 60000, 200)
      .catch((e) => { throw new Error(`${e.message}\n${agent.output()}`); });
    const recorded = fs.readFileSync(calls, 'utf8').split('\n');
    assert.match(recorded[0], new RegExp(`^load -l ${state}/kexec/kernel --initrd=${state}/kexec/initrd --command-line=console=ttyS0 fulcrum.test=${node.name.replace(/\./g, '\\.')} ro$`));
    assert.equal(recorded[1].trim(), '300000', 'the whole kernel was downloaded');
    assert.equal(recorded[2], 'first-initrd|second-initrd', 'the initrds, concatenated in order');
    assert.equal(fs.existsSync(path.join(state, 'rebooted')), false, 'kexec, not a firmware reboot');
    const n = (await api('GET', `/api/v1/nodes/${node.name}`)).body;
    assert.equal(n.bootenv, 'install-kx');
    const nr = ((await api('GET', '/api/v1/noderoles?role=go-install')).body as any[])[0];
    assert.equal(nr.state, 'ACTIVE');
    const switched = ((await api('GET', `/api/v1/events?type=node.bootenv&node=${node.name}`)).body as any[]);
    assert.deepEqual(switched.map((e) => [e.payload.from, e.payload.to, e.payload.served]), [['discovery', 'install-kx', true]]);
    await waitFor('the agent to end', async () => !agent.running, 5000, 100);
    await server.stop();
  });
});

test('the agent installs itself as a systemd service that systemd-analyze accepts', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-agent-root-'));
  try {
    const r = await run(['sh', AGENT, '--api', 'http://10.0.0.1:8091/', '--state', '/var/lib/fulcrum-agent', '--install-service', '--root', root]);
    assert.match(r.stderr, /installed .*fulcrum-agent\.service/);
    const unit = fs.readFileSync(path.join(root, 'etc/systemd/system/fulcrum-agent.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/sbin\/fulcrum-agent --api http:\/\/10\.0\.0\.1:8091 --state \/var\/lib\/fulcrum-agent$/m);
    assert.match(unit, /^Restart=always$/m);
    assert.match(unit, /^WantedBy=multi-user\.target$/m);
    assert.match(unit, /^After=network-online\.target$/m);
    assert.equal(fs.statSync(path.join(root, 'usr/local/sbin/fulcrum-agent')).mode & 0o111, 0o111, 'the installed agent is executable');
    assert.equal(fs.readFileSync(path.join(root, 'usr/local/sbin/fulcrum-agent'), 'utf8'), fs.readFileSync(AGENT, 'utf8'));
    assert.equal(fs.existsSync(path.join(root, 'var')), false, 'nothing written to the state directory at install time');
    // systemd's own checker, with ExecStart pointed into the test root (verify has no --root for commands in 252).
    const copy = path.join(root, 'fulcrum-agent.service');
    fs.writeFileSync(copy, unit.replace('ExecStart=/usr/local/sbin/', `ExecStart=${root}/usr/local/sbin/`));
    const v = await run(['systemd-analyze', 'verify', '--man=no', copy], { check: false });
    assert.equal(v.code, 0, `systemd-analyze verify: ${v.stdout}${v.stderr}`);
    assert.equal(v.stderr.trim(), '');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
