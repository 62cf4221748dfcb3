// Power and BMC control (DESIGN.md §3, docs/power.md): the module's public surface.
export {
  BOOT_DEVICES, PowerError, redact,
  type BootDevice, type BootOverride, type NextBootOptions, type PowerAction, type PowerDriver, type PowerErrorDetails, type PowerState,
} from './driver.js';
export {
  DEFAULT_POWER_POLICY, VerifiedPowerDriver, backoffDelay, resolvePolicy, verifiedPower,
  type PowerEvent, type PowerPolicy, type ResolvedPowerPolicy,
} from './verified.js';
export { IpmiDriver, ipmitoolArgv, type IpmiConfig } from './ipmi.js';
export { RedfishDriver, type RedfishConfig } from './redfish.js';
export { VmDriver, type VmPowerConfig } from './vm.js';
export {
  POWER_DRIVERS, PowerSettingsSchema, createPowerDriver, parsePowerSettings, powerControl, redactPowerConfig,
  type PowerConfig, type PowerDriverName,
} from './registry.js';
