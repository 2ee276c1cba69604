// What a task registers in the catalog: its service and sidecar proxy, or its
// gateway, from the config and the task.
import { gatewayRegistration, serviceRegistrations, type TaskRegistrations } from '../catalog/registration.js';
import { transparentProxyEnabled } from '../config/resolve.js';
import type { ResolvedConfig } from '../config/types.js';
import type { TaskInfo } from '../ecs/task-metadata.js';
import type { TaskServiceIdentity } from './consul-connection.js';

/** The registrations of the task's service and proxy, or of its gateway. */
export function taskRegistrations(config: ResolvedConfig, identity: TaskServiceIdentity, task: TaskInfo, region: string | undefined): TaskRegistrations {
  const { name, scope } = identity;
  const ctx = { task, region, healthSyncContainers: config.healthSyncContainers, transparentProxy: transparentProxyEnabled(config) };
  if (identity.gateway) {
    const gw = config.gateway!;
    return gatewayRegistration(
      {
        kind: gw.kind,
        name,
        tags: gw.tags,
        meta: gw.meta,
        namespace: scope.namespace,
        partition: scope.partition,
        lanAddress: gw.lanAddress,
        wanAddress: gw.wanAddress,
        proxyConfig: gw.proxy.config,
      },
      ctx,
    );
  }
  const svc = config.service;
  return serviceRegistrations(
    {
      name,
      port: svc.port,
      tags: svc.tags,
      meta: svc.meta,
      weights: svc.weights ? { Passing: svc.weights.passing, Warning: svc.weights.warning } : undefined,
      enableTagOverride: svc.enableTagOverride || undefined,
      namespace: scope.namespace,
      partition: scope.partition,
    },
    proxySpec(config),
    ctx,
  );
}

function proxySpec(config: ResolvedConfig) {
  const p = config.proxy;
  return {
    publicListenerPort: p.publicListenerPort,
    localServiceAddress: p.localServiceAddress,
    config: p.config,
    upstreams: p.upstreams.map((u) =>
      stripUndefined({
        DestinationType: u.destinationType,
        DestinationNamespace: u.destinationNamespace,
        DestinationPartition: u.destinationPartition,
        DestinationPeer: u.destinationPeer,
        DestinationName: u.destinationName,
        Datacenter: u.datacenter,
        LocalBindAddress: u.localBindAddress,
        LocalBindPort: u.localBindPort,
        Config: u.config,
        MeshGateway: u.meshGateway ? { Mode: u.meshGateway.mode } : undefined,
      }),
    ),
    meshGateway: p.meshGateway ? { Mode: p.meshGateway.mode } : undefined,
    expose: p.expose
      ? {
          Checks: p.expose.checks,
          Paths: p.expose.paths.map((e) =>
            stripUndefined({ ListenerPort: e.listenerPort, Path: e.path, LocalPathPort: e.localPathPort, Protocol: e.protocol }),
          ),
        }
      : undefined,
  };
}

export function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
