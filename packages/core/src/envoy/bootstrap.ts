// Envoy bootstrap generation for a proxy that talks ADS (delta xDS over gRPC)
// straight to the Consul servers' gRPC port, with no consul-dataplane and no
// Consul client agent in between. The layout follows what `consul connect envoy
// -bootstrap` and consul-dataplane generate (node identity, admin, the
// Consul-managed stats tags, the `envoy_*` proxy-config keys, the admin-proxy
// listeners) so Consul's xDS server, Consul's docs and existing dashboards apply
// unchanged. The ADS cluster differs because it points at remote servers, not
// at a local agent: see renderAdsCluster. For an agentless proxy Consul's xDS
// server needs node.metadata.node_name (the catalog node the proxy is on; it
// looks on its own node otherwise) and a token with service:write on the
// proxy's service (the destination service for a sidecar).
//
// Split as Consul splits its generator: bootstrap-config.ts checks the input
// and reads the proxy's `envoy_*` keys into a typed config; the functions
// below turn that config into the document.
import { ConsulEcsError } from '../util/errors.js';
import { parseEnvoyBootstrapConfig } from './bootstrap-config.js';
import type { EnvoyBootstrapInput } from './bootstrap-input.js';
import { INVALID } from './input-checks.js';
import { ipVersion } from '../util/ip-address.js';
import type {
  AdminApiListenerConfig,
  BootstrapAdminConfig,
  BootstrapNodeConfig,
  BootstrapStatsConfig,
  BootstrapXdsConfig,
  EnvoyBootstrapConfig,
} from './bootstrap-config.js';
import { TELEMETRY_COLLECTOR_CLUSTER_NAME } from './resource-names.js';
import { consulResourceTagSpecifiers } from './stats-tags.js';
import type {
  EnvoyAccessLog,
  EnvoyAddress,
  EnvoyAdmin,
  EnvoyBootstrap,
  EnvoyCluster,
  EnvoyJsonObject,
  EnvoyListener,
  EnvoySecret,
  EnvoyStaticResources,
  EnvoyStatsConfig,
  EnvoyStatsSink,
  EnvoyTagSpecifier,
  EnvoyTransportSocket,
  EnvoyTypedConfig,
} from './types.js';

export {
  DEFAULT_CONSUL_GRPC_PORT,
  DEFAULT_ENVOY_ADMIN_PORT,
  DEFAULT_ENVOY_READY_PORT,
  ENVOY_PROXY_KINDS,
  type ConsulAccessLogsConfig,
  type EnvoyBootstrapInput,
  type EnvoyPrometheusOptions,
  type EnvoyProxyKind,
  type EnvoyProxyService,
  type EnvoyXdsServers,
  type EnvoyXdsTls,
} from './bootstrap-input.js';
export { ENVOY_BOOTSTRAP_CONFIG_KEYS } from './bootstrap-config.js';
export {
  DEFAULT_ADS_CLUSTER_NAME,
  PROMETHEUS_BACKEND_CLUSTER_NAME,
  READY_LISTENER_NAME,
  SELF_ADMIN_CLUSTER_NAME,
  TELEMETRY_COLLECTOR_CLUSTER_NAME,
} from './resource-names.js';

/** File name of the generated bootstrap in the bootstrap directory (`/consul`). */
export const ENVOY_BOOTSTRAP_FILE_NAME = 'envoy-bootstrap.json';

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
    return renderBootstrapDocument(parseEnvoyBootstrapConfig(input));
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

// ---------------------------------------------------------------------------
// The document

function renderBootstrapDocument(config: EnvoyBootstrapConfig): EnvoyBootstrap {
  const sinks = renderStatsSinks(config.stats);
  const flushInterval = config.stats.flushInterval;
  return {
    admin: renderAdmin(config.admin),
    node: {
      id: config.node.id,
      cluster: config.node.service,
      metadata: { node_name: config.node.nodeName, namespace: config.node.namespace, partition: config.node.partition },
    },
    layered_runtime: {
      // Consul's route regexes can be larger than Envoy's default RE2 program size limit.
      layers: [{ name: 'base', static_layer: { 're2.max_program_size.error_level': 1048576 } }],
    },
    static_resources: renderStaticResources(config),
    stats_config: renderStatsConfig(config.stats, config.node),
    ...(sinks.length > 0 ? { stats_sinks: sinks } : {}),
    ...(flushInterval !== undefined ? { stats_flush_interval: flushInterval } : {}),
    ...(config.tracing ? { tracing: config.tracing } : {}),
    dynamic_resources: {
      // initial_fetch_timeout 0s: Envoy stays not-ready (/ready answers 503)
      // until Consul has sent listeners and clusters, however long that takes.
      lds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      cds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      ads_config: {
        api_type: 'DELTA_GRPC',
        transport_api_version: 'V3',
        grpc_services: {
          ...(config.xds.token ? { initial_metadata: [{ key: 'x-consul-token', value: config.xds.token }] } : {}),
          envoy_grpc: { cluster_name: config.xds.clusterName },
        },
      },
    },
  };
}

