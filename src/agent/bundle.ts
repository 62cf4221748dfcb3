// A job as a shell bundle (the agent parses no JSON): run with `sh` in an empty directory, it
// writes `env` (job metadata), `scripts/<name>` (the role's scripts), `attribs/<name>` (each
// attrib value: strings raw, anything else as JSON) and `bin/` (the helpers role scripts call,
// the same for every runtime; a runtime adds its own `fulcrum-reboot`). Heredoc delimiters are
// random per bundle, so no content can end a heredoc early.
import crypto from 'node:crypto';
import type { RunInput } from '../annealer/run-input.js';

export const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const SAFE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function scriptsOf(input: RunInput): Array<[string, string]> {
  const scripts = (input.role.jig_config as { scripts?: Record<string, string> }).scripts ?? {};
  return Object.entries(scripts).filter(([name]) => SAFE.test(name)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The helpers on a role script's PATH (docs/agent.md), as file name → POSIX sh text. */
export const HELPERS: Readonly<Record<string, string>> = {
  'fulcrum-attr': '#!/bin/sh\ncat "$FULCRUM_DIR/attribs/$1" 2>/dev/null || { echo "fulcrum-attr: no attrib $1" >&2; exit 1; }\n',
  'fulcrum-wall': '#!/bin/sh\nprintf "%s" "$2" > "$FULCRUM_DIR/wall/$1"\n',
  // Idempotent file writes: a second run with the same input changes nothing and says so.
  'fulcrum-put': `#!/bin/sh
# fulcrum-put FILE: write stdin to FILE only when it differs (a symlink is replaced by the file); prints "wrote: FILE" or "unchanged: FILE".
mkdir -p "$(dirname "$1")" && cat > "$1.fulcrum-new" || exit 1
if [ -f "$1" ] && [ ! -L "$1" ] && cmp -s "$1" "$1.fulcrum-new"; then rm -f "$1.fulcrum-new"; echo "unchanged: $1"
else mv "$1.fulcrum-new" "$1" && echo "wrote: $1"; fi
`,
};

export function jobBundle(job: number, input: RunInput): string {
  const eof = `FULCRUM_EOF_${crypto.randomBytes(12).toString('hex')}`;
  const file = (path: string, content: string) => `cat > ${shellQuote(path)} <<'${eof}'\n${content}${content.endsWith('\n') || content === '' ? '' : '\n'}${eof}\n`;
  const env = [
    `FULCRUM_JOB=${job}`, `FULCRUM_ROLE=${shellQuote(input.role.name)}`, `FULCRUM_NODE=${shellQuote(input.node.name)}`,
    `FULCRUM_NODE_ID=${input.node.id}`, `FULCRUM_DEPLOYMENT=${shellQuote(input.deployment.name)}`, `FULCRUM_NODEROLE=${input.noderole.id}`,
    `export FULCRUM_JOB FULCRUM_ROLE FULCRUM_NODE FULCRUM_NODE_ID FULCRUM_DEPLOYMENT FULCRUM_NODEROLE`,
  ].join('\n') + '\n';
  const parts = ['# fulcrum job bundle\nset -e\nmkdir -p scripts attribs bin\n', file('env', env)];
  for (const [name, text] of Object.entries(HELPERS)) parts.push(file(`bin/${name}`, text));
  parts.push('chmod +x bin/*\n');
  for (const [name, content] of scriptsOf(input)) parts.push(file(`scripts/${name}`, content));
  for (const [name, value] of Object.entries(input.attribs)) {
    if (!SAFE.test(name)) continue;
    parts.push(file(`attribs/${name}`, typeof value === 'string' ? value : JSON.stringify(value)));
  }
  return parts.join('');
}

/** `key=value` lines (the agent's request bodies); values may contain '='. */
export function parseKeyValues(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out.set(line.slice(0, i).trim(), line.slice(i + 1).replace(/\r$/, ''));
  }
  return out;
}
