// Whole Envoy bootstraps, byte for byte: each shape below is generated and
// rendered, and the text must equal its golden file in test/fixtures/envoy/.
// A change to the generator that changes any document shows up here as a
// failing test and, once accepted, as a diff of the golden files.
//
// To accept a change on purpose, write the golden files anew and review the diff:
//   UPDATE_GOLDEN=1 node scripts/run-tests.mjs --runtime=machine test/unit/envoy-bootstrap-golden.test.ts
//   git diff test/fixtures/envoy/
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { generateEnvoyBootstrap, renderEnvoyBootstrap, type EnvoyBootstrapInput, type EnvoyProxyService } from '@consul-ecs-ts/core';

const FIXTURES = new URL('../fixtures/envoy/', import.meta.url);
const UPDATE = process.env.UPDATE_GOLDEN === '1';

const TOKEN = '6a1f4e2c-93b0-4d7e-8c55-2f0e9b1d7a34';
const NODE = 'arn:aws:ecs:us-east-1:123456789012:cluster/prod';
const SERVERS = { addresses: ['10.0.1.10', '10.0.2.10'] };

/**
 * The catalog's upstreams of a sidecar. The bootstrap does not use them (they
 * reach Envoy over xDS), but the service mesh-init reads carries them.
 */
const UPSTREAMS = [
  { DestinationType: 'service', DestinationName: 'db', LocalBindPort: 5432, Config: { protocol: 'tcp' } },
  { DestinationType: 'service', DestinationName: 'api', DestinationNamespace: 'backend', LocalBindPort: 8081, MeshGateway: { Mode: 'local' } },
];

/** Every envoy_* key the generator honours, plus keys it leaves to xDS. */
const EVERY_ENVOY_KEY: Record<string, unknown> = {
  envoy_statsd_url: 'udp://${HOST_IP}:8125',
  envoy_dogstatsd_url: '$DD_URL',
  envoy_extra_stats_sinks_json:
    '{"name":"extra.statsd","typed_config":{"@type":"type.googleapis.com/envoy.config.metrics.v3.StatsdSink","address":{"socket_address":{"address":"127.0.0.1","port_value":9125}},"prefix":"extra"}}',
  envoy_stats_tags: ['Team=payments', 'canary', 'local_cluster=web-blue'],
  envoy_stats_flush_interval: '2.5s',
  envoy_prometheus_bind_addr: '0.0.0.0:20200',
  envoy_stats_bind_addr: '[::]:20201',
  envoy_telemetry_collector_bind_socket_dir: '/consul/telemetry/',
  // As JSON text, the way they stand in a service-defaults or proxy-defaults entry.
  envoy_extra_static_clusters_json:
    '{"name":"otel_collector","type":"STRICT_DNS","connect_timeout":"2s","typed_extension_protocol_options":{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions":{"@type":"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions","explicit_http_config":{"http2_protocol_options":{}}}},' +
    '"load_assignment":{"cluster_name":"otel_collector","endpoints":[{"lb_endpoints":[{"endpoint":{"address":{"socket_address":{"address":"otel.internal","port_value":4317}}}}]}]}},' +
    '{"name":"jaeger_agent","type":"STATIC","connect_timeout":"1s","load_assignment":{"cluster_name":"jaeger_agent","endpoints":[{"lb_endpoints":[{"endpoint":{"address":{"pipe":{"path":"/var/run/jaeger.sock"}}}}]}]}}',
  envoy_extra_static_listeners_json: '[{"name":"otel_grpc_in","address":{"socket_address":{"address":"127.0.0.1","port_value":4318}}}]',
  envoy_tracing_json:
    '{"http":{"name":"envoy.tracers.opentelemetry","typed_config":{"@type":"type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig","grpc_service":{"envoy_grpc":{"cluster_name":"otel_collector"}},"service_name":"web"}}}',
  // Accepted, warned about and ignored.
  envoy_bootstrap_json_tpl: '{}',
  // Keys for xDS, not the bootstrap: they must not change it.
  envoy_local_cluster_json: '{"name":"local_app","type":"STATIC"}',
  envoy_public_listener_json: '{"name":"public_listener"}',
  protocol: 'http',
};

function sidecar(proxy: Partial<NonNullable<EnvoyProxyService['Proxy']>> = {}, extra: Partial<EnvoyBootstrapInput> = {}): EnvoyBootstrapInput {
  return {
    proxy: {
      Kind: 'connect-proxy',
      ID: 'web-abc123-sidecar-proxy',
      Service: 'web-sidecar-proxy',
      Proxy: { DestinationServiceName: 'web', Config: {}, ...proxy },
    },
    nodeName: NODE,
    datacenter: 'dc1',
    servers: SERVERS,
    token: TOKEN,
    ...extra,
  };
}

function gateway(Kind: string, Service: string, Config: Record<string, unknown>, extra: Partial<EnvoyProxyService> = {}): EnvoyBootstrapInput {
  return {
    proxy: { Kind, ID: `${Service}-abc123`, Service, Proxy: { Config }, ...extra },
    nodeName: NODE,
    datacenter: 'dc1',
    servers: SERVERS,
    token: TOKEN,
    ready: { address: '0.0.0.0', port: 22000 },
  };
}

interface Shape {
  /** The golden file: test/fixtures/envoy/<name>.json. */
  name: string;
  input: EnvoyBootstrapInput;
  /** The warnings the generator gives for it. */
  warnings?: RegExp[];
}

