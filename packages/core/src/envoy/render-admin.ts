// Envoy's admin API: where it listens and logs, and the listeners that expose
// one path of it (ready, stats, Prometheus) without exposing the rest.
import type { AdminApiListenerConfig, BootstrapAdminConfig } from './bootstrap-config.js';
import type { EnvoyAccessLog, EnvoyAdmin, EnvoyListener, EnvoySecret, EnvoyTransportSocket, EnvoyTypedConfig } from './types.js';

const TYPE_DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const TYPE_HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TYPE_ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const TYPE_FILE_ACCESS_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const TYPE_STDOUT_ACCESS_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';
const TYPE_STDERR_ACCESS_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog';

export function renderAdmin(admin: BootstrapAdminConfig): EnvoyAdmin {
  return {
    access_log: renderAdminAccessLog(admin.accessLog),
    address: { socket_address: { address: admin.address, port_value: admin.port } },
  };
}

function renderAdminAccessLog(log: BootstrapAdminConfig['accessLog']): EnvoyAccessLog[] {
  if (log.kind === 'admin-file') {
    return [{ name: 'envoy.access_loggers.file', typed_config: { '@type': TYPE_FILE_ACCESS_LOG, path: log.path } }];
  }
  const logFormat = 'json' in log.format ? { json_format: log.format.json } : { text_format_source: { inline_string: log.format.text } };
  let typed: EnvoyTypedConfig;
  switch (log.type) {
    case 'stdout':
      typed = { '@type': TYPE_STDOUT_ACCESS_LOG, log_format: logFormat };
      break;
    case 'stderr':
      typed = { '@type': TYPE_STDERR_ACCESS_LOG, log_format: logFormat };
      break;
    case 'file':
      typed = { '@type': TYPE_FILE_ACCESS_LOG, path: log.path, log_format: logFormat };
      break;
  }
  return [{ name: 'Consul Listener Filter Log', typed_config: typed }];
}

/**
 * A listener that sends requests for one path to its backend cluster (named
 * in the config; the caller defines it) and answers 404 to any other, with the
 * secrets its TLS needs.
 */
export function renderAdminApiListener(l: AdminApiListenerConfig): { listener: EnvoyListener; secrets: EnvoySecret[] } {
  const tls = l.tls ? prometheusListenerTls(l.tls) : undefined;
  const listener: EnvoyListener = {
    name: l.name,
    address: { socket_address: { address: l.bind.address, port_value: l.bind.port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': TYPE_HCM,
              stat_prefix: l.statPrefix,
              codec_type: 'HTTP1',
              route_config: {
                name: 'self_admin_route',
                virtual_hosts: [
                  {
                    name: 'self_admin',
                    domains: ['*'],
                    routes: [
                      { match: l.match, route: { cluster: l.backend.cluster, prefix_rewrite: l.rewrite } },
                      { match: { prefix: '/' }, direct_response: { status: 404 } },
                    ],
                  },
                ],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': TYPE_ROUTER } }],
            },
          },
        ],
        ...(tls ? { transport_socket: tls.transportSocket } : {}),
      },
    ],
  };
  return { listener, secrets: tls?.secrets ?? [] };
}

/** The Prometheus listener's TLS: its certificate, key and CA from files, through SDS secrets. */
function prometheusListenerTls(files: NonNullable<AdminApiListenerConfig['tls']>): { transportSocket: EnvoyTransportSocket; secrets: EnvoySecret[] } {
  return {
    transportSocket: {
      name: 'tls',
      typed_config: {
        '@type': TYPE_DOWNSTREAM_TLS,
        common_tls_context: {
          tls_certificate_sds_secret_configs: [{ name: 'prometheus_cert' }],
          validation_context_sds_secret_config: { name: 'prometheus_validation_context' },
        },
      },
    },
    secrets: [
      { name: 'prometheus_cert', tls_certificate: { certificate_chain: { filename: files.certFile }, private_key: { filename: files.keyFile } } },
      { name: 'prometheus_validation_context', validation_context: { trusted_ca: { filename: files.caFile } } },
    ],
  };
}
