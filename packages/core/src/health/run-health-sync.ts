import { join } from 'node:path';
import { CatalogClient } from '../catalog/client.js';
import { DATAPLANE_CONTAINER, sidecarId, sidecarName } from '../catalog/registration.js';
import type { ResolvedConfig } from '../config/types.js';
import { aclLogout } from '../consul/acl.js';
import { isAclNotFound } from '../consul/acl-admin.js';
import type { ConsulHttpClient } from '../consul/http-client.js';
import { ServerFailover } from '../consul/server-failover.js';
import { containerStopped, TaskMetadataClient, taskInfo, type TaskInfo } from '../ecs/task-metadata.js';
import { HealthSync } from './sync.js';
import { removeFile } from '../io/fs.js';
import { systemClock, type Clock } from '../util/clock.js';
import { describeError, stopReason } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { retry } from '../util/retry.js';
import { readTokenFile } from '../io/token-file.js';
import { BOOTSTRAP_FILES } from '../mesh/bootstrap-files.js';
import { taskServiceIdentity } from '../mesh/consul-connection.js';
import { loginAsTask } from '../mesh/task-login.js';
import type { Env, IoOptions } from '../util/options.js';

export interface HealthSyncRunOptions extends IoOptions {
  config: ResolvedConfig;
  env: Env;
  /** Clients for the Consul servers, in order of preference; the next is used when one stops answering. */
  clients: ConsulHttpClient[];
  /** Clients for the Consul servers found again, once none of the known ones answers. */
  rediscover?: () => Promise<ConsulHttpClient[]>;
  token?: string;
  /** Log the token out at shutdown (it came from login). */
  logoutOnShutdown: boolean;
  /**
   * The file the token was read from (mesh-init's `service-token`), removed once
   * the token is logged out, if the bootstrap dir is writable here: terraform's
   * mesh-task mounts it read-only into the health-sync container.
   */
  tokenFile?: string;
  /** Aborted on SIGTERM: starts the graceful shutdown. */
  signal: AbortSignal;
  task?: TaskInfo;
  intervalMs?: number;
  /**
   * How long to keep trying, at start, to read the task's checks from Consul
   * before failing. Default 2 minutes; `Infinity` waits until SIGTERM.
   */
  startDeadlineMs?: number;
  /** Longest wait for the dataplane container to stop after SIGTERM. Default: no limit (ECS kills the task). */
  dataplaneStopTimeoutMs?: number;
}

/**
 * health-sync: syncs ECS container health into Consul every period, following
 * the next Consul server when one stops answering (and the servers found again
 * with `rediscover` when none does). On SIGTERM it marks every
 * check critical at once, waits for the dataplane container to stop, then
 * deregisters the service and proxy (or gateway) and logs the token out.
 */
export async function runHealthSync(opts: HealthSyncRunOptions): Promise<void> {
  const { env } = opts;
  const log = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const metadata = new TaskMetadataClient({ baseUrl: env.ECS_CONTAINER_METADATA_URI_V4 ?? '', dispatcher: opts.dispatcher, clock });
  const task = opts.task ?? taskInfo(await metadata.task());
  const catalog = new CatalogClient(opts.clients[0]!, () => opts.token);
  const servers = new ServerFailover(opts.clients, [catalog], log, { rediscover: opts.rediscover, clock });
  try {
    await syncUntilStopped(opts, { log, clock, metadata, task, catalog, failover: servers.onError });
  } finally {
    await servers.close();
  }
}

export type HealthSyncContainerOptions = Omit<HealthSyncRunOptions, 'token' | 'logoutOnShutdown' | 'tokenFile' | 'task' | 'startDeadlineMs'>;

/**
 * health-sync as its own container (terraform's mesh-task shape): it takes
 * CONSUL_HTTP_TOKEN, or the token mesh-init wrote to `service-token`, or, when it
 * cannot read that file (mesh-init ran as root with transparent proxy, and this
 * container as another user), logs in with the task role itself, as consul-ecs's
 * health-sync always does; then syncs until SIGTERM. Not essential to the task,
 * it waits for Consul as long as it takes. A token it logged in for itself is
 * logged out also when it fails.
 */
export async function runHealthSyncContainer(opts: HealthSyncContainerOptions): Promise<void> {
  const { config, env } = opts;
  const log = opts.logger ?? silentLogger;
  const client = opts.clients[0]!;
  const staticToken = env.CONSUL_HTTP_TOKEN || undefined;
  const fromLogin = !staticToken && config.consulLogin.enabled;
  let token = staticToken;
  let tokenFile: string | undefined;
  let task: TaskInfo | undefined;
  if (fromLogin) {
    const file = join(config.bootstrapDir, BOOTSTRAP_FILES.serviceToken.name);
    const written = await readTokenFile(file).catch((err: unknown) => {
      log.info('cannot read the service token mesh-init wrote; logging in with the task role instead', { file, reason: describeError(err) });
      return '';
    });
    if (written) {
      token = written;
      tokenFile = file;
    } else {
      const metadata = new TaskMetadataClient({ baseUrl: env.ECS_CONTAINER_METADATA_URI_V4 ?? '', dispatcher: opts.dispatcher, clock: opts.clock });
      task = taskInfo(await metadata.task());
      const acl = await loginAsTask({
        config,
        env,
        task,
        client,
        deadlineMs: Number.POSITIVE_INFINITY,
        dispatcher: opts.dispatcher,
        clock: opts.clock,
        logger: log,
        signal: opts.signal,
      });
      token = acl.SecretID;
    }
  }
  log.addSecret(token);
  const ownToken = fromLogin && !tokenFile ? token : undefined;
  await runHealthSync({ ...opts, token, logoutOnShutdown: fromLogin, tokenFile, task, startDeadlineMs: Number.POSITIVE_INFINITY }).catch(
    async (err: unknown) => {
      if (ownToken) await aclLogout(client, ownToken, { retryDeadlineMs: 5000 }).catch(() => {});
      throw err;
    },
  );
}