const SHAPES: Shape[] = [
  { name: 'sidecar-plain', input: sidecar() },
  {
    name: 'sidecar-every-envoy-key',
    input: sidecar(
      {
        Config: EVERY_ENVOY_KEY,
        Upstreams: UPSTREAMS,
        AccessLogs: { Enabled: true },
      } as Partial<NonNullable<EnvoyProxyService['Proxy']>>,
      {
        env: { HOST_IP: '10.1.2.3', DD_URL: 'unix:///var/run/datadog/dsd.socket' },
        prometheus: {
          scrapePath: '/scrape',
          backendPort: 20100,
          certFile: '/consul/prom-cert.pem',
          keyFile: '/consul/prom-key.pem',
          caFile: '/consul/prom-ca.pem',
        },
      },
    ),
    warnings: [/envoy_bootstrap_json_tpl .* is not supported and is ignored/],
  },
  {
    // The other branches: stats_config_json replacing the generated tags, a
    // user self_admin, file access logs, no token, DNS servers, own ports.
    name: 'sidecar-stats-config-json',
    input: sidecar(
      {
        Config: {
          envoy_stats_config_json: '{"stats_tags":[{"tag_name":"x","fixed_value":"y"}],"use_all_default_tags":false}',
          envoy_stats_tags: ['ignored=because-stats-config-json-is-set'],
          envoy_statsd_url: 'udp://[fd00::5]:8125',
          envoy_stats_bind_addr: '127.0.0.1:20201',
          envoy_extra_static_clusters_json: '{"name":"self_admin","type":"STATIC","connect_timeout":"1s"}',
          envoy_telemetry_collector_bind_socket_dir: '/consul/telemetry',
        },
        AccessLogs: { Enabled: true, Type: 'file', Path: '/var/log/envoy/admin.log', TextFormat: '[%START_TIME%] %RESPONSE_CODE%' },
      },
      {
        token: undefined,
        adsClusterName: 'consul-dataplane',
        admin: { address: 'localhost', port: 19100 },
        ready: { address: '0.0.0.0', port: 21000 },
        servers: { addresses: ['consul.internal', '[fd00::1]', 'consul.internal'], grpcPort: 8502 },
      },
    ),
  },
  {
    name: 'sidecar-tls',
    input: sidecar({ Upstreams: UPSTREAMS } as Partial<NonNullable<EnvoyProxyService['Proxy']>>, {
      servers: { addresses: ['10.0.1.10', '10.0.2.10'], grpcPort: 8503, tls: { caFile: '/consul/consul-grpc-ca-cert.pem', serverName: 'server.dc1.consul' } },
    }),
  },
  {
    name: 'mesh-gateway',
    input: gateway(
      'mesh-gateway',
      'mesh-gateway',
      {
        envoy_gateway_no_default_bind: true,
        envoy_gateway_bind_tagged_addresses: true,
        envoy_prometheus_bind_addr: '0.0.0.0:20200',
        envoy_dogstatsd_url: 'udp://127.0.0.1:8125',
      },
      { Partition: 'part1' },
    ),
  },
  {
    name: 'terminating-gateway',
    // With the pre-1.9 consul.* stats tags, as `consul connect envoy` keeps them.
    input: {
      ...gateway(
        'terminating-gateway',
        'legacy-gateway',
        { envoy_stats_tags: ['role=edge'], connect_timeout_ms: 5000 },
        { Namespace: 'team', Partition: 'part1' },
      ),
      omitDeprecatedStatsTags: false,
    },
  },
  {
    name: 'api-gateway',
    input: {
      ...gateway('api-gateway', 'public-api', { envoy_prometheus_bind_addr: '0.0.0.0:20200' }, { Namespace: 'edge' }),
      servers: { addresses: ['consul.example.com.'], tls: { caPem: '-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n' } },
    },
  },
];

describe('generateEnvoyBootstrap: whole documents against the golden files', () => {
  it('has a golden file for every shape and a shape for every golden file', () => {
    const names = SHAPES.map((s) => s.name);
    assert.equal(new Set(names).size, names.length, 'shape names must be unique');
    if (UPDATE) return;
    const files = readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
    assert.deepEqual(files.sort(), [...names].sort(), 'test/fixtures/envoy/ holds a golden file no shape renders, or lacks one');
  });

  for (const shape of SHAPES) {
    it(`renders ${shape.name} exactly as test/fixtures/envoy/${shape.name}.json`, () => {
      const warnings: string[] = [];
      const text = renderEnvoyBootstrap(generateEnvoyBootstrap({ ...shape.input, onWarning: (m) => warnings.push(m) }));
      assert.equal(warnings.length, (shape.warnings ?? []).length, `warnings: ${JSON.stringify(warnings)}`);
      (shape.warnings ?? []).forEach((w, i) => assert.match(warnings[i]!, w));

      const file = new URL(`${shape.name}.json`, FIXTURES);
      if (UPDATE) {
        mkdirSync(FIXTURES, { recursive: true });
        writeFileSync(file, text);
        return;
      }
      assert.ok(existsSync(file), `no golden file ${shape.name}.json: write it with UPDATE_GOLDEN=1 (see the top of this file)`);
      assert.equal(
        text,
        readFileSync(file, 'utf8'),
        `the generated bootstrap differs from test/fixtures/envoy/${shape.name}.json; if the change is meant, ` +
          'rewrite the golden files with UPDATE_GOLDEN=1 (see the top of this file) and review their diff',
      );
    });
  }
});
