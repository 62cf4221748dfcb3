// A QEMU VM on a lab bridge, for network-boot tests. The tap lives in the bridge's namespace (a
// tap must be in the same namespace as its QEMU), so QEMU runs there too; nothing touches the
// host's interfaces. TCG only: KVM is not usable on this machine kind (LAB-NOTES).
import fs from 'node:fs';
import path from 'node:path';
import type { Bridge, Lab, LabProcess } from '../../src/lab/lab.js';

export interface Vm {
  proc: LabProcess;
  mac: string;
  uuid: string;
  serialLog: string;
  serial(): string;
  stop(): Promise<void>;
}

export interface VmOptions {
  name: string;
  mac: string;
  uuid: string;
  memoryMb?: number;
  /** A raw disk image attached as virtio-blk. */
  disk?: string;
  /** Extra QEMU arguments (e.g. -bios for UEFI). */
  extra?: string[];
}

export interface VmCommand {
  /** The QEMU command, to run inside `ns` (the bridge's namespace, where the tap is). */
  argv: string[];
  ns: Bridge['ns'];
  serialLog: string;
  serial(): string;
}

/** Make the VM's tap on `bridge` and return its QEMU command, for a caller that starts it itself (a BMC chassis). */
export async function vmCommand(lab: Lab, bridge: Bridge, o: VmOptions): Promise<VmCommand> {
  const ns = bridge.ns;
  const tap = `tap${o.name}`.slice(0, 15);
  if (!ns.ifaces.has(tap)) {
    await ns.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
    await ns.ip('link', 'set', 'dev', tap, 'master', bridge.name);
    await ns.ip('link', 'set', 'dev', tap, 'up');
    ns.ifaces.add(tap);
  }
  const dir = lab.makeDir(`vm-${o.name}`);
  const serialLog = path.join(dir, 'serial.log');
  const argv = [
    'qemu-system-x86_64',
    '-nodefaults', '-machine', 'pc', '-accel', 'tcg', '-m', String(o.memoryMb ?? 512), '-smp', '1', '-no-reboot',
    '-nographic', '-vga', 'none', '-monitor', 'none', '-serial', `file:${serialLog}`,
    '-uuid', o.uuid, '-smbios', `type=1,manufacturer=Fulcrum Lab,product=PXE VM,serial=SN-${o.name}`,
    '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=n0,mac=${o.mac},bootindex=1`,
    ...(o.disk ? ['-drive', `file=${o.disk},format=raw,if=virtio,index=0`] : []),
    ...(o.extra ?? []),
  ];
  return { argv, ns, serialLog, serial: () => (fs.existsSync(serialLog) ? fs.readFileSync(serialLog, 'utf8') : '') };
}

export async function startVm(lab: Lab, bridge: Bridge, o: VmOptions): Promise<Vm> {
  const cmd = await vmCommand(lab, bridge, o);
  const proc = cmd.ns.spawn(cmd.argv[0], cmd.argv.slice(1), { label: `vm ${o.name}` });
  return {
    proc, mac: o.mac, uuid: o.uuid, serialLog: cmd.serialLog, serial: cmd.serial,
    async stop() { if (proc.running) await proc.stop({ signal: 'SIGTERM', timeoutMs: 5000 }); },
  };
}
