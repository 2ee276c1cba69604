import type { Dispatcher } from 'undici';
import { serviceId } from '../catalog/registration.js';
import { gatewayName, isGateway, serviceName } from '../config/resolve.js';
import type { ResolvedConfig } from '../config/types.js';
import { ConsulHttpClient } from '../consul/http-client.js';
import type { TaskInfo } from '../ecs/task-metadata.js';
import type { Clock } from '../util/clock.js';
import type { Env } from '../util/options.js';

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

/** What a task registers as: its service (or gateway) name, instance ID and Enterprise scope. */
export interface TaskServiceIdentity {
  gateway: boolean;
  name: string;
  id: string;
  scope: { namespace?: string; partition?: string };
}

/** The identity mesh-init registers a task under, and health-sync finds it by. */
export function taskServiceIdentity(config: ResolvedConfig, task: Pick<TaskInfo, 'family' | 'taskId'>): TaskServiceIdentity {
  const gateway = isGateway(config);
  const name = gateway ? gatewayName(config, task.family) : serviceName(config, task.family);
  const scope = gateway
    ? { namespace: config.gateway!.namespace, partition: config.gateway!.partition }
    : { namespace: config.service.namespace, partition: config.service.partition };
  return { gateway, name, id: serviceId(name, task.taskId), scope };
}
