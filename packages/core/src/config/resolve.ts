import { ConsulEcsError } from '../util/errors.js';
import type {
  ConsulEcsConfig,
  ConfigExposePath,
  ConfigGatewayAddress,
  ConfigGateway,
  ConfigOutlierDetection,
  ConfigProxy,
  ResolvedConfig,
  ResolvedGateway,
  ResolvedGatewayAddress,
  ResolvedOutlierDetection,
  ResolvedProxy,
  ResolvedService,
  ConfigService,
  ConfigUpstream,
  ResolvedUpstream,
} from './types.js';

/** Defaults of consul-ecs (v0.10, `config/types.go` and `config/config.go` unless noted). */
export const CONFIG_DEFAULTS = {
  /** `logging/logger.go` defaultLogLevel. */
  logLevel: 'INFO',
  /** `DefaultAuthMethodName`. */
  authMethod: 'iam-ecs-service-token',
  /** `defaultIAMRolePath`. */
  iamRolePath: '/consul-ecs/',
  /** `defaultGRPCPort`. */
  grpcPort: 8503,
  /** `defaultHTTPPort`. */
  httpPort: 8501,
  /** `DefaultPublicListenerPort`. */
  publicListenerPort: 20000,
  /** `DefaultProxyHealthCheckPort`, for sidecars and gateways. */
  healthCheckPort: 22000,
  /** `DefaultGatewayPort`. */
  gatewayPort: 8443,
  /** Outlier detection: the `default`s of schema.json (`DefaultOutlierDetection*`). */
  outlierDetection: {
    interval: 10_000_000_000,
    maxFailures: 5,
    enforcingConsecutive5xx: 100,
    enforcingConsecutiveGatewayFailure: 100,
    maxEjectionPercent: 50,
  },
} as const;

/**
 * Applies consul-ecs's defaults to a config that passed validation. Nulls are
 * dropped; empty strings and zero ports, which consul-ecs treats as unset,
 * get the default (or are dropped where there is none).
 */
export function resolveConfig(config: ConsulEcsConfig): ResolvedConfig {
  const login = config.consulLogin ?? {};
  const controller = config.controller ?? {};
  const servers = config.consulServers;
  const defaults = servers.defaults ?? {};
  const grpc = servers.grpc ?? {};
  const http = servers.http ?? {};
  const defaultTls = defaults.tls ?? true;
  const tproxy = config.transparentProxy ?? {};

  const resolved: ResolvedConfig = {
    bootstrapDir: config.bootstrapDir,
    logLevel: config.logLevel ?? CONFIG_DEFAULTS.logLevel,
    healthSyncContainers: [...(config.healthSyncContainers ?? [])],
    consulLogin: compact({
      enabled: login.enabled ?? false,
      method: text(login.method) ?? CONFIG_DEFAULTS.authMethod,
      includeEntity: login.includeEntity ?? true,
      meta: { ...login.meta },
      datacenter: text(login.datacenter),
      region: text(login.region),
      stsEndpoint: text(login.stsEndpoint),
      serverIdHeaderValue: text(login.serverIdHeaderValue),
    }),
    controller: compact({
      iamRolePath: text(controller.iamRolePath) ?? CONFIG_DEFAULTS.iamRolePath,
      partitionsEnabled: controller.partitionsEnabled ?? false,
      partition: text(controller.partition),
    }),
    consulServers: {
      hosts: servers.hosts,
      skipServerWatch: servers.skipServerWatch ?? false,
      defaults: compact({
        tls: defaultTls,
        caCertFile: text(defaults.caCertFile),
        tlsServerName: text(defaults.tlsServerName),
      }),
      grpc: compact({
        port: port(grpc.port) ?? CONFIG_DEFAULTS.grpcPort,
        tls: grpc.tls ?? defaultTls,
        caCertFile: text(grpc.caCertFile) ?? text(defaults.caCertFile),
        tlsServerName: text(grpc.tlsServerName) ?? text(defaults.tlsServerName),
      }),
      http: compact({
        port: port(http.port) ?? CONFIG_DEFAULTS.httpPort,
        https: http.https ?? true,
        tls: http.tls ?? defaultTls,
        caCertFile: text(http.caCertFile) ?? text(defaults.caCertFile),
        tlsServerName: text(http.tlsServerName) ?? text(defaults.tlsServerName),
      }),
    },
    service: resolveService(config.service),
    proxy: resolveProxy(config.proxy ?? {}),
    transparentProxy: {
      enabled: tproxy.enabled ?? true,
      excludeInboundPorts: [...(tproxy.excludeInboundPorts ?? [])],
      excludeOutboundPorts: [...(tproxy.excludeOutboundPorts ?? [])],
      excludeOutboundCIDRs: [...(tproxy.excludeOutboundCIDRs ?? [])],
      excludeUIDs: [...(tproxy.excludeUIDs ?? [])],
      consulDNS: { enabled: tproxy.consulDNS?.enabled ?? false },
    },
  };
  if (config.gateway) resolved.gateway = resolveGateway(config.gateway);
  return resolved;
}

