// Templates written by content packs and operators (bootenv files, DHCP option values, DNS name
// templates) run in a sandboxed Liquid: no file system, no includes or layouts, and bounded parse
// size, render work and memory, so a template can neither read the server's files nor hang it.
import { Liquid, type FS } from 'liquidjs';

export interface SandboxLimits {
  /** Characters of template parsed. */
  parseLimit: number;
  /** Milliseconds of rendering. */
  renderLimit: number;
  /** Bytes a render may allocate (strings and arrays). */
  memoryLimit: number;
}

const NO_FILES: FS = {
  exists: async () => false, existsSync: () => false, readFile: async () => '', readFileSync: () => '', resolve: () => '', fallback: () => undefined,
};

export function sandboxedLiquid(limits: SandboxLimits): Liquid {
  return new Liquid({
    strictFilters: true,
    strictVariables: false,
    relativeReference: false,
    fs: NO_FILES,
    ...limits,
  });
}

/** The first line of the parse error when `template` is not valid Liquid for `liquid`, else null. */
export function templateError(liquid: Liquid, template: string): string | null {
  try { liquid.parse(template); return null; } catch (err) { return (err as Error).message.split('\n')[0]; }
}
