import { ConsulEcsError } from '../util/errors.js';
import { isIP } from 'node:net';
import { CONSUL_DATAPLANE_DNS_ADDRESS } from './iptables.js';

/**
 * The resolver reads only this many `nameserver` lines (glibc MAXNS); putting
 * Consul DNS first pushes the last of three existing ones out.
 */
export const RESOLV_CONF_MAX_NAMESERVERS = 3;

/**
 * The content of resolv.conf with Consul DNS as the first nameserver.
 *
 * resolv.conf cannot name a port, so the nameserver is an address (127.0.0.1,
 * where consul-dataplane's DNS proxy listens) and the transparent proxy rules
 * redirect its port 53 to the proxy's port (8600).
 *
 * Every other line (existing nameservers, `search`, `domain`, `options`,
 * comments) is kept, in order; the new line goes just before the first
 * existing nameserver, or at the end when there is none. Other lines naming
 * the same address are dropped, so applying this to its own output changes
 * nothing.
 */
export function consulDnsResolvConf(existing: string, dnsAddress: string = CONSUL_DATAPLANE_DNS_ADDRESS): string {
  const address = dnsAddress.trim();
  if (isIP(address) === 0) {
    throw new ConsulEcsError(
      'tproxy-invalid-config',
      `cannot configure Consul DNS: ${JSON.stringify(dnsAddress)} is not an IP address; resolv.conf nameservers must be IP addresses (the dataplane's DNS proxy listens on ${CONSUL_DATAPLANE_DNS_ADDRESS})`,
    );
  }
  const ours = `nameserver ${address}`;
  const lines = existing.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();

  const kept: string[] = [];
  let insertAt = -1;
  for (const line of lines) {
    const ns = nameserverOf(line);
    if (ns !== undefined) {
      if (insertAt < 0) insertAt = kept.length;
      if (sameAddress(ns, address)) continue;
    }
    kept.push(line);
  }
  if (insertAt < 0) insertAt = kept.length;
  kept.splice(insertAt, 0, ours);
  return kept.join('\n') + '\n';
}

/** The nameserver addresses of a resolv.conf, in order. */
export function resolvConfNameservers(content: string): string[] {
  const out: string[] = [];
  for (const line of content.split(/\r?\n/)) {
    const ns = nameserverOf(line);
    if (ns !== undefined) out.push(ns);
  }
  return out;
}

function nameserverOf(line: string): string | undefined {
  const m = /^\s*nameserver\s+(\S+)/.exec(line);
  return m ? m[1] : undefined;
}

function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
