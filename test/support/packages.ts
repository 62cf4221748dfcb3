// Suites that need system packages install them through the project's own script (as root), and
// fail with the script's message otherwise: never a silent skip.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { projectRoot } from '../../src/paths.js';

const run = promisify(execFile);

export async function ensurePackages(...groups: string[]): Promise<void> {
  const script = path.join(projectRoot, 'scripts', 'install-system-packages.sh');
  try {
    await run('sh', [script, ...groups], { timeout: 15 * 60_000, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    throw new Error(`system packages for ${groups.join(', ')} are missing and could not be installed (exit ${e.code}): ${(e.stderr || e.stdout || '').trim().slice(-2000)}`);
  }
}
