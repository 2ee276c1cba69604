// Envoy bootstrap generation for a proxy that talks ADS (delta xDS over gRPC)
// straight to the Consul servers' gRPC port, with no consul-dataplane and no
// Consul client agent in between. The layout follows what `consul connect envoy
// -bootstrap` and consul-dataplane generate (node identity, admin, the
// Consul-managed stats tags, the `envoy_*` proxy-config keys, the admin-proxy
// listeners) so Consul's xDS server, Consul's docs and existing dashboards apply
// unchanged. The ADS cluster differs because it points at remote servers, not
// at a local agent: see makeAdsCluster. For an agentless proxy Consul's xDS
// server needs node.metadata.node_name (the catalog node the proxy is on; it
// looks on its own node otherwise) and a token with service:write on the
// proxy's service (the destination service for a sidecar).
import { ConsulEcsError } from '../util/errors.js';
import { ipVersion } from '../util/ip-address.js';
import { consulResourceTagSpecifiers } from './stats-tags.js';
import type {
  EnvoyAccessLog,
  EnvoyAddress,
  EnvoyBootstrap,
  EnvoyCluster,
  EnvoyDataSource,
  EnvoyJsonObject,
  EnvoyListener,
  EnvoySecret,
  EnvoyStatsConfig,
  EnvoyStatsSink,
  EnvoySubjectAltNameMatcher,
  EnvoyTagSpecifier,
  EnvoyTransportSocket,
  EnvoyTypedConfig,
} from './types.js';

/** The proxy kinds a bootstrap can be generated for. */
export const ENVOY_PROXY_KINDS = ['connect-proxy', 'mesh-gateway', 'terminating-gateway', 'api-gateway'] as const;
export type EnvoyProxyKind = (typeof ENVOY_PROXY_KINDS)[number];

/**
 * Name of the static cluster that carries the ADS stream. Consul's own
 * bootstrap calls it `local_agent` (consul-dataplane: `consul-dataplane`); we
 * keep Consul's reserved name so `cluster.local_agent.*` metrics and existing
 * dashboards still find it. Set {@link EnvoyBootstrapInput.adsClusterName} to
 * `consul-dataplane` to keep the metric names a consul-dataplane task had.
 */
export const DEFAULT_ADS_CLUSTER_NAME = 'local_agent';
/** Consul's name for the cluster that reaches Envoy's own admin API (for the ready, stats and Prometheus listeners). */
export const SELF_ADMIN_CLUSTER_NAME = 'self_admin';
export const PROMETHEUS_BACKEND_CLUSTER_NAME = 'prometheus_backend';
export const TELEMETRY_COLLECTOR_CLUSTER_NAME = 'consul_telemetry_collector_loopback';
export const READY_LISTENER_NAME = 'envoy_ready_listener';
export const DEFAULT_ENVOY_ADMIN_PORT = 19000;
/** The proxy's readiness/health-check port in consul-ecs (`envoy_ready_bind_port`, checked by `net-dial`). */
export const DEFAULT_ENVOY_READY_PORT = 22000;
export const DEFAULT_CONSUL_GRPC_PORT = 8503;
/** File name of the generated bootstrap in the bootstrap directory (`/consul`). */
export const ENVOY_BOOTSTRAP_FILE_NAME = 'envoy-bootstrap.json';

/** Consul's `AccessLogs` (proxy-defaults, or a service's merged `Proxy.AccessLogs`). */
export interface ConsulAccessLogsConfig {
  Enabled?: boolean;
  DisableListenerLogs?: boolean;
  /** `stdout` (default), `stderr` or `file`. */
  Type?: string;
  Path?: string;
  JSONFormat?: string;
  TextFormat?: string;
}

/**
 * The proxy or gateway service, as Consul's catalog or agent API returns it
 * (PascalCase). Pass the service read with `?merge-central-config` so that
 * `Proxy.Config` includes proxy-defaults and service-defaults, as
 * consul-dataplane's bootstrap does.
 */
export interface EnvoyProxyService {
  Kind?: string;
  ID: string;
  Service: string;
  Namespace?: string;
  Partition?: string;
  Proxy?: {
    DestinationServiceName?: string;
    Config?: Record<string, unknown>;
    AccessLogs?: ConsulAccessLogsConfig;
  };
}

