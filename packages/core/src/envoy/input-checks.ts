// Checks of the values generateEnvoyBootstrap is given (not of Proxy.Config
// keys: see proxy-config-reader.ts): each returns the value in the form the
// bootstrap uses, or throws a ConsulEcsError saying what to give instead.
// Messages never quote the token.
import { ConsulEcsError } from '../util/errors.js';
import { isIP } from 'node:net';
import type { EnvoyDataSource } from './types.js';
import {
  DEFAULT_CONSUL_GRPC_PORT,
  ENVOY_PROXY_KINDS,
  type EnvoyProxyKind,
  type EnvoyProxyService,
  type EnvoyXdsServers,
  type EnvoyXdsTls,
} from './bootstrap-input.js';

/** Error code for input Envoy or Consul would refuse. */
export const INVALID = 'envoy-bootstrap-invalid';
/** Error code for a bad `envoy_*` key (or AccessLogs) in the proxy's configuration. */
export const BAD_PROXY_CONFIG = 'envoy-bootstrap-proxy-config';

export function checkProxy(p: unknown): EnvoyProxyService & { Kind: EnvoyProxyKind } {
  if (!p || typeof p !== 'object') throw new ConsulEcsError(INVALID, 'envoy bootstrap: proxy (the registered proxy or gateway service) is missing');
  const svc = p as EnvoyProxyService;
  const id = requireString(svc.ID, 'proxy.ID (the proxy service ID)');
  requireString(svc.Service, `proxy.Service (the service name of ${id})`);
  const kind = svc.Kind ?? '';
  if (!(ENVOY_PROXY_KINDS as readonly string[]).includes(kind)) {
    const shown = kind === '' ? 'no Kind (a plain service, not a proxy)' : `Kind ${JSON.stringify(kind)}`;
    throw new ConsulEcsError(INVALID, `proxy ${id} has ${shown}; Envoy bootstrap needs one of: ${ENVOY_PROXY_KINDS.join(', ')}`);
  }
  if (svc.Proxy !== undefined && svc.Proxy !== null && (typeof svc.Proxy !== 'object' || Array.isArray(svc.Proxy))) {
    throw new ConsulEcsError(INVALID, `proxy ${id}: Proxy must be an object`);
  }
  const config = svc.Proxy?.Config;
  if (config !== undefined && config !== null && (typeof config !== 'object' || Array.isArray(config))) {
    throw new ConsulEcsError(INVALID, `proxy ${id}: Proxy.Config must be an object of configuration keys`);
  }
  for (const k of ['Namespace', 'Partition'] as const) {
    if (svc[k] !== undefined && svc[k] !== null && typeof svc[k] !== 'string') throw new ConsulEcsError(INVALID, `proxy ${id}: ${k} must be a string`);
  }
  return svc as EnvoyProxyService & { Kind: EnvoyProxyKind };
}

export function requireString(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new ConsulEcsError(INVALID, `envoy bootstrap: ${what} must be a non-empty string`);
  return v;
}

