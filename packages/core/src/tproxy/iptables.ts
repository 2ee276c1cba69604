import { ConsulEcsError } from '../util/errors.js';
import { isIP, isIPv4 } from 'node:net';

/**
 * Transparent proxy traffic redirection for ECS tasks on EC2, as data.
 *
 * The rules are the ones Consul's `sdk/iptables` package builds (IPv4, no dual
 * stack) plus what consul-ecs's mesh-init adds around it: the proxy's
 * readiness port, metrics ports and expose-path ports are kept out of inbound
 * redirection, the health-sync container's user is kept out of outbound
 * redirection, Consul DNS goes to the dataplane's DNS proxy, and the nat
 * POSTROUTING policy is set to ACCEPT.
 */

/** Chain that inbound TCP traffic jumps to from PREROUTING. */
export const PROXY_INBOUND_CHAIN = 'CONSUL_PROXY_INBOUND';
/** Chain that redirects inbound TCP traffic to the proxy's public listener. */
export const PROXY_INBOUND_REDIRECT_CHAIN = 'CONSUL_PROXY_IN_REDIRECT';
/** Chain that outbound TCP traffic jumps to from OUTPUT. */
export const PROXY_OUTPUT_CHAIN = 'CONSUL_PROXY_OUTPUT';
/** Chain that redirects outbound TCP traffic to the proxy's outbound listener. */
export const PROXY_OUTPUT_REDIRECT_CHAIN = 'CONSUL_PROXY_REDIRECT';
/** Chain that sends DNS queries to Consul DNS. */
export const DNS_REDIRECT_CHAIN = 'CONSUL_DNS_REDIRECT';

/** The chains the rules create, in creation order. */
export const TRANSPARENT_PROXY_CHAINS = [
  PROXY_INBOUND_CHAIN,
  PROXY_INBOUND_REDIRECT_CHAIN,
  PROXY_OUTPUT_CHAIN,
  PROXY_OUTPUT_REDIRECT_CHAIN,
  DNS_REDIRECT_CHAIN,
] as const;

/** Envoy's transparent proxy outbound listener port, unless the proxy registration says otherwise. */
export const DEFAULT_TPROXY_OUTBOUND_PORT = 15001;
/** The proxy's public listener port (`proxy.publicListenerPort` default). */
export const DEFAULT_TPROXY_INBOUND_PORT = 20000;
/** The proxy's readiness port (`proxy.healthCheckPort` default), never redirected. */
export const DEFAULT_TPROXY_HEALTH_CHECK_PORT = 22000;
/** The user the consul-dataplane container runs as in the mesh-task module. */
export const DEFAULT_PROXY_UID = '5995';
/** The user the consul-ecs-health-sync container runs as in the mesh-task module. */
export const DEFAULT_HEALTH_SYNC_UID = '5996';
/** Where the dataplane's DNS proxy listens when Consul DNS is enabled. */
export const CONSUL_DATAPLANE_DNS_ADDRESS = '127.0.0.1';
export const CONSUL_DATAPLANE_DNS_PORT = 8600;

/**
 * The ECS task metadata / credentials endpoint and the EC2 instance metadata
 * endpoint. consul-ecs does NOT exclude these by default (their traffic goes
 * through Envoy's passthrough); add them to `excludeOutboundCIDRs` to let the
 * application reach them directly.
 */
export const ECS_METADATA_CIDRS = ['169.254.170.2/32', '169.254.169.254/32'] as const;

/** One iptables command: `iptables -t <table> <args…>`. */
export interface IptablesRule {
  table: 'nat';
  /** The arguments after `-t <table>`. */
  args: string[];
}

/** The argv of a rule, without the `iptables` executable: `['-t', 'nat', …args]`. */
export function iptablesArgv(rule: IptablesRule): string[] {
  return ['-t', rule.table, ...rule.args];
}

/** A rule as a shell-like command line, for messages and logs. */
export function formatIptablesRule(rule: IptablesRule, command = 'iptables'): string {
  return [command, ...iptablesArgv(rule)].join(' ');
}

