// A cluster of many mesh tasks for the controller's scale benchmark and test:
// running in moto's ECS (one RunTask call of N tasks), each with the login token
// and the service and sidecar instances a real task's mesh-init leaves in Consul.
// The tokens are made with the management token, with the description a login
// to the aws-iam auth method writes (`token created via login: {meta}`), which is
// all either controller reads of them; a thousand real logins would take minutes.
import type { AclTokenListEntry, AgentService, EcsTask } from '@consul-ecs-ts/core';
import type { ConsulServer, MotoServer } from './local-stack.ts';

/** The tag terraform's mesh-task module puts on a mesh task; the anchor's controller keeps only tasks that have it. */
export const MESH_TAG = 'consul.hashicorp.com/mesh';

export interface SeededTask {
  taskArn: string;
  taskId: string;
  /** The service instance's ID, `<service>-<task id>`. */
  serviceId: string;
  sidecarId: string;
  tokenAccessor: string;
}

/**
 * The description Consul gives a token made by a login with consul-ecs's meta:
 * the prefix, then the meta as Go's encoding/json writes a map (keys sorted).
 */
export function loginTokenDescription(clusterArn: string, taskId: string): string {
  return `token created via login: ${JSON.stringify({ 'consul.hashicorp.com/cluster': clusterArn, 'consul.hashicorp.com/task-id': taskId })}`;
}

/** Runs `fn` over `items`, at most `limit` at a time; the results in the items' order. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export interface SeedOptions {
  /** The cluster's name in moto; created when missing. */
  cluster: string;
  clusterArn: string;
  count: number;
  /** The tasks' family and Consul service name. Default `web`. */
  service?: string;
  /** Concurrent Consul writes while seeding. Default 16. */
  concurrency?: number;
}

/**
 * Runs `count` tagged mesh tasks in moto's ECS and gives each, in Consul, a login
 * token and its service and sidecar instances on the cluster's node (registered
 * here when missing), with `task-id` meta as mesh-init writes it.
 */
export async function seedMeshTasks(consul: ConsulServer, moto: MotoServer, opts: SeedOptions): Promise<SeededTask[]> {
  const service = opts.service ?? 'web';
  const tasks: EcsTask[] = await moto.admin.runTasks(opts.cluster, service, { count: opts.count, tags: { [MESH_TAG]: 'true' } });
  if (tasks.length !== opts.count) throw new Error(`moto ran ${tasks.length} of the ${opts.count} tasks asked for in cluster ${opts.cluster}`);
  await consul.api('PUT', '/v1/catalog/register', { Node: opts.clusterArn, Address: '127.0.0.1', NodeMeta: { 'synthetic-node': 'true' } });
  return mapBounded(tasks, opts.concurrency ?? 16, async (task) => {
    const taskArn = task.taskArn!;
    const taskId = taskArn.split('/').pop()!;
    const token = await consul.api<{ AccessorID: string }>('PUT', '/v1/acl/token', {
      Description: loginTokenDescription(opts.clusterArn, taskId),
      ServiceIdentities: [{ ServiceName: service }],
      Local: true,
    });
    const serviceId = `${service}-${taskId}`;
    const sidecarId = `${serviceId}-sidecar-proxy`;
    const meta = { 'task-id': taskId, 'task-arn': taskArn, source: 'consul-ecs' };
    await consul.api('PUT', '/v1/catalog/register', {
      Node: opts.clusterArn,
      SkipNodeUpdate: true,
      Service: { ID: serviceId, Service: service, Port: 8080, Meta: meta },
    });
    await consul.api('PUT', '/v1/catalog/register', {
      Node: opts.clusterArn,
      SkipNodeUpdate: true,
      Service: {
        ID: sidecarId,
        Service: `${service}-sidecar-proxy`,
        Kind: 'connect-proxy',
        Port: 20000,
        Proxy: { DestinationServiceName: service, DestinationServiceID: serviceId },
        Meta: meta,
      },
    });
    return { taskArn, taskId, serviceId, sidecarId, tokenAccessor: token.AccessorID };
  });
}

/** Stops the tasks in moto's ECS, a few at a time. */
export async function stopTasks(moto: MotoServer, cluster: string, tasks: readonly SeededTask[], concurrency = 8): Promise<void> {
  await mapBounded(tasks, concurrency, (t) => moto.admin.stopTask(cluster, t.taskArn));
}

export interface ClusterConsulState {
  /** Accessor IDs of this cluster's login tokens. */
  tokens: Set<string>;
  /** IDs of the service instances on the cluster's node. */
  services: Set<string>;
}

/** What Consul holds for the cluster's tasks: their login tokens (by description) and the instances on its node. */
export async function clusterConsulState(consul: ConsulServer, clusterArn: string): Promise<ClusterConsulState> {
  const prefix = `token created via login: {"consul.hashicorp.com/cluster":${JSON.stringify(clusterArn)},`;
  const tokens = (await consul.api<AclTokenListEntry[]>('GET', '/v1/acl/tokens')).filter((t) => t.Description?.startsWith(prefix));
  const services: AgentService[] = await consul.nodeServices(clusterArn);
  return { tokens: new Set(tokens.map((t) => t.AccessorID)), services: new Set(services.map((s) => s.ID)) };
}

/**
 * What is wrong with the state for `stopped` tasks cleaned up and `running` ones
 * untouched: one line per task left with something, or missing something; empty
 * when it is exactly right.
 */
export function reapProblems(state: ClusterConsulState, running: readonly SeededTask[], stopped: readonly SeededTask[]): string[] {
  const problems: string[] = [];
  for (const t of stopped) {
    const left = [
      state.tokens.has(t.tokenAccessor) && 'its token',
      state.services.has(t.serviceId) && 'its service',
      state.services.has(t.sidecarId) && 'its sidecar',
    ];
    if (left.some(Boolean)) problems.push(`stopped task ${t.taskId} still has ${left.filter(Boolean).join(', ')}`);
  }
  for (const t of running) {
    const lost = [
      !state.tokens.has(t.tokenAccessor) && 'its token',
      !state.services.has(t.serviceId) && 'its service',
      !state.services.has(t.sidecarId) && 'its sidecar',
    ];
    if (lost.some(Boolean)) problems.push(`running task ${t.taskId} lost ${lost.filter(Boolean).join(', ')}`);
  }
  return problems;
}
