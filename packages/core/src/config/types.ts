/**
 * The consul-ecs configuration (`CONSUL_ECS_CONFIG_JSON`), as written by users
 * (`ConsulEcsConfig`, mirroring `schema.json`) and as used by this library
 * (`ResolvedConfig`: nulls dropped, empty strings that consul-ecs treats as
 * "unset" dropped, defaults applied).
 */

export type ConfigLogLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
export type ConfigGatewayKind = 'mesh-gateway' | 'terminating-gateway' | 'api-gateway';
export type ConfigMeshGatewayMode = 'none' | 'local' | 'remote';
export type ConfigUpstreamDestinationType = 'service' | 'prepared_query';
export type ConfigExposeProtocol = 'http' | 'http2';

/** Opaque JSON object handed to Consul/Envoy as is (`proxy.config`, upstream `config`). */
export type ConfigOpaqueObject = Record<string, unknown>;

// ---------------------------------------------------------------------------
// Input: the JSON document, field for field as in schema.json.
// ---------------------------------------------------------------------------

export interface ConsulEcsConfig {
  logLevel?: ConfigLogLevel | null;
  /** Required, non-empty. */
  bootstrapDir: string;
  consulLogin?: ConfigConsulLogin | null;
  controller?: ConfigController | null;
  /** Required. */
  consulServers: ConfigConsulServers;
  healthSyncContainers?: string[] | null;
  service?: ConfigService;
  proxy?: ConfigProxy | null;
  gateway?: ConfigGateway;
  transparentProxy?: ConfigTransparentProxy | null;
}

export interface ConfigConsulLogin {
  enabled?: boolean | null;
  method?: string | null;
  datacenter?: string | null;
  includeEntity?: boolean | null;
  meta?: Record<string, string> | null;
  region?: string | null;
  stsEndpoint?: string | null;
  serverIdHeaderValue?: string | null;
}

export interface ConfigController {
  iamRolePath?: string | null;
  partitionsEnabled?: boolean | null;
  partition?: string | null;
}

export interface ConfigConsulServers {
  /** A DNS name, an IP address, or `exec=<command>`. Required. */
  hosts: string;
  defaults?: ConfigTlsSettings | null;
  http?: ConfigHttpSettings | null;
  grpc?: ConfigGrpcSettings | null;
  skipServerWatch?: boolean | null;
}

export interface ConfigTlsSettings {
  caCertFile?: string | null;
  tls?: boolean | null;
  tlsServerName?: string | null;
}

export interface ConfigGrpcSettings extends ConfigTlsSettings {
  port?: number | null;
}

export interface ConfigHttpSettings extends ConfigGrpcSettings {
  https?: boolean | null;
}

export interface ConfigService {
  name?: string | null;
  tags?: string[] | null;
  /** Required. */
  port: number;
  enableTagOverride?: boolean | null;
  meta?: Record<string, string> | null;
  weights?: ConfigServiceWeights | null;
  namespace?: string | null;
  partition?: string | null;
  networkResilienceConfig?: ConfigNetworkResilience | null;
}

export interface ConfigServiceWeights {
  passing: number;
  warning: number;
}

export interface ConfigNetworkResilience {
  enabled?: boolean;
  outlierDetection?: ConfigOutlierDetection | null;
}

export interface ConfigOutlierDetection {
  /** Nanoseconds. */
  interval?: number;
  maxFailures?: number;
  enforcingConsecutive5xx?: number;
  consecutive5xx?: number;
  enforcingConsecutiveGatewayFailure?: number;
  consecutiveGatewayFailure?: number;
  maxEjectionPercent?: number;
}

export interface ConfigProxy {
  config?: ConfigOpaqueObject | null;
  localServiceAddress?: string | null;
  publicListenerPort?: number | null;
  /** Untyped in schema.json; consul-ecs reads an integer. */
  healthCheckPort?: number | null;
  upstreams?: ConfigUpstream[] | null;
  meshGateway?: ConfigMeshGateway | null;
  /** Its schema sits beside `properties` in schema.json; validated separately. */
  expose?: ConfigExpose | null;
}

export interface ConfigUpstream {
  destinationType?: ConfigUpstreamDestinationType | null;
  destinationNamespace?: string | null;
  destinationPartition?: string | null;
  /** Required. */
  destinationName: string;
  destinationPeer?: string | null;
  datacenter?: string | null;
  localBindAddress?: string | null;
  /** Required. */
  localBindPort: number;
  config?: ConfigOpaqueObject | null;
  meshGateway?: ConfigMeshGateway | null;
}

export interface ConfigMeshGateway {
  mode: ConfigMeshGatewayMode;
}

export interface ConfigExpose {
  checks?: boolean;
  paths?: ConfigExposePath[];
}

export interface ConfigExposePath {
  listenerPort?: number;
  path?: string;
  localPathPort?: number;
  protocol?: ConfigExposeProtocol;
}