/**
 * The parts of the proxy service registration (as read back from Consul's
 * catalog, with central config merged) that change the rules. Field names are
 * those of Consul's API.
 */
export interface TransparentProxyServiceInfo {
  Port?: number;
  Proxy?: {
    /** Opaque proxy config: `bind_port`, `envoy_prometheus_bind_addr`, `envoy_stats_bind_addr` are read. */
    Config?: Record<string, unknown> | null;
    Expose?: { Paths?: Array<{ ListenerPort?: number }> | null } | null;
    TransparentProxy?: { OutboundListenerPort?: number } | null;
  } | null;
}

export interface TransparentProxyRulesInput {
  /**
   * The proxy's inbound (public) listener port. Default: `proxyService.Proxy.Config.bind_port`,
   * else `proxyService.Port`, else 20000.
   */
  proxyInboundPort?: number;
  /**
   * The proxy's outbound listener port. Default: `proxyService.Proxy.TransparentProxy.OutboundListenerPort`,
   * else 15001.
   */
  proxyOutboundPort?: number;
  /** The user the proxy runs as; its own traffic is never redirected. Default '5995'. */
  proxyUid?: string | number;
  /** The proxy's readiness port, excluded from inbound redirection. Default 22000. */
  healthCheckPort?: number;
  /** The health-sync container's user, excluded from outbound redirection. Default '5996'; null to leave it out. */
  healthSyncUid?: string | number | null;
  /** `transparentProxy.excludeInboundPorts`. */
  excludeInboundPorts?: readonly number[] | null;
  /** `transparentProxy.excludeOutboundPorts`. */
  excludeOutboundPorts?: readonly number[] | null;
  /** `transparentProxy.excludeOutboundCIDRs`: IPv4 addresses or CIDRs. */
  excludeOutboundCIDRs?: readonly string[] | null;
  /** `transparentProxy.excludeUIDs`: numeric user IDs (or `min-max` ranges). */
  excludeUIDs?: readonly (string | number)[] | null;
  /**
   * Redirect DNS queries sent to the DNS address on port 53 to the dataplane's DNS proxy.
   * `true` means 127.0.0.1:8600 (what consul-dataplane is configured with).
   */
  consulDns?: boolean | { address?: string; port?: number } | null;
  /** The registered proxy service, for the ports it adds. */
  proxyService?: TransparentProxyServiceInfo | null;
}

/**
 * The ordered iptables commands that set up transparent proxy in a task's
 * network namespace. Pure: validates the input and builds data, runs nothing.
 * Throws a ConsulEcsError (`tproxy-invalid-config`) listing every bad value.
 *
 * Exclusions are inserted (`-I`) at the head of their chain, as Consul does, so
 * the last one listed ends up first; duplicates are dropped.
 */
