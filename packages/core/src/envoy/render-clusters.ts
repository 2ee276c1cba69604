// The static clusters the bootstrap defines: the ADS cluster to the Consul
// servers, the loopback clusters to Envoy's admin API (or a metrics backend),
// and the cluster to the Consul telemetry collector's socket.
import { isIP } from 'node:net';
import type { BootstrapXdsConfig } from './bootstrap-config.js';
import { TELEMETRY_COLLECTOR_CLUSTER_NAME } from './resource-names.js';
import type { EnvoyAddress, EnvoyCluster, EnvoyTransportSocket, EnvoyTypedConfig } from './types.js';

const TYPE_HTTP_PROTOCOL_OPTIONS = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const TYPE_UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

/**
 * The cluster that carries the ADS stream. Unlike Consul's, it points at
 * remote servers rather than a local agent: DNS names are re-resolved, the
 * connect timeout is longer, and the stream is kept alive with pings.
 */
export function renderAdsCluster(xds: BootstrapXdsConfig): EnvoyCluster {
  const allIps = xds.hosts.every((h) => isIP(h) !== 0);
  const cluster: EnvoyCluster = {
    name: xds.clusterName,
    // IPs are used as they are; DNS names are re-resolved (every 5 s by
    // default), so a server set behind one name follows its changes.
    type: allIps ? 'STATIC' : 'STRICT_DNS',
    ...(allIps ? {} : { dns_lookup_family: 'V4_PREFERRED' as const }),
    // Remote servers, not a local agent: allow more than Consul's 1 s.
    connect_timeout: '5s',
    typed_extension_protocol_options: httpProtocolOptions(true, {
      // Keep the long-lived stream alive through NAT and load balancers (an AWS
      // NLB drops idle flows after 350 s); Consul servers refuse pings more
      // often than every 15 s. consul-dataplane's gRPC client uses the same.
      connection_keepalive: { interval: '30s', timeout: '30s' },
    }),
  };
  if (xds.tls) cluster.transport_socket = adsTransportSocket(xds.tls);
  cluster.load_assignment = loadAssignment(
    xds.clusterName,
    xds.hosts.map((h) => ({ socket_address: { address: h, port_value: xds.grpcPort } })),
  );
  return cluster;
}

function adsTransportSocket(tls: NonNullable<BootstrapXdsConfig['tls']>): EnvoyTransportSocket {
  const context: EnvoyTypedConfig = {
    '@type': TYPE_UPSTREAM_TLS,
    ...(tls.sni ? { sni: tls.sni } : {}),
    common_tls_context: {
      // Offer h2 explicitly: grpc-go servers (Consul's) can be set to refuse
      // TLS clients that negotiate no ALPN protocol.
      alpn_protocols: ['h2'],
      validation_context: {
        trusted_ca: tls.trustedCa,
        ...(tls.subjectAltNames
          ? { match_typed_subject_alt_names: tls.subjectAltNames.map((san) => ({ san_type: san.type, matcher: { exact: san.name } })) }
          : {}),
      },
    },
  };
  return { name: 'tls', typed_config: context };
}

/** An HTTP/1.1 cluster to a port on the admin address: Envoy's admin API (`self_admin`) or a metrics backend. */
export function renderLoopbackHttpCluster(name: string, address: string, portValue: number): EnvoyCluster {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '5s',
    typed_extension_protocol_options: httpProtocolOptions(false),
    load_assignment: loadAssignment(name, [{ socket_address: { address, port_value: portValue } }]),
  };
}

/** The gRPC cluster to the Consul telemetry collector's Unix socket. */
export function renderTelemetryCollectorCluster(socketPath: string): EnvoyCluster {
  return {
    name: TELEMETRY_COLLECTOR_CLUSTER_NAME,
    type: 'STATIC',
    typed_extension_protocol_options: httpProtocolOptions(true),
    load_assignment: loadAssignment(TELEMETRY_COLLECTOR_CLUSTER_NAME, [{ pipe: { path: socketPath } }]),
  };
}

function httpProtocolOptions(http2: boolean, h2Options: Record<string, unknown> = {}): NonNullable<EnvoyCluster['typed_extension_protocol_options']> {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': TYPE_HTTP_PROTOCOL_OPTIONS,
      explicit_http_config: http2 ? { http2_protocol_options: h2Options } : { http_protocol_options: {} },
    },
  };
}

function loadAssignment(name: string, addresses: EnvoyAddress[]): NonNullable<EnvoyCluster['load_assignment']> {
  return { cluster_name: name, endpoints: [{ lb_endpoints: addresses.map((address) => ({ endpoint: { address } })) }] };
}
