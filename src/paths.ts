// Where the installed project lives, for files read at run time (migrations, built-in content).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The project root, from both src/ (tsx) and dist/src/ (compiled). */
export const projectRoot = path.basename(path.dirname(here)) === 'dist' ? path.resolve(here, '..', '..') : path.resolve(here, '..');

/**
 * Node flags `fulcrum server` runs with: a 64 MiB young generation (V8's default is 16 MiB). The
 * protocol servers allocate per packet; at 16,000 DORA/s Node spent 9-12 % more CPU with the
 * default (docs/performance.md). The same flags are in bin/fulcrum.js's shebang and `npm start`
 * (src/paths.test.ts checks they agree); V8 takes them only on the command line.
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=64'];

/** The arguments after process.execPath that start `fulcrum server` with `args`, as the product's own launchers do. */
export const serverArgv = (args: string[]): string[] => [...SERVER_NODE_FLAGS, path.join(projectRoot, 'bin', 'fulcrum.js'), 'server', ...args];
