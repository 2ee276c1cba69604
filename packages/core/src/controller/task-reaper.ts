import { parseTaskArn } from '../aws/arn.js';
import type { CatalogClient } from '../catalog/client.js';
import type { AgentService } from '../catalog/types.js';
import { TOKEN_META_CLUSTER, TOKEN_META_TASK_ID } from '../consul/acl.js';
import type { AclAdmin, AclTokenListEntry } from '../consul/acl-admin.js';
import { ecsTagValue, type EcsApiClient, type EcsTask } from '../ecs/ecs-api.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { DEFAULT_NAMESPACE, DEFAULT_PARTITION } from './acl-setup.js';
import type { IoOptions } from '../util/options.js';

/** ECS task tags set by terraform's mesh-task module. */
export const ECS_TAG_MESH = 'consul.hashicorp.com/mesh';
export const ECS_TAG_PARTITION = 'consul.hashicorp.com/partition';
export const ECS_TAG_NAMESPACE = 'consul.hashicorp.com/namespace';

const LOGIN_DESCRIPTION_PREFIX = 'token created via login:';
/** The policy every namespace the controller makes grants: read services and nodes across the partition's namespaces. */
export const CROSS_NAMESPACE_POLICY = 'cross-namespace-read';

/**
 * The task a login token was made for, from the meta `consul login` puts in its
 * description (`token created via login: {"consul.hashicorp.com/cluster":…,
 * "consul.hashicorp.com/task-id":…}`); undefined for other tokens.
 */
export function loginTokenTask(description: string | undefined): { taskId: string; cluster: string } | undefined {
  if (!description) return undefined;
  const json = description.startsWith(LOGIN_DESCRIPTION_PREFIX) ? description.slice(LOGIN_DESCRIPTION_PREFIX.length) : description;
  let meta: unknown;
  try {
    meta = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!meta || typeof meta !== 'object') return undefined;
  const taskId = (meta as Record<string, unknown>)[TOKEN_META_TASK_ID];
  const cluster = (meta as Record<string, unknown>)[TOKEN_META_CLUSTER];
  return typeof taskId === 'string' && taskId && typeof cluster === 'string' && cluster ? { taskId, cluster } : undefined;
}

/**
 * The Consul partition and namespace a mesh task asks for by its tags: both or
 * neither (then `default`/`default`). Only meaningful with partitions enabled.
 */
export function meshTaskScope(task: EcsTask): { partition: string; namespace: string } {
  const partition = ecsTagValue(task, ECS_TAG_PARTITION) ?? '';
  const namespace = ecsTagValue(task, ECS_TAG_NAMESPACE) ?? '';
  if (!partition && !namespace) return { partition: DEFAULT_PARTITION, namespace: DEFAULT_NAMESPACE };
  if (!partition || !namespace) {
    throw new ConsulEcsError(
      'ecs-task-tags-invalid',
      `task ${task.taskArn ?? '(no ARN)'} has only one of the tags ${ECS_TAG_PARTITION} and ${ECS_TAG_NAMESPACE}; it needs both or neither`,
    );
  }
  return { partition, namespace };
}

export interface TaskReaperOptions extends Pick<IoOptions, 'logger' | 'signal'> {
  ecs: EcsApiClient;
  admin: AclAdmin;
  catalog: CatalogClient;
  clusterArn: string;
  /** The Consul Enterprise partition the controller manages; undefined on Consul CE. */
  partition?: string;
  /**
   * The controller's own task. A listing of the cluster's running tasks that
   * leaves it out cannot be trusted, and nothing is removed on it.
   */
  ownTaskArn?: string;
  /** How many tokens, then service instances, are removed at once. Default {@link REMOVAL_CONCURRENCY}. */
  removalConcurrency?: number;
}

/**
 * How many removals a pass has in flight at once: after many tasks stop (a
 * service scaled in, a deployment), a pass removes a token and two instances
 * for each, and one at a time that is a Consul write's round trip each.
 */
export const REMOVAL_CONCURRENCY = 8;

export interface ReapResult {
  /** How many tasks ECS lists as running in the cluster. */
  running: number;
  /** Accessor IDs of the login tokens deleted. */
  tokensDeleted: string[];
  /** IDs of the service instances deregistered from the cluster's node. */
  servicesDeregistered: string[];
  /** Namespaces created for mesh tasks (Consul Enterprise). */
  namespacesCreated: string[];
  /** What went wrong along the way; the rest of the pass was still done. */
  errors: string[];
}