async function syncUntilStopped(
  opts: HealthSyncRunOptions,
  ctx: { log: Logger; clock: Clock; metadata: TaskMetadataClient; task: TaskInfo; catalog: CatalogClient; failover: (err: unknown) => void },
): Promise<void> {
  const { config } = opts;
  const { log, clock, metadata, task, catalog, failover } = ctx;
  const { gateway, name, id, scope } = taskServiceIdentity(config, task);

  const sync = new HealthSync({
    catalog,
    taskMetadata: () => metadata.task(),
    node: task.clusterArn,
    serviceName: name,
    serviceId: id,
    proxy: gateway ? undefined : { id: sidecarId(id), name: sidecarName(name) },
    containers: config.healthSyncContainers,
    ...scope,
    clock,
    logger: log,
    intervalMs: opts.intervalMs,
    onConsulError: failover,
  });

  await retry(() => sync.init(), {
    deadlineMs: opts.startDeadlineMs ?? 120_000,
    clock,
    signal: opts.signal,
    onRetry: (err) => {
      failover(err);
      log.warn('unable to read the checks from Consul; retrying', { error: describeError(err) });
    },
  }).catch((err) => {
    if (!opts.signal.aborted) throw err;
  });
  if (!opts.signal.aborted) {
    log.info('syncing ECS health into Consul', { service: id, containers: [...config.healthSyncContainers, DATAPLANE_CONTAINER].join(',') });
    await sync.run(opts.signal);
  }

  // Graceful shutdown.
  log.info(`${stopReason(opts.signal)}: marking all checks critical, then waiting for the dataplane container to stop`);
  await retry(() => sync.markAllCritical(), { maxAttempts: 5, clock, onRetry: failover }).catch((err) =>
    log.error('could not mark the checks critical', { error: describeError(err) }),
  );
  const waitStart = clock.now();
  for (;;) {
    const doc = await metadata.task().catch((err) => {
      log.error('unable to read task metadata', { error: describeError(err) });
      return undefined;
    });
    const dataplane = doc?.Containers.find((c) => c.Name === DATAPLANE_CONTAINER);
    if (doc && (!dataplane || containerStopped(dataplane))) break;
    if (opts.dataplaneStopTimeoutMs !== undefined && clock.now() - waitStart > opts.dataplaneStopTimeoutMs) {
      log.warn('the dataplane container did not stop in time; deregistering anyway');
      break;
    }
    await clock.sleep(1000);
  }
  log.info('dataplane has stopped; deregistering and logging out');
  const failures: string[] = [];
  // A login token that no longer exists was deleted by the controller, which
  // removes the token and then the registrations of a task ECS no longer runs.
  // (A static CONSUL_HTTP_TOKEN is not the controller's to delete.)
  const fromLogin = opts.logoutOnShutdown && !!opts.token;
  let tokenGone = false;
  const shutdownRetry = { maxAttempts: 5, clock, onRetry: failover, retryable: (err: unknown) => !isAclNotFound(err) };
  const ids = gateway ? [id] : [id, sidecarId(id)];
  for (const sid of ids) {
    await retry(() => catalog.deregisterService(task.clusterArn, sid, scope, { retryDeadlineMs: 0 }), shutdownRetry)
      .then(() => log.info('deregistered', { id: sid }))
      .catch((err) => (fromLogin && isAclNotFound(err) ? (tokenGone = true) : failures.push(`deregister ${sid}: ${describeError(err)}`)));
  }
  if (fromLogin) {
    const token = opts.token!;
    const done = await retry(() => aclLogout(catalog.http, token, { retryDeadlineMs: 0 }), shutdownRetry).then(
      () => true,
      (err) => {
        if (isAclNotFound(err)) return (tokenGone = true);
        failures.push(`logout: ${describeError(err)}`);
        return false;
      },
    );
    if (done && !tokenGone) log.info('logged out of Consul');
    if (done && opts.tokenFile) {
      await removeFile(opts.tokenFile).catch((err: unknown) =>
        log.debug('left the logged-out token file in place', { file: opts.tokenFile, error: describeError(err) }),
      );
    }
  }
  if (tokenGone) {
    log.info('the service token no longer exists: the controller has deleted it, as it does for tasks ECS no longer runs, and deregisters their services');
  }
  if (failures.length) throw new Error(`graceful shutdown was incomplete: ${failures.join('; ')}`);
}
