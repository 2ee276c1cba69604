import { isIPv6 } from 'node:net';

/**
 * The version of an IP address literal: 4, 6, or 0 when the text is neither (a DNS
 * name, say), as `net.isIP` answers. Only text with a colon is tried as IPv6:
 * `net.isIP` runs its IPv6 pattern on everything that is not IPv4, and V8 compiles a
 * pattern at its first use and again, to machine code, at its second. Node.js's DNS
 * lookup makes the first use for a DNS name in `consulServers.hosts`; a second one
 * before it cost ~2 ms more of start-up.
 */
export function ipVersion(text: string): 0 | 4 | 6 {
  if (text.includes(':')) return isIPv6(text) ? 6 : 0;
  return isIPv4(text) ? 4 : 0;
}

/** A dotted-decimal IPv4 address: four parts from 0 to 255, without leading zeros (as `net.isIPv4`). */
export function isIPv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every(isOctet);
}

function isOctet(part: string): boolean {
  if (part.length === 0 || part.length > 3 || (part.length > 1 && part[0] === '0')) return false;
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return Number(part) <= 255;
}