/**
 * One pass of the controller: removes the login tokens and the service
 * registrations of tasks of this cluster that no longer run. Consul's state is
 * read before ECS is asked which tasks run, so a task that starts during the
 * pass is never mistaken for a stopped one. With partitions enabled, it also
 * creates the namespaces the cluster's mesh tasks are tagged with.
 */
export async function reapStoppedTasks(opts: TaskReaperOptions): Promise<ReapResult> {
  const log = opts.logger ?? silentLogger;
  const { admin, catalog, clusterArn, partition } = opts;
  const result: ReapResult = { running: 0, tokensDeleted: [], servicesDeregistered: [], namespacesCreated: [], errors: [] };

  // 1. What Consul holds for tasks of this cluster (on Enterprise, in every
  // namespace of the partition: listed once, for the tokens and step 2's namespaces).
  const namespaces = partition ? await listNamespaces(admin, partition) : undefined;
  const tokens = await listLoginTokens(admin, clusterArn, partition, namespaces);
  const services = (await catalog.nodeServices(clusterArn, undefined, partition ? { partition, namespace: '*' } : {})).filter((s) => {
    if (s.Meta?.['task-id']) return true;
    log.debug('ignoring a service on the cluster node without task-id meta', { id: s.ID });
    return false;
  });

  // 2. Which tasks run now. Any task ECS runs keeps what it has, tagged or not,
  // so only the ARNs are needed (ListTasks, 100 a page); the tasks are described
  // (DescribeTasks, for their tags) only on Enterprise, for their namespaces.
  const tasks: EcsTask[] = partition
    ? await opts.ecs.runningTasks(clusterArn, opts.signal)
    : (await opts.ecs.listRunningTaskArns(clusterArn, opts.signal)).map((taskArn) => ({ taskArn }));
  const running = new Set<string>();
  for (const t of tasks) {
    if (!t.taskArn) continue;
    try {
      running.add(parseTaskArn(t.taskArn).taskId);
    } catch {
      log.warn('ignoring a task whose ARN cannot be parsed', { arn: t.taskArn });
    }
  }
  result.running = running.size;
  // By task ID: ECS writes a task's ARN in the old (no cluster) or the new format, per account setting.
  if (opts.ownTaskArn && !running.has(parseTaskArn(opts.ownTaskArn).taskId)) {
    throw new ConsulEcsError(
      'ecs-listing-incomplete',
      `ECS did not list the controller's own task ${opts.ownTaskArn} among the running tasks of ${clusterArn}; ` +
        'removing nothing on this listing (check the cluster and the ecs:ListTasks permission)',
    );
  }

  if (partition) {
    // Namespaces are for tasks that run; what stopped tasks left is removed regardless.
    result.namespacesCreated = await createNamespaces(admin, tasks, partition, namespaces!, log, result.errors).catch((err: unknown) => {
      result.errors.push(`reconciling namespaces: ${describeError(err)}`);
      return [];
    });
  }

  // 3. Remove what belongs to tasks that do not run: the tokens first (a task
  // whose token is gone can no longer register), then the service instances, a
  // few at a time. The results keep the order of the listings.
  const concurrency = opts.removalConcurrency ?? REMOVAL_CONCURRENCY;
  const tokenResults = await forEachBounded(
    tokens.filter((t) => !running.has(t.taskId)),
    concurrency,
    async ({ token, taskId }) => {
      try {
        await admin.deleteToken(token.AccessorID, { partition: token.Partition, namespace: token.Namespace });
        log.info('deleted the login token of a task that no longer runs', { 'task-id': taskId, accessor: token.AccessorID });
        return { done: token.AccessorID };
      } catch (err) {
        return { error: `deleting token ${token.AccessorID} of task ${taskId}: ${describeError(err)}` };
      }
    },
  );
  const serviceResults = await forEachBounded(
    services.filter((svc) => !running.has(svc.Meta!['task-id']!)),
    concurrency,
    async (svc) => {
      const taskId = svc.Meta!['task-id']!;
      try {
        await catalog.deregisterService(clusterArn, svc.ID, scopeOf(svc));
        log.info('deregistered a service of a task that no longer runs', { 'task-id': taskId, id: svc.ID });
        return { done: svc.ID };
      } catch (err) {
        return { error: `deregistering ${svc.ID} of task ${taskId}: ${describeError(err)}` };
      }
    },
  );
  for (const r of tokenResults) (r.done !== undefined ? result.tokensDeleted : result.errors).push(r.done ?? r.error!);
  for (const r of serviceResults) (r.done !== undefined ? result.servicesDeregistered : result.errors).push(r.done ?? r.error!);
  return result;
}