/**
 * Clusters: the ADS cluster, the extra ones, each admin API listener's backend
 * not defined yet, the telemetry collector's. Listeners: the extra ones, then
 * the admin API listeners.
 */
function renderStaticResources(config: EnvoyBootstrapConfig): EnvoyStaticResources {
  const clusters: EnvoyStaticResources['clusters'] = [renderAdsCluster(config.xds), ...config.extraStaticClusters];
  const listeners: NonNullable<EnvoyStaticResources['listeners']> = [...config.extraStaticListeners];
  const secrets: NonNullable<EnvoyStaticResources['secrets']> = [];
  for (const l of config.adminApiListeners) {
    if (!clusters.some((c) => c.name === l.backend.cluster)) {
      clusters.push(renderLoopbackHttpCluster(l.backend.cluster, config.admin.address, l.backend.port));
    }
    const rendered = renderAdminApiListener(l);
    listeners.push(rendered.listener);
    secrets.push(...rendered.secrets);
  }
  if (config.stats.telemetryCollectorSocket !== undefined) clusters.push(renderTelemetryCollectorCluster(config.stats.telemetryCollectorSocket));
  return {
    clusters,
    ...(listeners.length > 0 ? { listeners } : {}),
    ...(secrets.length > 0 ? { secrets } : {}),
  };
}

// ---------------------------------------------------------------------------
// Static clusters: ADS, admin loopback, telemetry collector

const TYPE_HTTP_PROTOCOL_OPTIONS = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const TYPE_UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

/**
 * The cluster that carries the ADS stream. Unlike Consul's, it points at
 * remote servers rather than a local agent: DNS names are re-resolved, the
 * connect timeout is longer, and the stream is kept alive with pings.
 */
function renderAdsCluster(xds: BootstrapXdsConfig): EnvoyCluster {
  const allIps = xds.hosts.every((h) => ipVersion(h) !== 0);
  const cluster: EnvoyCluster = {
    name: xds.clusterName,
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
  if (xds.tls) cluster.transport_socket = adsTransportSocket(xds.tls);
  cluster.load_assignment = loadAssignment(
    xds.clusterName,
    xds.hosts.map((h) => ({ socket_address: { address: h, port_value: xds.grpcPort } })),
  );
  return cluster;
}

function adsTransportSocket(tls: NonNullable<BootstrapXdsConfig['tls']>): EnvoyTransportSocket {
  const context: EnvoyTypedConfig = {
    '@type': TYPE_UPSTREAM_TLS,
    ...(tls.sni ? { sni: tls.sni } : {}),
    common_tls_context: {
      // Offer h2 explicitly: grpc-go servers (Consul's) can be set to refuse
      // TLS clients that negotiate no ALPN protocol.
      alpn_protocols: ['h2'],
      validation_context: {
        trusted_ca: tls.trustedCa,
        ...(tls.subjectAltNames
          ? { match_typed_subject_alt_names: tls.subjectAltNames.map((san) => ({ san_type: san.type, matcher: { exact: san.name } })) }
          : {}),
      },
    },
  };
  return { name: 'tls', typed_config: context };
}

/** An HTTP/1.1 cluster to a port on the admin address: Envoy's admin API (`self_admin`) or a metrics backend. */
function renderLoopbackHttpCluster(name: string, address: string, portValue: number): EnvoyCluster {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '5s',
    typed_extension_protocol_options: httpProtocolOptions(false),
    load_assignment: loadAssignment(name, [{ socket_address: { address, port_value: portValue } }]),
  };
}

