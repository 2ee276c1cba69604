import type { TaskInfo } from '../ecs/task-metadata.js';
import type { AgentService, CatalogRegistration, ConnectProxyConfig, GatewayKind, HealthCheck, HealthStatus, ServiceAddress } from './types.js';

/** Names and values consul-ecs uses in the catalog (a drop-in must use the same). */
export const SYNTHETIC_NODE_META = 'synthetic-node';
export const DATAPLANE_CONTAINER = 'consul-dataplane';
export const ECS_CHECK_TYPE = 'consul-ecs-health-check';
export const HEALTH_SYNC_CHECK_NAME = 'Consul ECS health check synced';
export const DATAPLANE_CHECK_NAME = 'Consul dataplane readiness';
export const DEFAULT_PUBLIC_LISTENER_PORT = 20000;
export const DEFAULT_MESH_GATEWAY_PORT = 8443;

export const serviceId = (serviceName: string, taskId: string) => `${serviceName}-${taskId}`;
export const sidecarId = (serviceId: string) => `${serviceId}-sidecar-proxy`;
export const sidecarName = (serviceName: string) => `${serviceName}-sidecar-proxy`;
export const checkId = (serviceId: string, container: string) => `${serviceId}-${container}`;

/** The output consul-ecs writes on a check for a status. */
export function checkOutput(status: HealthStatus, serviceName: string): string {
  return status === 'passing' ? 'ECS health check passing' : `Service ${serviceName} is not ready`;
}

export interface ServiceSpec {
  name: string;
  port: number;
  tags?: string[];
  meta?: Record<string, string>;
  weights?: { Passing: number; Warning: number };
  enableTagOverride?: boolean;
  namespace?: string;
  partition?: string;
}

export interface ProxySpec {
  publicListenerPort?: number;
  localServiceAddress?: string;
  config?: Record<string, unknown>;
  upstreams?: ConnectProxyConfig['Upstreams'];
  meshGateway?: ConnectProxyConfig['MeshGateway'];
  expose?: ConnectProxyConfig['Expose'];
}

export interface GatewaySpec {
  kind: GatewayKind;
  name: string;
  tags?: string[];
  meta?: Record<string, string>;
  namespace?: string;
  partition?: string;
  lanAddress?: { address?: string; port?: number };
  wanAddress?: { address?: string; port?: number };
  proxyConfig?: Record<string, unknown>;
}

export interface RegistrationContext {
  task: TaskInfo;
  /** `AWS_REGION` for the locality; no locality without it. */
  region?: string;
  /** Containers whose ECS health is synced into their own checks. */
  healthSyncContainers: string[];
  transparentProxy?: boolean;
}

/** The registrations mesh-init makes: the service and its sidecar, or one gateway. */
export interface TaskRegistrations {
  service?: CatalogRegistration;
  proxy: CatalogRegistration;
}

function taskMeta(task: TaskInfo, meta: Record<string, string> | undefined): Record<string, string> {
  return { 'task-id': task.taskId, 'task-arn': task.taskArn, source: 'consul-ecs', ...meta };
}

function locality(ctx: RegistrationContext): AgentService['Locality'] {
  if (!ctx.region) return undefined;
  return ctx.task.availabilityZone ? { Region: ctx.region, Zone: ctx.task.availabilityZone } : { Region: ctx.region };
}

function checks(service: AgentService, containers: string[]): HealthCheck[] {
  const make = (container: string, name: string, notes: string): HealthCheck => ({
    CheckID: checkId(service.ID, container),
    Name: name,
    Type: ECS_CHECK_TYPE,
    ServiceID: service.ID,
    ...(service.Namespace ? { Namespace: service.Namespace } : {}),
    Status: 'critical',
    Output: checkOutput('critical', service.Service),
    Notes: notes,
  });
  const out: HealthCheck[] = [];
  if (!service.Kind) {
    for (const c of containers) {
      out.push(make(c, HEALTH_SYNC_CHECK_NAME, `consul-ecs created and updates this check because the ${c} container has an ECS health check.`));
    }
  }
  out.push(make(DATAPLANE_CONTAINER, DATAPLANE_CHECK_NAME, "consul-ecs created and updates this check to indicate consul-dataplane container's readiness"));
  return out;
}

