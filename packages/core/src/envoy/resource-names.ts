// The names of the static clusters and listeners the bootstrap defines. They
// are Consul's (`consul connect envoy -bootstrap`), so the metrics named after
// them match Consul's docs and dashboards.

/**
 * Name of the static cluster that carries the ADS stream. Consul's own
 * bootstrap calls it `local_agent` (consul-dataplane: `consul-dataplane`); we
 * keep Consul's reserved name so `cluster.local_agent.*` metrics and existing
 * dashboards still find it. Set {@link EnvoyBootstrapInput.adsClusterName} to
 * `consul-dataplane` to keep the metric names a consul-dataplane task had.
 */
export const DEFAULT_ADS_CLUSTER_NAME = 'local_agent';
/** Consul's name for the cluster that reaches Envoy's own admin API (for the ready, stats and Prometheus listeners). */
export const SELF_ADMIN_CLUSTER_NAME = 'self_admin';
/** The cluster for a merged-metrics Prometheus backend ({@link EnvoyPrometheusOptions.backendPort}). */
export const PROMETHEUS_BACKEND_CLUSTER_NAME = 'prometheus_backend';
/** The cluster to the Consul telemetry collector's socket (`envoy_telemetry_collector_bind_socket_dir`). */
export const TELEMETRY_COLLECTOR_CLUSTER_NAME = 'consul_telemetry_collector_loopback';
/** The listener that serves `/ready` (the proxy's health check). */
export const READY_LISTENER_NAME = 'envoy_ready_listener';
/** The listener for `envoy_stats_bind_addr`: `/stats` from the admin API. */
export const STATS_LISTENER_NAME = 'envoy_metrics_listener';
/** The listener for `envoy_prometheus_bind_addr`: the admin API's Prometheus metrics. */
export const PROMETHEUS_LISTENER_NAME = 'envoy_prometheus_metrics_listener';
