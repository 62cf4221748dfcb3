import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { configPath, DEFAULT_ENDPOINT, readConfig, resolveTarget, writeConfig } from './config.js';
import { CliError } from './errors.js';

const cfg = { endpoint: 'http://cfg:1', token: 'cfg-token' };

test('flags win over environment, environment over the config file', () => {
  const env = { FULCRUM_ENDPOINT: 'http://env:1', FULCRUM_TOKEN: 'env-token' };
  assert.deepEqual(resolveTarget({ endpoint: 'http://flag:1', token: 'flag-token' }, env, cfg), { endpoint: 'http://flag:1', token: 'flag-token' });
  assert.deepEqual(resolveTarget({}, env, cfg), { endpoint: 'http://env:1', token: 'env-token' });
  assert.deepEqual(resolveTarget({ token: 'flag-token' }, env, cfg), { endpoint: 'http://env:1', token: 'flag-token' });
});

test('the config file is used when nothing else is given, then the default endpoint', () => {
  assert.deepEqual(resolveTarget({}, {}, cfg), { endpoint: 'http://cfg:1', token: 'cfg-token' });
  assert.deepEqual(resolveTarget({}, {}, {}), { endpoint: DEFAULT_ENDPOINT });
  assert.deepEqual(resolveTarget({}, { FULCRUM_ENDPOINT: '' }, {}), { endpoint: DEFAULT_ENDPOINT });
});

test('the saved token goes only to the endpoint it came from', () => {
  assert.deepEqual(resolveTarget({ endpoint: 'http://other:1' }, {}, cfg), { endpoint: 'http://other:1' });
  assert.deepEqual(resolveTarget({}, { FULCRUM_ENDPOINT: 'http://other:1' }, cfg), { endpoint: 'http://other:1' });
  // The same server spelled with a trailing slash still gets it.
  assert.deepEqual(resolveTarget({ endpoint: 'http://cfg:1/' }, {}, cfg), { endpoint: 'http://cfg:1', token: 'cfg-token' });
  // An explicit token is sent wherever asked.
  assert.deepEqual(resolveTarget({ endpoint: 'http://other:1' }, { FULCRUM_TOKEN: 't' }, cfg), { endpoint: 'http://other:1', token: 't' });
});

test('a malformed endpoint is refused with the value named', () => {
  assert.throws(() => resolveTarget({ endpoint: 'localhost:7780' }, {}, {}), (e: Error) => e instanceof CliError && /localhost:7780/.test(e.message));
  assert.throws(() => resolveTarget({ endpoint: 'not a url' }, {}, {}), CliError);
});

test('FULCRUM_CONFIG names the config file, else ~/.config/fulcrum/config.json', () => {
  assert.equal(configPath({ FULCRUM_CONFIG: '/x/c.json' }), '/x/c.json');
  assert.equal(configPath({}), path.join(os.homedir(), '.config', 'fulcrum', 'config.json'));
});

test('the config file is written with mode 0600 and read back; a missing file is empty', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-cli-'));
  const file = path.join(dir, 'sub', 'config.json');
  assert.deepEqual(await readConfig(file), {});
  await writeConfig(file, cfg);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(await readConfig(file), cfg);
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), cfg);
});

test('a corrupt config file is an error that names the file and the way out', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-cli-'));
  const file = path.join(dir, 'config.json');
  await writeFile(file, '{not json');
  await assert.rejects(readConfig(file), (e: Error) => e instanceof CliError && e.message.includes(file) && /fulcrum login/.test(e.message));
  await writeFile(file, '[1]');
  await assert.rejects(readConfig(file), CliError);
});
