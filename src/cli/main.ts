// The `fulcrum` command: wiring of every subcommand (docs/cli.md). Behaviour lives in the
// modules it imports; this file reads flags, calls the API and prints.
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Client } from './client.js';
import { configPath, readConfig, resolveTarget, writeConfig } from './config.js';
import { converge } from './converge.js';
import { CliError, describeError, exitCodeOf } from './errors.js';
import { tailEvents } from './events.js';
import { parseFilters, readBody } from './input.js';
import { FORMATS, render, type Format } from './output.js';
import { DEFAULT_DATA_DIR, DEFAULT_LISTEN, runServer } from './serve.js';

/** Object collections of the API (docs/api.md "Objects") and whether the CLI may write them. */
export const KINDS: Array<{ kind: string; what: string; writable: boolean }> = [
  { kind: 'nodes', what: 'nodes (machines under management)', writable: true },
  { kind: 'roles', what: 'roles', writable: true },
  { kind: 'deployments', what: 'deployments', writable: true },
  { kind: 'deployment-roles', what: 'per-deployment role configuration', writable: true },
  { kind: 'noderoles', what: 'noderoles (role bindings on nodes)', writable: true },
  { kind: 'attribs', what: 'attribs', writable: true },
  { kind: 'profiles', what: 'profiles', writable: true },
  { kind: 'users', what: 'users', writable: true },
  { kind: 'webhooks', what: 'webhooks', writable: true },
  { kind: 'jobs', what: 'jobs (runs of noderoles; read-only)', writable: false },
  { kind: 'content-packs', what: 'imported content packs', writable: true },
  { kind: 'subnets', what: 'DHCP subnets', writable: true },
  { kind: 'reservations', what: 'DHCP reservations (MAC -> address)', writable: true },
  { kind: 'leases', what: 'DHCP leases (read; delete frees one)', writable: true },
  { kind: 'bootenvs', what: 'bootenvs (what nodes boot next)', writable: true },
  { kind: 'networks', what: 'networks (category, conduit, VLAN, ranges, router; docs/networks.md)', writable: true },
  { kind: 'network-ranges', what: 'address ranges of networks', writable: true },
  { kind: 'network-routers', what: 'routers of networks (lowest pref is the default route)', writable: true },
  { kind: 'network-allocations', what: 'addresses allocated to nodes (create allocates, delete frees)', writable: true },
  { kind: 'dns-zones', what: 'DNS zones served (forward and reverse; docs/dns.md)', writable: true },
  { kind: 'dns-name-filters', what: 'DNS name filters (matcher + name template -> records for node addresses)', writable: true },
  { kind: 'dns-records', what: 'static DNS records', writable: true },
  { kind: 'dns-push-targets', what: 'DNS servers Fulcrum pushes its records to (RFC 2136)', writable: true },
  { kind: 'services', what: 'the service registry (internal services; external ones you register)', writable: true },
];

interface GlobalOptions { output: Format; endpoint?: string; token?: string }

const out = (s: string) => { if (s) process.stdout.write(s); };
const err = (s: string) => { if (s) process.stderr.write(s); };

function integer(min: number) {
  return (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`must be a whole number >= ${min}`);
    return Number(v);
  };
}
const collect = (v: string, prev: string[]) => [...prev, v];
const seg = (key: string) => encodeURIComponent(key);

function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

async function clientFor(cmd: Command): Promise<{ client: Client; format: Format }> {
  const g = globals(cmd);
  const target = resolveTarget({ endpoint: g.endpoint, token: g.token }, process.env, await readConfig(configPath()));
  return { client: new Client(target), format: g.output };
}

