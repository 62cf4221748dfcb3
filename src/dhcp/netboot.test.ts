import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootInfo, archFrom, type NetbootRequest, type NetbootContext } from './netboot.js';

const ctx: NetbootContext = { knownNodeNetboots: null, httpBase: 'http://10.0.0.1:7780/boot', nextServer: '10.0.0.1' };
const mac = '52:54:00:12:34:56';

const cases: Array<[string, NetbootRequest, Partial<NetbootContext>, string | null, string?]> = [
  ['BIOS PXE firmware gets undionly.kpxe over TFTP', { mac, vendorClass: 'PXEClient:Arch:00000:UNDI:002001', arch: [0] }, {}, 'ipxe/undionly.kpxe', 'PXEClient'],
  ['no option 93 is BIOS', { mac, vendorClass: 'PXEClient' }, {}, 'ipxe/undionly.kpxe'],
  ['x86-64 UEFI (7) gets ipxe.efi', { mac, vendorClass: 'PXEClient:Arch:00007:UNDI:003016', arch: [7] }, {}, 'ipxe/ipxe.efi'],
  ['32-bit x86 UEFI (6): no x86-64 binary for it', { mac, vendorClass: 'PXEClient:Arch:00006:UNDI:003016', arch: [6] }, {}, null],
  ['x86-64 UEFI (9) gets ipxe.efi', { mac, vendorClass: 'PXEClient:Arch:00009:UNDI:003016', arch: [9] }, {}, 'ipxe/ipxe.efi'],
  ['ARM64 UEFI (11) gets the arm64 binary', { mac, vendorClass: 'PXEClient:Arch:00011:UNDI:003000', arch: [11] }, {}, 'ipxe/arm64-efi/ipxe.efi'],
  ['UEFI HTTP boot gets a URL and HTTPClient', { mac, vendorClass: 'HTTPClient:Arch:00016:UNDI:003000', arch: [16] }, {}, 'http://10.0.0.1:7780/boot/ipxe/ipxe.efi', 'HTTPClient'],
  ['iPXE by user class gets its node script, not the binary again', { mac, vendorClass: 'PXEClient:Arch:00000:UNDI:002001', userClass: ['iPXE'], arch: [0] }, {}, 'http://10.0.0.1:7780/boot/nodes/52-54-00-12-34-56/ipxe'],
  ['iPXE by option 175 alone', { mac, vendorClass: 'PXEClient:Arch:00007:UNDI:003016', ipxeOptions: true, arch: [7] }, {}, 'http://10.0.0.1:7780/boot/nodes/52-54-00-12-34-56/ipxe'],
  ['not a PXE client: no boot file', { mac, vendorClass: 'dhcpcd-9.4.1:Linux' }, {}, null],
  ['no vendor class: no boot file', { mac }, {}, null],
  ['known node in a local bootenv: no boot file', { mac, vendorClass: 'PXEClient', arch: [0] }, { knownNodeNetboots: false }, null],
  ['known node in a netboot bootenv', { mac, vendorClass: 'PXEClient', arch: [0] }, { knownNodeNetboots: true }, 'ipxe/undionly.kpxe'],
  ['unknown architecture: no boot file rather than a wrong one', { mac, vendorClass: 'PXEClient', arch: [2] }, {}, null],
];

for (const [name, req, over, file, vc] of cases) {
  test(`netboot: ${name}`, () => {
    const info = bootInfo(req, { ...ctx, ...over });
    assert.equal(info?.file ?? null, file);
    if (info) {
      assert.equal(info.nextServer, '10.0.0.1');
      if (vc) assert.equal(info.vendorClass, vc);
      assert.equal(info.skipDiscovery, info.vendorClass === 'PXEClient');
    }
  });
}

test('archFrom takes the first known code of a list', () => {
  assert.equal(archFrom([2, 7]), 'x86-64-efi');
  assert.equal(archFrom([]), 'bios');
  assert.equal(archFrom([99]), null);
});