/** TLS to the Consul servers' gRPC port. */
export interface EnvoyXdsTls {
  /** Path of the CA certificate(s), in PEM, that Envoy reads at startup. */
  caFile?: string;
  /** The CA certificate(s) in PEM, inlined into the bootstrap. Used when `caFile` is not set. */
  caPem?: string;
  /**
   * Name the servers' certificates are checked against, also sent as SNI
   * (consul-ecs `consulServers.grpc.tlsServerName`, e.g. `server.dc1.consul`).
   * Without it, a single DNS name in `addresses` is used; IP addresses are
   * matched against the certificate's IP SANs.
   */
  serverName?: string;
  /** Check the certificate's subject alternative names (default true). Off: the chain alone is verified. */
  verifyServerName?: boolean;
}

/** Where the Consul servers' gRPC (xDS) endpoint is. */
export interface EnvoyXdsServers {
  /** IP addresses or DNS names of the servers (or of a load balancer in front of them). */
  addresses: string[];
  /** Default 8503. */
  grpcPort?: number;
  /** TLS settings; omitted (or undefined) means plaintext gRPC. */
  tls?: EnvoyXdsTls;
}

/** Options for the `envoy_prometheus_bind_addr` listener (consul's `-prometheus-*` flags, dataplane's `telemetry.prometheus`). */
export interface EnvoyPrometheusOptions {
  /** Path the listener serves metrics on (default `/metrics`). */
  scrapePath?: string;
  /** Serve metrics from this port on the admin address instead of Envoy's admin API (merged metrics). */
  backendPort?: number;
  /** Serve the listener over TLS with this certificate and key; needs `caFile` or `caPath`. */
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  caPath?: string;
}

export interface EnvoyBootstrapInput {
  /** The registered proxy or gateway. */
  proxy: EnvoyProxyService;
  /** The catalog node the proxy is registered on. Consul's xDS server finds agentless proxies by it. */
  nodeName: string;
  /** The datacenter, for the `consul.source.datacenter` stats tag. */
  datacenter?: string;
  servers: EnvoyXdsServers;
  /**
   * The ACL token for the ADS stream, sent as gRPC metadata `x-consul-token`.
   * It needs `service:write` on the proxy's destination service (a sidecar) or
   * on the gateway, plus the reads the proxy's config needs: a service identity
   * for the service does. It is written into the bootstrap: keep the file private.
   */
  token?: string;
  admin?: {
    /** An IP address (or `localhost`); default 127.0.0.1. */
    address?: string;
    /** Default 19000. */
    port?: number;
    /** Where the admin API's access log goes when no access logs are configured (default /dev/null). */
    accessLogPath?: string;
  };
  /**
   * The ready listener: answers `GET /ready` from Envoy's admin API (200 once
   * Envoy is live) on this address, and 404 on any other path. Default
   * 127.0.0.1:22000; `false` for none. Envoy opens its listeners only once it
   * has its first listeners and clusters from Consul, so even a bare TCP check
   * of this port (`net-dial`) passes only after xDS has delivered.
   */
  ready?: { address?: string; port?: number } | false;
  /** Default {@link DEFAULT_ADS_CLUSTER_NAME}. */
  adsClusterName?: string;
  /**
   * Leave out the pre-1.9 `consul.*` cluster stats tags (default true, as
   * consul-dataplane does; `consul connect envoy` keeps them unless
   * `-omit-deprecated-tags`).
   */
  omitDeprecatedStatsTags?: boolean;
  /** Honour the `envoy_*` keys of `Proxy.Config` (default true; consul's `-no-central-config` is false). */
  useProxyConfig?: boolean;
  prometheus?: EnvoyPrometheusOptions;
  /** Environment for `$VAR` forms of `envoy_statsd_url`/`envoy_dogstatsd_url` (e.g. `process.env`). Default none. */
  env?: Record<string, string | undefined>;
  /** Told about proxy-config keys that are accepted but not honoured. */
  onWarning?: (message: string) => void;
}

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

const TYPE_HTTP_PROTOCOL_OPTIONS = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const TYPE_UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const TYPE_DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const TYPE_HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TYPE_ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const TYPE_FILE_ACCESS_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';

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

const INVALID = 'envoy-bootstrap-invalid';
const BAD_PROXY_CONFIG = 'envoy-bootstrap-proxy-config';

/**
 * Generates the Envoy bootstrap for a proxy or gateway that gets its
 * configuration over ADS straight from the Consul servers. Pure: reads no
 * files and no environment (see {@link EnvoyBootstrapInput.env}).
 *
 * Throws a {@link ConsulEcsError} (`envoy-bootstrap-invalid`, or
 * `envoy-bootstrap-proxy-config` for a bad `envoy_*` key, named in the
 * message) on input Envoy or Consul would refuse. Messages never contain the token.
 */
