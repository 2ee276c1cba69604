// The first half of bootstrap generation, as Consul splits it (its
// BootstrapConfig and template arguments, then the template): the input and
// the proxy's `Proxy.Config` keys are checked, defaulted and resolved into an
// EnvoyBootstrapConfig. Every error is thrown here, in the order the values
// are read; the render-*.ts modules turn the result into the document and
// throw nothing.
import { ConsulEcsError } from '../util/errors.js';
import { DEFAULT_ENVOY_ADMIN_PORT, DEFAULT_ENVOY_READY_PORT, type ConsulAccessLogsConfig, type EnvoyBootstrapInput } from './bootstrap-input.js';
import {
  BAD_PROXY_CONFIG,
  INVALID,
  bindIp,
  checkProxy,
  checkToken,
  checkXdsServers,
  port,
  requireString,
  sameBind,
  type CheckedXdsServers,
} from './input-checks.js';
import { ProxyConfigReader, jsonError } from './proxy-config-reader.js';
import {
  DEFAULT_ADS_CLUSTER_NAME,
  PROMETHEUS_BACKEND_CLUSTER_NAME,
  PROMETHEUS_LISTENER_NAME,
  READY_LISTENER_NAME,
  SELF_ADMIN_CLUSTER_NAME,
  STATS_LISTENER_NAME,
  TELEMETRY_COLLECTOR_CLUSTER_NAME,
} from './resource-names.js';
import type { EnvoyAddress, EnvoyJsonObject } from './types.js';

/** Proxy.Config keys that shape the bootstrap. */
export const ENVOY_BOOTSTRAP_CONFIG_KEYS = [
  'envoy_statsd_url',
  'envoy_dogstatsd_url',
  'envoy_stats_tags',
  'envoy_telemetry_collector_bind_socket_dir',
  'envoy_prometheus_bind_addr',
  'envoy_stats_bind_addr',
  'envoy_bootstrap_json_tpl',
  'envoy_extra_static_clusters_json',
  'envoy_extra_static_listeners_json',
  'envoy_extra_stats_sinks_json',
  'envoy_stats_config_json',
  'envoy_stats_flush_interval',
  'envoy_tracing_json',
] as const;

/** Everything the bootstrap document is rendered from, checked and with every default applied. */
export interface EnvoyBootstrapConfig {
  node: BootstrapNodeConfig;
  admin: BootstrapAdminConfig;
  /** The ADS stream to the Consul servers. */
  xds: BootstrapXdsConfig;
  stats: BootstrapStatsConfig;
  /** `envoy_tracing_json`, as given. */
  tracing?: EnvoyJsonObject;
  /** `envoy_extra_static_clusters_json`, as given; they follow the ADS cluster. */
  extraStaticClusters: EnvoyJsonObject[];
  /** `envoy_extra_static_listeners_json`, as given; they precede the admin API listeners. */
  extraStaticListeners: EnvoyJsonObject[];
  /** Listeners that expose one path of Envoy's admin API, in this order: Prometheus, stats, ready. */
  adminApiListeners: AdminApiListenerConfig[];
}

/** Who the proxy is, to Consul's xDS server and in the stats tags. */
export interface BootstrapNodeConfig {
  /** The proxy's service ID. */
  id: string;
  /** The destination service for a sidecar, the gateway's own name for a gateway (as Consul's GetEnvoyBootstrapParams answers). */
  service: string;
  /** The catalog node the proxy is registered on. */
  nodeName: string;
  namespace: string;
  partition: string;
  /** "" when not given. */
  datacenter: string;
}

export interface BootstrapAdminConfig {
  address: string;
  port: number;
  accessLog: AdminAccessLogConfig;
}

/** Where the admin API logs its requests. */
export type AdminAccessLogConfig =
  /** Consul's AccessLogs are off: the admin API's own file log. */
  | { kind: 'admin-file'; path: string }
  /** Consul's AccessLogs are on: to a stream, or to a file. */
  | { kind: 'consul'; type: 'stdout' | 'stderr'; format: AccessLogFormat }
  | { kind: 'consul'; type: 'file'; path: string; format: AccessLogFormat };

export type AccessLogFormat = { json: Record<string, unknown> } | { text: string };

export interface BootstrapXdsConfig extends CheckedXdsServers {
  /** The name of the static cluster that carries the ADS stream. */
  clusterName: string;
  /** Sent as `x-consul-token`. */
  token?: string;
}

