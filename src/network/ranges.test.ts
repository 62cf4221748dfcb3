// Range rules (docs/networks.md "Ranges"): each bad range is refused naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRange, rangesOverlap } from './ranges.js';

const ok = (r: any) => checkRange({ name: 'host', ...r });

test('a good range, and the legacy names host/dhcp set the lease kinds', () => {
  const h = ok({ first: '10.0.0.10/24', last: '10.0.0.200/24' });
  assert.equal(h.allow_bound_leases, true);
  assert.equal(h.allow_anon_leases, false);
  assert.equal(h.bound_lease_time, 2592000);
  assert.equal(h.anon_lease_time, 60);
  const d = checkRange({ name: 'dhcp', first: '10.0.0.201/24', last: '10.0.0.250/24', anon_lease_time: 0 });
  assert.deepEqual([d.allow_bound_leases, d.allow_anon_leases, d.anon_lease_time], [false, true, 60]);
  const both = checkRange({ name: 'mixed', first: '10.0.0.1/24', last: '10.0.0.2/24', allow_anon_leases: true, bound_lease_time: 3600 });
  assert.deepEqual([both.allow_bound_leases, both.allow_anon_leases, both.bound_lease_time], [true, true, 3600]);
  assert.equal(ok({ first: 'fd00::10/64', last: 'fd00::ffff/64' }).first.family, 6);
});

test('bad ranges name the field', () => {
  const cases: Array<[any, string, RegExp]> = [
    [{ first: '10.0.0.10', last: '10.0.0.20/24' }, 'first', /with its prefix length/],
    [{ first: '10.0.0.10/24', last: 'x' }, 'last', /with its prefix length/],
    [{ first: '10.0.0.10/24', last: 'fd00::1/64' }, 'last', /same type/],
    [{ first: '10.0.0.10/24', last: '10.0.1.20/24' }, 'last', /same subnet/],
    [{ first: '10.0.0.10/24', last: '10.0.0.20/25' }, 'last', /same subnet/],
    [{ first: '10.0.0.30/24', last: '10.0.0.20/24' }, 'first', /comes after last/],
    [{ first: '10.0.0.0/24', last: '10.0.0.20/24' }, 'first', /subnet address/],
    [{ first: '10.0.0.10/24', last: '10.0.0.255/24' }, 'last', /broadcast address/],
    [{ first: '10.0.0.10/24', last: '10.0.0.20/24', bound_lease_time: 30 }, 'bound_lease_time', /at least 60/],
    [{ first: '10.0.0.10/24', last: '10.0.0.20/24', allow_bound_leases: false }, 'allow_bound_leases', /neither bound nor anonymous/],
    [{ name: 'Bad Name', first: '10.0.0.10/24', last: '10.0.0.20/24' }, 'name', /must match/],
  ];
  for (const [input, field, msg] of cases) {
    assert.throws(() => checkRange({ name: 'host', ...input }, 'ranges[0].'), (e: any) => e.field === `ranges[0].${field}` && msg.test(e.message), JSON.stringify(input));
  }
});

test('point-to-point subnets may use every address', () => {
  assert.ok(ok({ first: '10.0.0.0/31', last: '10.0.0.1/31' }));
  assert.ok(ok({ first: '10.0.0.7/32', last: '10.0.0.7/32' }));
});

test('overlap', () => {
  const r = (a: string, b: string) => ok({ first: a, last: b });
  assert.equal(rangesOverlap(r('10.0.0.10/24', '10.0.0.20/24'), r('10.0.0.20/24', '10.0.0.30/24')), true);
  assert.equal(rangesOverlap(r('10.0.0.10/24', '10.0.0.20/24'), r('10.0.0.21/24', '10.0.0.30/24')), false);
  assert.equal(rangesOverlap(r('10.0.0.10/24', '10.0.0.20/24'), r('10.0.0.5/16', '10.0.0.50/16')), true, 'overlap is by address, whatever the prefix');
  assert.equal(rangesOverlap(r('10.0.0.10/24', '10.0.0.20/24'), r('fd00::10/64', 'fd00::20/64')), false);
});
