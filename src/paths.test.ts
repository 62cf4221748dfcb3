import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot, SERVER_NODE_FLAGS, serverArgv } from './paths.js';

test('fulcrum server runs with the same Node flags however it is started (shebang, npm start, launchers)', () => {
  const shebang = fs.readFileSync(path.join(projectRoot, 'bin', 'fulcrum.js'), 'utf8').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S node ${SERVER_NODE_FLAGS.join(' ')}`);
  const start = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).scripts.start as string;
  assert.match(start, new RegExp(`node ${SERVER_NODE_FLAGS.join(' ')} bin/fulcrum\\.js server`));
  assert.deepEqual(serverArgv(['--listen', 'x']), [...SERVER_NODE_FLAGS, path.join(projectRoot, 'bin', 'fulcrum.js'), 'server', '--listen', 'x']);
});