export function transparentProxyRules(input: TransparentProxyRulesInput = {}): IptablesRule[] {
  const problems: string[] = [];
  const svc = input.proxyService ?? undefined;
  const proxyConfig = svc?.Proxy?.Config ?? {};

  // Ports the proxy listens on.
  let inbound = input.proxyInboundPort;
  let inboundField = 'proxyInboundPort';
  if (inbound === undefined) {
    const bindPort = proxyConfig['bind_port'];
    if (bindPort !== undefined && bindPort !== null && bindPort !== 0 && bindPort !== '') {
      inbound = typeof bindPort === 'string' && /^\d+$/.test(bindPort) ? Number(bindPort) : (bindPort as number);
      inboundField = 'proxy config bind_port';
    } else if (svc?.Port) {
      inbound = svc.Port;
      inboundField = 'proxy service Port';
    } else {
      inbound = DEFAULT_TPROXY_INBOUND_PORT;
    }
  }
  const inboundPort = checkPort(inbound, inboundField, problems);

  let outbound = input.proxyOutboundPort;
  let outboundField = 'proxyOutboundPort';
  if (outbound === undefined) {
    const fromSvc = svc?.Proxy?.TransparentProxy?.OutboundListenerPort;
    if (fromSvc) {
      outbound = fromSvc;
      outboundField = 'proxy service TransparentProxy.OutboundListenerPort';
    } else {
      outbound = DEFAULT_TPROXY_OUTBOUND_PORT;
    }
  }
  const outboundPort = checkPort(outbound, outboundField, problems);

  const proxyUid = checkUid(input.proxyUid ?? DEFAULT_PROXY_UID, 'proxyUid', problems, false);

  // Inbound exclusions, in consul-ecs's order: the user's, the readiness port,
  // then the ports the proxy configuration opens (metrics, stats, expose paths).
  const inboundExcludes: string[] = [];
  (input.excludeInboundPorts ?? []).forEach((p, i) => push(inboundExcludes, checkPort(p, `excludeInboundPorts[${i}]`, problems)));
  push(inboundExcludes, checkPort(input.healthCheckPort ?? DEFAULT_TPROXY_HEALTH_CHECK_PORT, 'healthCheckPort', problems));
  for (const key of ['envoy_prometheus_bind_addr', 'envoy_stats_bind_addr']) {
    const addr = proxyConfig[key];
    if (addr === undefined || addr === null || addr === '') continue;
    push(inboundExcludes, portOfHostPort(addr, `proxy config ${key}`, problems));
  }
  (svc?.Proxy?.Expose?.Paths ?? []).forEach((p, i) => {
    if (p.ListenerPort) push(inboundExcludes, checkPort(p.ListenerPort, `proxy service Expose.Paths[${i}].ListenerPort`, problems));
  });

  const outboundPortExcludes: string[] = [];
  (input.excludeOutboundPorts ?? []).forEach((p, i) => push(outboundPortExcludes, checkPort(p, `excludeOutboundPorts[${i}]`, problems)));

  const cidrExcludes: string[] = [];
  (input.excludeOutboundCIDRs ?? []).forEach((c, i) => push(cidrExcludes, checkCidr(c, `excludeOutboundCIDRs[${i}]`, problems)));

  const uidExcludes: string[] = [];
  (input.excludeUIDs ?? []).forEach((u, i) => push(uidExcludes, checkUid(u, `excludeUIDs[${i}]`, problems, true)));
  if (input.healthSyncUid !== null) push(uidExcludes, checkUid(input.healthSyncUid ?? DEFAULT_HEALTH_SYNC_UID, 'healthSyncUid', problems, false));

  let dns: { address: string; port: number } | undefined;
  if (input.consulDns) {
    const d = input.consulDns === true ? {} : input.consulDns;
    const address = d.address ?? CONSUL_DATAPLANE_DNS_ADDRESS;
    if (!isIPv4(address)) problems.push(`consulDns.address: ${JSON.stringify(address)} is not an IPv4 address`);
    const port = checkPort(d.port ?? CONSUL_DATAPLANE_DNS_PORT, 'consulDns.port', problems);
    if (port !== undefined) dns = { address, port: Number(port) };
  }

  if (problems.length > 0) {
    throw new ConsulEcsError(
      'tproxy-invalid-config',
      `invalid transparent proxy configuration: ${problems.join('; ')}; fix these values in the transparentProxy section of CONSUL_ECS_CONFIG_JSON (or the proxy registration) and try again`,
    );
  }

  const rules: IptablesRule[] = [];
  const nat = (...args: string[]) => rules.push({ table: 'nat', args });

  for (const chain of TRANSPARENT_PROXY_CHAINS) nat('-N', chain);

  // Outbound.
  nat('-A', PROXY_OUTPUT_REDIRECT_CHAIN, '-p', 'tcp', '-j', 'REDIRECT', '--to-port', outboundPort!);
  if (dns) {
    // Before the catch-all TCP jump, so DNS over TCP reaches Consul DNS rather than Envoy.
    const to = `${dns.address}:${dns.port}`;
    for (const proto of ['udp', 'tcp']) {
      nat('-A', DNS_REDIRECT_CHAIN, '-p', proto, '-d', dns.address, '--dport', '53', '-j', 'DNAT', '--to-destination', to);
    }
    for (const proto of ['udp', 'tcp']) {
      nat('-A', 'OUTPUT', '-p', proto, '-d', dns.address, '--dport', '53', '-j', DNS_REDIRECT_CHAIN);
    }
  }
  nat('-A', 'OUTPUT', '-p', 'tcp', '-j', PROXY_OUTPUT_CHAIN);
  nat('-A', PROXY_OUTPUT_CHAIN, '-m', 'owner', '--uid-owner', proxyUid!, '-j', 'RETURN');
  nat('-A', PROXY_OUTPUT_CHAIN, '-d', '127.0.0.1/32', '-j', 'RETURN');
  nat('-A', PROXY_OUTPUT_CHAIN, '-j', PROXY_OUTPUT_REDIRECT_CHAIN);
  for (const port of outboundPortExcludes) nat('-I', PROXY_OUTPUT_CHAIN, '-p', 'tcp', '--dport', port, '-j', 'RETURN');
  for (const cidr of cidrExcludes) nat('-I', PROXY_OUTPUT_CHAIN, '-d', cidr, '-j', 'RETURN');
  for (const uid of uidExcludes) nat('-I', PROXY_OUTPUT_CHAIN, '-m', 'owner', '--uid-owner', uid, '-j', 'RETURN');

  // Inbound.
  nat('-A', PROXY_INBOUND_REDIRECT_CHAIN, '-p', 'tcp', '-j', 'REDIRECT', '--to-port', inboundPort!);
  nat('-A', 'PREROUTING', '-p', 'tcp', '-j', PROXY_INBOUND_CHAIN);
  nat('-A', PROXY_INBOUND_CHAIN, '-p', 'tcp', '-j', PROXY_INBOUND_REDIRECT_CHAIN);
  for (const port of inboundExcludes) nat('-I', PROXY_INBOUND_CHAIN, '-p', 'tcp', '--dport', port, '-j', 'RETURN');

  // consul-ecs's ECS-specific addition.
  nat('--policy', 'POSTROUTING', 'ACCEPT');
  return rules;
}

