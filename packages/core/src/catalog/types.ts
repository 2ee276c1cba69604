// The Consul catalog API shapes this project sends and reads (Consul's `api`
// package: CatalogRegistration, AgentService, HealthCheck), PascalCase as on the wire.

export type ServiceKind = '' | 'connect-proxy' | 'mesh-gateway' | 'terminating-gateway' | 'api-gateway';
export type GatewayKind = Exclude<ServiceKind, '' | 'connect-proxy'>;
export type HealthStatus = 'passing' | 'warning' | 'critical';
export type MeshGatewayMode = '' | 'none' | 'local' | 'remote';

export interface ServiceAddress {
  Address: string;
  Port: number;
}

export interface Upstream {
  DestinationType?: string;
  DestinationNamespace?: string;
  DestinationPartition?: string;
  DestinationPeer?: string;
  DestinationName: string;
  Datacenter?: string;
  LocalBindAddress?: string;
  LocalBindPort: number;
  Config?: Record<string, unknown>;
  MeshGateway?: { Mode: MeshGatewayMode };
}

export interface ExposePath {
  ListenerPort?: number;
  Path?: string;
  LocalPathPort?: number;
  Protocol?: string;
}

export interface ConnectProxyConfig {
  DestinationServiceName?: string;
  DestinationServiceID?: string;
  LocalServiceAddress?: string;
  LocalServicePort?: number;
  Mode?: '' | 'direct' | 'transparent';
  Config?: Record<string, unknown>;
  Upstreams?: Upstream[];
  MeshGateway?: { Mode: MeshGatewayMode };
  Expose?: { Checks?: boolean; Paths?: ExposePath[] };
}

export interface AgentService {
  ID: string;
  Service: string;
  Kind?: ServiceKind;
  Tags?: string[];
  Meta?: Record<string, string>;
  Port: number;
  Address: string;
  TaggedAddresses?: Record<string, ServiceAddress>;
  Weights?: { Passing: number; Warning: number };
  EnableTagOverride?: boolean;
  Proxy?: ConnectProxyConfig;
  Namespace?: string;
  Partition?: string;
  Locality?: { Region: string; Zone?: string };
}

export interface HealthCheck {
  Node?: string;
  CheckID: string;
  Name: string;
  Status: HealthStatus;
  Notes?: string;
  Output?: string;
  ServiceID: string;
  ServiceName?: string;
  Type?: string;
  Namespace?: string;
  Partition?: string;
}

export interface CatalogRegistration {
  Node: string;
  Address?: string;
  NodeMeta?: Record<string, string>;
  Service?: AgentService;
  Checks?: HealthCheck[];
  Partition?: string;
  SkipNodeUpdate?: boolean;
}