function resolveService(service: ConfigService | undefined): ResolvedService {
  const s: Partial<ConfigService> = service ?? {};
  const resilience = s.networkResilienceConfig;
  return compact({
    name: text(s.name),
    tags: [...(s.tags ?? [])],
    port: s.port ?? 0,
    enableTagOverride: s.enableTagOverride ?? false,
    meta: { ...s.meta },
    weights: s.weights ? { passing: s.weights.passing, warning: s.weights.warning } : undefined,
    namespace: text(s.namespace),
    partition: text(s.partition),
    networkResilienceConfig: resilience
      ? { enabled: resilience.enabled ?? false, outlierDetection: resolveOutlierDetection(resilience.outlierDetection ?? {}) }
      : undefined,
  });
}

function resolveOutlierDetection(o: ConfigOutlierDetection): ResolvedOutlierDetection {
  return compact({ ...CONFIG_DEFAULTS.outlierDetection, ...o });
}

function resolveProxy(proxy: ConfigProxy): ResolvedProxy {
  return compact({
    config: proxy.config ?? undefined,
    localServiceAddress: text(proxy.localServiceAddress),
    publicListenerPort: port(proxy.publicListenerPort) ?? CONFIG_DEFAULTS.publicListenerPort,
    healthCheckPort: port(proxy.healthCheckPort) ?? CONFIG_DEFAULTS.healthCheckPort,
    upstreams: (proxy.upstreams ?? []).map(resolveUpstream),
    meshGateway: proxy.meshGateway ? { mode: proxy.meshGateway.mode } : undefined,
    expose: proxy.expose ? { checks: proxy.expose.checks ?? false, paths: (proxy.expose.paths ?? []).map(resolveExposePath) } : undefined,
  });
}

function resolveExposePath(p: ConfigExposePath): ConfigExposePath {
  return compact({ listenerPort: p.listenerPort, path: p.path, localPathPort: p.localPathPort, protocol: p.protocol });
}

function resolveUpstream(u: ConfigUpstream): ResolvedUpstream {
  return compact({
    destinationType: u.destinationType ?? undefined,
    destinationNamespace: text(u.destinationNamespace),
    destinationPartition: text(u.destinationPartition),
    destinationName: u.destinationName,
    destinationPeer: text(u.destinationPeer),
    datacenter: text(u.datacenter),
    localBindAddress: text(u.localBindAddress),
    localBindPort: u.localBindPort,
    config: u.config ?? undefined,
    meshGateway: u.meshGateway ? { mode: u.meshGateway.mode } : undefined,
  });
}

function resolveGateway(g: ConfigGateway): ResolvedGateway {
  return compact({
    kind: g.kind,
    lanAddress: resolveGatewayAddress(g.lanAddress),
    // consul-ecs defaults an unset WAN port to 8443 as well (GatewayAddress.ToConsulType),
    // not to the LAN port.
    wanAddress: resolveGatewayAddress(g.wanAddress),
    name: text(g.name),
    tags: [...(g.tags ?? [])],
    meta: { ...g.meta },
    namespace: text(g.namespace),
    partition: text(g.partition),
    healthCheckPort: port(g.healthCheckPort) ?? CONFIG_DEFAULTS.healthCheckPort,
    proxy: compact({ config: g.proxy?.config ?? undefined }),
  });
}

function resolveGatewayAddress(a: ConfigGatewayAddress | null | undefined): ResolvedGatewayAddress {
  return compact({ address: text(a?.address), port: port(a?.port) ?? CONFIG_DEFAULTS.gatewayPort });
}

/** True when the task runs a gateway (`gateway.kind` set) rather than a service with a sidecar. */
export function isGateway(config: ResolvedConfig): config is ResolvedConfig & { gateway: ResolvedGateway } {
  return config.gateway !== undefined;
}

/**
 * The name of the task's service: `service.name`, else the task family lower-cased
 * (Consul service identities must be lower case). Gateway tasks register under
 * `gatewayName` instead.
 */
export function serviceName(config: ResolvedConfig, taskFamily: string): string {
  return nameOr(config.service.name, taskFamily, 'service.name');
}

/** The name of the task's gateway: `gateway.name`, else the task family lower-cased. */
export function gatewayName(config: ResolvedConfig, taskFamily: string): string {
  return nameOr(config.gateway?.name, taskFamily, 'gateway.name');
}

/** Transparent proxy applies to service tasks only (consul-ecs `TransparentProxyEnabled`). */
export function transparentProxyEnabled(config: ResolvedConfig): boolean {
  return config.transparentProxy.enabled && !isGateway(config);
}

/** Consul DNS needs transparent proxy (consul-ecs `ConsulDNSEnabled`). */
export function consulDnsEnabled(config: ResolvedConfig): boolean {
  return transparentProxyEnabled(config) && config.transparentProxy.consulDNS.enabled;
}

function nameOr(configured: string | undefined, taskFamily: string, field: string): string {
  const name = configured ?? taskFamily.toLowerCase();
  if (!name) {
    throw new ConsulEcsError(
      'service-name-missing',
      `no service name: ${field} is not set and the task family is empty; set ${field} in CONSUL_ECS_CONFIG_JSON`,
    );
  }
  return name;
}

/** A string consul-ecs reads as set: null, undefined and '' are unset. */
function text(value: string | null | undefined): string | undefined {
  return value ? value : undefined;
}

/** A port consul-ecs reads as set: null, undefined and 0 are unset. */
function port(value: number | null | undefined): number | undefined {
  return value ? value : undefined;
}

/** Drops keys whose value is undefined, so resolved objects hold only what is set. */
function compact<T extends object>(value: T): T {
  for (const key of Object.keys(value) as Array<keyof T>) {
    if (value[key] === undefined) delete value[key];
  }
  return value;
}
