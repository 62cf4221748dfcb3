// Layered data (DESIGN.md §2 Attrib): values live at map paths like `etcd/peers` inside JSON
// objects; reading merges layers, lowest first. Pure functions.

export type Data = Record<string, unknown>;

const isObject = (v: unknown): v is Data => typeof v === 'object' && v !== null && !Array.isArray(v);

export function getPath(data: unknown, map: string): unknown {
  let cur: unknown = data;
  for (const key of map.split('/')) {
    if (!isObject(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

/** A copy of `data` with `value` at `map` (undefined removes it). */
export function setPath(data: Data, map: string, value: unknown): Data {
  const [key, ...rest] = map.split('/');
  const out = { ...data };
  if (rest.length === 0) {
    if (value === undefined) delete out[key]; else out[key] = value;
    return out;
  }
  out[key] = setPath(isObject(out[key]) ? (out[key] as Data) : {}, rest.join('/'), value);
  return out;
}

/** Deep merge: objects merge key by key, anything else in `over` replaces. */
export function merge(under: Data, over: Data): Data {
  const out: Data = { ...under };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? merge(out[k] as Data, v) : v;
  return out;
}

export const mergeLayers = (layers: Data[]): Data => layers.reduce(merge, {});

/** Values keyed by attrib name (profiles, hints) placed at their attribs' map paths. */
export function byMap(values: Data, mapOf: (attrib: string) => string | undefined): Data {
  let out: Data = {};
  for (const [name, value] of Object.entries(values)) {
    const map = mapOf(name);
    if (map) out = setPath(out, map, value);
  }
  return out;
}

export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  return v;
}