export function port(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw new ConsulEcsError(INVALID, `envoy bootstrap: ${what} must be a port number from 1 to 65535, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** An address Envoy can bind: an IP literal (Envoy does not resolve names for listeners). */
export function bindIp(v: unknown, what: string): string {
  const s = requireString(v, what);
  if (s === 'localhost') return '127.0.0.1';
  const ip = s.replace(/^\[(.*)\]$/, '$1');
  if (isIP(ip) === 0) throw new ConsulEcsError(INVALID, `envoy bootstrap: ${what} must be an IP address (Envoy binds it), got ${JSON.stringify(s)}`);
  return ip;
}

/** Whether two bind addresses would take the same port (a wildcard takes every address's). */
export function sameBind(a: string, b: string): boolean {
  const any = (x: string) => x === '0.0.0.0' || x === '::';
  return a === b || any(a) || any(b);
}

/** The token goes into a gRPC metadata value: printable ASCII only. Never quoted in errors. */
export function checkToken(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new ConsulEcsError(INVALID, 'envoy bootstrap: token must be a string');
  if (!/^[\x21-\x7e]+$/.test(v)) {
    throw new ConsulEcsError(
      INVALID,
      'envoy bootstrap: the ACL token has whitespace or non-ASCII characters and cannot be sent as gRPC metadata; check where it was read from (a trailing newline in a token file?)',
    );
  }
  return v;
}

const HOSTNAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** The Consul servers' gRPC endpoint, checked: what the ADS cluster is made from. */
export interface CheckedXdsServers {
  /** IP addresses (without brackets) and DNS names, each once, in the order given. */
  hosts: string[];
  grpcPort: number;
  tls?: CheckedXdsTls;
}

/** How Envoy verifies the Consul servers. */
export interface CheckedXdsTls {
  trustedCa: EnvoyDataSource;
  /** The name sent as SNI: the one DNS name checked, if there is exactly one. */
  sni?: string;
  /** The names a server's certificate must carry; absent when only its chain is verified. */
  subjectAltNames?: Array<{ type: 'DNS' | 'IP_ADDRESS'; name: string }>;
}

export function checkXdsServers(servers: EnvoyXdsServers | undefined): CheckedXdsServers {
  if (!servers || typeof servers !== 'object') throw new ConsulEcsError(INVALID, 'envoy bootstrap: servers (the Consul servers to get xDS from) is missing');
  if (!Array.isArray(servers.addresses) || servers.addresses.length === 0) {
    throw new ConsulEcsError(INVALID, 'envoy bootstrap: servers.addresses must list at least one Consul server IP address or DNS name');
  }
  const grpcPort = port(servers.grpcPort ?? DEFAULT_CONSUL_GRPC_PORT, 'servers.grpcPort');
  const hosts: string[] = [];
  for (const raw of servers.addresses) {
    const s = requireString(raw, 'each of servers.addresses');
    const host = s.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) === 0 && !HOSTNAME.test(host)) {
      const hint = /:\d+$/.test(s) ? ' (give the port as servers.grpcPort, not in the address)' : '';
      throw new ConsulEcsError(INVALID, `envoy bootstrap: Consul server address ${JSON.stringify(s)} is neither an IP address nor a DNS name${hint}`);
    }
    if (!hosts.includes(host)) hosts.push(host);
  }
  return { hosts, grpcPort, tls: servers.tls ? checkXdsTls(servers.tls, hosts) : undefined };
}

function checkXdsTls(tls: EnvoyXdsTls, hosts: string[]): CheckedXdsTls {
  if (typeof tls !== 'object') throw new ConsulEcsError(INVALID, 'envoy bootstrap: servers.tls must be an object');
  let trustedCa: EnvoyDataSource;
  if (tls.caFile) {
    trustedCa = { filename: requireString(tls.caFile, 'servers.tls.caFile') };
  } else if (tls.caPem) {
    if (!tls.caPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new ConsulEcsError(INVALID, 'envoy bootstrap: servers.tls.caPem holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line)');
    }
    trustedCa = { inline_string: tls.caPem };
  } else {
    throw new ConsulEcsError(
      INVALID,
      'envoy bootstrap: TLS to the Consul servers is on but no CA is given (servers.tls.caFile or caPem); Envoy needs one to verify the servers ' +
        '(for servers with a certificate from a public CA, give the system bundle, e.g. /etc/ssl/certs/ca-certificates.crt)',
    );
  }

  const serverName = tls.serverName === undefined || tls.serverName === '' ? undefined : requireString(tls.serverName, 'servers.tls.serverName');
  const names = serverName ? [serverName] : hosts;
  const dnsNames = names.filter((n) => isIP(n) === 0).map((n) => n.replace(/\.$/, ''));
  return {
    trustedCa,
    sni: dnsNames.length === 1 ? dnsNames[0] : undefined,
    subjectAltNames:
      tls.verifyServerName === false
        ? undefined
        : names.map((n) => (isIP(n) === 0 ? { type: 'DNS', name: n.replace(/\.$/, '') } : { type: 'IP_ADDRESS', name: n })),
  };
}
