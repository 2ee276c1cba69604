import type { Dispatcher } from 'undici';
import type { ResolvedConfig } from '../config/types.js';
import { ConsulHttpClient } from '../consul/http-client.js';
import type { Clock } from '../util/clock.js';

type Env = Record<string, string | undefined>;

/** The HTTPS CA and server name consul-ecs uses for the servers' HTTP API. */
export function httpTlsSettings(config: ResolvedConfig, env: Env): { caPem?: string; caFile?: string; serverName?: string } {
  const http = config.consulServers.http;
  const out: { caPem?: string; caFile?: string; serverName?: string } = {};
  if (env.CONSUL_HTTPS_CACERT_PEM) out.caPem = env.CONSUL_HTTPS_CACERT_PEM;
  else if (http.caCertFile) out.caFile = http.caCertFile;
  // As consul-ecs: the configured server name, else the host name (not an exec= command).
  const hosts = config.consulServers.hosts;
  if (http.tlsServerName) out.serverName = http.tlsServerName;
  else if (!hosts.startsWith('exec=') && !/^[\d.]+$|:/.test(hosts)) out.serverName = hosts;
  return out;
}

/** A Consul HTTP API client for one server address, per the config (HTTPS, port, CA, scope). */
export function consulClientFor(
  address: string,
  config: ResolvedConfig,
  env: Env,
  opts: { dispatcher?: Dispatcher; clock?: Clock; namespace?: string; partition?: string; retryDeadlineMs?: number } = {},
): ConsulHttpClient {
  const http = config.consulServers.http;
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  return new ConsulHttpClient({
    address: `${http.https ? 'https' : 'http'}://${host}:${http.port}`,
    tls: http.https ? httpTlsSettings(config, env) : undefined,
    dispatcher: opts.dispatcher,
    clock: opts.clock,
    namespace: opts.namespace,
    partition: opts.partition,
    retryDeadlineMs: opts.retryDeadlineMs,
  });
}
