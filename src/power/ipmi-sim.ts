// A real IPMI BMC for tests and labs: OpenIPMI's ipmi_sim in a lab namespace, whose chassis is a
// QEMU process run by ipmi-sim-chassis.sh (docs/power.md "Testing with ipmi_sim").
import fs from 'node:fs';
import path from 'node:path';
import type { LabProcess, Namespace } from '../lab/lab.js';
import { projectRoot } from '../paths.js';

export const CHASSIS_SCRIPT = path.join(projectRoot, 'src', 'power', 'ipmi-sim-chassis.sh');

export interface IpmiSimOptions {
  /** Address ipmi_sim listens on (must exist in the namespace, or 127.0.0.1). */
  address: string;
  /** UDP port. Default 623. */
  port?: number;
  username: string;
  password: string;
  /** Directory for lan.conf, the command file, ipmi_sim's state and the chassis state. */
  dir: string;
  /**
   * The chassis: argv that starts the machine (e.g. a lab VM, behind `ip netns exec NS` when its tap
   * lives elsewhere). The chassis script appends -boot and -pidfile. Default: an empty QEMU.
   */
  launch?: readonly string[];
}

export interface IpmiSim {
  process: LabProcess;
  address: string;
  port: number;
  /** The chassis state directory: qemu.pid, boot, calls.log, and the refuse / fail-count switches. */
  chassisDir: string;
  /** The chassis program's log, one call per line (without timestamps). */
  calls(): string[];
  /** PID of the chassis's QEMU when it is running. */
  qemuPid(): number | undefined;
  /** QEMU's argv when it is running. */
  qemuArgv(): string[] | undefined;
  /** Make the chassis acknowledge power commands and ignore them (true), or obey again (false). */
  refuse(on: boolean): void;
  /** Make the next `n` chassis set commands fail. */
  failNext(n: number): void;
}

function quoteConf(s: string): string {
  if (/["\\\n]/.test(s)) throw new TypeError(`ipmi_sim configuration value ${JSON.stringify(s)} cannot contain quotes, backslashes or newlines`);
  return `"${s}"`;
}

/** lan.conf for one BMC at 0x20 with one administrator and the QEMU chassis program. */
export function ipmiSimLanConf(o: { address: string; port: number; username: string; password: string; chassisDir: string }): string {
  for (const p of [CHASSIS_SCRIPT, o.chassisDir]) {
    if (/\s/.test(p)) throw new TypeError(`ipmi_sim: path ${p} must not contain spaces (chassis_control is split on them)`);
  }
  return [
    'name "fulcrumsim"',
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr ${o.address} ${o.port}`,
    '    priv_limit admin',
    '    allowed_auths_callback none md2 md5 straight',
    '    allowed_auths_user none md2 md5 straight',
    '    allowed_auths_operator none md2 md5 straight',
    '    allowed_auths_admin none md2 md5 straight',
    '    guid a123456789abcdefa123456789abcdef',
    '  endlan',
    `  chassis_control "/bin/sh ${CHASSIS_SCRIPT} ${o.chassisDir}"`,
    // user number, enabled, name, password, max privilege, max sessions, allowed auths
    `  user 2 true ${quoteConf(o.username)} ${quoteConf(o.password)} admin 10 none md2 md5 straight`,
    '',
  ].join('\n');
}

/** ipmi_sim command file: the BMC management controller and nothing else. */
export const IPMI_SIM_COMMANDS = [
  'mc_setbmc 0x20',
  'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr',
  'sel_enable 0x20 50 0x0a',
  'mc_enable 0x20',
  '',
].join('\n');

/** Start ipmi_sim in `ns`. It answers once the caller's first ipmitool command gets through. */
export function startIpmiSim(ns: Namespace, o: IpmiSimOptions): IpmiSim {
  const port = o.port ?? 623;
  const chassisDir = path.join(o.dir, 'chassis');
  const stateDir = path.join(o.dir, 'state');
  fs.mkdirSync(chassisDir, { recursive: true });
  fs.mkdirSync(stateDir, { recursive: true });
  const lanConf = path.join(o.dir, 'lan.conf');
  const commands = path.join(o.dir, 'sim.emu');
  // The password is in this file, as in any ipmi_sim setup: keep it private.
  fs.writeFileSync(lanConf, ipmiSimLanConf({ address: o.address, port, username: o.username, password: o.password, chassisDir }), { mode: 0o600 });
  fs.writeFileSync(commands, IPMI_SIM_COMMANDS);
  if (o.launch) {
    if (o.launch.some((a) => a.includes('\n'))) throw new TypeError('ipmi_sim chassis launch arguments cannot contain newlines');
    fs.writeFileSync(path.join(chassisDir, 'launch'), o.launch.join('\n') + '\n');
  }
  const proc = ns.spawn('ipmi_sim', ['-c', lanConf, '-f', commands, '-s', stateDir, '-n'], { label: `ipmi_sim in ${ns.name}` });
  const file = (name: string) => path.join(chassisDir, name);
  const qemuPid = (): number | undefined => {
    try {
      const pid = Number(fs.readFileSync(file('qemu.pid'), 'utf8').trim());
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes(file('qemu.pid')) ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    process: proc,
    address: o.address,
    port,
    chassisDir,
    calls: () => {
      try {
        return fs.readFileSync(file('calls.log'), 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^\S+ /, ''));
      } catch {
        return [];
      }
    },
    qemuPid,
    qemuArgv: () => {
      const pid = qemuPid();
      if (pid === undefined) return undefined;
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
      } catch {
        return undefined;
      }
    },
    refuse: (on) => { if (on) fs.writeFileSync(file('refuse'), ''); else fs.rmSync(file('refuse'), { force: true }); },
    failNext: (n) => fs.writeFileSync(file('fail-count'), `${n}\n`),
  };
}
