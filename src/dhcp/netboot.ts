// Which boot file a DHCP client gets (DESIGN.md §3 "Netboot"), as a pure function:
// - only PXE / HTTP-boot clients get boot information (option 60 PXEClient / HTTPClient);
// - a known node whose bootenv does not netboot gets none, so it boots from its disk;
// - iPXE (option 77 user class "iPXE" or option 175) gets its per-node script URL, which breaks
//   the chainload loop; firmware gets the iPXE binary for its architecture (option 93).

export type Arch = 'bios' | 'x86-64-efi' | 'arm64-efi' | 'x86-64-http' | 'arm64-http';

/** RFC 4578 §2.1 (erratum 4624) and the IANA registry. 6 is 32-bit x86 UEFI: no binary for it. */
const ARCH_CODES: Record<number, Arch> = {
  0: 'bios', 7: 'x86-64-efi', 9: 'x86-64-efi', 11: 'arm64-efi', 16: 'x86-64-http', 19: 'arm64-http',
};

export function archFrom(option93: number[] | undefined): Arch | null {
  if (!option93?.length) return 'bios';
  for (const code of option93) if (ARCH_CODES[code]) return ARCH_CODES[code];
  return null;
}

/** The iPXE binary per architecture, as a path in the boot tree (Debian's ipxe package layout). */
export const IPXE_BINARIES: Record<Arch, string> = {
  bios: 'ipxe/undionly.kpxe',
  'x86-64-efi': 'ipxe/ipxe.efi',
  'arm64-efi': 'ipxe/arm64-efi/ipxe.efi',
  'x86-64-http': 'ipxe/ipxe.efi',
  'arm64-http': 'ipxe/arm64-efi/ipxe.efi',
};

export interface NetbootRequest {
  mac: string;
  vendorClass?: string;
  userClass?: string[];
  /** Option 175 (iPXE encapsulated options) present. */
  ipxeOptions?: boolean;
  arch?: number[];
}

export interface NetbootContext {
  /** The node's bootenv netboots; null for a machine Fulcrum does not know. */
  knownNodeNetboots: boolean | null;
  /** http://<boot address>:<port>/boot */
  httpBase: string;
  /** The TFTP/next-server address for firmware. */
  nextServer: string;
}

export interface BootInfo {
  /** BOOTP `file`: a TFTP path for firmware, a URL for iPXE and HTTP boot. */
  file: string;
  nextServer: string;
  /** Option 60 to send back (PXE clients ignore offers without it). */
  vendorClass: 'PXEClient' | 'HTTPClient';
  /** Send option 43 sub-option 6 = 8: skip boot-server discovery (LAB-NOTES: saves 2-3 s). */
  skipDiscovery: boolean;
  arch: Arch;
  ipxe: boolean;
}

export const macPath = (mac: string) => mac.toLowerCase().replace(/:/g, '-');

export function isIpxe(r: NetbootRequest): boolean {
  return !!r.ipxeOptions || (r.userClass ?? []).some((u) => u === 'iPXE');
}

export function bootInfo(r: NetbootRequest, ctx: NetbootContext): BootInfo | null {
  const vc = r.vendorClass ?? '';
  const http = vc.startsWith('HTTPClient');
  if (!vc.startsWith('PXEClient') && !http) return null;
  if (ctx.knownNodeNetboots === false) return null;
  const arch = archFrom(r.arch);
  if (!arch) return null;
  const ipxe = isIpxe(r);
  const base = { nextServer: ctx.nextServer, vendorClass: http ? 'HTTPClient' as const : 'PXEClient' as const, skipDiscovery: !http, arch, ipxe };
  if (ipxe) return { ...base, file: `${ctx.httpBase}/nodes/${macPath(r.mac)}/ipxe` };
  if (http) return { ...base, file: `${ctx.httpBase}/${IPXE_BINARIES[arch]}` };
  return { ...base, file: IPXE_BINARIES[arch] };
}
