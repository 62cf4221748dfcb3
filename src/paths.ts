// Where the installed project lives, for files read at run time (migrations, built-in content).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The project root, from both src/ (tsx) and dist/src/ (compiled). */
export const projectRoot = path.basename(path.dirname(here)) === 'dist' ? path.resolve(here, '..', '..') : path.resolve(here, '..');
