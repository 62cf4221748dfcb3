// What every power driver offers (DESIGN.md §3 "Power and BMC"), and the error operators see.
// Drivers send one command and report what the BMC says; retries, backoff and "did the power state
// really change" live in one place for all of them (verified.ts).

export type PowerState = 'on' | 'off';
export type BootDevice = 'pxe' | 'disk';
export const BOOT_DEVICES: readonly BootDevice[] = ['pxe', 'disk'];

export interface NextBootOptions {
  /** Keep the device for every later boot (IPMI options=persistent, Redfish Continuous). Default: next boot only. */
  persistent?: boolean;
}

/** The boot override as the BMC reports it back (used to verify nextBoot). */
export interface BootOverride {
  /** 'none' when no override is set; other strings are devices Fulcrum does not set (cdrom, bios...). */
  device: BootDevice | 'none' | string;
  /** undefined when the BMC does not report it reliably (ipmi_sim, a flag marked invalid). */
  persistent: boolean | undefined;
}

export type PowerAction = 'status' | 'on' | 'off' | 'cycle' | 'next boot' | 'boot override';

export interface PowerDriver {
  /** 'ipmi', 'redfish', 'vm'. */
  readonly kind: string;
  /** Who is being driven, for messages; never contains a secret. E.g. "BMC 10.0.0.5 (ipmi)". */
  readonly target: string;
  status(): Promise<PowerState>;
  /** Power on. Drivers send the command; the wrapper checks first whether it is needed. */
  on(): Promise<void>;
  /** Hard power off (not an ACPI request the OS may ignore). */
  off(): Promise<void>;
  /** Off, then on, as one BMC command. Only sent while the node is on (IPMI: no effect when off). */
  cycle(): Promise<void>;
  nextBoot(dev: BootDevice, opts?: NextBootOptions): Promise<void>;
  /** Read back the boot override, when the BMC can report it. */
  bootOverride?(): Promise<BootOverride>;
}

export interface PowerErrorDetails {
  target: string;
  action: PowerAction;
  /** false for problems another attempt cannot fix: bad credentials, bad configuration, unsupported. */
  retryable: boolean;
  /** The node the target belongs to, when known (prefixes the message). */
  node?: string;
  /** The last power state observed, when one was. */
  observed?: PowerState;
  attempts?: number;
  cause?: unknown;
}

/**
 * An error meant for operators. The message is "[node N: ]<target>: <detail>", so it names the
 * node or BMC, the action and what was observed; `detail` is the part after the target.
 */
export class PowerError extends Error {
  readonly detail: string;
  readonly target: string;
  readonly node: string | undefined;
  readonly action: PowerAction;
  readonly retryable: boolean;
  readonly observed: PowerState | undefined;
  readonly attempts: number | undefined;

  constructor(detail: string, details: PowerErrorDetails) {
    super(`${details.node ? `node ${details.node}: ` : ''}${details.target}: ${detail}`,
      details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'PowerError';
    this.detail = detail;
    this.target = details.target;
    this.node = details.node;
    this.action = details.action;
    this.retryable = details.retryable;
    this.observed = details.observed;
    this.attempts = details.attempts;
  }
}

/**
 * Replace every secret in `text` by "***". Drivers pass BMC output and library errors through this
 * before they reach an error or a log, so a BMC that echoes a password cannot leak it.
 */
export function redact(text: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 1) out = out.split(s).join('***');
  }
  return out;
}

/** The last `max` characters of a tool's output, on one line, for an error message. */
export function outputTail(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `…${flat.slice(-max)}`;
}
