// Envoy's stats: where they are sent (stats sinks) and how metric names are
// turned into tags (stats config), as Consul configures them.
import type { BootstrapNodeConfig, BootstrapStatsConfig } from './bootstrap-config.js';
import { TELEMETRY_COLLECTOR_CLUSTER_NAME } from './resource-names.js';
import { consulResourceTagSpecifiers } from './stats-tags.js';
import type { EnvoyJsonObject, EnvoyStatsConfig, EnvoyStatsSink, EnvoyTagSpecifier } from './types.js';

/** The statsd and dogstatsd sinks, the extra sinks, then the telemetry collector's. */
export function renderStatsSinks(stats: BootstrapStatsConfig): Array<EnvoyStatsSink | EnvoyJsonObject> {
  const sinks: Array<EnvoyStatsSink | EnvoyJsonObject> = [];
  if (stats.statsdAddress) {
    sinks.push({
      name: 'envoy.stat_sinks.statsd',
      typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink', address: stats.statsdAddress },
    });
  }
  if (stats.dogstatsdAddress) {
    sinks.push({
      name: 'envoy.stat_sinks.dog_statsd',
      typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink', address: stats.dogstatsdAddress },
    });
  }
  sinks.push(...stats.extraSinks);
  if (stats.telemetryCollectorSocket !== undefined) {
    sinks.push({
      name: 'envoy.stat_sinks.metrics_service',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig',
        transport_api_version: 'V3',
        grpc_service: { envoy_grpc: { cluster_name: TELEMETRY_COLLECTOR_CLUSTER_NAME } },
        emit_tags_as_labels: true,
      },
    });
  }
  return sinks;
}

/**
 * `envoy_stats_config_json` as given, or the stats config Consul generates:
 * the proxy's own fixed tags, the tags Consul cuts from its resource names,
 * then fixed tags naming the proxy that the proxy's own do not override.
 */
export function renderStatsConfig(stats: BootstrapStatsConfig, node: BootstrapNodeConfig): EnvoyStatsConfig | EnvoyJsonObject {
  if (stats.statsConfigJson) return stats.statsConfigJson;
  const tags: EnvoyTagSpecifier[] = stats.tags.map((t) => ({ tag_name: t.name, fixed_value: t.value }));
  const explicit = new Set(stats.tags.map((t) => t.name));
  tags.push(...consulResourceTagSpecifiers(stats.omitDeprecatedTags));
  const defaults: Array<[string, string]> = [
    // local_cluster predates the consul.source.* tags and is kept for old dashboards.
    ['local_cluster', node.service],
    ['consul.source.service', node.service],
    ['consul.source.namespace', node.namespace],
    ['consul.source.partition', node.partition],
    ['consul.source.datacenter', node.datacenter],
  ];
  for (const [name, value] of defaults) {
    if (value !== '' && !explicit.has(name)) tags.push({ tag_name: name, fixed_value: value });
  }
  return { stats_tags: tags, use_all_default_tags: true };
}
