// The parts of Envoy's v3 Bootstrap (envoy.config.bootstrap.v3.Bootstrap) that
// this project emits, in the proto3 JSON form Envoy reads with `-c`. Field
// names are the proto field names (snake_case); Envoy also accepts camelCase.
// Objects that come verbatim from a proxy's `envoy_*_json` config keys are
// typed loosely ({@link EnvoyJsonObject}): they are the user's, not ours.

/** Any JSON object, e.g. a cluster or listener given in `envoy_extra_static_clusters_json`. */
export type EnvoyJsonObject = { [field: string]: unknown };

/** A `google.protobuf.Any` in JSON form: the message's fields beside its `@type` URL. */
export interface EnvoyTypedConfig {
  '@type': string;
  [field: string]: unknown;
}

/** envoy.config.core.v3.SocketAddress. */
export interface EnvoySocketAddress {
  address: string;
  port_value: number;
  protocol?: 'TCP' | 'UDP';
}

/** envoy.config.core.v3.Pipe (a Unix domain socket). */
export interface EnvoyPipe {
  path: string;
}

/** envoy.config.core.v3.Address: exactly one of its members. */
export type EnvoyAddress = { socket_address: EnvoySocketAddress } | { pipe: EnvoyPipe };

/** envoy.config.core.v3.DataSource: exactly one of its members. */
export type EnvoyDataSource = { filename: string } | { inline_string: string };

/** envoy.config.core.v3.Node: who this Envoy is, as the xDS server (Consul) sees it. */
export interface EnvoyNode {
  /** The proxy's service ID: Consul finds the proxy's registration by it. */
  id: string;
  /** The service name (the destination service for a sidecar, the gateway's own name for a gateway). */
  cluster: string;
  /** Read by Consul's xDS server: `node_name` (where the proxy is registered), `namespace`, `partition`. */
  metadata: EnvoyNodeMetadata;
}

export interface EnvoyNodeMetadata {
  node_name: string;
  namespace: string;
  partition: string;
  [key: string]: string;
}

/** envoy.config.accesslog.v3.AccessLog. */
export interface EnvoyAccessLog {
  name: string;
  typed_config: EnvoyTypedConfig;
  filter?: EnvoyJsonObject;
}

/** envoy.config.bootstrap.v3.Admin. */
export interface EnvoyAdmin {
  access_log: EnvoyAccessLog[];
  address: { socket_address: EnvoySocketAddress };
}

/** envoy.config.bootstrap.v3.LayeredRuntime. */
export interface EnvoyLayeredRuntime {
  layers: Array<{ name: string; static_layer?: Record<string, unknown>; admin_layer?: Record<string, never> }>;
}

/** envoy.config.endpoint.v3.ClusterLoadAssignment. */
export interface EnvoyClusterLoadAssignment {
  cluster_name: string;
  endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: EnvoyAddress } }> }>;
}

/** envoy.config.core.v3.Http2ProtocolOptions (the part we set). */
export interface EnvoyHttp2ProtocolOptions {
  connection_keepalive?: { interval: string; timeout: string };
  [field: string]: unknown;
}

/** envoy.extensions.upstreams.http.v3.HttpProtocolOptions, keyed by its extension name. */
export interface EnvoyHttpProtocolOptionsMap {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
    explicit_http_config: { http2_protocol_options: EnvoyHttp2ProtocolOptions } | { http_protocol_options: Record<string, unknown> };
  };
}

/** envoy.type.matcher.v3.StringMatcher (the exact form). */
export interface EnvoyStringMatcher {
  exact: string;
}

/** envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher. */
export interface EnvoySubjectAltNameMatcher {
  san_type: 'DNS' | 'IP_ADDRESS' | 'URI' | 'EMAIL';
  matcher: EnvoyStringMatcher;
}

/** envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext (the part we set). */
export interface EnvoyUpstreamTlsContext {
  '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
  sni?: string;
  common_tls_context: {
    alpn_protocols?: string[];
    validation_context: {
      trusted_ca: EnvoyDataSource;
      match_typed_subject_alt_names?: EnvoySubjectAltNameMatcher[];
    };
  };
}

/** envoy.config.core.v3.TransportSocket. */
export interface EnvoyTransportSocket {
  name: string;
  typed_config: EnvoyTypedConfig;
}

