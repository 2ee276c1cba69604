// Envoy bootstrap generation for a proxy that talks ADS (delta xDS over gRPC)
// straight to the Consul servers' gRPC port, with no consul-dataplane and no
// Consul client agent in between. The layout follows what `consul connect envoy
// -bootstrap` and consul-dataplane generate (node identity, admin, the
// Consul-managed stats tags, the `envoy_*` proxy-config keys, the admin-proxy
// listeners) so Consul's xDS server, Consul's docs and existing dashboards apply
// unchanged. The ADS cluster differs because it points at remote servers, not
// at a local agent: see renderAdsCluster. For an agentless proxy Consul's xDS
// server needs node.metadata.node_name (the catalog node the proxy is on; it
// looks on its own node otherwise) and a token with service:write on the
// proxy's service (the destination service for a sidecar).
//
// Split as Consul splits its generator: bootstrap-config.ts checks the input
// and reads the proxy's `envoy_*` keys into a typed config; render-*.ts turn
// that config into the document.
import { ConsulEcsError } from '../util/errors.js';
import { parseEnvoyBootstrapConfig } from './bootstrap-config.js';
import type { EnvoyBootstrapInput } from './bootstrap-input.js';
import { INVALID } from './input-checks.js';
import { renderBootstrapDocument } from './render-bootstrap.js';
import type { EnvoyBootstrap } from './types.js';

export {
  DEFAULT_CONSUL_GRPC_PORT,
  DEFAULT_ENVOY_ADMIN_PORT,
  DEFAULT_ENVOY_READY_PORT,
  ENVOY_PROXY_KINDS,
  type ConsulAccessLogsConfig,
  type EnvoyBootstrapInput,
  type EnvoyPrometheusOptions,
  type EnvoyProxyKind,
  type EnvoyProxyService,
  type EnvoyXdsServers,
  type EnvoyXdsTls,
} from './bootstrap-input.js';
export { ENVOY_BOOTSTRAP_CONFIG_KEYS } from './bootstrap-config.js';
export {
  DEFAULT_ADS_CLUSTER_NAME,
  PROMETHEUS_BACKEND_CLUSTER_NAME,
  READY_LISTENER_NAME,
  SELF_ADMIN_CLUSTER_NAME,
  TELEMETRY_COLLECTOR_CLUSTER_NAME,
} from './resource-names.js';

/** File name of the generated bootstrap in the bootstrap directory (`/consul`). */
export const ENVOY_BOOTSTRAP_FILE_NAME = 'envoy-bootstrap.json';

/**
 * Generates the Envoy bootstrap for a proxy or gateway that gets its
 * configuration over ADS straight from the Consul servers. Pure: reads no
 * files and no environment (see {@link EnvoyBootstrapInput.env}).
 *
 * Throws a {@link ConsulEcsError} (`envoy-bootstrap-invalid`, or
 * `envoy-bootstrap-proxy-config` for a bad `envoy_*` key, named in the
 * message) on input Envoy or Consul would refuse. Messages never contain the token.
 */
export function generateEnvoyBootstrap(input: EnvoyBootstrapInput): EnvoyBootstrap {
  const token = typeof input?.token === 'string' ? input.token : undefined;
  try {
    return renderBootstrapDocument(parseEnvoyBootstrapConfig(input));
  } catch (err) {
    // A safety net: nothing above puts the token into a message on purpose,
    // but user JSON quoted by a parser could carry it.
    if (token && err instanceof Error && err.message.includes(token)) {
      const code = err instanceof ConsulEcsError ? err.code : INVALID;
      throw new ConsulEcsError(code, err.message.split(token).join('[redacted]'));
    }
    throw err;
  }
}

/** The bootstrap as the JSON text Envoy reads with `-c` (two-space indented, trailing newline). */
export function renderEnvoyBootstrap(bootstrap: EnvoyBootstrap): string {
  return `${JSON.stringify(bootstrap, null, 2)}\n`;
}
