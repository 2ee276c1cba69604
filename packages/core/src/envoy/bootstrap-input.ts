// What generateEnvoyBootstrap is given: the registered proxy or gateway as
// Consul returns it, where the Consul servers are, the ACL token, and the
// addresses Envoy binds. The defaults named here are consul-ecs's.

/** The proxy kinds a bootstrap can be generated for. */
export const ENVOY_PROXY_KINDS = ['connect-proxy', 'mesh-gateway', 'terminating-gateway', 'api-gateway'] as const;
export type EnvoyProxyKind = (typeof ENVOY_PROXY_KINDS)[number];

export const DEFAULT_ENVOY_ADMIN_PORT = 19000;
/** The proxy's readiness/health-check port in consul-ecs (`envoy_ready_bind_port`, checked by `net-dial`). */
export const DEFAULT_ENVOY_READY_PORT = 22000;
export const DEFAULT_CONSUL_GRPC_PORT = 8503;

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
  /** Default `local_agent`. */
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
