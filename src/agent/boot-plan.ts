// What a node boots next, read from the iPXE script Fulcrum serves it — the very file the
// firmware would fetch — so a kexec boots exactly what a firmware reboot would (docs/agent.md
// "Rebooting").

const URL_RE = /^[a-z]+:\/\//;

export interface KexecPlan {
  kernel: string;
  initrds: string[];
  /** The kernel command line, without iPXE's `initrd=<name>` arguments. */
  cmdline: string;
}

/**
 * The kernel, initrds and command line of an iPXE script of the form Fulcrum renders (`kernel URL
 * args...`, `initrd URL`, `boot`), or undefined when the script boots no kernel (a local disk
 * boot, a message) — then only a firmware reboot will do.
 */
export function kexecPlanFromIpxe(script: string): KexecPlan | undefined {
  let kernel: string | undefined;
  let cmdline = '';
  const initrds: string[] = [];
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    const [cmd, ...args] = line.split(/\s+/);
    // The image is the first URL; options before it (--name x, -n x) are iPXE's.
    const at = args.findIndex((a) => URL_RE.test(a));
    if (at < 0) continue;
    if (cmd === 'kernel') {
      kernel = args[at];
      cmdline = args.slice(at + 1).filter((a) => !/^initrd=/.test(a)).join(' ');
    } else if (cmd === 'initrd' || cmd === 'module') {
      initrds.push(args[at]);
    }
  }
  if (!kernel || !/^https?:\/\//.test(kernel)) return undefined;
  return { kernel, initrds, cmdline };
}
