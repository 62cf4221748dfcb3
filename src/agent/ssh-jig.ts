// The `ssh` jig (DESIGN.md §2): the same job bundle the agent gets, pushed over SSH to a node that
// runs no agent (an existing server joining). Runs from the server with its own key pair
// (<data-dir>/ssh/id_ed25519; GET /api/v1/ssh-key shows the public half to install on nodes).
// Connection from node hints: `ssh-host` (default: the node name), `ssh-user` (root), `ssh-port` (22).
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Jig, JigResult } from '../annealer/jigs.js';
import { jobBundle } from './bundle.js';
import { setPath, type Data } from '../model/data.js';

const run = promisify(execFile);
const WALL = '@@FULCRUM-WALL@@';
const EXIT = '@@FULCRUM-EXIT@@';

/** The remote program: unpack the bundle in a temporary directory, run the scripts in order. */
export function remoteProgram(bundle: string): string {
  return `set -u
D=$(mktemp -d /tmp/fulcrum-job.XXXXXX) || exit 1
cd "$D" || exit 1
mkdir -p scripts attribs wall bin
${bundle}
printf '#!/bin/sh\\ntouch "$FULCRUM_DIR/reboot"\\n' > bin/fulcrum-reboot
chmod +x bin/*
. ./env
code=0
for s in scripts/*; do
  [ -f "$s" ] || continue
  echo "== \${s##*/}"
  FULCRUM_DIR=$D PATH=$D/bin:$PATH sh -e "$s" 2>&1 || { code=$?; break; }
done
[ "$code" -eq 0 ] && [ -e reboot ] && code=64
echo "${WALL}"
for w in wall/*; do [ -f "$w" ] && printf '%s=%s\\n' "\${w##*/}" "$(base64 < "$w" | tr -d '\\n')"; done
echo "${EXIT} $code"
cd / && rm -rf "$D"
`;
}

/** Split what the remote program printed into log, wall values (by attrib name) and exit code. */
export function parseRemoteOutput(out: string): { log: string; wall: Record<string, unknown>; code: number | null } {
  const w = out.lastIndexOf(`${WALL}\n`);
  const e = /@@FULCRUM-EXIT@@ (\d+)\s*$/.exec(out);
  if (w < 0 || !e) return { log: out, wall: {}, code: null };
  const wall: Record<string, unknown> = {};
  for (const line of out.slice(w + WALL.length + 1, e.index).split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    const raw = Buffer.from(line.slice(i + 1), 'base64').toString('utf8');
    try { wall[line.slice(0, i)] = JSON.parse(raw); } catch { wall[line.slice(0, i)] = raw; }
  }
  return { log: out.slice(0, w), wall, code: Number(e[1]) };
}

export async function ensureSshKey(dataDir: string): Promise<{ key: string; knownHosts: string; publicKey: string }> {
  const dir = path.join(dataDir, 'ssh');
  const key = path.join(dir, 'id_ed25519');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  try { await fs.access(key); } catch { await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fulcrum', '-f', key]); }
  return { key, knownHosts: path.join(dir, 'known_hosts'), publicKey: (await fs.readFile(`${key}.pub`, 'utf8')).trim() };
}

export function sshJig(dataDir: string, maps: () => Promise<Map<string, string>>): Jig {
  return {
    name: 'ssh',
    inProcess: true,
    async run({ job, input, signal }): Promise<JigResult> {
      const { key, knownHosts } = await ensureSshKey(dataDir);
      const hints = input.node.hints ?? {};
      const host = String(hints['ssh-host'] ?? input.node.name);
      const user = String(hints['ssh-user'] ?? 'root');
      const port = String(hints['ssh-port'] ?? 22);
      const args = ['-i', key, '-p', port, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new', '-o', `UserKnownHostsFile=${knownHosts}`,
        '-o', 'ConnectTimeout=10', '-o', 'ServerAliveInterval=15', `${user}@${host}`, 'sh', '-s'];
      const out = await new Promise<{ stdout: string; status: number | null; stderr: string }>((resolve) => {
        const child = spawn('ssh', args, { stdio: ['pipe', 'pipe', 'pipe'], signal });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => { stdout += d; });
        child.stderr.on('data', (d) => { stderr += d; });
        child.on('error', (err) => resolve({ stdout, stderr: stderr + err.message, status: null }));
        child.on('close', (status) => resolve({ stdout, stderr, status }));
        child.stdin.end(remoteProgram(jobBundle(job, input)));
      });
      const parsed = parseRemoteOutput(out.stdout);
      if (parsed.code === null) {
        return { status: 'failed', message: `ssh to ${user}@${host}:${port} failed (exit ${out.status}): ${out.stderr.trim().split('\n').slice(-3).join(' / ')}`, log: out.stdout };
      }
      const byMap = await maps();
      let wall: Data = {};
      for (const [name, value] of Object.entries(parsed.wall)) wall = setPath(wall, byMap.get(name) ?? name, value);
      if ((parsed.code & 15) !== 0) {
        const tail = parsed.log.trim().split('\n').slice(-10).join('\n');
        return { status: 'failed', message: `role scripts failed on ${input.node.name} (over ssh) with exit code ${parsed.code}; last output:\n${tail}`, log: parsed.log, wall };
      }
      return { status: 'succeeded', wall, log: parsed.log };
    },
  };
}
