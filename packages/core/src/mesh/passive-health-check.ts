// The passive health check (Envoy outlier detection) networkResilienceConfig asks
// for, added to the service's service-defaults config entry.
import type { ResolvedConfig } from '../config/types.js';
import type { ConsulHttpClient } from '../consul/http-client.js';
import type { Logger } from '../util/logger.js';
import { stripUndefined } from './registrations.js';

/** Adds outlier detection to the service's service-defaults unless it already has a passive health check. */
export async function upsertPassiveHealthCheck(
  client: ConsulHttpClient,
  token: string | undefined,
  service: string,
  scope: { namespace?: string; partition?: string },
  od: NonNullable<ResolvedConfig['service']['networkResilienceConfig']>['outlierDetection'],
  log: Logger,
): Promise<void> {
  const query = { ns: scope.namespace, partition: scope.partition };
  let entry: Record<string, unknown> = { Kind: 'service-defaults', Name: service, Namespace: scope.namespace, Partition: scope.partition };
  try {
    entry = await client.call<Record<string, unknown>>({ path: `/v1/config/service-defaults/${encodeURIComponent(service)}`, query, token });
  } catch (err) {
    if ((err as { status?: number }).status !== 404) throw err;
  }
  const upstream = (entry.UpstreamConfig ??= {}) as Record<string, unknown>;
  const defaults = (upstream.Defaults ??= {}) as Record<string, unknown>;
  if (defaults.PassiveHealthCheck) {
    log.debug('passive health check already in service-defaults; leaving it', { service });
    return;
  }
  defaults.PassiveHealthCheck = stripUndefined({
    Interval: od.interval,
    MaxFailures: od.maxFailures,
    EnforcingConsecutive5xx: od.enforcingConsecutive5xx,
    Consecutive5xx: od.consecutive5xx,
    EnforcingConsecutiveGatewayFailure: od.enforcingConsecutiveGatewayFailure,
    ConsecutiveGatewayFailure: od.consecutiveGatewayFailure,
    MaxEjectionPercent: od.maxEjectionPercent,
  });
  const phc = defaults.PassiveHealthCheck as Record<string, unknown>;
  try {
    await client.send({ method: 'PUT', path: '/v1/config', query, body: entry, token });
  } catch (err) {
    // Older Consul servers know fewer outlier detection settings: drop the ones
    // this server rejects, say which, and write the rest.
    const rejected = [...String((err as { body?: unknown }).body ?? '').matchAll(/invalid config key "UpstreamConfig\.Defaults\.PassiveHealthCheck\.(\w+)"/g)]
      .map((m) => m[1]!)
      .sort();
    if (!rejected.length) throw err;
    for (const key of rejected) delete phc[key];
    log.warn('this Consul server does not support some outlier detection settings; they are left out', { service, settings: rejected.join(',') });
    await client.send({ method: 'PUT', path: '/v1/config', query, body: entry, token });
  }
  log.info('added a passive health check to service-defaults', { service });
}
