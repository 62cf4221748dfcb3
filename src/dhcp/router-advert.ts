// Answering IPv6 router solicitations on the boot segment (DESIGN.md §3, LAB-NOTES: iPXE waits
// ~16 s for a router advertisement when none comes). Node.js has no raw ICMPv6 sockets, so the
// server runs Debian's radvd on the boot interface, advertising router lifetime 0 and no prefix:
// "there is no IPv6 router here" — enough for firmware to stop waiting, harmless to everything else.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import path from 'node:path';

const run = promisify(execFile);

/** The interface that carries `address` (from `ip -o -4 addr show`). */
export async function interfaceOf(address: string): Promise<string | null> {
  const { stdout } = await run('ip', ['-o', '-4', 'addr', 'show']);
  for (const line of stdout.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(line);
    if (m && m[2] === address) return m[1].replace(/@.*$/, '');
  }
  return null;
}

export function radvdConfig(iface: string): string {
  return `# written by fulcrum: answer router solicitations, advertise no router and no prefix
interface ${iface} {
  AdvSendAdvert on;
  AdvDefaultLifetime 0;
  MinRtrAdvInterval 30;
  MaxRtrAdvInterval 120;
};
`;
}

export interface RouterAdvertiser { stop(): Promise<void> }

/** Start radvd for the boot address's interface; null (with the reason logged) when it cannot run. */
export async function startRouterAdvertiser(address: string, runDir: string, log: (m: string) => void): Promise<RouterAdvertiser | null> {
  const radvd = await run('sh', ['-c', 'command -v radvd']).then((r) => r.stdout.trim(), () => '');
  if (!radvd) {
    log('warning: radvd is not installed, so IPv6 router solicitations on the boot segment go unanswered (iPXE then waits ~16 s); install radvd');
    return null;
  }
  const iface = await interfaceOf(address);
  if (!iface) {
    log(`warning: no interface carries ${address}; router solicitations go unanswered`);
    return null;
  }
  await fs.mkdir(runDir, { recursive: true });
  const conf = path.join(runDir, 'radvd.conf');
  const pid = path.join(runDir, 'radvd.pid');
  await fs.writeFile(conf, radvdConfig(iface));
  await fs.rm(pid, { force: true });
  const child: ChildProcess = spawn(radvd, ['--nodaemon', '--config', conf, '--pidfile', pid, '--logmethod', 'stderr'], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (d) => log(`radvd: ${String(d).trim()}`));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  log(`answering IPv6 router solicitations on ${iface} (radvd, router lifetime 0)`);
  return {
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}
