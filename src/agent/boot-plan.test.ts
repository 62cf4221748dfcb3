import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kexecPlanFromIpxe } from './boot-plan.js';

test('kexec plan from the iPXE script Fulcrum serves', () => {
  const script = '#!ipxe\nkernel http://10.0.0.1:8091/boot/d/vmlinuz initrd=initrd.img initrd=extra.img console=ttyS0 fulcrum.api=http://10.0.0.1:8091 quiet\ninitrd http://10.0.0.1:8091/boot/d/initrd.img\ninitrd --name extra http://10.0.0.1:8091/boot/d/extra.img\nboot\n';
  assert.deepEqual(kexecPlanFromIpxe(script), {
    kernel: 'http://10.0.0.1:8091/boot/d/vmlinuz',
    initrds: ['http://10.0.0.1:8091/boot/d/initrd.img', 'http://10.0.0.1:8091/boot/d/extra.img'],
    cmdline: 'console=ttyS0 fulcrum.api=http://10.0.0.1:8091 quiet',
  });
});

test('no kexec plan for a script that boots no kernel over HTTP', () => {
  assert.equal(kexecPlanFromIpxe('#!ipxe\necho boots from its disk\nsanboot --no-describe --drive 0x80 || exit\n'), undefined);
  assert.equal(kexecPlanFromIpxe('#!ipxe\nkernel tftp://10.0.0.1/vmlinuz\nboot\n'), undefined);
  assert.equal(kexecPlanFromIpxe(''), undefined);
});
