// Request bodies for create/update: a JSON or YAML file (`--file`, `-` for stdin) with
// `--set key=value` pairs laid over it, and `--filter key=value` query pairs for list.
import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { CliError } from './errors.js';

type Obj = Record<string, unknown>;

function splitPair(pair: string, flag: string): [string, string] {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new CliError(`${flag} "${pair}" must look like key=value`);
  return [pair.slice(0, eq), pair.slice(eq + 1)];
}

/** A --set value: JSON when it parses (numbers, true/false/null, objects, arrays, "quoted"), else the raw string. */
export function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Apply `key=value` pairs to an object. A dotted key sets a nested field
 * (`hints.rack=r12` → {hints: {rack: "r12"}}), creating objects on the way.
 */
export function applySets(base: Obj, pairs: string[]): Obj {
  const out: Obj = structuredClone(base);
  for (const pair of pairs) {
    const [key, raw] = splitPair(pair, '--set');
    const path = key.split('.');
    if (path.some((p) => p === '')) throw new CliError(`--set "${pair}": key "${key}" has an empty part`);
    let at: Obj = out;
    for (const p of path.slice(0, -1)) {
      const next = at[p];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) at[p] = {};
      at = at[p] as Obj;
    }
    at[path[path.length - 1]] = parseValue(raw);
  }
  return out;
}

/** `--filter k=v` pairs as exact-match query parameters (values stay strings). */
export function parseFilters(pairs: string[]): Record<string, string> {
  const q: Record<string, string> = {};
  for (const pair of pairs) {
    const [k, v] = splitPair(pair, '--filter');
    q[k] = v;
  }
  return q;
}

/** Parse a file's text as JSON, or YAML (a superset); it must hold one object. */
export function parseObjectText(text: string, source: string): Obj {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    try {
      value = YAML.parse(text);
    } catch (e) {
      throw new CliError(`${source} is neither JSON nor YAML: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CliError(`${source} must hold one object (a JSON or YAML mapping)`);
  }
  return value as Obj;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The body of create/update: the file (if any), then every --set on top. */
export async function readBody(opts: { file?: string; set?: string[] }): Promise<Obj> {
  let base: Obj = {};
  if (opts.file) {
    let text: string;
    try {
      text = opts.file === '-' ? await readStdin() : await readFile(opts.file, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read ${opts.file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    base = parseObjectText(text, opts.file === '-' ? 'standard input' : opts.file);
  }
  const sets = opts.set ?? [];
  if (!opts.file && sets.length === 0) throw new CliError('nothing to send: give --file FILE (JSON or YAML) and/or --set key=value');
  return applySets(base, sets);
}