/** The gRPC cluster to the Consul telemetry collector's Unix socket. */
function renderTelemetryCollectorCluster(socketPath: string): EnvoyCluster {
  return {
    name: TELEMETRY_COLLECTOR_CLUSTER_NAME,
    type: 'STATIC',
    typed_extension_protocol_options: httpProtocolOptions(true),
    load_assignment: loadAssignment(TELEMETRY_COLLECTOR_CLUSTER_NAME, [{ pipe: { path: socketPath } }]),
  };
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
// The admin API and the listeners that expose one path of it

const TYPE_DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const TYPE_HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TYPE_ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const TYPE_FILE_ACCESS_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const TYPE_STDOUT_ACCESS_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';
const TYPE_STDERR_ACCESS_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog';

function renderAdmin(admin: BootstrapAdminConfig): EnvoyAdmin {
  return {
    access_log: renderAdminAccessLog(admin.accessLog),
    address: { socket_address: { address: admin.address, port_value: admin.port } },
  };
}

function renderAdminAccessLog(log: BootstrapAdminConfig['accessLog']): EnvoyAccessLog[] {
  if (log.kind === 'admin-file') {
    return [{ name: 'envoy.access_loggers.file', typed_config: { '@type': TYPE_FILE_ACCESS_LOG, path: log.path } }];
  }
  const logFormat = 'json' in log.format ? { json_format: log.format.json } : { text_format_source: { inline_string: log.format.text } };
  let typed: EnvoyTypedConfig;
  switch (log.type) {
    case 'stdout':
      typed = { '@type': TYPE_STDOUT_ACCESS_LOG, log_format: logFormat };
      break;
    case 'stderr':
      typed = { '@type': TYPE_STDERR_ACCESS_LOG, log_format: logFormat };
      break;
    case 'file':
      typed = { '@type': TYPE_FILE_ACCESS_LOG, path: log.path, log_format: logFormat };
      break;
  }
  return [{ name: 'Consul Listener Filter Log', typed_config: typed }];
}

/**
 * A listener that sends requests for one path to its backend cluster (named
 * in the config; the caller defines it) and answers 404 to any other, with the
 * secrets its TLS needs.
 */
function renderAdminApiListener(l: AdminApiListenerConfig): { listener: EnvoyListener; secrets: EnvoySecret[] } {
  const tls = l.tls ? prometheusListenerTls(l.tls) : undefined;
  const listener: EnvoyListener = {
    name: l.name,
    address: { socket_address: { address: l.bind.address, port_value: l.bind.port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': TYPE_HCM,
              stat_prefix: l.statPrefix,
              codec_type: 'HTTP1',
              route_config: {
                name: 'self_admin_route',
                virtual_hosts: [
                  {
                    name: 'self_admin',
                    domains: ['*'],
                    routes: [
                      { match: l.match, route: { cluster: l.backend.cluster, prefix_rewrite: l.rewrite } },
                      { match: { prefix: '/' }, direct_response: { status: 404 } },
                    ],
                  },
                ],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': TYPE_ROUTER } }],
            },
          },
        ],
        ...(tls ? { transport_socket: tls.transportSocket } : {}),
      },
    ],
  };
  return { listener, secrets: tls?.secrets ?? [] };
}

/** The Prometheus listener's TLS: its certificate, key and CA from files, through SDS secrets. */
function prometheusListenerTls(files: NonNullable<AdminApiListenerConfig['tls']>): { transportSocket: EnvoyTransportSocket; secrets: EnvoySecret[] } {
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
      { name: 'prometheus_cert', tls_certificate: { certificate_chain: { filename: files.certFile }, private_key: { filename: files.keyFile } } },
      { name: 'prometheus_validation_context', validation_context: { trusted_ca: { filename: files.caFile } } },
    ],
  };
}

// ---------------------------------------------------------------------------
// Stats sinks and stats config

/** The statsd and dogstatsd sinks, the extra sinks, then the telemetry collector's. */
function renderStatsSinks(stats: BootstrapStatsConfig): Array<EnvoyStatsSink | EnvoyJsonObject> {
  const sinks: Array<EnvoyStatsSink | EnvoyJsonObject> = [];
  if (stats.statsdAddress) {
    sinks.push({ name: 'envoy.stat_sinks.statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', address: stats.statsdAddress } });
  }
  if (stats.dogstatsdAddress) {
    sinks.push({ name: 'envoy.stat_sinks.dog_statsd', typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink', address: stats.dogstatsdAddress } });
  }
  sinks.push(...stats.extraSinks);
  if (stats.telemetryCollectorSocket !== undefined) {
    sinks.push({
      name: 'envoy.stat_sinks.metrics_service',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig',
        transport_api_version: 'V3',
        grpc_service: { envoy_grpc: { cluster_name: TELEMETRY_COLLECTOR_CLUSTER_NAME } },
        emit_tags_as_labels: true,
      },
    });
  }
  return sinks;
}

/**
 * `envoy_stats_config_json` as given, or the stats config Consul generates:
 * the proxy's own fixed tags, the tags Consul cuts from its resource names,
 * then fixed tags naming the proxy that the proxy's own do not override.
 */
function renderStatsConfig(stats: BootstrapStatsConfig, node: BootstrapNodeConfig): EnvoyStatsConfig | EnvoyJsonObject {
  if (stats.statsConfigJson) return stats.statsConfigJson;
  const tags: EnvoyTagSpecifier[] = stats.tags.map((t) => ({ tag_name: t.name, fixed_value: t.value }));
  const explicit = new Set(stats.tags.map((t) => t.name));
  tags.push(...consulResourceTagSpecifiers(stats.omitDeprecatedTags));
  const defaults: Array<[string, string]> = [
    // local_cluster predates the consul.source.* tags and is kept for old dashboards.
    ['local_cluster', node.service],
    ['consul.source.service', node.service],
    ['consul.source.namespace', node.namespace],
    ['consul.source.partition', node.partition],
    ['consul.source.datacenter', node.datacenter],
  ];
  for (const [name, value] of defaults) {
    if (value !== '' && !explicit.has(name)) tags.push({ tag_name: name, fixed_value: value });
  }
  return { stats_tags: tags, use_all_default_tags: true };
}