function objectCommands(program: Command, kind: string, what: string, writable: boolean): void {
  const c = program.command(kind).description(`list, show${writable ? ', create, update and delete' : ''} ${what}`);
  const base = `/api/v1/${kind}`;

  c.command('list')
    .description(`list ${kind}`)
    .option('--filter <key=value>', 'exact-match filter on a field (repeatable)', collect, [])
    .option('--limit <n>', 'at most this many (server default 100, max 1000)', integer(1))
    .option('--offset <n>', 'skip this many', integer(0))
    .action(async (opts: { filter: string[]; limit?: number; offset?: number }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const res = await client.get<unknown[]>(base, { ...parseFilters(opts.filter), limit: opts.limit, offset: opts.offset });
      out(render(res.body, format, kind));
      if (format === 'table') {
        const shown = Array.isArray(res.body) ? res.body.length : 0;
        const total = Number(res.headers.get('x-total-count') ?? NaN);
        if (shown === 0) err(`no ${kind}${Number.isFinite(total) && total > 0 ? ` at offset ${opts.offset ?? 0} (${total} in all)` : ''}\n`);
        else if (Number.isFinite(total) && total > shown) {
          const from = (opts.offset ?? 0) + 1;
          err(`${from}-${from + shown - 1} of ${total} shown; page with --limit and --offset\n`);
        }
      }
    });

  c.command('show')
    .description(`show one of ${kind} by id, uuid${kind === 'noderoles' || kind === 'jobs' ? '' : ' or name'}`)
    .argument('<key>')
    .action(async (key: string, _opts: unknown, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const res = await client.get(`${base}/${seg(key)}`);
      out(render(res.body, format, kind));
      const etag = res.headers.get('etag');
      if (etag && format === 'table') err(`etag: ${etag}\n`);
    });

  if (!writable) return;

  const bodyOptions = (sub: Command) => sub
    .option('-f, --file <file>', 'JSON or YAML file holding the object ("-" reads standard input)')
    .option('--set <key=value>', 'set a field; the value is parsed as JSON when it can be, dotted keys set nested fields (repeatable)', collect, []);

  bodyOptions(c.command('create').description(`create one of ${kind}`))
    .action(async (opts: { file?: string; set: string[] }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const res = await client.post(base, await readBody(opts));
      out(render(res.body, format, kind));
    });

  bodyOptions(c.command('update').description(`change one of ${kind} with a JSON merge patch`).argument('<key>'))
    .option('--if-match <etag>', 'only if the object is still at this version (from `show`); else 412')
    .action(async (key: string, opts: { file?: string; set: string[]; ifMatch?: string }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const headers: Record<string, string> = {};
      if (opts.ifMatch) headers['if-match'] = opts.ifMatch;
      const res = await client.request('PATCH', `${base}/${seg(key)}`, { body: await readBody(opts), headers });
      out(render(res.body, format, kind));
    });

  c.command('delete')
    .description(`delete one of ${kind}`)
    .argument('<key>')
    .action(async (key: string, _opts: unknown, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      await client.request('DELETE', `${base}/${seg(key)}`);
      if (format === 'table') out(`deleted ${kind} ${key}\n`);
    });
}

function count(v: unknown): number {
  if (Array.isArray(v)) return v.length;
  if (typeof v === 'number') return v;
  if (typeof v === 'object' && v !== null) return Object.keys(v).length;
  return 0;
}