function registration(service: AgentService, ctx: RegistrationContext): CatalogRegistration {
  return {
    Node: ctx.task.clusterArn,
    NodeMeta: { [SYNTHETIC_NODE_META]: 'true' },
    Address: ctx.task.nodeIp,
    Service: service,
    Checks: checks(service, ctx.healthSyncContainers),
    ...(service.Partition ? { Partition: service.Partition } : {}),
    SkipNodeUpdate: true,
  };
}

function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as T;
}

/** The service and its sidecar proxy, as consul-ecs mesh-init registers them. */
export function serviceRegistrations(spec: ServiceSpec, proxy: ProxySpec, ctx: RegistrationContext): TaskRegistrations {
  const id = serviceId(spec.name, ctx.task.taskId);
  const address = ctx.task.nodeIp;
  const service: AgentService = compact({
    ID: id,
    Service: spec.name,
    Tags: spec.tags,
    Meta: taskMeta(ctx.task, spec.meta),
    Port: spec.port,
    Address: address,
    Weights: spec.weights,
    EnableTagOverride: spec.enableTagOverride,
    Namespace: spec.namespace,
    Partition: spec.partition,
    Locality: locality(ctx),
    TaggedAddresses: ctx.transparentProxy ? { virtual: { Address: address, Port: spec.port } } : undefined,
  });
  const proxyConfig: ConnectProxyConfig = compact({
    DestinationServiceName: spec.name,
    DestinationServiceID: id,
    LocalServicePort: spec.port,
    LocalServiceAddress: proxy.localServiceAddress,
    Mode: ctx.transparentProxy ? ('transparent' as const) : undefined,
    Config: proxy.config,
    Upstreams: proxy.upstreams?.length ? proxy.upstreams : undefined,
    MeshGateway: proxy.meshGateway,
    Expose: proxy.expose,
  });
  const sidecar: AgentService = compact({
    ID: sidecarId(id),
    Service: sidecarName(spec.name),
    Kind: 'connect-proxy' as const,
    Address: address,
    Port: proxy.publicListenerPort ?? DEFAULT_PUBLIC_LISTENER_PORT,
    Meta: service.Meta,
    Tags: service.Tags,
    Proxy: proxyConfig,
    Partition: service.Partition,
    Namespace: service.Namespace,
    Weights: service.Weights,
    EnableTagOverride: service.EnableTagOverride,
    Locality: service.Locality,
    TaggedAddresses: service.TaggedAddresses,
  });
  return { service: registration(service, ctx), proxy: registration(sidecar, ctx) };
}

/** A gateway (mesh, terminating or API) registered as one proxy service. */
export function gatewayRegistration(spec: GatewaySpec, ctx: RegistrationContext): TaskRegistrations {
  let address = ctx.task.nodeIp;
  let port = DEFAULT_MESH_GATEWAY_PORT;
  let tagged: Record<string, ServiceAddress> | undefined;
  if (spec.kind === 'mesh-gateway') {
    tagged = {};
    if (spec.lanAddress?.port) port = spec.lanAddress.port;
    if (spec.lanAddress?.address) {
      address = spec.lanAddress.address;
      tagged.lan = { Address: spec.lanAddress.address, Port: port };
    }
    if (spec.wanAddress?.address) tagged.wan = { Address: spec.wanAddress.address, Port: spec.wanAddress.port || port };
    if (!Object.keys(tagged).length) tagged = undefined;
  }
  const service: AgentService = compact({
    ID: serviceId(spec.name, ctx.task.taskId),
    Service: spec.name,
    Kind: spec.kind,
    Tags: spec.tags,
    Meta: taskMeta(ctx.task, spec.meta),
    Port: port,
    Address: address,
    TaggedAddresses: tagged,
    Namespace: spec.namespace,
    Partition: spec.partition,
    Proxy: spec.proxyConfig ? { Config: spec.proxyConfig } : undefined,
  });
  return { proxy: registration(service, ctx) };
}
