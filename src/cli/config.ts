// Where the CLI talks to and with which token: flags > environment > config file > default.
import { mkdir, readFile, rename, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CliError } from './errors.js';

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:7780';

/** What `fulcrum login` stores. */
export interface CliConfig { endpoint?: string; token?: string }

export interface Target { endpoint: string; token?: string }

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.FULCRUM_CONFIG || path.join(os.homedir(), '.config', 'fulcrum', 'config.json');
}

/** `http://h:1/` and `http://h:1` are the same server. */
export function normalizeEndpoint(endpoint: string): string {
  const trimmed = endpoint.trim();
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new CliError(`endpoint "${endpoint}" is not a URL; give one like ${DEFAULT_ENDPOINT}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`endpoint "${endpoint}" must be an http:// or https:// URL`);
  }
  return trimmed.replace(/\/+$/, '');
}

/**
 * Resolve endpoint and token, each on its own: flags, then FULCRUM_ENDPOINT / FULCRUM_TOKEN,
 * then the config file, then the default endpoint. The token saved in the config file is only
 * sent to the endpoint it was issued by, so `--endpoint other` never leaks it to another server.
 */
export function resolveTarget(
  flags: { endpoint?: string; token?: string },
  env: NodeJS.ProcessEnv,
  config: CliConfig,
): Target {
  const endpoint = normalizeEndpoint(flags.endpoint || env.FULCRUM_ENDPOINT || config.endpoint || DEFAULT_ENDPOINT);
  let token = flags.token || env.FULCRUM_TOKEN || undefined;
  if (!token && config.token && config.endpoint && normalizeEndpoint(config.endpoint) === endpoint) token = config.token;
  return token ? { endpoint, token } : { endpoint };
}

export async function readConfig(file: string): Promise<CliConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new CliError(`config file ${file} is not valid JSON (${(e as Error).message}); delete it and run \`fulcrum login\` again`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CliError(`config file ${file} must hold a JSON object {"endpoint", "token"}; delete it and run \`fulcrum login\` again`);
  }
  const c = parsed as Record<string, unknown>;
  const out: CliConfig = {};
  if (typeof c.endpoint === 'string') out.endpoint = c.endpoint;
  if (typeof c.token === 'string') out.token = c.token;
  return out;
}

/** Written to a temporary file then renamed, mode 0600: the token is a credential. */
export async function writeConfig(file: string, config: CliConfig): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}
