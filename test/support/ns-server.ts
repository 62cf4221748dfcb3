// A real `fulcrum server` process inside a lab namespace, serving DHCP/TFTP/HTTP on its boot
// address there, with its own embedded PostgreSQL (on the namespace's loopback) and its API on a
// unix socket the test process can reach.
import fs from 'node:fs';
import path from 'node:path';
import type { Lab, Namespace, LabProcess } from '../../src/lab/lab.js';
import { serverArgv } from '../../src/paths.js';
import { unixApi, type UnixApi } from './unix-api.js';
import { waitFor } from './server.js';

export interface NsServer { api: UnixApi; proc: LabProcess; dataDir: string; stop(): Promise<void> }

/** `dataDir`: reuse a previous server's data directory (a restart). */
export async function startServerIn(lab: Lab, ns: Namespace, bootAddress: string, extra: string[] = [], dataDir = lab.makeDir('fulcrum')): Promise<NsServer> {
  const sock = path.join(dataDir, 'api.sock');
  const password = 'lab-admin-password';
  const proc = ns.spawn(process.execPath, serverArgv([
    '--data-dir', dataDir, '--listen', `unix:${sock}`, '--boot-address', bootAddress, ...extra,
  ]), { env: { ...process.env, FULCRUM_ADMIN_PASSWORD: password }, label: `fulcrum server in ${ns.name}` });
  fs.rmSync(sock, { force: true });
  await waitFor('the server in the namespace to listen', async () => {
    if (!proc.running) throw new Error(`fulcrum server exited: ${proc.output().slice(-3000)}`);
    return fs.existsSync(sock) && /provisioning on/.test(proc.output());
  }, 60000, 100);
  const api = await unixApi(sock, password);
  return {
    api, proc, dataDir,
    async stop() { await proc.stop({ signal: 'SIGTERM', timeoutMs: 20000 }); },
  };
}
