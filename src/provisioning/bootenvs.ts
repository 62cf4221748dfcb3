// Bootenvs (DESIGN.md §3): what a node boots next. Each is a kernel, initrds, a boot-parameter
// template and per-node templates keyed by path, all rendered at fetch time in a sandboxed
// Liquid engine (no file system, no includes, bounded work). Nothing rendered touches disk.
import { sandboxedLiquid, templateError as parseError } from '../content/sandbox.js';
import type { Sql } from '../store/db.js';

export interface Bootenv {
  name: string; description: string; netboot: boolean; kernel: string | null; initrds: string[];
  boot_params: string; templates: Array<{ path: string; contents: string }>; required_params: string[];
  /** The agent may boot it with kexec instead of a firmware reboot. */
  kexec: boolean;
}

/** A content pack cannot read files or run code: no fs, no includes, output and work bounded. */
const liquid = sandboxedLiquid({ parseLimit: 1e6, renderLimit: 1000, memoryLimit: 64e6 });

/** Parse without rendering: the error message when `template` is not valid Liquid, else null. */
export function templateError(template: string): string | null {
  return parseError(liquid, template);
}

export async function render(template: string, context: Record<string, unknown>): Promise<string> {
  return liquid.parseAndRender(template, context);
}

const DEFAULT_IPXE = `#!ipxe
{% if bootenv.kernel %}kernel {{ server.http }}/{{ bootenv.kernel }}{% for i in bootenv.initrds %} initrd={{ i | split: "/" | last }}{% endfor %} {{ params }}
{% for i in bootenv.initrds %}initrd {{ server.http }}/{{ i }}
{% endfor %}boot
{% else %}echo Fulcrum: bootenv {{ bootenv.name }} has no kernel
sleep 30
reboot
{% endif %}`;

/** Built in: boot from disk, the discovery ramdisk, and what an unknown machine gets. */
export const BUILTIN_BOOTENVS: Bootenv[] = [
  {
    name: 'local', description: 'Boot from the local disk', netboot: false, kernel: null, initrds: [], boot_params: '',
    templates: [{ path: 'ipxe', contents: '#!ipxe\necho Fulcrum: {{ node.name }} boots from its disk\nsanboot --no-describe --drive 0x80 || exit\n' }],
    required_params: [], kexec: false,
  },
  {
    name: 'discovery', description: 'The Fulcrum discovery ramdisk: registers the machine and runs its jobs', netboot: true,
    kernel: 'discovery/vmlinuz', initrds: ['discovery/initrd.img'],
    boot_params: 'console=ttyS0 console=tty0 fulcrum.api={{ server.api }} fulcrum.mac={{ mac }} quiet',
    templates: [], required_params: [], kexec: true,
  },
  {
    name: 'unknown', description: 'What a machine Fulcrum does not know yet boots: discovery', netboot: true,
    kernel: 'discovery/vmlinuz', initrds: ['discovery/initrd.img'],
    boot_params: 'console=ttyS0 console=tty0 fulcrum.api={{ server.api }} fulcrum.mac={{ mac }} quiet',
    templates: [], required_params: [], kexec: true,
  },
];

export async function ensureBuiltinBootenvs(sql: Sql): Promise<void> {
  for (const b of BUILTIN_BOOTENVS) {
    await sql.query(
      `INSERT INTO bootenvs (name, description, netboot, kernel, initrds, boot_params, templates, required_params, content_pack, kexec)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'builtin', $9) ON CONFLICT (name) DO NOTHING`,
      [b.name, b.description, b.netboot, b.kernel, b.initrds, b.boot_params, JSON.stringify(b.templates), b.required_params, b.kexec]);
  }
}

export async function findBootenv(sql: Sql, name: string): Promise<Bootenv | null> {
  const r = await sql.query(`SELECT name, description, netboot, kernel, initrds, boot_params, templates, required_params, kexec FROM bootenvs WHERE name = $1`, [name]);
  return r.rowCount ? r.rows[0] : null;
}

export interface BootContext {
  mac: string;
  node: { id: number; name: string; uuid: string; bootenv: string; hints: Record<string, unknown> } | null;
  bootenv: Bootenv;
  server: { http: string; api: string; tftp: string };
}

/**
 * The file at `path` for this context, or null. Required params missing → a script that says
 * so on the node's console instead of a broken boot.
 */
export async function renderBootFile(ctx: BootContext, path: string): Promise<string | null> {
  const params = ctx.node?.hints ?? {};
  const missing = ctx.bootenv.required_params.filter((p) => params[p] === undefined);
  const base = { mac: ctx.mac, node: ctx.node, server: ctx.server, params: '', hints: params };
  if (missing.length && path === 'ipxe') {
    return `#!ipxe\necho Fulcrum: node ${ctx.node?.name ?? ctx.mac} cannot boot bootenv ${ctx.bootenv.name}: missing parameter(s) ${missing.join(', ')}\necho Set them as node hints, then reboot.\nsleep 60\nreboot\n`;
  }
  const bootParams = await render(ctx.bootenv.boot_params, base);
  const full = { ...base, params: bootParams, bootenv: ctx.bootenv };
  const own = ctx.bootenv.templates.find((t) => t.path === path);
  if (own) return render(own.contents, full);
  if (path === 'ipxe' && ctx.bootenv.netboot) return render(DEFAULT_IPXE, full);
  return null;
}
