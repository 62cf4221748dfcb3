// Jigs: how a role is executed (DESIGN.md §2). One interface for all of them; the ones that run
// inside the server (noop, test, server) are here. Agent and remote jigs (script, ssh, ansible)
// implement the same interface, answering `async` and finishing the job through the API.
import { getPath, type Data } from '../model/data.js';
import type { RunInput } from './run-input.js';

export type JigResult =
  | { status: 'succeeded'; wall?: Data; log?: string }
  | { status: 'failed'; message: string; wall?: Data; log?: string }
  /** The noderole stays in TRANSITION until POST /api/v1/jobs/:id/complete (rule 7). */
  | { status: 'async'; log?: string };

export interface RunContext {
  job: number;
  input: RunInput;
  /** Aborted when the server stops; a run dropped otherwise (node not alive) finds its job cancelled when it reports. */
  signal: AbortSignal;
}

export interface Jig {
  name: string;
  /**
   * True when the work happens inside the server process: if the server dies mid-run the work
   * died with it, so the run is requeued (or, for a destructive role, failed). Jigs whose work
   * runs elsewhere are left running and re-attached.
   */
  inProcess: boolean;
  run(ctx: RunContext): Promise<JigResult>;
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve, reject) => {
  if (signal.aborted) return reject(new Error('run dropped'));
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('run dropped')); }, { once: true });
});

const noop: Jig = { name: 'noop', inProcess: true, run: async () => ({ status: 'succeeded' }) };

/**
 * Simulated work, configured by data: `test/delay` (ms), `test/fail` (fail every run),
 * `test/fail_times` (fail the first N runs), `test/async` (leave the run to an outside caller),
 * `test/wall` (data to report back).
 */
const testJig: Jig = {
  name: 'test',
  inProcess: true,
  async run({ input, signal }) {
    const d = input.data;
    const delay = Number(getPath(d, 'test/delay') ?? 0);
    if (delay > 0) await sleep(delay, signal);
    const wall = { test: { ran_at: new Date().toISOString(), runs: input.noderole.run_count + 1, ...(getPath(d, 'test/wall') as Data ?? {}) } };
    if (getPath(d, 'test/async')) return { status: 'async', log: 'waiting for an outside caller\n' };
    const failTimes = Number(getPath(d, 'test/fail_times') ?? 0);
    if (getPath(d, 'test/fail') === true || input.noderole.failures < failTimes) {
      return { status: 'failed', message: `test jig asked to fail (role ${input.role.name} on ${input.node.name})`, log: `simulated failure after ${delay} ms\n` };
    }
    return { status: 'succeeded', wall, log: `simulated work for ${delay} ms on ${input.node.name}\n` };
  },
};

/** Role-provided TypeScript run inside Fulcrum, registered by role name. */
export type ServerRoleCode = (ctx: RunContext) => Promise<JigResult>;
const serverRoles = new Map<string, ServerRoleCode>();
export function registerServerRole(role: string, code: ServerRoleCode): void { serverRoles.set(role, code); }

const serverJig: Jig = {
  name: 'server',
  inProcess: true,
  async run(ctx) {
    const code = serverRoles.get(ctx.input.role.name);
    if (!code) return { status: 'failed', message: `role ${ctx.input.role.name} uses the server jig but no server code is registered for it` };
    return code(ctx);
  },
};

/**
 * The role's scripts, run on the node by its agent (src/agent): the run is left to the agent, which
 * claims the job by long-poll and reports back; a dead agent ends in the TRANSITION timeout.
 */
const scriptJig: Jig = { name: 'script', inProcess: false, run: async () => ({ status: 'async' }) };

const jigs = new Map<string, Jig>([noop, testJig, serverJig, scriptJig].map((j) => [j.name, j]));
export function registerJig(jig: Jig): void { jigs.set(jig.name, jig); }
export function jigFor(name: string): Jig | undefined { return jigs.get(name); }
