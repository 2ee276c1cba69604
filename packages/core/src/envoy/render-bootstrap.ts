// The second half of bootstrap generation: the whole Envoy bootstrap document
// from an EnvoyBootstrapConfig (see bootstrap-config.ts), in the layout of
// Consul's bootstrap template. Throws nothing: the config has been checked.
import type { EnvoyBootstrapConfig } from './bootstrap-config.js';
import { renderAdmin, renderAdminApiListener } from './render-admin.js';
import { renderAdsCluster, renderLoopbackHttpCluster, renderTelemetryCollectorCluster } from './render-clusters.js';
import { renderStatsConfig, renderStatsSinks } from './render-stats.js';
import type { EnvoyBootstrap, EnvoyStaticResources } from './types.js';

export function renderBootstrapDocument(config: EnvoyBootstrapConfig): EnvoyBootstrap {
  const sinks = renderStatsSinks(config.stats);
  const flushInterval = config.stats.flushInterval;
  return {
    admin: renderAdmin(config.admin),
    node: {
      id: config.node.id,
      cluster: config.node.service,
      metadata: { node_name: config.node.nodeName, namespace: config.node.namespace, partition: config.node.partition },
    },
    layered_runtime: {
      // Consul's route regexes can be larger than Envoy's default RE2 program size limit.
      layers: [{ name: 'base', static_layer: { 're2.max_program_size.error_level': 1048576 } }],
    },
    static_resources: renderStaticResources(config),
    stats_config: renderStatsConfig(config.stats, config.node),
    ...(sinks.length > 0 ? { stats_sinks: sinks } : {}),
    ...(flushInterval !== undefined ? { stats_flush_interval: flushInterval } : {}),
    ...(config.tracing ? { tracing: config.tracing } : {}),
    dynamic_resources: {
      // initial_fetch_timeout 0s: Envoy stays not-ready (/ready answers 503)
      // until Consul has sent listeners and clusters, however long that takes.
      lds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      cds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      ads_config: {
        api_type: 'DELTA_GRPC',
        transport_api_version: 'V3',
        grpc_services: {
          ...(config.xds.token ? { initial_metadata: [{ key: 'x-consul-token', value: config.xds.token }] } : {}),
          envoy_grpc: { cluster_name: config.xds.clusterName },
        },
      },
    },
  };
}

/**
 * Clusters: the ADS cluster, the extra ones, each admin API listener's backend
 * not defined yet, the telemetry collector's. Listeners: the extra ones, then
 * the admin API listeners.
 */
function renderStaticResources(config: EnvoyBootstrapConfig): EnvoyStaticResources {
  const clusters: EnvoyStaticResources['clusters'] = [renderAdsCluster(config.xds), ...config.extraStaticClusters];
  const listeners: NonNullable<EnvoyStaticResources['listeners']> = [...config.extraStaticListeners];
  const secrets: NonNullable<EnvoyStaticResources['secrets']> = [];
  for (const l of config.adminApiListeners) {
    if (!clusters.some((c) => c.name === l.backend.cluster)) {
      clusters.push(renderLoopbackHttpCluster(l.backend.cluster, config.admin.address, l.backend.port));
    }
    const rendered = renderAdminApiListener(l);
    listeners.push(rendered.listener);
    secrets.push(...rendered.secrets);
  }
  if (config.stats.telemetryCollectorSocket !== undefined) clusters.push(renderTelemetryCollectorCluster(config.stats.telemetryCollectorSocket));
  return {
    clusters,
    ...(listeners.length > 0 ? { listeners } : {}),
    ...(secrets.length > 0 ? { secrets } : {}),
  };
}