export function buildProgram(): Command {
  const program = new Command('fulcrum')
    .description('Fulcrum: bare metal to coordinated cluster')
    .addOption(new Option('-o, --output <format>', 'output format').choices(FORMATS).default('table'))
    .option('--endpoint <url>', 'API endpoint (else FULCRUM_ENDPOINT, the config file, http://127.0.0.1:7780)')
    .option('--token <token>', 'API token (else FULCRUM_TOKEN, the config file)')
    .showHelpAfterError('(run with --help for usage)');

  program.command('server')
    .description('run the Fulcrum server (API, annealer, event stream) with its own PostgreSQL, or DATABASE_URL')
    .option('--data-dir <dir>', 'where the embedded database and files live', DEFAULT_DATA_DIR)
    .option('--listen <host:port>', 'address of the API (or unix:/path/to/socket)', DEFAULT_LISTEN)
    .option('--boot-address <ip>', 'serve DHCP, TFTP and HTTP boot on this address of the machine')
    .option('--boot-port <port>', 'HTTP boot port on the boot address', '8091')
    .option('--no-dhcp', 'with --boot-address: do not serve DHCP (TFTP and HTTP only)')
    .option('--sample-content', 'import the content packs shipped with Fulcrum (content/) at start')
    .option('--dns-listen <host:port>', 'serve DNS (UDP and TCP) for the zones in the store on this address, e.g. 0.0.0.0:53 (docs/dns.md)')
    .option('--dns-forwarder <host:port>', 'with --dns-listen: relay names outside the served zones to this resolver (else REFUSED)')
    .action(async (opts: { dataDir: string; listen: string; bootAddress?: string; bootPort: string; dhcp: boolean; sampleContent?: boolean; dnsListen?: string; dnsForwarder?: string }) => runServer(opts));

  program.command('image')
    .description('boot images Fulcrum builds itself')
    .command('build')
    .description('build an image: discovery (kernel + initramfs with the agent, from Debian packages)')
    .allowUnknownOption(true)
    .helpOption(false)
    .argument('[args...]', 'discovery [--out DIR] [--cache DIR] [--data-dir DIR] [--module NAME]... [--no-agent] [--force] [--json]')
    .action(async (args: string[]) => {
      const { runImageBuild } = await import('../images/discovery.js');
      process.exitCode = await runImageBuild(args);
    });

  program.command('login')
    .description('log in and save the endpoint and token in the config file')
    .option('--user <name>', 'user name', 'admin')
    .option('--password <password>', 'password (else FULCRUM_PASSWORD)')
    .action(async (opts: { user: string; password?: string }, cmd: Command) => {
      const g = globals(cmd);
      const file = configPath();
      const target = resolveTarget({ endpoint: g.endpoint }, { ...process.env, FULCRUM_TOKEN: undefined }, { endpoint: (await readConfig(file)).endpoint });
      const password = opts.password ?? process.env.FULCRUM_PASSWORD;
      if (!password) throw new CliError('no password: give --password PW or set FULCRUM_PASSWORD');
      const client = new Client({ endpoint: target.endpoint });
      const res = await client.post<{ token?: string; user?: string }>('/api/v1/login', { user: opts.user, password });
      if (typeof res.body?.token !== 'string') throw new CliError(`the server at ${target.endpoint} answered the login without a token`);
      await writeConfig(file, { endpoint: target.endpoint, token: res.body.token });
      out(`logged in to ${target.endpoint} as ${res.body.user ?? opts.user}; token saved in ${file}\n`);
    });

  for (const k of KINDS) objectCommands(program, k.kind, k.what, k.writable);

  program.command('dns')
    .description('the records the DNS server answers with (docs/dns.md)')
    .command('records')
    .description('list the computed records: name filters, static records and zone apex, per zone')
    .option('--zone <zone>', 'only this zone')
    .option('--name <name>', 'only this name')
    .action(async (opts: { zone?: string; name?: string }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const res = await client.get<{ zones: Array<{ name: string; serial: number; records: string[] }>; problems: string[] }>('/api/v1/dns/records', { zone: opts.zone, name: opts.name });
      if (format !== 'table') return out(render(res.body, format));
      for (const z of res.body.zones) out(`; zone ${z.name} serial ${z.serial}\n${z.records.map((r) => r + '\n').join('')}`);
      for (const p of res.body.problems) err(`problem: ${p}\n`);
    });

  program.commands.find((c) => c.name() === 'dns-push-targets')!.command('push')
    .description('push the zone to this target now (RFC 2136), replacing every record Fulcrum owns there')
    .argument('<target>', 'push target name or id')
    .action(async (target: string, _opts: unknown, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const res = await client.post(`/api/v1/dns-push-targets/${seg(target)}/push`, {});
      out(render(res.body, format));
    });

  program.commands.find((c) => c.name() === 'networks')!.command('bind')
    .description("allocate a node's address on a network and bind the network's role (network-<name>)")
    .argument('<network>', 'network name or id')
    .argument('<node>', 'node name, id or uuid')
    .option('--address <ip>', 'this address (else: the admin host part, else the first free)')
    .option('--range <name>', 'allocate from this range (default: "host", else the first with bound leases)')
    .option('--deployment <deployment>', 'deployment of the binding (default: the node\'s)')
    .option('--commit', 'commit the binding at once (it runs without a deployment commit)')
    .action(async (network: string, node: string, opts: { address?: string; range?: string; deployment?: string; commit?: boolean }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const res = await client.post(`/api/v1/networks/${seg(network)}/nodes`, { node, ...opts });
      out(render(res.body, format));
    });

  program.command('bind')
    .description('bind a role to a node (and the parents it requires)')
    .argument('<role>', 'role name or id')
    .argument('<node>', 'node name, id or uuid')
    .option('--deployment <deployment>', 'deployment (default: the node\'s)')
    .action(async (role: string, node: string, opts: { deployment?: string }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const body: Record<string, string> = { role, node };
      if (opts.deployment) body.deployment = opts.deployment;
      const res = await client.post('/api/v1/noderoles', body);
      out(render(res.body, format, 'noderoles'));
    });

  for (const [verb, what] of [['commit', 'commit a deployment: its PROPOSED noderoles start converging'],
    ['propose', 'send a deployment back to proposed: no new work starts in it']] as const) {
    program.command(verb)
      .description(what)
      .argument('<deployment>', 'deployment name or id')
      .action(async (deployment: string, _opts: unknown, cmd: Command) => {
        const { client, format } = await clientFor(cmd);
        const res = await client.post(`/api/v1/deployments/${seg(deployment)}/${verb}`);
        out(render(res.body ?? { deployment, action: verb }, format, 'deployments'));
      });
  }

  program.command('retry')
    .description('retry a noderole in ERROR (back to TODO when its parents are ACTIVE)')
    .argument('<noderole>', 'noderole id or uuid')
    .action(async (noderole: string, _opts: unknown, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const res = await client.post(`/api/v1/noderoles/${seg(noderole)}/retry`);
      out(render(res.body ?? { noderole, action: 'retry' }, format, 'noderoles'));
    });

  const power = program.command('power').description('node power through its BMC or VM driver (docs/power.md)');
  power.command('set')
    .description('set a node\'s power settings (driver ipmi, redfish or vm); the password is sealed and never shown again')
    .argument('<node>', 'node name, id or uuid')
    .option('-f, --file <file>', 'JSON or YAML file holding the settings ("-" reads standard input)')
    .option('--set <key=value>', 'set a field, e.g. --set driver=ipmi --set address=10.0.0.5 (repeatable)', collect, [])
    .option('--password-env <var>', 'take the password from this environment variable (keeps it out of shell history)')
    .action(async (node: string, opts: { file?: string; set: string[]; passwordEnv?: string }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const body = await readBody(opts);
      if (opts.passwordEnv) {
        const pw = process.env[opts.passwordEnv];
        if (!pw) throw new CliError(`--password-env: environment variable ${opts.passwordEnv} is not set or empty`);
        body.password = pw;
      }
      const res = await client.request('PUT', `/api/v1/nodes/${seg(node)}/power`, { body });
      out(render(res.body, format));
    });
  power.command('show')
    .description('show a node\'s power settings (secrets as ***) and the last confirmed state')
    .argument('<node>', 'node name, id or uuid')
    .action(async (node: string, _opts: unknown, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      out(render((await client.get(`/api/v1/nodes/${seg(node)}/power`)).body, format));
    });
  for (const [action, what] of [['status', 'read the power state from the BMC'], ['on', 'power on (verified)'], ['off', 'hard power off (verified)'],
    ['cycle', 'power off, then on (each verified)'], ['pxe', 'boot from the network next time'], ['disk', 'boot from disk next time']] as const) {
    const sub = power.command(action).description(what).argument('<node>', 'node name, id or uuid');
    if (action === 'pxe' || action === 'disk') sub.option('--persistent', 'for every later boot, not only the next one');
    sub.action(async (node: string, opts: { persistent?: boolean }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const body: Record<string, unknown> = { action };
      if (opts.persistent) body.persistent = true;
      const res = await client.post<Record<string, unknown>>(`/api/v1/nodes/${seg(node)}/power/actions`, body);
      const b = res.body ?? {};
      if (format !== 'table') return out(render(b, format));
      out(`${node}: ${action}${b.state ? ` -> ${String(b.state)}` : ' set'} (${String(b.elapsed_ms)} ms)\n`);
    });
  }

  program.command('content')
    .description('content packs')
    .command('import')
    .description('validate a content-pack directory and import it (idempotent)')
    .argument('<path>', 'the pack directory (holding pack.yaml)')
    .action(async (dir: string, _opts: unknown, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const { readPack } = await import('../content/pack.js');
      const bundle = await readPack(path.resolve(dir));
      const res = await client.post<Record<string, unknown>>('/api/v1/content-packs', bundle);
      const b = res.body ?? {};
      if (format !== 'table') return out(render(b, format));
      out(`imported content pack ${String(b.name)} ${String(b.version)}: ${count(b.roles)} roles, ${count(b.attribs)} attribs, ` +
        `${count(b.profiles)} profiles (${b.changed ? 'changed' : 'unchanged'})\n`);
    });

  // Ansible's dynamic-inventory protocol: `--list` prints every group, `--host` one host's vars.
  program.command('ansible')
    .description('Ansible integration (docs/content-packs.md "The ansible jig")')
    .command('inventory')
    .description('the deployment\'s nodes as an Ansible dynamic inventory (JSON)')
    .option('--deployment <deployment>', 'only this deployment\'s nodes')
    .option('--list', 'every group and host (the default)')
    .option('--host <host>', 'one host\'s variables')
    .action(async (opts: { deployment?: string; host?: string }, cmd: Command) => {
      const { client } = await clientFor(cmd);
      const res = await client.get<Record<string, any>>(`/api/v1/ansible/inventory${opts.deployment ? `?deployment=${seg(opts.deployment)}` : ''}`);
      const inv = res.body ?? {};
      out(JSON.stringify(opts.host ? inv._meta?.hostvars?.[opts.host] ?? {} : inv, null, 2) + '\n');
    });

  program.command('sim')
    .description('simulation')
    .command('nodes')
    .description('create simulated nodes (alive, provider sim)')
    .requiredOption('--count <n>', 'how many', integer(1))
    .option('--deployment <deployment>', 'deployment to put them in')
    .action(async (opts: { count: number; deployment?: string }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const body: Record<string, unknown> = { count: opts.count };
      if (opts.deployment) body.deployment = opts.deployment;
      const res = await client.post('/api/v1/sim/nodes', body);
      out(render(res.body, format, 'nodes'));
    });

  program.command('anneal')
    .description('show the annealer summary: counts per state, running jobs, failed noderoles')
    .option('--deployment <deployment>', 'only this deployment')
    .action(async (opts: { deployment?: string }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const res = await client.get<Record<string, unknown>>('/api/v1/anneal', { deployment: opts.deployment });
      const s = res.body ?? {};
      if (format !== 'table') return out(render(s, format));
      out(['finished', 'working', 'scheduled', 'blocked', 'failed', 'proposed', 'total'].map((k) => `${k} ${String(s[k] ?? 0)}`).join('  ') + '\n');
      if (Array.isArray(s.running) && s.running.length) out(`\nrunning:\n${render(s.running, 'table', 'jobs')}`);
      if (Array.isArray(s.errors) && s.errors.length) out(`\nfailed:\n${render(s.errors, 'table', 'noderoles')}`);
    });

  program.command('converge')
    .description('wait until a deployment (default: all) has converged, showing progress; exit 0 converged, 1 failed, 2 timeout')
    .argument('[deployment]', 'deployment name or id')
    .option('--timeout <seconds>', 'give up after this long (0: never)', integer(0), 1800)
    .action(async (deployment: string | undefined, opts: { timeout: number }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      process.exitCode = await converge(client, { deployment, timeout: opts.timeout, format, out, err, tty: process.stderr.isTTY === true, columns: process.stderr.columns });
    });

  program.command('events')
    .description('follow the event stream (Ctrl-C to stop)')
    .option('--type <type>', 'event types, prefix match, comma separated (e.g. noderole.,node.created)')
    .option('--deployment <deployment>', 'only events of this deployment')
    .option('--node <node>', 'only events of this node')
    .option('--since <id>', 'start after this event id')
    .action(async (opts: { type?: string; deployment?: string; node?: string; since?: string }, cmd: Command) => {
      const { client, format } = await clientFor(cmd);
      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await tailEvents(client, {
        query: { type: opts.type, deployment: opts.deployment, node: opts.node, since: opts.since },
        format, write: out, note: (s) => err(`${s}\n`), signal: abort.signal,
      });
      process.exitCode = 0;
    });

  return program;
}

async function main(): Promise<void> {
  // `fulcrum events | head` closes our stdout: that is the reader saying it has seen enough.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  process.on('unhandledRejection', (e) => {
    for (const l of describeError(e)) process.stderr.write(l + '\n');
    process.exit(exitCodeOf(e));
  });
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    for (const l of describeError(e)) process.stderr.write(l + '\n');
    process.exitCode = exitCodeOf(e);
  }
}

await main();