/** envoy.config.cluster.v3.Cluster: the fields of the clusters we generate. */
export interface EnvoyCluster {
  name: string;
  type?: 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';
  connect_timeout?: string;
  dns_lookup_family?: 'AUTO' | 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'ALL';
  typed_extension_protocol_options?: EnvoyHttpProtocolOptionsMap;
  transport_socket?: EnvoyTransportSocket;
  load_assignment?: EnvoyClusterLoadAssignment;
  [field: string]: unknown;
}

/** envoy.config.route.v3.Route (the two shapes our admin-proxy listeners use). */
export type EnvoyRoute =
  | {
      match: { path: string } | { prefix: string };
      route: { cluster: string; prefix_rewrite: string };
    }
  | { match: { prefix: string }; direct_response: { status: number } };

/** envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager (the part we set). */
export interface EnvoyHttpConnectionManager {
  '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
  stat_prefix: string;
  codec_type: 'AUTO' | 'HTTP1' | 'HTTP2';
  route_config: {
    name: string;
    virtual_hosts: Array<{ name: string; domains: string[]; routes: EnvoyRoute[] }>;
  };
  http_filters: Array<{ name: string; typed_config: EnvoyTypedConfig }>;
}

/** envoy.config.listener.v3.Listener: the fields of the listeners we generate. */
export interface EnvoyListener {
  name: string;
  address?: EnvoyAddress;
  filter_chains?: Array<{
    filters: Array<{ name: string; typed_config: EnvoyTypedConfig }>;
    transport_socket?: EnvoyTransportSocket;
  }>;
  [field: string]: unknown;
}

/** envoy.extensions.transport_sockets.tls.v3.Secret (for the Prometheus listener's TLS). */
export interface EnvoySecret {
  name: string;
  tls_certificate?: { certificate_chain: EnvoyDataSource; private_key: EnvoyDataSource };
  validation_context?: { trusted_ca: EnvoyDataSource } | { watched_directory: { path: string } };
}

/** envoy.config.bootstrap.v3.Bootstrap.StaticResources. */
export interface EnvoyStaticResources {
  clusters: Array<EnvoyCluster | EnvoyJsonObject>;
  listeners?: Array<EnvoyListener | EnvoyJsonObject>;
  secrets?: EnvoySecret[];
}

/** envoy.config.metrics.v3.TagSpecifier. */
export type EnvoyTagSpecifier = { tag_name: string; regex: string } | { tag_name: string; fixed_value: string };

/** envoy.config.metrics.v3.StatsConfig (what we generate; `envoy_stats_config_json` replaces it wholesale). */
export interface EnvoyStatsConfig {
  stats_tags?: EnvoyTagSpecifier[];
  use_all_default_tags?: boolean;
  [field: string]: unknown;
}

/** envoy.config.metrics.v3.StatsSink. */
export interface EnvoyStatsSink {
  name: string;
  typed_config: EnvoyTypedConfig;
  [field: string]: unknown;
}

/** envoy.config.core.v3.ConfigSource pointing at the ADS stream. */
export interface EnvoyAdsConfigSource {
  ads: Record<string, never>;
  initial_fetch_timeout: string;
  resource_api_version: 'V3';
}

/** envoy.config.core.v3.GrpcService (the Envoy gRPC client form). */
export interface EnvoyGrpcService {
  envoy_grpc: { cluster_name: string };
  initial_metadata?: Array<{ key: string; value: string }>;
}

/** envoy.config.core.v3.ApiConfigSource for ADS. */
export interface EnvoyAdsApiConfigSource {
  api_type: 'DELTA_GRPC' | 'GRPC';
  transport_api_version: 'V3';
  grpc_services: EnvoyGrpcService;
}

/** envoy.config.bootstrap.v3.Bootstrap.DynamicResources. */
export interface EnvoyDynamicResources {
  lds_config: EnvoyAdsConfigSource;
  cds_config: EnvoyAdsConfigSource;
  ads_config: EnvoyAdsApiConfigSource;
}

/** envoy.config.bootstrap.v3.Bootstrap: what {@link generateEnvoyBootstrap} returns. */
export interface EnvoyBootstrap {
  admin: EnvoyAdmin;
  node: EnvoyNode;
  layered_runtime: EnvoyLayeredRuntime;
  static_resources: EnvoyStaticResources;
  stats_config?: EnvoyStatsConfig | EnvoyJsonObject;
  stats_sinks?: Array<EnvoyStatsSink | EnvoyJsonObject>;
  stats_flush_interval?: string;
  tracing?: EnvoyJsonObject;
  dynamic_resources: EnvoyDynamicResources;
}