export interface ConfigGateway {
  /** Required. */
  kind: ConfigGatewayKind;
  lanAddress?: ConfigGatewayAddress | null;
  wanAddress?: ConfigGatewayAddress | null;
  name?: string | null;
  tags?: string[] | null;
  meta?: Record<string, string> | null;
  namespace?: string | null;
  partition?: string | null;
  /** Untyped in schema.json; consul-ecs reads an integer. */
  healthCheckPort?: number | null;
  proxy?: { config?: ConfigOpaqueObject | null } | null;
}

export interface ConfigGatewayAddress {
  address?: string | null;
  port?: number | null;
}

export interface ConfigTransparentProxy {
  enabled?: boolean | null;
  excludeInboundPorts?: number[] | null;
  excludeOutboundPorts?: number[] | null;
  excludeOutboundCIDRs?: string[] | null;
  excludeUIDs?: string[] | null;
  consulDNS?: { enabled?: boolean | null };
}

// ---------------------------------------------------------------------------
// Resolved: what the rest of the library reads.
// ---------------------------------------------------------------------------

export interface ResolvedConfig {
  bootstrapDir: string;
  logLevel: ConfigLogLevel;
  healthSyncContainers: string[];
  consulLogin: ResolvedConsulLogin;
  controller: ResolvedController;
  consulServers: ResolvedConsulServers;
  /** Always present (consul-ecs uses a zero-valued service when absent); ignored for gateway tasks. */
  service: ResolvedService;
  /** Always present; ignored for gateway tasks. */
  proxy: ResolvedProxy;
  /** Present for gateway tasks only. */
  gateway?: ResolvedGateway;
  transparentProxy: ResolvedTransparentProxy;
}

export interface ResolvedConsulLogin {
  enabled: boolean;
  method: string;
  includeEntity: boolean;
  meta: Record<string, string>;
  datacenter?: string;
  /** Unset: the task's region, from task metadata. */
  region?: string;
  stsEndpoint?: string;
  serverIdHeaderValue?: string;
}

export interface ResolvedController {
  iamRolePath: string;
  partitionsEnabled: boolean;
  partition?: string;
}

export interface ResolvedTlsSettings {
  tls: boolean;
  caCertFile?: string;
  tlsServerName?: string;
}

export interface ResolvedConsulServers {
  hosts: string;
  skipServerWatch: boolean;
  defaults: ResolvedTlsSettings;
  /** `tls`, `caCertFile` and `tlsServerName` already inherit from `defaults`. */
  grpc: ResolvedTlsSettings & { port: number };
  /** `tls`, `caCertFile` and `tlsServerName` already inherit from `defaults`. */
  http: ResolvedTlsSettings & { port: number; https: boolean };
}

export interface ResolvedService {
  /** Unset: the task family, lower-cased (see `serviceName`). */
  name?: string;
  tags: string[];
  port: number;
  enableTagOverride: boolean;
  meta: Record<string, string>;
  weights?: ConfigServiceWeights;
  namespace?: string;
  partition?: string;
  networkResilienceConfig?: ResolvedNetworkResilience;
}

export interface ResolvedNetworkResilience {
  enabled: boolean;
  outlierDetection: ResolvedOutlierDetection;
}

export interface ResolvedOutlierDetection {
  /** Nanoseconds. */
  interval: number;
  maxFailures: number;
  enforcingConsecutive5xx: number;
  consecutive5xx?: number;
  enforcingConsecutiveGatewayFailure: number;
  consecutiveGatewayFailure?: number;
  maxEjectionPercent: number;
}

export interface ResolvedProxy {
  config?: ConfigOpaqueObject;
  localServiceAddress?: string;
  publicListenerPort: number;
  healthCheckPort: number;
  upstreams: ResolvedUpstream[];
  meshGateway?: ConfigMeshGateway;
  expose?: { checks: boolean; paths: ConfigExposePath[] };
}

export interface ResolvedUpstream {
  destinationType?: ConfigUpstreamDestinationType;
  destinationNamespace?: string;
  destinationPartition?: string;
  destinationName: string;
  destinationPeer?: string;
  datacenter?: string;
  localBindAddress?: string;
  localBindPort: number;
  config?: ConfigOpaqueObject;
  meshGateway?: ConfigMeshGateway;
}

export interface ResolvedGateway {
  kind: ConfigGatewayKind;
  lanAddress: ResolvedGatewayAddress;
  wanAddress: ResolvedGatewayAddress;
  /** Unset: the task family, lower-cased (see `gatewayName`). */
  name?: string;
  tags: string[];
  meta: Record<string, string>;
  namespace?: string;
  partition?: string;
  healthCheckPort: number;
  proxy: { config?: ConfigOpaqueObject };
}

export interface ResolvedGatewayAddress {
  /** Unset: the task's address. */
  address?: string;
  port: number;
}

export interface ResolvedTransparentProxy {
  enabled: boolean;
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  excludeOutboundCIDRs: string[];
  excludeUIDs: string[];
  consulDNS: { enabled: boolean };
}