export function generateEnvoyBootstrap(input: EnvoyBootstrapInput): EnvoyBootstrap {
  const token = typeof input?.token === 'string' ? input.token : undefined;
  try {
    return generate(input);
  } catch (err) {
    // A safety net: nothing above puts the token into a message on purpose,
    // but user JSON quoted by a parser could carry it.
    if (token && err instanceof Error && err.message.includes(token)) {
      const code = err instanceof ConsulEcsError ? err.code : INVALID;
      throw new ConsulEcsError(code, err.message.split(token).join('[redacted]'));
    }
    throw err;
  }
}

/** The bootstrap as the JSON text Envoy reads with `-c` (two-space indented, trailing newline). */
export function renderEnvoyBootstrap(bootstrap: EnvoyBootstrap): string {
  return `${JSON.stringify(bootstrap, null, 2)}\n`;
}

function generate(input: EnvoyBootstrapInput): EnvoyBootstrap {
  if (!input || typeof input !== 'object') throw new ConsulEcsError(INVALID, 'envoy bootstrap: no input given');
  const proxy = checkProxy(input.proxy);
  const what = `proxy ${proxy.ID}`;
  const nodeName = requireString(input.nodeName, `nodeName (the catalog node of ${what})`);
  const kind = proxy.Kind as EnvoyProxyKind;

  // node.cluster and the source-service stats tag: the destination service for
  // a sidecar, the gateway's own name for a gateway (as Consul's
  // GetEnvoyBootstrapParams answers consul-dataplane).
  let serviceName = proxy.Service;
  if (kind === 'connect-proxy') {
    const dest = proxy.Proxy?.DestinationServiceName;
    if (typeof dest !== 'string' || dest === '') {
      throw new ConsulEcsError(
        INVALID,
        `${what} is a connect-proxy without Proxy.DestinationServiceName: register it with the service it is the sidecar for`,
      );
    }
    serviceName = dest;
  }
  const namespace = proxy.Namespace || 'default';
  const partition = proxy.Partition || 'default';

  const adsClusterName = input.adsClusterName ?? DEFAULT_ADS_CLUSTER_NAME;
  requireString(adsClusterName, 'adsClusterName');

  const adminAddress = bindIp(input.admin?.address ?? '127.0.0.1', 'admin.address');
  const adminPort = port(input.admin?.port ?? DEFAULT_ENVOY_ADMIN_PORT, 'admin.port');
  const accessLogPath = input.admin?.accessLogPath ?? '/dev/null';
  requireString(accessLogPath, 'admin.accessLogPath');

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
  const adsCluster = makeAdsCluster(adsClusterName, input.servers);

  const useConfig = input.useProxyConfig !== false;
  const cfg = new ProxyConfigReader(useConfig ? proxy.Proxy?.Config : undefined, what);
  const warn = input.onWarning ?? (() => {});
  if (cfg.string('envoy_bootstrap_json_tpl') !== undefined) {
    warn(
      `${what}: Proxy.Config key envoy_bootstrap_json_tpl (a Go template replacing the whole bootstrap) is not supported and is ignored`,
    );
  }

  // --- stats sinks, stats config, flush interval, tracing ---
  const sinks: Array<EnvoyStatsSink | EnvoyJsonObject> = [];
  const env = input.env ?? {};
  const statsd = cfg.string('envoy_statsd_url');
  if (statsd !== undefined) {
    sinks.push(statsSink('envoy_statsd_url', statsd, env, 'envoy.stat_sinks.statsd', 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', what));
  }
  const dogstatsd = cfg.string('envoy_dogstatsd_url');
  if (dogstatsd !== undefined) {
    sinks.push(
      statsSink('envoy_dogstatsd_url', dogstatsd, env, 'envoy.stat_sinks.dog_statsd', 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink', what),
    );
  }
  sinks.push(...cfg.jsonList('envoy_extra_stats_sinks_json'));
  const userSinks = sinks.length > 0;

  let statsConfig: EnvoyStatsConfig | EnvoyJsonObject | undefined = cfg.jsonObject('envoy_stats_config_json');
  if (!statsConfig) {
    statsConfig = {
      stats_tags: statsTags(cfg.stringList('envoy_stats_tags'), input.omitDeprecatedStatsTags !== false, {
        proxyCluster: serviceName,
        sourceService: serviceName,
        namespace,
        partition,
        datacenter: input.datacenter ?? '',
      }),
      use_all_default_tags: true,
    };
  }

  let flushInterval = cfg.string('envoy_stats_flush_interval');
  if (flushInterval !== undefined && !/^\d+(\.\d{1,9})?s$/.test(flushInterval)) {
    throw new ConsulEcsError(
      BAD_PROXY_CONFIG,
      `${what}: Proxy.Config key envoy_stats_flush_interval is ${JSON.stringify(flushInterval)}; ` +
        'Envoy wants a duration in seconds such as "10s" or "1.5s"',
    );
  }
  const tracing = cfg.jsonObject('envoy_tracing_json');

  // --- static clusters and listeners ---
  const clusters: Array<EnvoyCluster | EnvoyJsonObject> = [adsCluster];
  const listeners: Array<EnvoyListener | EnvoyJsonObject> = [];
  const secrets: EnvoySecret[] = [];
  const userClusters = cfg.jsonList('envoy_extra_static_clusters_json');
  const userListeners = cfg.jsonList('envoy_extra_static_listeners_json');
  clusters.push(...userClusters);
  listeners.push(...userListeners);

  const admin = { address: adminAddress, port: adminPort };
  const addAdminProxy = (l: AdminProxyListener) => {
    const cluster = l.backendPort === undefined ? SELF_ADMIN_CLUSTER_NAME : PROMETHEUS_BACKEND_CLUSTER_NAME;
    if (!clusters.some((c) => c.name === cluster)) {
      clusters.push(httpLoopbackCluster(cluster, admin.address, l.backendPort ?? admin.port));
    }
    listeners.push(adminProxyListener(l, cluster));
  };

  const promBind = cfg.string('envoy_prometheus_bind_addr');
  if (promBind !== undefined) {
    const bind = hostPort(promBind, 'envoy_prometheus_bind_addr', what);
    const prom = input.prometheus ?? {};
    const scrapePath = prom.scrapePath ?? '/metrics';
    if (!scrapePath.startsWith('/')) throw new ConsulEcsError(INVALID, `prometheus.scrapePath must start with "/", got ${JSON.stringify(scrapePath)}`);
    const backendPort = prom.backendPort === undefined ? undefined : port(prom.backendPort, 'prometheus.backendPort');
    const tls = prometheusTls(prom);
    if (tls) secrets.push(...tls.secrets);
    addAdminProxy({
      name: 'envoy_prometheus_metrics',
      bind,
      match: { path: scrapePath },
      rewrite: '/stats/prometheus',
      backendPort,
      transportSocket: tls?.transportSocket,
    });
  }
  const statsBind = cfg.string('envoy_stats_bind_addr');
  if (statsBind !== undefined) {
    addAdminProxy({ name: 'envoy_metrics', bind: hostPort(statsBind, 'envoy_stats_bind_addr', what), match: { prefix: '/stats' }, rewrite: '/stats' });
  }
  if (ready) {
    addAdminProxy({ name: 'envoy_ready', bind: ready, match: { path: '/ready' }, rewrite: '/ready' });
  }

  const collectorDir = cfg.string('envoy_telemetry_collector_bind_socket_dir');
  if (collectorDir !== undefined) {
    // One socket per proxy, named by a hash of <namespace>_<proxy ID> so the
    // path stays short enough for a Unix socket; Consul's xDS config points the
    // collector's listener at the same path.
    const hash = process.getBuiltinModule('node:crypto').createHash('sha1').update(`${namespace}_${proxy.ID}`).digest('base64url');
    const socketPath = `${collectorDir.replace(/\/+$/, '')}/${hash}.sock`;
    if (flushInterval === undefined && !userSinks) flushInterval = '60s';
    sinks.push({
      name: 'envoy.stat_sinks.metrics_service',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig',
        transport_api_version: 'V3',
        grpc_service: { envoy_grpc: { cluster_name: TELEMETRY_COLLECTOR_CLUSTER_NAME } },
        emit_tags_as_labels: true,
      },
    });
    clusters.push({
      name: TELEMETRY_COLLECTOR_CLUSTER_NAME,
      type: 'STATIC',
      typed_extension_protocol_options: httpProtocolOptions(true),
      load_assignment: loadAssignment(TELEMETRY_COLLECTOR_CLUSTER_NAME, [{ pipe: { path: socketPath } }]),
    });
  }

  checkUniqueNames(clusters, 'cluster', 'envoy_extra_static_clusters_json', what);
  checkUniqueNames(listeners, 'listener', 'envoy_extra_static_listeners_json', what);

  const bootstrap: EnvoyBootstrap = {
    admin: {
      access_log: adminAccessLogs(proxy.Proxy?.AccessLogs, accessLogPath, what),
      address: { socket_address: { address: adminAddress, port_value: adminPort } },
    },
    node: {
      id: proxy.ID,
      cluster: serviceName,
      metadata: { node_name: nodeName, namespace, partition },
    },
    layered_runtime: {
      // Consul's route regexes can be larger than Envoy's default RE2 program size limit.
      layers: [{ name: 'base', static_layer: { 're2.max_program_size.error_level': 1048576 } }],
    },
    static_resources: {
      clusters,
      ...(listeners.length > 0 ? { listeners } : {}),
      ...(secrets.length > 0 ? { secrets } : {}),
    },
    ...(statsConfig ? { stats_config: statsConfig } : {}),
    ...(sinks.length > 0 ? { stats_sinks: sinks } : {}),
    ...(flushInterval !== undefined ? { stats_flush_interval: flushInterval } : {}),
    ...(tracing ? { tracing } : {}),
    dynamic_resources: {
      // initial_fetch_timeout 0s: Envoy stays not-ready (/ready answers 503)
      // until Consul has sent listeners and clusters, however long that takes.
      lds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      cds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      ads_config: {
        api_type: 'DELTA_GRPC',
        transport_api_version: 'V3',
        grpc_services: {
          ...(token ? { initial_metadata: [{ key: 'x-consul-token', value: token }] } : {}),
          envoy_grpc: { cluster_name: adsClusterName },
        },
      },
    },
  };
  return bootstrap;
}

// ---------------------------------------------------------------------------
// Input checks

function checkProxy(p: unknown): EnvoyProxyService & { Kind: EnvoyProxyKind } {
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

function requireString(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw new ConsulEcsError(INVALID, `envoy bootstrap: ${what} must be a non-empty string`);
  return v;
}

function port(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw new ConsulEcsError(INVALID, `envoy bootstrap: ${what} must be a port number from 1 to 65535, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** An address Envoy can bind: an IP literal (Envoy does not resolve names for listeners). */
function bindIp(v: unknown, what: string): string {
  const s = requireString(v, what);
  if (s === 'localhost') return '127.0.0.1';
  const ip = s.replace(/^\[(.*)\]$/, '$1');
  if (ipVersion(ip) === 0) throw new ConsulEcsError(INVALID, `envoy bootstrap: ${what} must be an IP address (Envoy binds it), got ${JSON.stringify(s)}`);
  return ip;
}

function sameBind(a: string, b: string): boolean {
  const any = (x: string) => x === '0.0.0.0' || x === '::';
  return a === b || any(a) || any(b);
}

/** The token goes into a gRPC metadata value: printable ASCII only. Never quoted in errors. */
function checkToken(v: unknown): string | undefined {
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

// ---------------------------------------------------------------------------
// The ADS cluster: the Consul servers' gRPC port

function makeAdsCluster(name: string, servers: EnvoyXdsServers | undefined): EnvoyCluster {
  if (!servers || typeof servers !== 'object') throw new ConsulEcsError(INVALID, 'envoy bootstrap: servers (the Consul servers to get xDS from) is missing');
  if (!Array.isArray(servers.addresses) || servers.addresses.length === 0) {
    throw new ConsulEcsError(INVALID, 'envoy bootstrap: servers.addresses must list at least one Consul server IP address or DNS name');
  }
  const grpcPort = port(servers.grpcPort ?? DEFAULT_CONSUL_GRPC_PORT, 'servers.grpcPort');
  const hosts: string[] = [];
  for (const raw of servers.addresses) {
    const s = requireString(raw, 'each of servers.addresses');
    const host = s.replace(/^\[(.*)\]$/, '$1');
    if (ipVersion(host) === 0 && !HOSTNAME.test(host)) {
      const hint = /:\d+$/.test(s) ? ' (give the port as servers.grpcPort, not in the address)' : '';
      throw new ConsulEcsError(INVALID, `envoy bootstrap: Consul server address ${JSON.stringify(s)} is neither an IP address nor a DNS name${hint}`);
    }
    if (!hosts.includes(host)) hosts.push(host);
  }
  const allIps = hosts.every((h) => ipVersion(h) !== 0);

  const cluster: EnvoyCluster = {
    name,
    // IPs are used as they are; DNS names are re-resolved (every 5 s by
    // default), so a server set behind one name follows its changes.
    type: allIps ? 'STATIC' : 'STRICT_DNS',
    ...(allIps ? {} : { dns_lookup_family: 'V4_PREFERRED' as const }),
    // Remote servers, not a local agent: allow more than Consul's 1 s.
    connect_timeout: '5s',
    typed_extension_protocol_options: httpProtocolOptions(true, {
      // Keep the long-lived stream alive through NAT and load balancers (an AWS
      // NLB drops idle flows after 350 s); Consul servers refuse pings more
      // often than every 15 s. consul-dataplane's gRPC client uses the same.
      connection_keepalive: { interval: '30s', timeout: '30s' },
    }),
  };
  if (servers.tls) cluster.transport_socket = adsTransportSocket(servers.tls, hosts);
  cluster.load_assignment = loadAssignment(
    name,
    hosts.map((h) => ({ socket_address: { address: h, port_value: grpcPort } })),
  );
  return cluster;
}

function adsTransportSocket(tls: EnvoyXdsTls, hosts: string[]): EnvoyTransportSocket {
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
  const dnsNames = names.filter((n) => ipVersion(n) === 0).map((n) => n.replace(/\.$/, ''));
  const sni = dnsNames.length === 1 ? dnsNames[0] : undefined;
  const matchers: EnvoySubjectAltNameMatcher[] = names.map((n) =>
    ipVersion(n) === 0 ? { san_type: 'DNS', matcher: { exact: n.replace(/\.$/, '') } } : { san_type: 'IP_ADDRESS', matcher: { exact: n } },
  );

  const context: EnvoyTypedConfig = {
    '@type': TYPE_UPSTREAM_TLS,
    ...(sni ? { sni } : {}),
    common_tls_context: {
      // Offer h2 explicitly: grpc-go servers (Consul's) can be set to refuse
      // TLS clients that negotiate no ALPN protocol.
      alpn_protocols: ['h2'],
      validation_context: {
        trusted_ca: trustedCa,
        ...(tls.verifyServerName === false ? {} : { match_typed_subject_alt_names: matchers }),
      },
    },
  };
  return { name: 'tls', typed_config: context };
}

function httpProtocolOptions(http2: boolean, h2Options: Record<string, unknown> = {}): NonNullable<EnvoyCluster['typed_extension_protocol_options']> {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': TYPE_HTTP_PROTOCOL_OPTIONS,
      explicit_http_config: http2 ? { http2_protocol_options: h2Options } : { http_protocol_options: {} },
    },
  };
}

function loadAssignment(name: string, addresses: EnvoyAddress[]): NonNullable<EnvoyCluster['load_assignment']> {
  return { cluster_name: name, endpoints: [{ lb_endpoints: addresses.map((address) => ({ endpoint: { address } })) }] };
}

// ---------------------------------------------------------------------------
// Listeners that expose one path of Envoy's admin API (ready, stats, Prometheus)

interface AdminProxyListener {
  /** Listener `<name>_listener`, stat prefix `<name>`. */
  name: string;
  bind: { address: string; port: number };
  match: { path: string } | { prefix: string };
  rewrite: string;
  /** Send to this port on the admin address instead of the admin API (`prometheus_backend`). */
  backendPort?: number | undefined;
  transportSocket?: EnvoyTransportSocket | undefined;
}

function httpLoopbackCluster(name: string, address: string, portValue: number): EnvoyCluster {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '5s',
    typed_extension_protocol_options: httpProtocolOptions(false),
    load_assignment: loadAssignment(name, [{ socket_address: { address, port_value: portValue } }]),
  };
}

function adminProxyListener(l: AdminProxyListener, cluster: string): EnvoyListener {
  return {
    name: `${l.name}_listener`,
    address: { socket_address: { address: l.bind.address, port_value: l.bind.port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': TYPE_HCM,
              stat_prefix: l.name,
              codec_type: 'HTTP1',
              route_config: {
                name: 'self_admin_route',
                virtual_hosts: [
                  {
                    name: 'self_admin',
                    domains: ['*'],
                    routes: [
                      { match: l.match, route: { cluster, prefix_rewrite: l.rewrite } },
                      { match: { prefix: '/' }, direct_response: { status: 404 } },
                    ],
                  },
                ],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': TYPE_ROUTER } }],
            },
          },
        ],
        ...(l.transportSocket ? { transport_socket: l.transportSocket } : {}),
      },
    ],
  };
}

function prometheusTls(p: EnvoyPrometheusOptions): { transportSocket: EnvoyTransportSocket; secrets: EnvoySecret[] } | undefined {
  if (!p.certFile && !p.keyFile && !p.caFile && !p.caPath) return undefined;
  if (!p.certFile || !p.keyFile || !p.caFile) {
    throw new ConsulEcsError(
      INVALID,
      'envoy bootstrap: TLS on the Prometheus listener needs prometheus.certFile, prometheus.keyFile and prometheus.caFile together' +
        (p.caPath ? ' (a CA directory, prometheus.caPath, is not supported: give a CA file)' : ''),
    );
  }
  return {
    transportSocket: {
      name: 'tls',
      typed_config: {
        '@type': TYPE_DOWNSTREAM_TLS,
        common_tls_context: {
          tls_certificate_sds_secret_configs: [{ name: 'prometheus_cert' }],
          validation_context_sds_secret_config: { name: 'prometheus_validation_context' },
        },
      },
    },
    secrets: [
      { name: 'prometheus_cert', tls_certificate: { certificate_chain: { filename: p.certFile }, private_key: { filename: p.keyFile } } },
      { name: 'prometheus_validation_context', validation_context: { trusted_ca: { filename: p.caFile } } },
    ],
  };
}

// ---------------------------------------------------------------------------
// Proxy.Config keys

class ProxyConfigReader {
  constructor(
    private readonly config: Record<string, unknown> | undefined,
    private readonly what: string,
  ) {}

  #fail(key: string, problem: string): never {
    throw new ConsulEcsError(BAD_PROXY_CONFIG, `${this.what}: Proxy.Config key ${key} ${problem}`);
  }

  /** A string value; numbers and booleans are taken as text (as Consul's weak decoding does); "" is unset. */
  string(key: string): string | undefined {
    const v = this.config?.[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return this.#fail(key, `must be a string, got ${Array.isArray(v) ? 'an array' : typeof v}`);
  }

  /** A list of strings; a single string is a list of one. */
  stringList(key: string): string[] {
    const v = this.config?.[key];
    if (v === undefined || v === null || v === '') return [];
    if (typeof v === 'string') return [v];
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    return this.#fail(key, 'must be a list of strings');
  }

  /**
   * JSON objects, given as Consul takes them: one object, or several separated
   * by commas (text to put inside a JSON array); a JSON array is accepted too.
   */
  jsonList(key: string): EnvoyJsonObject[] {
    const text = this.string(key);
    if (text === undefined) return [];
    let items: unknown;
    try {
      items = JSON.parse(`[${text}]`);
    } catch (err) {
      return this.#fail(key, `is not valid JSON (${jsonError(err)}); give one JSON object, or several separated by commas`);
    }
    let list = items as unknown[];
    if (list.length === 1 && Array.isArray(list[0])) list = list[0] as unknown[];
    list.forEach((x, i) => {
      if (!x || typeof x !== 'object' || Array.isArray(x)) this.#fail(key, `must hold JSON objects, but item ${i + 1} is ${x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x}`);
    });
    return list as EnvoyJsonObject[];
  }

  /** One JSON object. */
  jsonObject(key: string): EnvoyJsonObject | undefined {
    const text = this.string(key);
    if (text === undefined) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      return this.#fail(key, `is not valid JSON (${jsonError(err)})`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) return this.#fail(key, 'must be a JSON object');
    return v as EnvoyJsonObject;
  }
}

/**
 * A JSON parse error without the snippet of input newer V8s quote
 * (`Unexpected token 'x', "…" is not valid JSON`): user JSON could hold a secret.
 */
function jsonError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, ' in the JSON');
}

function hostPort(s: string, key: string, what: string): { address: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  const host = m?.[1] ?? m?.[2];
  const p = m ? Number(m[3]) : NaN;
  if (!m || !host || ipVersion(host) === 0 || !(p >= 1 && p <= 65535)) {
    throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: Proxy.Config key ${key} must be <ip>:<port> (e.g. 0.0.0.0:20200), got ${JSON.stringify(s)}`);
  }
  return { address: host, port: p };
}

function statsSink(
  key: string,
  raw: string,
  env: Record<string, string | undefined>,
  name: string,
  type: string,
  what: string,
): EnvoyStatsSink {
  const fail = (problem: string): never => {
    throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: Proxy.Config key ${key} ${problem}`);
  };
  let url = raw;
  const whole = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(raw);
  if (whole) {
    // The whole value names an environment variable holding the URL.
    const v = env[whole[1]!];
    if (!v) fail(`names the environment variable ${whole[1]}, which is not set`);
    url = v!;
  } else {
    // Only ${HOST_IP} is expanded inside a URL (the host's IP on ECS/Nomad/k8s).
    url = raw.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a?: string, b?: string) => {
      const n = (a ?? b)!;
      if (n !== 'HOST_IP') return m;
      const v = env.HOST_IP;
      if (!v) fail('uses ${HOST_IP}, which is not set');
      return v!;
    });
  }
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(url);
  if (!m) return fail(`must be a udp://<ip>:<port> or unix:///<path> URL, got ${JSON.stringify(url)}`);
  const scheme = m[1]!.toLowerCase();
  let address: EnvoyAddress;
  if (scheme === 'udp') {
    const hp = /^(?:\[([^\]]+)\]|([^:/]+)):(\d+)\/?$/.exec(m[2]!);
    const host = hp?.[1] ?? hp?.[2];
    const p = hp ? Number(hp[3]) : NaN;
    if (!hp || !host || ipVersion(host) === 0 || !(p >= 1 && p <= 65535)) {
      return fail(`must be udp://<ip>:<port> with an IP address (Envoy does not resolve names for stats sinks), got ${JSON.stringify(url)}`);
    }
    address = { socket_address: { address: host, port_value: p } };
  } else if (scheme === 'unix') {
    if (!m[2]!.startsWith('/')) return fail(`must be unix:///<absolute path>, got ${JSON.stringify(url)}`);
    address = { pipe: { path: m[2]! } };
  } else {
    return fail(`uses the unsupported address protocol ${JSON.stringify(scheme)}; use udp:// or unix://`);
  }
  return { name, typed_config: { '@type': type, address } };
}

interface StatsTagDefaults {
  proxyCluster: string;
  sourceService: string;
  namespace: string;
  partition: string;
  datacenter: string;
}

function statsTags(userTags: string[], omitDeprecated: boolean, d: StatsTagDefaults): EnvoyTagSpecifier[] {
  const tags: EnvoyTagSpecifier[] = [];
  const explicit = new Set<string>();
  for (const t of userTags) {
    const eq = t.indexOf('=');
    // "canary" alone is the tag canary=1.
    const name = (eq < 0 ? t : t.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? '1' : t.slice(eq + 1);
    if (name === '') throw new ConsulEcsError(BAD_PROXY_CONFIG, `Proxy.Config key envoy_stats_tags has an entry without a tag name: ${JSON.stringify(t)}`);
    tags.push({ tag_name: name, fixed_value: value });
    explicit.add(name);
  }
  tags.push(...consulResourceTagSpecifiers(omitDeprecated));
  const defaults: Array<[string, string]> = [
    // local_cluster predates the consul.source.* tags and is kept for old dashboards.
    ['local_cluster', d.proxyCluster],
    ['consul.source.service', d.sourceService],
    ['consul.source.namespace', d.namespace],
    ['consul.source.partition', d.partition],
    ['consul.source.datacenter', d.datacenter],
  ];
  for (const [name, value] of defaults) {
    if (value !== '' && !explicit.has(name)) tags.push({ tag_name: name, fixed_value: value });
  }
  return tags;
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

function adminAccessLogs(logs: ConsulAccessLogsConfig | undefined, defaultPath: string, what: string): EnvoyAccessLog[] {
  if (!logs?.Enabled) {
    return [{ name: 'envoy.access_loggers.file', typed_config: { '@type': TYPE_FILE_ACCESS_LOG, path: defaultPath } }];
  }
  let logFormat: Record<string, unknown>;
  if (logs.JSONFormat) {
    let json: unknown;
    try {
      json = JSON.parse(logs.JSONFormat);
    } catch (err) {
      throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: AccessLogs.JSONFormat is not valid JSON (${jsonError(err)})`);
    }
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: AccessLogs.JSONFormat must be a JSON object`);
    logFormat = { json_format: json };
  } else if (logs.TextFormat) {
    logFormat = { text_format_source: { inline_string: logs.TextFormat.endsWith('\n') ? logs.TextFormat : `${logs.TextFormat}\n` } };
  } else {
    logFormat = { json_format: { ...CONSUL_DEFAULT_ACCESS_LOG_JSON } };
  }
  const type = logs.Type || 'stdout';
  let typed: EnvoyTypedConfig;
  switch (type) {
    case 'stdout':
      typed = { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog', log_format: logFormat };
      break;
    case 'stderr':
      typed = { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog', log_format: logFormat };
      break;
    case 'file':
      if (!logs.Path) throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: AccessLogs.Type is file but AccessLogs.Path is empty`);
      typed = { '@type': TYPE_FILE_ACCESS_LOG, path: logs.Path, log_format: logFormat };
      break;
    default:
      throw new ConsulEcsError(BAD_PROXY_CONFIG, `${what}: AccessLogs.Type ${JSON.stringify(type)} is not one of stdout, stderr, file`);
  }
  return [{ name: 'Consul Listener Filter Log', typed_config: typed }];
}