function push(list: string[], value: string | undefined): void {
  if (value !== undefined && !list.includes(value)) list.push(value);
}

function checkPort(value: unknown, field: string, problems: string[]): string | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535) return String(value);
  problems.push(`${field}: ${JSON.stringify(value)} is not a port number (an integer from 1 to 65535)`);
  return undefined;
}

const MAX_UID = 4294967294; // (uid_t)-1 means "no user"

function checkUid(value: unknown, field: string, problems: string[], allowRange: boolean): string | undefined {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  const m = text === undefined ? null : /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(text);
  if (m && (allowRange || m[2] === undefined)) {
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo <= MAX_UID && hi <= MAX_UID && lo <= hi) return m[2] === undefined ? String(lo) : `${lo}-${hi}`;
  }
  const what = allowRange ? 'a numeric user ID (0-4294967294) or a range like 1000-1999' : 'a numeric user ID (0-4294967294)';
  problems.push(`${field}: ${JSON.stringify(value)} is not ${what}`);
  return undefined;
}

function checkCidr(value: unknown, field: string, problems: string[]): string | undefined {
  if (typeof value === 'string') {
    const [ip, prefix, ...rest] = value.trim().split('/');
    if (ip !== undefined && isIPv4(ip) && rest.length === 0 && (prefix === undefined || (/^\d{1,2}$/.test(prefix) && Number(prefix) <= 32))) {
      return prefix === undefined ? ip : `${ip}/${Number(prefix)}`;
    }
    if (ip !== undefined && isIP(ip) === 6) {
      problems.push(`${field}: ${JSON.stringify(value)} is IPv6; transparent proxy rules are IPv4 (iptables) only`);
      return undefined;
    }
  }
  problems.push(`${field}: ${JSON.stringify(value)} is not an IPv4 address or CIDR (like 10.0.0.0/16)`);
  return undefined;
}

function portOfHostPort(value: unknown, field: string, problems: string[]): string | undefined {
  const m = typeof value === 'string' ? /^(?:\[[^\]]*\]|[^:[\]]*):(\d+)$/.exec(value.trim()) : null;
  if (!m) {
    problems.push(`${field}: ${JSON.stringify(value)} is not a host:port address`);
    return undefined;
  }
  return checkPort(Number(m[1]), field, problems);
}
