// How API answers are printed: `-o table` (columns per kind), `-o json` (the API's JSON as is),
// `-o yaml`. Pure string builders; the caller writes them.
import YAML from 'yaml';

export const FORMATS = ['table', 'json', 'yaml'] as const;
export type Format = (typeof FORMATS)[number];

/** The columns a table shows first for each kind; absent ones are dropped (see columnsFor). */
export const COLUMNS: Record<string, string[]> = {
  nodes: ['id', 'name', 'alive', 'available', 'bootenv', 'state', 'deployment'],
  roles: ['id', 'name', 'jig', 'cohort', 'flags', 'requires', 'content_pack'],
  deployments: ['id', 'name', 'state', 'status', 'parent', 'system'],
  'deployment-roles': ['id', 'deployment', 'role'],
  noderoles: ['id', 'node', 'role', 'deployment', 'state', 'blocked_by', 'run_count'],
  attribs: ['id', 'name', 'role', 'map', 'secret'],
  profiles: ['id', 'name', 'description', 'content_pack'],
  users: ['id', 'name', 'capabilities'],
  webhooks: ['id', 'name', 'url', 'active', 'types'],
  jobs: ['id', 'noderole', 'node', 'role', 'jig', 'state', 'started_at', 'finished_at'],
  'content-packs': ['name', 'version', 'description', 'imported_at'],
  events: ['id', 'at', 'type', 'object_kind', 'object_id'],
  subnets: ['id', 'name', 'cidr', 'server_address', 'proxy', 'pools', 'enabled'],
  reservations: ['id', 'mac', 'subnet', 'address', 'hostname', 'node'],
  leases: ['address', 'subnet', 'mac', 'hostname', 'state', 'expires_at'],
  bootenvs: ['id', 'name', 'netboot', 'kernel', 'content_pack'],
};

const MAX_CELL = 60;

type Row = Record<string, unknown>;

const isScalar = (v: unknown) => v === null || ['string', 'number', 'boolean'].includes(typeof v);

/**
 * Columns for a list of rows: the kind's preferred columns that some row has (or, when the API
 * names a reference `<col>_id`, that one); when none match, every scalar top-level field.
 */
export function columnsFor(kind: string | undefined, rows: Row[]): string[] {
  const has = (c: string) => rows.some((r) => Object.hasOwn(r, c));
  const preferred = (kind && COLUMNS[kind]) || [];
  const picked: string[] = [];
  for (const c of preferred) {
    if (has(c)) picked.push(c);
    else if (has(`${c}_id`)) picked.push(`${c}_id`);
  }
  if (picked.length > 0) return picked;
  const seen: string[] = [];
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) if (isScalar(v) && !seen.includes(k)) seen.push(k);
  }
  return seen;
}

/** One table cell: absent → "-", lists joined with commas, blocked_by as "kind:noderole", objects as compact JSON. */
export function cell(value: unknown, column = ''): string {
  if (value === null || value === undefined || value === '') return '-';
  let s: string;
  if (column === 'blocked_by' && typeof value === 'object' && !Array.isArray(value)) {
    const b = value as Row;
    s = b.noderole !== undefined ? `${String(b.kind ?? '?')}:${String(b.noderole)}` : JSON.stringify(value);
  } else if (Array.isArray(value) && value.every(isScalar)) {
    s = value.length ? value.map(String).join(',') : '-';
  } else if (typeof value === 'object') {
    s = JSON.stringify(value);
  } else {
    s = String(value);
  }
  s = s.replace(/\s*\n\s*/g, ' ');
  return s.length > MAX_CELL ? s.slice(0, MAX_CELL - 1) + '…' : s;
}

/** Aligned columns separated by two spaces, upper-case header, no trailing blanks. */
export function renderTable(rows: Row[], columns: string[]): string {
  const grid = [columns.map((c) => c.toUpperCase()), ...rows.map((r) => columns.map((c) => cell(r[c], c)))];
  const widths = columns.map((_, i) => Math.max(...grid.map((line) => [...line[i]].length)));
  return grid
    .map((line) => line.map((v, i) => (i === line.length - 1 ? v : v + ' '.repeat(widths[i] - [...v].length))).join('  ').trimEnd())
    .join('\n') + '\n';
}

/** A single object: scalar fields aligned as `key  value`, then structured and multi-line fields as YAML blocks. */
export function renderObject(obj: Row): string {
  const scalars: Array<[string, string]> = [];
  const blocks: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'string' && v.includes('\n')) blocks.push([k, v]);
    else if (isScalar(v) || v === undefined) scalars.push([k, v === null || v === undefined || v === '' ? '-' : String(v)]);
    else if (Array.isArray(v) && v.every(isScalar)) scalars.push([k, v.length ? v.map(String).join(', ') : '-']);
    else if (typeof v === 'object' && v !== null && Object.keys(v).length === 0) scalars.push([k, Array.isArray(v) ? '[]' : '{}']);
    else if (k === 'blocked_by') scalars.push([k, cell(v, k)]);
    else blocks.push([k, v]);
  }
  const width = Math.max(0, ...scalars.map(([k]) => k.length));
  let out = scalars.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
  if (scalars.length) out += '\n';
  for (const [k, v] of blocks) {
    const body = typeof v === 'string' ? v.replace(/\n$/, '') : YAML.stringify(v).replace(/\n$/, '');
    out += `${k}:\n${body.split('\n').map((l) => `  ${l}`).join('\n')}\n`;
  }
  return out;
}

/** Render any API answer in the chosen format. Arrays become tables, objects key/value listings. */
export function render(value: unknown, format: Format, kind?: string): string {
  if (format === 'json') return JSON.stringify(value, null, 2) + '\n';
  if (format === 'yaml') return YAML.stringify(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '';
    if (!value.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r))) return value.map((v) => cell(v)).join('\n') + '\n';
    const rows = value as Row[];
    return renderTable(rows, columnsFor(kind, rows));
  }
  if (typeof value === 'object' && value !== null) return renderObject(value as Row);
  if (value === undefined) return '';
  return String(value) + '\n';
}
