// Not the core index: it loads the HTTP client, which this entrypoint needs only
// after SIGTERM (its caller passes the task metadata reader).
import type { EcsContainerMetadata, EcsTaskMetadata } from '@consul-ecs-ts/core';
import { systemClock, type Clock } from '@consul-ecs-ts/core';
import { containerStopped } from '@consul-ecs-ts/core';
import { ConsulEcsError, describeError } from '@consul-ecs-ts/core';
import { silentLogger, type Logger } from '@consul-ecs-ts/core';
import { sleepFor, supervise, terminateGroup, type EntrypointDeps } from './entrypoint.js';

/**
 * Containers of a mesh task that are not the application: the task's own
 * Consul containers, in both shapes (mesh-init + health-sync, or one
 * control-plane container) and the dataplane.
 */
export const NON_APP_CONTAINERS: readonly string[] = ['consul-ecs-mesh-init', 'consul-dataplane', 'consul-ecs-health-sync', 'consul-ecs-control-plane'];

/**
 * An application container: one of the task definition (Type NORMAL; ECS may
 * add containers of its own) that is not one of `nonApp`.
 */
export function isAppContainer(c: Pick<EcsContainerMetadata, 'Name' | 'Type'>, nonApp: readonly string[] = NON_APP_CONTAINERS): boolean {
  return c.Type === 'NORMAL' && !nonApp.includes(c.Name);
}

/** Names of the application containers of a task document that have not stopped. */
export function runningAppContainers(task: Pick<EcsTaskMetadata, 'Containers'>, nonApp: readonly string[] = NON_APP_CONTAINERS): string[] {
  return task.Containers.filter((c) => isAppContainer(c, nonApp) && !containerStopped(c)).map((c) => c.Name);
}

/** The stop rule: true when every application container of the task has stopped (also when it has none). */
export function appContainersStopped(task: Pick<EcsTaskMetadata, 'Containers'>, nonApp: readonly string[] = NON_APP_CONTAINERS): boolean {
  return runningAppContainers(task, nonApp).length === 0;
}

export interface WaitForAppContainersOptions {
  /** Reads the task document, e.g. `() => new TaskMetadataClient({ baseUrl }).task()`. */
  taskMetadata: () => Promise<EcsTaskMetadata>;
  clock?: Clock;
  /** Default 1000. */
  pollIntervalMs?: number;
  nonAppContainers?: readonly string[];
  logger?: Logger;
  signal?: AbortSignal;
}

/**
 * Polls task metadata (at once, then every interval) until every application
 * container has stopped; resolves true then, or false when aborted. Failures to
 * read the metadata are logged and polling goes on.
 */
export async function waitForAppContainersToStop(opts: WaitForAppContainersOptions): Promise<boolean> {
  const clock = opts.clock ?? systemClock;
  const log = opts.logger ?? silentLogger;
  const signal = opts.signal ?? new AbortController().signal;
  const interval = opts.pollIntervalMs ?? 1000;
  let last = '';
  for (;;) {
    if (signal.aborted) return false;
    try {
      const running = runningAppContainers(await opts.taskMetadata(), opts.nonAppContainers);
      if (signal.aborted) return false;
      if (running.length === 0) return true;
      const now = running.join(',');
      if (now !== last) log.info('waiting for application container(s) to stop', { running: now });
      last = now;
    } catch (err) {
      if (signal.aborted) return false;
      log.error('fetching task metadata', { error: describeError(err) });
    }
    if (!(await sleepFor(clock, interval, signal))) return false;
  }
}

export interface EnvoyEntrypointOptions extends EntrypointDeps {
  /** The command to run (Envoy or consul-dataplane) and its arguments. */
  command: readonly string[];
  /** Reads the task document (`${ECS_CONTAINER_METADATA_URI_V4}/task`). */
  taskMetadata: () => Promise<EcsTaskMetadata>;
  /** Default 1000. */
  pollIntervalMs?: number;
  /** Default {@link NON_APP_CONTAINERS}. */
  nonAppContainers?: readonly string[];
}

/**
 * `consul-ecs envoy-entrypoint`: runs the command in its own process group and
 * keeps it running through the task's shutdown until the application stops.
 * SIGTERM is never forwarded; it starts polling task metadata, and once every
 * application container has stopped the command's process group gets SIGTERM.
 * Other signals are forwarded to the command. Resolves with the command's exit
 * code (128 + signal number when a signal ended it) as soon as it exits.
 * Rejects with a ConsulEcsError when the command cannot start.
 */
export async function runEnvoyEntrypoint(opts: EnvoyEntrypointOptions): Promise<number> {
  const log = opts.logger ?? silentLogger;
  const { child, firstSigterm, dispose } = await supervise(opts.command, opts, 'ignore');
  const stop = new AbortController();
  try {
    const appsStopped = firstSigterm.then(() => {
      if (stop.signal.aborted) return false;
      log.info('received SIGTERM; waiting for the application container(s) to stop before terminating the command');
      const waitOpts: WaitForAppContainersOptions = { taskMetadata: opts.taskMetadata, logger: log, signal: stop.signal };
      if (opts.clock) waitOpts.clock = opts.clock;
      if (opts.pollIntervalMs !== undefined) waitOpts.pollIntervalMs = opts.pollIntervalMs;
      if (opts.nonAppContainers) waitOpts.nonAppContainers = opts.nonAppContainers;
      return waitForAppContainersToStop(waitOpts);
    });
    const first = await Promise.race([child.exited, appsStopped.then((stopped) => (stopped ? ('apps-stopped' as const) : new Promise<never>(() => {})))]);
    if (first !== 'apps-stopped') return first.code;
    log.info('application container(s) have stopped; sending SIGTERM to the command', { pid: child.pid });
    terminateGroup(child, log);
    return (await child.exited).code;
  } finally {
    stop.abort(new ConsulEcsError('entrypoint-done', 'the command has exited'));
    dispose();
  }
}