/** Runs `fn` over `items` with at most `limit` in flight; the results in the items' order. */
async function forEachBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

function scopeOf(svc: AgentService): { namespace?: string; partition?: string } {
  return { namespace: svc.Namespace || undefined, partition: svc.Partition || undefined };
}

/** Login tokens of this cluster's tasks, in each of the partition's `namespaces` on Enterprise. */
async function listLoginTokens(
  admin: AclAdmin,
  clusterArn: string,
  partition: string | undefined,
  namespaces: Namespace[] | undefined,
): Promise<Array<{ token: AclTokenListEntry; taskId: string }>> {
  const out: Array<{ token: AclTokenListEntry; taskId: string }> = [];
  for (const namespace of namespaces?.map((n) => n.Name) ?? [undefined]) {
    for (const token of await admin.listTokens({ partition, namespace })) {
      const task = loginTokenTask(token.Description);
      if (task && task.cluster === clusterArn) out.push({ token, taskId: task.taskId });
    }
  }
  return out;
}

interface Namespace {
  Name: string;
  ACLs?: { PolicyDefaults?: Array<{ ID?: string; Name?: string }>; RoleDefaults?: Array<{ ID?: string; Name?: string }> };
}

async function listNamespaces(admin: AclAdmin, partition: string): Promise<Namespace[]> {
  return (await admin.http.call<Namespace[] | null>({ path: '/v1/namespaces', query: { partition }, token: admin.token() })) ?? [];
}

/**
 * Consul Enterprise: makes sure the cross-namespace read policy exists and is a
 * default of the partition's `default` namespace, and creates the namespaces
 * this partition's mesh tasks are tagged with, each defaulting to that policy.
 */
async function createNamespaces(admin: AclAdmin, tasks: EcsTask[], partition: string, existing: Namespace[], log: Logger, errors: string[]): Promise<string[]> {
  const wanted = new Set<string>();
  for (const t of tasks) {
    if (ecsTagValue(t, ECS_TAG_MESH) !== 'true') continue;
    try {
      const scope = meshTaskScope(t);
      if (scope.partition === partition) wanted.add(scope.namespace);
    } catch (err) {
      errors.push(describeError(err));
    }
  }
  const http = admin.http;
  const token = admin.token();
  if (!(await admin.readPolicyByName(CROSS_NAMESPACE_POLICY, { partition, namespace: DEFAULT_NAMESPACE }))) {
    await admin.createPolicy(
      {
        Name: CROSS_NAMESPACE_POLICY,
        Description: 'Allow service and node reads across namespaces within the partition',
        Partition: partition,
        Namespace: DEFAULT_NAMESPACE,
        Rules: `partition "${partition}" {\n  namespace_prefix "" {\n    service_prefix "" {\n      policy = "read"\n    }\n    node_prefix "" {\n      policy = "read"\n    }\n  }\n}`,
      },
      { partition, namespace: DEFAULT_NAMESPACE },
    );
    log.info('created the cross-namespace policy', { name: CROSS_NAMESPACE_POLICY, partition });
  }
  const byName = new Map(existing.map((n) => [n.Name, n]));
  const def = byName.get(DEFAULT_NAMESPACE);
  if (def && !def.ACLs?.PolicyDefaults?.some((p) => p.Name === CROSS_NAMESPACE_POLICY)) {
    const acls = { ...def.ACLs, PolicyDefaults: [...(def.ACLs?.PolicyDefaults ?? []), { Name: CROSS_NAMESPACE_POLICY }] };
    await http.call({ method: 'PUT', path: '/v1/namespace/default', query: { partition }, body: { ...def, ACLs: acls }, token });
    log.info('the default namespace now grants the cross-namespace policy', { partition });
  }
  const created: string[] = [];
  for (const name of [...wanted].sort()) {
    if (byName.has(name)) continue;
    try {
      await http.call({
        method: 'PUT',
        path: '/v1/namespace',
        query: { partition },
        body: { Name: name, ACLs: { PolicyDefaults: [{ Name: CROSS_NAMESPACE_POLICY }] } },
        token,
      });
      created.push(name);
      log.info('created namespace', { name, partition });
    } catch (err) {
      errors.push(`creating namespace ${name}: ${describeError(err)}`);
    }
  }
  return created;
}
