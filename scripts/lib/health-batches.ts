// Change batches for health-sync at scale, shared by its benchmark and its test:
// many containers of one simulated task change their ECS health at once, and
// the catalog writes health-sync makes for it are counted at a proxy in front of
// Consul (scripts/lib/counting-proxy.ts).
import type { HealthCheck } from '@consul-ecs-ts/core';
import type { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import type { ConsulServer } from './local-stack.ts';
import type { CountingProxy, ProxiedCall } from './counting-proxy.ts';

/** The app containers `app0`…`app<n-1>` whose health health-sync syncs. */
export const appContainers = (count: number) => Array.from({ length: count }, (_, i) => `app${i}`);

/**
 * Batch `index` (from 0): every even batch makes `size` containers UNHEALTHY,
 * every odd one makes them HEALTHY again, a different set of them each time
 * round (so that not only the first ones ever change).
 */
export function batchChanges(containers: readonly string[], index: number, size: number): Map<string, 'HEALTHY' | 'UNHEALTHY'> {
  const round = Math.floor(index / 2);
  const status = index % 2 === 0 ? 'UNHEALTHY' : 'HEALTHY';
  const start = (round * size) % containers.length;
  const out = new Map<string, 'HEALTHY' | 'UNHEALTHY'>();
  for (let i = 0; i < size; i++) out.set(containers[(start + i) % containers.length]!, status);
  return out;
}

/** The status of each check of a service instance, by check ID, read from Consul directly (not through the proxy). */
export async function checkStatuses(consul: ConsulServer, serviceName: string, serviceId: string): Promise<Map<string, string>> {
  const checks = await consul.api<HealthCheck[]>('GET', `/v1/health/checks/${encodeURIComponent(serviceName)}`);
  return new Map(checks.filter((c) => c.ServiceID === serviceId).map((c) => [c.CheckID, c.Status]));
}

export interface BatchOutcome {
  /** From the change to Consul showing all of it, in ms. */
  syncedMs: number;
  /** Calls health-sync made to Consul for it (a quiet second after it was synced included). */
  calls: ProxiedCall[];
}

/**
 * Applies one batch to the simulated task at once, waits until Consul shows every
 * changed check (and the dataplane check's aggregate), then `settleMs` more, and
 * returns the calls that reached Consul meanwhile.
 */
export async function applyBatch(opts: {
  sim: EcsAgentSimulator;
  consul: ConsulServer;
  proxy: CountingProxy;
  serviceName: string;
  serviceId: string;
  changes: Map<string, 'HEALTHY' | 'UNHEALTHY'>;
  /** Every synced container's health now (updated here). */
  health: Map<string, 'HEALTHY' | 'UNHEALTHY'>;
  settleMs?: number;
  timeoutMs?: number;
}): Promise<BatchOutcome> {
  const { sim, consul, proxy, serviceName, serviceId, changes, health } = opts;
  const from = proxy.calls.length;
  const started = performance.now();
  for (const [name, status] of changes) {
    sim.setHealth(name, status);
    health.set(name, status);
  }
  const want = new Map([...health].map(([name, s]) => [`${serviceId}-${name}`, s === 'HEALTHY' ? 'passing' : 'critical']));
  want.set(`${serviceId}-consul-dataplane`, [...health.values()].every((s) => s === 'HEALTHY') ? 'passing' : 'critical');
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const now = await checkStatuses(consul, serviceName, serviceId);
    const wrong = [...want].filter(([id, s]) => now.get(id) !== s);
    if (!wrong.length) break;
    if (Date.now() > deadline) {
      throw new Error(
        `health-sync did not sync a batch of ${changes.size} changes within ${opts.timeoutMs ?? 10_000} ms: ${wrong.length} checks differ, e.g. ${wrong[0]![0]}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const syncedMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, opts.settleMs ?? 1500));
  return { syncedMs, calls: proxy.calls.slice(from) };
}