export interface BootstrapStatsConfig {
  /** From `envoy_statsd_url`. */
  statsdAddress?: EnvoyAddress;
  /** From `envoy_dogstatsd_url`. */
  dogstatsdAddress?: EnvoyAddress;
  /** `envoy_extra_stats_sinks_json`, as given; after the statsd sinks. */
  extraSinks: EnvoyJsonObject[];
  /** `envoy_stats_config_json`: replaces the generated stats config (and with it the tags below). */
  statsConfigJson?: EnvoyJsonObject;
  /** `envoy_stats_tags`, names lowercased: fixed tags ahead of Consul's. */
  tags: Array<{ name: string; value: string }>;
  /** Leave out the pre-1.9 `consul.*` cluster tags. */
  omitDeprecatedTags: boolean;
  /** `envoy_stats_flush_interval`; 60s when the telemetry collector is the only sink. */
  flushInterval?: string;
  /** The Consul telemetry collector's socket for this proxy (`envoy_telemetry_collector_bind_socket_dir`). */
  telemetryCollectorSocket?: string;
}

/** A listener that serves one path of Envoy's admin API and answers 404 to every other. */
export interface AdminApiListenerConfig {
  name: string;
  statPrefix: string;
  bind: { address: string; port: number };
  match: { path: string } | { prefix: string };
  /** The admin API path a matching request is sent to. */
  rewrite: string;
  /** The cluster requests go to: a port on the admin address, Envoy's admin API or a merged-metrics backend. */
  backend: { cluster: string; port: number };
  /** Serve the listener over TLS with these files (given for the Prometheus listener). */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

/** Envoy's request fields Consul logs by default (its access log JSON format). */
const CONSUL_DEFAULT_ACCESS_LOG_JSON: Record<string, string> = {
  start_time: '%START_TIME%',
  route_name: '%ROUTE_NAME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
};

/**
 * Checks the input and reads the proxy's `envoy_*` keys into the config the
 * bootstrap is rendered from. Throws a {@link ConsulEcsError} on input Envoy
 * or Consul would refuse, the first problem found.
 */
export function parseEnvoyBootstrapConfig(input: EnvoyBootstrapInput): EnvoyBootstrapConfig {
  if (!input || typeof input !== 'object') throw new ConsulEcsError(INVALID, 'envoy bootstrap: no input given');
  const proxy = checkProxy(input.proxy);
  const what = `proxy ${proxy.ID}`;
  const nodeName = requireString(input.nodeName, `nodeName (the catalog node of ${what})`);

  // node.cluster and the source-service stats tag: the destination service for
  // a sidecar, the gateway's own name for a gateway (as Consul's
  // GetEnvoyBootstrapParams answers consul-dataplane).
  let service = proxy.Service;
  if (proxy.Kind === 'connect-proxy') {
    const dest = proxy.Proxy?.DestinationServiceName;
    if (typeof dest !== 'string' || dest === '') {
      throw new ConsulEcsError(INVALID, `${what} is a connect-proxy without Proxy.DestinationServiceName: register it with the service it is the sidecar for`);
    }
    service = dest;
  }
  const namespace = proxy.Namespace || 'default';
  const partition = proxy.Partition || 'default';

  const adsClusterName = input.adsClusterName ?? DEFAULT_ADS_CLUSTER_NAME;
  requireString(adsClusterName, 'adsClusterName');

  const adminAddress = bindIp(input.admin?.address ?? '127.0.0.1', 'admin.address');
  const adminPort = port(input.admin?.port ?? DEFAULT_ENVOY_ADMIN_PORT, 'admin.port');
  const adminAccessLogPath = input.admin?.accessLogPath ?? '/dev/null';
  requireString(adminAccessLogPath, 'admin.accessLogPath');

  let ready: { address: string; port: number } | undefined;
  if (input.ready !== false) {
    ready = {
      address: bindIp(input.ready?.address ?? '127.0.0.1', 'ready.address'),
      port: port(input.ready?.port ?? DEFAULT_ENVOY_READY_PORT, 'ready.port'),
    };
    if (ready.port === adminPort && sameBind(ready.address, adminAddress)) {
      throw new ConsulEcsError(INVALID, `ready.port ${ready.port} is the admin port: Envoy cannot bind both on it; pick another`);
    }
  }

  const token = checkToken(input.token);
  const xds: BootstrapXdsConfig = { clusterName: adsClusterName, token, ...checkXdsServers(input.servers) };

  const cfg = new ProxyConfigReader(input.useProxyConfig !== false ? proxy.Proxy?.Config : undefined, what);
  if (cfg.string('envoy_bootstrap_json_tpl') !== undefined) {
    (input.onWarning ?? (() => {}))(
      `${what}: Proxy.Config key envoy_bootstrap_json_tpl (a Go template replacing the whole bootstrap) is not supported and is ignored`,
    );
  }

  // --- stats sinks, stats config, flush interval, tracing ---
  const env = input.env ?? {};
  const statsdAddress = cfg.statsSinkAddress('envoy_statsd_url', env);
  const dogstatsdAddress = cfg.statsSinkAddress('envoy_dogstatsd_url', env);
  const extraSinks = cfg.jsonList('envoy_extra_stats_sinks_json');
  const statsConfigJson = cfg.jsonObject('envoy_stats_config_json');
  const tags = statsConfigJson ? [] : statsTags(cfg.stringList('envoy_stats_tags'));
  let flushInterval = cfg.durationSeconds('envoy_stats_flush_interval');
  const tracing = cfg.jsonObject('envoy_tracing_json');

  // --- static clusters and listeners ---
  const extraStaticClusters = cfg.jsonList('envoy_extra_static_clusters_json');
  const extraStaticListeners = cfg.jsonList('envoy_extra_static_listeners_json');

  const selfAdmin = { cluster: SELF_ADMIN_CLUSTER_NAME, port: adminPort };
  const adminApiListeners: AdminApiListenerConfig[] = [];
  const promBind = cfg.bindAddress('envoy_prometheus_bind_addr');
  if (promBind !== undefined) {
    const prom = input.prometheus ?? {};
    const scrapePath = prom.scrapePath ?? '/metrics';
    if (!scrapePath.startsWith('/')) throw new ConsulEcsError(INVALID, `prometheus.scrapePath must start with "/", got ${JSON.stringify(scrapePath)}`);
    const backendPort = prom.backendPort === undefined ? undefined : port(prom.backendPort, 'prometheus.backendPort');
    adminApiListeners.push({
      name: PROMETHEUS_LISTENER_NAME,
      statPrefix: 'envoy_prometheus_metrics',
      bind: promBind,
      match: { path: scrapePath },
      rewrite: '/stats/prometheus',
      backend: backendPort === undefined ? selfAdmin : { cluster: PROMETHEUS_BACKEND_CLUSTER_NAME, port: backendPort },
      tls: prometheusTls(prom),
    });
  }
  const statsBind = cfg.bindAddress('envoy_stats_bind_addr');
  if (statsBind !== undefined) {
    adminApiListeners.push({
      name: STATS_LISTENER_NAME,
      statPrefix: 'envoy_metrics',
      bind: statsBind,
      match: { prefix: '/stats' },
      rewrite: '/stats',
      backend: selfAdmin,
    });
  }
  if (ready) {
    adminApiListeners.push({
      name: READY_LISTENER_NAME,
      statPrefix: 'envoy_ready',
      bind: ready,
      match: { path: '/ready' },
      rewrite: '/ready',
      backend: selfAdmin,
    });
  }

  const collectorDir = cfg.string('envoy_telemetry_collector_bind_socket_dir');
  let telemetryCollectorSocket: string | undefined;
  if (collectorDir !== undefined) {
    // One socket per proxy, named by a hash of <namespace>_<proxy ID> so the
    // path stays short enough for a Unix socket; Consul's xDS config points the
    // collector's listener at the same path.
    const hash = process.getBuiltinModule('node:crypto').createHash('sha1').update(`${namespace}_${proxy.ID}`).digest('base64url');
    telemetryCollectorSocket = `${collectorDir.replace(/\/+$/, '')}/${hash}.sock`;
    const userSinks = statsdAddress !== undefined || dogstatsdAddress !== undefined || extraSinks.length > 0;
    if (flushInterval === undefined && !userSinks) flushInterval = '60s';
  }

  // The static resources' names, in the order the document lists them. The
  // self_admin and prometheus_backend clusters are left out: they are only
  // added when no cluster of that name is there already.
  checkUniqueNames(
    [{ name: adsClusterName }, ...extraStaticClusters, ...(telemetryCollectorSocket !== undefined ? [{ name: TELEMETRY_COLLECTOR_CLUSTER_NAME }] : [])],
    'cluster',
    'envoy_extra_static_clusters_json',
    what,
  );
  checkUniqueNames([...extraStaticListeners, ...adminApiListeners], 'listener', 'envoy_extra_static_listeners_json', what);

  return {
    node: { id: proxy.ID, service, nodeName, namespace, partition, datacenter: input.datacenter ?? '' },
    admin: { address: adminAddress, port: adminPort, accessLog: adminAccessLog(proxy.Proxy?.AccessLogs, adminAccessLogPath, what) },
    xds,
    stats: {
      statsdAddress,
      dogstatsdAddress,
      extraSinks,
      statsConfigJson,
      tags,
      omitDeprecatedTags: input.omitDeprecatedStatsTags !== false,
      flushInterval,
      telemetryCollectorSocket,
    },
    tracing,
    extraStaticClusters,
    extraStaticListeners,
    adminApiListeners,
  };
}

/** `envoy_stats_tags`: `name=value`, or `name` alone for the tag name=1. */
function statsTags(userTags: string[]): Array<{ name: string; value: string }> {
  return userTags.map((t) => {
    const eq = t.indexOf('=');
    const name = (eq < 0 ? t : t.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? '1' : t.slice(eq + 1);
    if (name === '') throw new ConsulEcsError(BAD_PROXY_CONFIG, `Proxy.Config key envoy_stats_tags has an entry without a tag name: ${JSON.stringify(t)}`);
    return { name, value };
  });
}

function prometheusTls(p: NonNullable<EnvoyBootstrapInput['prometheus']>): AdminApiListenerConfig['tls'] {
  if (!p.certFile && !p.keyFile && !p.caFile && !p.caPath) return undefined;
  if (!p.certFile || !p.keyFile || !p.caFile) {
    throw new ConsulEcsError(
      INVALID,
      'envoy bootstrap: TLS on the Prometheus listener needs prometheus.certFile, prometheus.keyFile and prometheus.caFile together' +
        (p.caPath ? ' (a CA directory, prometheus.caPath, is not supported: give a CA file)' : ''),
    );
  }
  return { certFile: p.certFile, keyFile: p.keyFile, caFile: p.caFile };
}

function checkUniqueNames(list: Array<{ name?: unknown }>, kind: 'cluster' | 'listener', key: string, what: string): void {
  const seen = new Set<string>();
  for (const item of list) {
    const name = item.name;
    if (name === undefined && kind === 'listener') continue;
    if (typeof name !== 'string' || name === '') {
      throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: Proxy.Config key ${key} has a ${kind} without a name`);
    }
    if (seen.has(name)) {
      throw new ConsulEcsError(
        BAD_PROXY_CONFIG,
        `${what}: static ${kind} ${JSON.stringify(name)} is defined twice (check ${key}: the names ${kind === 'cluster' ? 'of the ADS cluster, self_admin and prometheus_backend' : 'of the ready, stats and prometheus listeners'} are taken)`,
      );
    }
    seen.add(name);
  }
}

/** The admin API's access log: Consul's AccessLogs (proxy-defaults, or the service's) when enabled. */
function adminAccessLog(logs: ConsulAccessLogsConfig | undefined, adminFilePath: string, what: string): AdminAccessLogConfig {
  if (!logs?.Enabled) return { kind: 'admin-file', path: adminFilePath };
  let format: AccessLogFormat;
  if (logs.JSONFormat) {
    let json: unknown;
    try {
      json = JSON.parse(logs.JSONFormat);
    } catch (err) {
      throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: AccessLogs.JSONFormat is not valid JSON (${jsonError(err)})`);
    }
    if (!json || typeof json !== 'object' || Array.isArray(json))
      throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: AccessLogs.JSONFormat must be a JSON object`);
    format = { json: json as Record<string, unknown> };
  } else if (logs.TextFormat) {
    format = { text: logs.TextFormat.endsWith('\n') ? logs.TextFormat : `${logs.TextFormat}\n` };
  } else {
    format = { json: { ...CONSUL_DEFAULT_ACCESS_LOG_JSON } };
  }
  const type = logs.Type || 'stdout';
  switch (type) {
    case 'stdout':
    case 'stderr':
      return { kind: 'consul', type, format };
    case 'file':
      if (!logs.Path) throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: AccessLogs.Type is file but AccessLogs.Path is empty`);
      return { kind: 'consul', type, path: logs.Path, format };
    default:
      throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: AccessLogs.Type ${JSON.stringify(type)} is not one of stdout, stderr, file`);
  }
}
