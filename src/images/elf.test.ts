import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { elfDeps } from './elf.js';

test('interpreter and needed libraries of a system program, as readelf reads them', () => {
  const file = fs.realpathSync('/bin/ls');
  const d = elfDeps(fs.readFileSync(file), file);
  assert.equal(d.interpreter, '/lib64/ld-linux-x86-64.so.2');
  const readelf = execFileSync('readelf', ['-d', file], { encoding: 'utf8' });
  const expected = [...readelf.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  assert.ok(expected.includes('libc.so.6'));
  assert.deepEqual(d.needed, expected);
});

test('not ELF, or truncated: a clear error', () => {
  assert.throws(() => elfDeps(Buffer.from('#!/bin/sh\necho hi\n'.padEnd(80)), 'script'), /script is not an ELF file/);
  const head = fs.readFileSync(fs.realpathSync('/bin/ls')).subarray(0, 64);
  assert.throws(() => elfDeps(head, 'ls'), /program headers run past the end/);
  const bad = Buffer.from(fs.readFileSync(fs.realpathSync('/bin/ls')));
  bad.writeUInt16LE(8, 54);
  assert.throws(() => elfDeps(bad, 'ls'), /program header entries of 8 bytes/);
});
