import { defaultCredentialProvider, type CredentialProvider } from '../aws/credentials.js';
import { CatalogClient } from '../catalog/client.js';
import { AclAdmin, isUnknownToken } from '../consul/acl-admin.js';
import { ConsulApiError, type ConsulHttpClient } from '../consul/http-client.js';
import { FailoverConsulClient } from '../consul/failover-client.js';
import { EcsApiClient, ecsEndpoint } from '../ecs/ecs-api.js';
import { TaskMetadataClient, taskInfo, type TaskInfo } from '../ecs/task-metadata.js';
import { systemClock } from '../util/clock.js';
import { ConsulEcsError, describeError, stopReason } from '../util/errors.js';
import { silentLogger } from '../util/logger.js';
import { retry } from '../util/retry.js';
import { controllerPartition, upsertControllerResources, type ControllerSettings } from './acl-setup.js';
import { reapStoppedTasks, type ReapResult } from './task-reaper.js';
import type { Env, IoOptions } from '../util/options.js';

/** How often the controller looks for tasks that stopped, as consul-ecs does. */
export const CONTROLLER_POLLING_INTERVAL_MS = 10_000;

export interface ControllerRunOptions extends IoOptions {
  settings: ControllerSettings;
  env: Env;
  /** Clients for the Consul servers, in order of preference; the next is used when one stops answering. */
  clients: ConsulHttpClient[];
  /** Clients for the Consul servers found again, once none of the known ones answers. */
  rediscover?: () => Promise<ConsulHttpClient[]>;
  /** A token with `acl:write` (the bootstrap token, `CONSUL_HTTP_TOKEN`). */
  token?: string;
  /** Aborted on SIGTERM: the controller stops after the current step. */
  signal: AbortSignal;
  /** The controller's own task; read from `ECS_CONTAINER_METADATA_URI_V4` when absent. */
  task?: TaskInfo;
  /** AWS credentials for ECS; the default chain (environment, task role) when absent. */
  credentials?: CredentialProvider;
  intervalMs?: number;
  /** Called after each pass, e.g. by tests. */
  onPass?: (result: ReapResult) => void;
}

/**
 * The controller (one task per ECS cluster): sets up the auth method, binding
 * rules, gateway policies and roles, the anonymous token's policy and the
 * cluster's node in Consul, then every interval removes the tokens and the
 * service instances of the cluster's tasks that no longer run, until `signal`.
 */
export async function runController(opts: ControllerRunOptions): Promise<void> {
  const log = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const partition = controllerPartition(opts.settings);
  const task =
    opts.task ?? taskInfo(await new TaskMetadataClient({ baseUrl: opts.env.ECS_CONTAINER_METADATA_URI_V4 ?? '', dispatcher: opts.dispatcher, clock }).task());
  log.info('cluster arn determined', { 'cluster-arn': task.clusterArn });
  // Before Consul is touched: a task without AWS credentials fails here, at once.
  const credentials = opts.credentials ?? defaultCredentialProvider({ env: opts.env, dispatcher: opts.dispatcher, clock });

  const token = () => opts.token;
  // Each attempt of a call goes to the server in use; one that fails moves every call on to the next.
  const consul = new FailoverConsulClient(opts.clients, { rediscover: opts.rediscover, logger: log, clock });
  const admin = new AclAdmin(consul, token);
  const catalog = new CatalogClient(consul, token);
  try {
    await retry(
      async () => {
        // One quick try first, so that a server not up yet is reported (and the
        // next one tried) at once rather than after the client's own retries.
        const leader = await admin.http.call<string>({ path: '/v1/status/leader', retryDeadlineMs: 0, signal: opts.signal });
        if (!leader) throw new ConsulEcsError('consul-no-leader', `Consul at ${admin.http.baseUrl.origin} has no cluster leader yet`);
        await upsertControllerResources({
          admin,
          settings: opts.settings,
          account: task.account,
          clusterArn: task.clusterArn,
          nodeIp: task.nodeIp,
          logger: log,
        }).catch((err: unknown) => {
          throw explainSetupError(err, !!opts.token);
        });
      },
      {
        deadlineMs: 120_000,
        clock,
        signal: opts.signal,
        retryable: (err) => SETUP_RETRYABLE.has((err as { code?: string }).code ?? ''),
        onRetry: (err) => log.warn('unable to set up Consul for the cluster; retrying', { error: describeError(err) }),
      },
    ).catch((err: unknown) => {
      if (!opts.signal.aborted) throw err;
    });
    if (opts.signal.aborted) return;

    const ecs = new EcsApiClient({ region: task.region, endpoint: ecsEndpoint(opts.env, task.region), credentials, dispatcher: opts.dispatcher });
    const interval = opts.intervalMs ?? CONTROLLER_POLLING_INTERVAL_MS;
    log.info('watching the cluster for tasks that stopped', { 'cluster-arn': task.clusterArn, 'interval-ms': interval });

    while (!opts.signal.aborted) {
      try {
        const res = await reapStoppedTasks({
          ecs,
          admin,
          catalog,
          clusterArn: task.clusterArn,
          partition,
          ownTaskArn: task.taskArn,
          logger: log,
          signal: opts.signal,
        });
        for (const e of res.errors) log.error('error during reconcile', { error: e });
        log.debug('reconcile finished', { running: res.running, 'tokens-deleted': res.tokensDeleted.length, deregistered: res.servicesDeregistered.length });
        opts.onPass?.(res);
      } catch (err) {
        if (opts.signal.aborted) break;
        log.error('error during reconcile', { error: describeError(err) });
      }
      await clock.sleep(interval, opts.signal).catch(() => {});
    }
    log.info(`${stopReason(opts.signal)}: the controller stops`);
  } finally {
    await consul.close();
  }
}

/**
 * What setting up retries: a server not reachable, a cluster with no leader,
 * and a token Consul does not know yet. A fresh cluster creates its bootstrap
 * token once it has a leader, so a controller started with the servers sees
 * "ACL not found" for a moment; a wrong token keeps failing until the deadline,
 * each attempt logged with what to check.
 */
const SETUP_RETRYABLE = new Set(['consul-unreachable', 'consul-no-leader', 'consul-token-unknown']);

/** Adds what to do to a refusal by Consul while setting up. */
function explainSetupError(err: unknown, hasToken: boolean): unknown {
  // "ACL not found" as a 403: the token is unknown (a 404 is an object, and AclAdmin reads those as null).
  if (hasToken && isUnknownToken(err)) {
    return new ConsulEcsError(
      'consul-token-unknown',
      `${err.message}; Consul does not know the token in CONSUL_HTTP_TOKEN (yet): check that it is the cluster's bootstrap token`,
      { cause: err },
    );
  }
  if (err instanceof ConsulApiError && (err.status === 401 || err.status === 403)) {
    const hint = hasToken
      ? 'the token in CONSUL_HTTP_TOKEN needs acl:write, operator:write on partitions and node:write (the bootstrap token)'
      : 'set CONSUL_HTTP_TOKEN to a token with acl:write (the bootstrap token)';
    return new ConsulEcsError(err.code, `${err.message}; ${hint}`, { cause: err });
  }
  return err;
}
