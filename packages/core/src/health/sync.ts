import type { CatalogClient } from '../catalog/client.js';
import { checkId, checkOutput, DATAPLANE_CONTAINER } from '../catalog/registration.js';
import type { HealthCheck, HealthStatus } from '../catalog/types.js';
import type { EcsTaskMetadata } from '../ecs/task-metadata.js';
import { systemClock, type Clock } from '../util/clock.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';

export type EcsHealth = 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN' | string;

/**
 * The ECS health of each synced container and of the dataplane aggregate: a
 * container missing from the task counts as UNHEALTHY; the dataplane is HEALTHY
 * only when its own container and every synced container are HEALTHY.
 */
export function resolveContainerHealth(task: Pick<EcsTaskMetadata, 'Containers'>, containers: readonly string[]): Map<string, EcsHealth> {
  const out = new Map<string, EcsHealth>();
  const byName = new Map(task.Containers.map((c) => [c.Name, c]));
  for (const name of [...containers, DATAPLANE_CONTAINER]) {
    const c = byName.get(name);
    out.set(name, c ? (c.Health?.status ?? 'UNKNOWN') : 'UNHEALTHY');
  }
  const all = [...out.values()].every((s) => s === 'HEALTHY');
  out.set(DATAPLANE_CONTAINER, all ? 'HEALTHY' : 'UNHEALTHY');
  return out;
}

export const consulStatus = (ecs: EcsHealth): HealthStatus => (ecs === 'HEALTHY' ? 'passing' : 'critical');

export interface HealthSyncOptions {
  catalog: CatalogClient;
  /** Reads the task document (ECS task metadata `/task`). */
  taskMetadata: () => Promise<EcsTaskMetadata>;
  /** The synthetic node: the cluster ARN. */
  node: string;
  serviceName: string;
  serviceId: string;
  /** The sidecar's ID and name; absent for gateways. */
  proxy?: { id: string; name: string };
  /** `healthSyncContainers`. */
  containers: readonly string[];
  namespace?: string;
  partition?: string;
  clock?: Clock;
  logger?: Logger;
  /** Sync period in milliseconds. Default 1000, as consul-ecs. */
  intervalMs?: number;
  /** Told of each failed Consul write, e.g. to fail over to another server. */
  onConsulError?: (err: unknown) => void;
}

/**
 * Keeps the Consul checks that mesh-init registered in step with the ECS health
 * of the task's containers: every period it reads task metadata and writes only
 * the checks whose status changed, all in one catalog register call.
 */
export class HealthSync {
  readonly #opts: HealthSyncOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  #checks = new Map<string, HealthCheck>();
  /** The ECS health last written to Consul, by container. */
  readonly current = new Map<string, EcsHealth>();

  constructor(opts: HealthSyncOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
  }

  /** Loads the registered checks of the service (and sidecar) from Consul. */
  async init(): Promise<void> {
    const { catalog, serviceName, serviceId, proxy, namespace, partition } = this.#opts;
    const scope = { namespace, partition };
    // One try each: the caller retries, and may move to another server between tries.
    const once = { retryDeadlineMs: 0 };
    const found = [...(await catalog.serviceChecks(serviceName, serviceId, scope, once))];
    if (proxy) found.push(...(await catalog.serviceChecks(proxy.name, proxy.id, scope, once)));
    this.#checks = new Map(found.map((c) => [c.CheckID, c]));
    const missing = this.#expectedCheckIds().filter((id) => !this.#checks.has(id));
    if (missing.length) {
      throw new ConsulEcsError(
        'health-checks-missing',
        `the checks ${missing.join(', ')} are not registered in Consul; run mesh-init for this task first (is healthSyncContainers the same in both?)`,
      );
    }
  }

  #expectedCheckIds(): string[] {
    const { serviceId, proxy, containers } = this.#opts;
    const ids = [checkId(serviceId, DATAPLANE_CONTAINER)];
    if (proxy) ids.push(checkId(proxy.id, DATAPLANE_CONTAINER), ...containers.map((c) => checkId(serviceId, c)));
    return ids;
  }

  /** The checks a container's status is written to. */
  #checksOf(container: string): HealthCheck[] {
    const { serviceId, proxy } = this.#opts;
    const ids = [checkId(serviceId, container)];
    if (container === DATAPLANE_CONTAINER && proxy) ids.push(checkId(proxy.id, DATAPLANE_CONTAINER));
    return ids.map((id) => this.#checks.get(id)).filter((c): c is HealthCheck => c !== undefined);
  }

  #stage(container: string, health: EcsHealth): HealthCheck[] {
    const status = consulStatus(health);
    return this.#checksOf(container).map((c) => ({ ...c, Status: status, Output: checkOutput(status, this.#opts.serviceName) }));
  }

  async #write(checks: HealthCheck[]): Promise<void> {
    await this.#opts.catalog.register({ Node: this.#opts.node, SkipNodeUpdate: true, Checks: checks }, { retryDeadlineMs: 0 });
  }

  /** One sync pass; returns the containers whose checks changed. */
  async syncOnce(): Promise<string[]> {
    let task: EcsTaskMetadata;
    try {
      task = await this.#opts.taskMetadata();
    } catch (err) {
      this.#log.error('unable to read task metadata', { error: describeError(err) });
      return [];
    }
    const desired = resolveContainerHealth(task, this.#opts.containers);
    const changed = [...desired].filter(([name, s]) => this.current.get(name) !== s);
    if (!changed.length) return [];
    const batch = changed.flatMap(([name, s]) => this.#stage(name, s));
    try {
      await this.#write(batch);
    } catch (err) {
      this.#log.warn('failed to update Consul health status; will retry', { error: describeError(err) });
      this.#opts.onConsulError?.(err);
      return [];
    }
    for (const [name, s] of changed) {
      this.#log.info('container health check updated in Consul', { container: name, status: s, previous: this.current.get(name) ?? 'none' });
      this.current.set(name, s);
    }
    return changed.map(([name]) => name);
  }

  /** Marks every check critical at once (one call), as the first step of shutdown. */
  async markAllCritical(): Promise<void> {
    const names = [...this.#opts.containers, DATAPLANE_CONTAINER];
    await this.#write(names.flatMap((n) => this.#stage(n, 'UNHEALTHY')));
    for (const n of names) this.current.set(n, 'UNHEALTHY');
    this.#log.info('set all Consul health checks to critical', { containers: names.join(',') });
  }

  /** Syncs every period until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const period = this.#opts.intervalMs ?? 1000;
    while (!signal.aborted) {
      const started = this.#clock.now();
      await this.syncOnce();
      const wait = Math.max(0, period - (this.#clock.now() - started));
      try {
        await this.#clock.sleep(wait, signal);
      } catch {
        return;
      }
    }
  }
}
