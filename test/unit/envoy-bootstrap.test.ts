// The Envoy bootstrap generator, without Envoy: structure, proxy-config keys and
// input errors. test/integration/envoy-bootstrap.test.ts runs the result in Envoy.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  ConsulEcsError,
  generateEnvoyBootstrap,
  renderEnvoyBootstrap,
  type EnvoyBootstrap,
  type EnvoyBootstrapInput,
  type EnvoyCluster,
  type EnvoyListener,
} from '@consul-ecs-ts/core';
import { consulResourceTagSpecifiers } from '../../packages/core/src/envoy/stats-tags.ts';

const TOKEN = '6a1f4e2c-93b0-4d7e-8c55-2f0e9b1d7a34';

function sidecar(config: Record<string, unknown> = {}, extra: Partial<EnvoyBootstrapInput> = {}): EnvoyBootstrapInput {
  return {
    proxy: {
      Kind: 'connect-proxy',
      ID: 'web-abc123-sidecar-proxy',
      Service: 'web-sidecar-proxy',
      Proxy: { DestinationServiceName: 'web', Config: config },
    },
    nodeName: 'arn:aws:ecs:us-east-1:123456789012:cluster/prod',
    datacenter: 'dc1',
    servers: { addresses: ['10.0.1.10', '10.0.2.10'] },
    token: TOKEN,
    ...extra,
  };
}

const cluster = (b: EnvoyBootstrap, name: string) => b.static_resources.clusters.find((c) => c.name === name) as EnvoyCluster | undefined;
const listener = (b: EnvoyBootstrap, name: string) => b.static_resources.listeners?.find((l) => l.name === name) as EnvoyListener | undefined;
const clusterNames = (b: EnvoyBootstrap) => b.static_resources.clusters.map((c) => c.name);
const listenerNames = (b: EnvoyBootstrap) => (b.static_resources.listeners ?? []).map((l) => l.name);
const endpoints = (c: EnvoyCluster | undefined) => c?.load_assignment?.endpoints.flatMap((e) => e.lb_endpoints.map((l) => l.endpoint.address));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const tlsContext = (c: EnvoyCluster | undefined) => c?.transport_socket?.typed_config as any;
const fixedTags = (b: EnvoyBootstrap) =>
  Object.fromEntries(
    ((b.stats_config?.stats_tags ?? []) as Array<{ tag_name: string; fixed_value?: string }>)
      .filter((t) => t.fixed_value !== undefined)
      .map((t) => [t.tag_name, t.fixed_value]),
  );

function assertError(fn: () => unknown, code: string, message: RegExp): ConsulEcsError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConsulEcsError, `expected a ConsulEcsError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  assert.match(caught.message, message);
  assert.ok(!caught.message.includes(TOKEN), `the token leaked into: ${caught.message}`);
  return caught;
}

describe('generateEnvoyBootstrap: a sidecar with defaults', () => {
  const b = generateEnvoyBootstrap(sidecar());

  it('identifies the proxy as Consul expects: node id, cluster and metadata', () => {
    assert.deepEqual(b.node, {
      id: 'web-abc123-sidecar-proxy',
      cluster: 'web',
      metadata: { node_name: 'arn:aws:ecs:us-east-1:123456789012:cluster/prod', namespace: 'default', partition: 'default' },
    });
  });

  it('puts admin on 127.0.0.1:19000 with its access log to /dev/null', () => {
    assert.deepEqual(b.admin.address, { socket_address: { address: '127.0.0.1', port_value: 19000 } });
    assert.deepEqual(b.admin.access_log, [
      {
        name: 'envoy.access_loggers.file',
        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/dev/null' },
      },
    ]);
  });

  it('streams delta ADS to the servers over HTTP/2 with the token as x-consul-token', () => {
    assert.deepEqual(b.dynamic_resources, {
      lds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      cds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      ads_config: {
        api_type: 'DELTA_GRPC',
        transport_api_version: 'V3',
        grpc_services: { initial_metadata: [{ key: 'x-consul-token', value: TOKEN }], envoy_grpc: { cluster_name: 'local_agent' } },
      },
    });
    const ads = cluster(b, 'local_agent');
    assert.equal(ads?.type, 'STATIC');
    assert.equal(ads?.connect_timeout, '5s');
    assert.equal(ads?.transport_socket, undefined, 'plaintext by default');
    assert.deepEqual(endpoints(ads), [
      { socket_address: { address: '10.0.1.10', port_value: 8503 } },
      { socket_address: { address: '10.0.2.10', port_value: 8503 } },
    ]);
    assert.deepEqual(ads?.typed_extension_protocol_options, {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '30s' } } },
      },
    });
  });

  it('serves /ready from the admin API on 127.0.0.1:22000, and nothing else there', () => {
    assert.deepEqual(clusterNames(b), ['local_agent', 'self_admin']);
    assert.deepEqual(listenerNames(b), ['envoy_ready_listener']);
    assert.deepEqual(endpoints(cluster(b, 'self_admin')), [{ socket_address: { address: '127.0.0.1', port_value: 19000 } }]);
    const ready = listener(b, 'envoy_ready_listener')!;
    assert.deepEqual(ready.address, { socket_address: { address: '127.0.0.1', port_value: 22000 } });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const hcm = ready.filter_chains![0]!.filters[0]!.typed_config as any;
    assert.equal(hcm.stat_prefix, 'envoy_ready');
    assert.deepEqual(hcm.route_config.virtual_hosts[0].routes, [
      { match: { path: '/ready' }, route: { cluster: 'self_admin', prefix_rewrite: '/ready' } },
      { match: { prefix: '/' }, direct_response: { status: 404 } },
    ]);
  });

  it("tags stats as Consul does: resource regexes without the deprecated ones, then the proxy's own tags", () => {
    const names = (b.stats_config!.stats_tags as Array<{ tag_name: string }>).map((t) => t.tag_name);
    assert.ok(names.includes('consul.destination.service'));
    assert.ok(names.includes('consul.upstream.peer'));
    assert.ok(!names.includes('consul.service'), 'deprecated tags are omitted by default');
    assert.deepEqual(fixedTags(b), {
      local_cluster: 'web',
      'consul.source.service': 'web',
      'consul.source.namespace': 'default',
      'consul.source.partition': 'default',
      'consul.source.datacenter': 'dc1',
    });
    assert.equal(b.stats_config!.use_all_default_tags, true);
    assert.deepEqual(b.layered_runtime, { layers: [{ name: 'base', static_layer: { 're2.max_program_size.error_level': 1048576 } }] });
    assert.equal(b.stats_sinks, undefined);
    assert.equal(b.tracing, undefined);
  });

  it('renders as JSON with a trailing newline', () => {
    const text = renderEnvoyBootstrap(b);
    assert.ok(text.endsWith('}\n'));
    assert.deepEqual(JSON.parse(text), b);
  });
});

describe('generateEnvoyBootstrap: gateways, servers, TLS, options', () => {
  it('names a gateway by its own service and keeps namespace and partition', () => {
    for (const Kind of ['mesh-gateway', 'terminating-gateway', 'api-gateway']) {
      const b = generateEnvoyBootstrap({
        ...sidecar(),
        proxy: { Kind, ID: `gw-${Kind}-1`, Service: `gw-${Kind}`, Namespace: 'team', Partition: 'part1', Proxy: { Config: {} } },
      });
      assert.deepEqual(b.node, {
        id: `gw-${Kind}-1`,
        cluster: `gw-${Kind}`,
        metadata: { node_name: 'arn:aws:ecs:us-east-1:123456789012:cluster/prod', namespace: 'team', partition: 'part1' },
      });
      assert.equal(fixedTags(b)['consul.source.service'], `gw-${Kind}`);
      assert.equal(fixedTags(b)['consul.source.partition'], 'part1');
    }
  });

  it('resolves DNS names (STRICT_DNS, IPv4 first), dedupes addresses and strips IPv6 brackets', () => {
    const b = generateEnvoyBootstrap(sidecar({}, { servers: { addresses: ['consul.internal', '[fd00::1]', 'consul.internal'], grpcPort: 8502 } }));
    const ads = cluster(b, 'local_agent');
    assert.equal(ads?.type, 'STRICT_DNS');
    assert.equal(ads?.dns_lookup_family, 'V4_PREFERRED');
    assert.deepEqual(endpoints(ads), [
      { socket_address: { address: 'consul.internal', port_value: 8502 } },
      { socket_address: { address: 'fd00::1', port_value: 8502 } },
    ]);
  });

  it('verifies the servers with the CA and the TLS server name, with ALPN h2', () => {
    const b = generateEnvoyBootstrap(
      sidecar({}, { servers: { addresses: ['10.0.1.10'], tls: { caFile: '/consul/consul-grpc-ca-cert.pem', serverName: 'server.dc1.consul' } } }),
    );
    assert.equal(cluster(b, 'local_agent')?.transport_socket?.name, 'tls');
    assert.deepEqual(tlsContext(cluster(b, 'local_agent')), {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      sni: 'server.dc1.consul',
      common_tls_context: {
        alpn_protocols: ['h2'],
        validation_context: {
          trusted_ca: { filename: '/consul/consul-grpc-ca-cert.pem' },
          match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'server.dc1.consul' } }],
        },
      },
    });
  });

  it('without a TLS server name, checks the address itself: DNS name with SNI, IPs without', () => {
    const dns = tlsContext(
      cluster(generateEnvoyBootstrap(sidecar({}, { servers: { addresses: ['consul.example.com.'], tls: { caFile: '/ca.pem' } } })), 'local_agent'),
    );
    assert.equal(dns.sni, 'consul.example.com');
    assert.deepEqual(dns.common_tls_context.validation_context.match_typed_subject_alt_names, [{ san_type: 'DNS', matcher: { exact: 'consul.example.com' } }]);

    const ips = tlsContext(
      cluster(generateEnvoyBootstrap(sidecar({}, { servers: { addresses: ['10.0.1.10', '10.0.2.10'], tls: { caFile: '/ca.pem' } } })), 'local_agent'),
    );
    assert.equal(ips.sni, undefined);
    assert.deepEqual(ips.common_tls_context.validation_context.match_typed_subject_alt_names, [
      { san_type: 'IP_ADDRESS', matcher: { exact: '10.0.1.10' } },
      { san_type: 'IP_ADDRESS', matcher: { exact: '10.0.2.10' } },
    ]);

    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const off = tlsContext(
      cluster(generateEnvoyBootstrap(sidecar({}, { servers: { addresses: ['10.0.1.10'], tls: { caPem: pem, verifyServerName: false } } })), 'local_agent'),
    );
    assert.deepEqual(off.common_tls_context.validation_context, { trusted_ca: { inline_string: pem } });
  });

  it('leaves out the token metadata without a token, the ready listener when off, and takes other ports', () => {
    const b = generateEnvoyBootstrap(
      sidecar({}, { token: undefined, ready: false, admin: { address: 'localhost', port: 19100 }, adsClusterName: 'consul-dataplane' }),
    );
    assert.deepEqual(b.dynamic_resources.ads_config.grpc_services, { envoy_grpc: { cluster_name: 'consul-dataplane' } });
    assert.deepEqual(clusterNames(b), ['consul-dataplane']);
    assert.equal(b.static_resources.listeners, undefined);
    assert.deepEqual(b.admin.address, { socket_address: { address: '127.0.0.1', port_value: 19100 } });

    const r = generateEnvoyBootstrap(sidecar({}, { ready: { address: '0.0.0.0', port: 21000 } }));
    assert.deepEqual(listener(r, 'envoy_ready_listener')?.address, { socket_address: { address: '0.0.0.0', port_value: 21000 } });
  });

  it('keeps the deprecated consul.* stats tags on request', () => {
    const b = generateEnvoyBootstrap(sidecar({}, { omitDeprecatedStatsTags: false }));
    const names = (b.stats_config!.stats_tags as Array<{ tag_name: string }>).map((t) => t.tag_name);
    for (const n of [
      'consul.custom_hash',
      'consul.service_subset',
      'consul.service',
      'consul.namespace',
      'consul.datacenter',
      'consul.routing_type',
      'consul.trust_domain',
      'consul.target',
      'consul.full_target',
    ]) {
      assert.ok(names.includes(n), n);
    }
    assert.equal(consulResourceTagSpecifiers(false).length, consulResourceTagSpecifiers(true).length + 9);
  });

  it('extracts the right values with the resource tag regexes', () => {
    const tags = Object.fromEntries(consulResourceTagSpecifiers(true).map((t) => [t.tag_name, new RegExp((t as { regex: string }).regex)]));
    const value = (tag: string, stat: string) => tags[tag]!.exec(stat)?.[2];
    const c = 'cluster.f8f8f8f8~v2.pong.ns1.partA.dc2.internal-v1.e5b08d03-bfc3-c870-1833-baddb116e648.consul.bind_errors';
    assert.equal(value('consul.destination.custom_hash', c), 'f8f8f8f8');
    assert.equal(value('consul.destination.service_subset', c), 'v2');
    assert.equal(value('consul.destination.service', c), 'pong');
    assert.equal(value('consul.destination.namespace', c), 'ns1');
    assert.equal(value('consul.destination.partition', c), 'partA');
    assert.equal(value('consul.destination.datacenter', c), 'dc2');
    assert.equal(value('consul.destination.routing_type', c), 'internal-v1');
    assert.equal(value('consul.destination.trust_domain', c), 'e5b08d03-bfc3-c870-1833-baddb116e648');
    assert.equal(value('consul.destination.target', c), 'f8f8f8f8~v2.pong.ns1.partA.dc2');
    assert.equal(value('consul.destination.peer', 'cluster.pong.default.cloudpeer.external.e5b08d03.consul.x'), 'cloudpeer');
    assert.equal(value('consul.upstream.service', 'tcp.upstream.db.dc1.downstream_cx_total'), 'db');
    assert.equal(value('consul.upstream.datacenter', 'tcp.upstream.db.dc1.downstream_cx_total'), 'dc1');
    assert.equal(value('consul.upstream.peer', 'http.upstream_peered.web.frontend.cloudpeer.x'), 'cloudpeer');
  });
});

describe('generateEnvoyBootstrap: Proxy.Config keys', () => {
  it('adds statsd and dogstatsd sinks (udp, unix, $VAR, ${HOST_IP}) before the extra sinks', () => {
    const b = generateEnvoyBootstrap(
      sidecar(
        {
          envoy_statsd_url: 'udp://${HOST_IP}:8125',
          envoy_dogstatsd_url: '$DD_URL',
          envoy_extra_stats_sinks_json: '{"name":"a","typed_config":{"@type":"x"}}, {"name":"b","typed_config":{"@type":"y"}}',
        },
        { env: { HOST_IP: '10.1.2.3', DD_URL: 'unix:///var/run/datadog/dsd.socket' } },
      ),
    );
    assert.deepEqual(b.stats_sinks, [
      {
        name: 'envoy.stat_sinks.statsd',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink',
          address: { socket_address: { address: '10.1.2.3', port_value: 8125 } },
        },
      },
      {
        name: 'envoy.stat_sinks.dog_statsd',
        typed_config: { '@type': 'type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink', address: { pipe: { path: '/var/run/datadog/dsd.socket' } } },
      },
      { name: 'a', typed_config: { '@type': 'x' } },
      { name: 'b', typed_config: { '@type': 'y' } },
    ]);
  });

  it('adds envoy_stats_tags first, overriding the default tags of the same name', () => {
    const b = generateEnvoyBootstrap(sidecar({ envoy_stats_tags: ['Team=payments', 'canary', 'local_cluster=web-blue'] }));
    const tags = b.stats_config!.stats_tags as Array<Record<string, string>>;
    assert.deepEqual(tags.slice(0, 3), [
      { tag_name: 'team', fixed_value: 'payments' },
      { tag_name: 'canary', fixed_value: '1' },
      { tag_name: 'local_cluster', fixed_value: 'web-blue' },
    ]);
    assert.equal(tags.filter((t) => t.tag_name === 'local_cluster').length, 1);
    assert.deepEqual(fixedTags(generateEnvoyBootstrap(sidecar({ envoy_stats_tags: 'env=prod' }))).env, 'prod');
  });

  it('takes stats_config, flush interval and tracing as given', () => {
    const b = generateEnvoyBootstrap(
      sidecar({
        envoy_stats_config_json: '{"stats_tags":[{"tag_name":"x","fixed_value":"y"}]}',
        envoy_stats_flush_interval: '2.5s',
        envoy_tracing_json: '{"http":{"name":"envoy.tracers.zipkin"}}',
      }),
    );
    assert.deepEqual(b.stats_config, { stats_tags: [{ tag_name: 'x', fixed_value: 'y' }] });
    assert.equal(b.stats_flush_interval, '2.5s');
    assert.deepEqual(b.tracing, { http: { name: 'envoy.tracers.zipkin' } });
  });

  it('appends extra static clusters and listeners (comma-separated or an array), keeping a user self_admin', () => {
    const b = generateEnvoyBootstrap(
      sidecar({
        envoy_extra_static_clusters_json: '{"name":"zipkin","type":"STRICT_DNS"},{"name":"self_admin","type":"STATIC"}',
        envoy_extra_static_listeners_json: '[{"name":"mine"}]',
      }),
    );
    assert.deepEqual(clusterNames(b), ['local_agent', 'zipkin', 'self_admin']);
    assert.deepEqual(cluster(b, 'self_admin'), { name: 'self_admin', type: 'STATIC' });
    assert.deepEqual(listenerNames(b), ['mine', 'envoy_ready_listener']);
  });

  it('exposes /metrics and /stats from the admin API on the bind addresses given', () => {
    const b = generateEnvoyBootstrap(sidecar({ envoy_prometheus_bind_addr: '0.0.0.0:20200', envoy_stats_bind_addr: '[::]:20201' }));
    assert.deepEqual(listenerNames(b), ['envoy_prometheus_metrics_listener', 'envoy_metrics_listener', 'envoy_ready_listener']);
    assert.deepEqual(clusterNames(b), ['local_agent', 'self_admin']);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const routes = (name: string) => (listener(b, name)!.filter_chains![0]!.filters[0]!.typed_config as any).route_config.virtual_hosts[0].routes[0];
    assert.deepEqual(routes('envoy_prometheus_metrics_listener'), {
      match: { path: '/metrics' },
      route: { cluster: 'self_admin', prefix_rewrite: '/stats/prometheus' },
    });
    assert.deepEqual(routes('envoy_metrics_listener'), { match: { prefix: '/stats' }, route: { cluster: 'self_admin', prefix_rewrite: '/stats' } });
    assert.deepEqual(listener(b, 'envoy_metrics_listener')!.address, { socket_address: { address: '::', port_value: 20201 } });
  });

  it('points Prometheus at a merged-metrics backend and serves it over TLS when asked', () => {
    const b = generateEnvoyBootstrap(
      sidecar(
        { envoy_prometheus_bind_addr: '0.0.0.0:20200' },
        { prometheus: { scrapePath: '/scrape', backendPort: 20100, certFile: '/c.pem', keyFile: '/k.pem', caFile: '/ca.pem' } },
      ),
    );
    assert.deepEqual(clusterNames(b), ['local_agent', 'prometheus_backend', 'self_admin']);
    assert.deepEqual(endpoints(cluster(b, 'prometheus_backend')), [{ socket_address: { address: '127.0.0.1', port_value: 20100 } }]);
    const chain = listener(b, 'envoy_prometheus_metrics_listener')!.filter_chains![0]!;
    assert.equal(chain.transport_socket?.typed_config['@type'], 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext');
    assert.deepEqual(
      b.static_resources.secrets?.map((s) => s.name),
      ['prometheus_cert', 'prometheus_validation_context'],
    );
  });

  it('sends metrics to the telemetry collector socket named by the proxy', () => {
    const b = generateEnvoyBootstrap(sidecar({ envoy_telemetry_collector_bind_socket_dir: '/consul/telemetry/' }));
    const hash = createHash('sha1').update('default_web-abc123-sidecar-proxy').digest('base64url');
    assert.deepEqual(endpoints(cluster(b, 'consul_telemetry_collector_loopback')), [{ pipe: { path: `/consul/telemetry/${hash}.sock` } }]);
    assert.equal(b.stats_flush_interval, '60s');
    assert.deepEqual(
      b.stats_sinks?.map((s) => s.name),
      ['envoy.stat_sinks.metrics_service'],
    );
  });

  it('warns about envoy_bootstrap_json_tpl, and ignores all keys when told to', () => {
    const warnings: string[] = [];
    generateEnvoyBootstrap({ ...sidecar({ envoy_bootstrap_json_tpl: '{}' }), onWarning: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /envoy_bootstrap_json_tpl .* is not supported/);

    const b = generateEnvoyBootstrap(sidecar({ envoy_tracing_json: 'not json', envoy_statsd_url: 'udp://1.2.3.4:8125' }, { useProxyConfig: false }));
    assert.equal(b.tracing, undefined);
    assert.equal(b.stats_sinks, undefined);
  });

  it('writes admin access logs as proxy-defaults AccessLogs ask', () => {
    const withLogs = (AccessLogs: Record<string, unknown>) => {
      const input = sidecar();
      input.proxy.Proxy!.AccessLogs = AccessLogs;
      return generateEnvoyBootstrap(input).admin.access_log;
    };
    const stdout = withLogs({ Enabled: true });
    assert.equal(stdout[0]!.typed_config['@type'], 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog');
    assert.equal((stdout[0]!.typed_config.log_format as { json_format: Record<string, string> }).json_format.response_code, '%RESPONSE_CODE%');
    const file = withLogs({ Enabled: true, Type: 'file', Path: '/var/log/envoy.log', TextFormat: '[%START_TIME%] %RESPONSE_CODE%' });
    assert.deepEqual(file[0]!.typed_config, {
      '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
      path: '/var/log/envoy.log',
      log_format: { text_format_source: { inline_string: '[%START_TIME%] %RESPONSE_CODE%\n' } },
    });
    assert.equal(withLogs({ Enabled: false })[0]!.name, 'envoy.access_loggers.file');
  });
});

describe('generateEnvoyBootstrap: input errors', () => {
  const proxyWith = (p: Record<string, unknown>) => ({ ...sidecar(), proxy: { ...sidecar().proxy, ...p } }) as EnvoyBootstrapInput;
  const cases: Array<{ name: string; input: () => EnvoyBootstrapInput; code?: string; message: RegExp }> = [
    {
      name: 'an unknown kind',
      input: () => proxyWith({ Kind: 'ingress-gateway' }),
      message: /proxy web-abc123-sidecar-proxy has Kind "ingress-gateway"; .* one of: connect-proxy, mesh-gateway, terminating-gateway, api-gateway/,
    },
    { name: 'a plain service', input: () => proxyWith({ Kind: '' }), message: /has no Kind \(a plain service, not a proxy\)/ },
    { name: 'a sidecar without destination', input: () => proxyWith({ Proxy: {} }), message: /connect-proxy without Proxy\.DestinationServiceName/ },
    { name: 'no proxy ID', input: () => proxyWith({ ID: '' }), message: /proxy\.ID \(the proxy service ID\) must be a non-empty string/ },
    { name: 'no node name', input: () => ({ ...sidecar(), nodeName: '' }), message: /nodeName .* must be a non-empty string/ },
    {
      name: 'gRPC port 0',
      input: () => sidecar({}, { servers: { addresses: ['10.0.0.1'], grpcPort: 0 } }),
      message: /servers\.grpcPort must be a port number from 1 to 65535, got 0/,
    },
    { name: 'gRPC port 70000', input: () => sidecar({}, { servers: { addresses: ['10.0.0.1'], grpcPort: 70000 } }), message: /servers\.grpcPort .* got 70000/ },
    {
      name: 'a port given as text',
      input: () => sidecar({}, { admin: { port: '19000' as unknown as number } }),
      message: /admin\.port must be a port number .* got "19000"/,
    },
    { name: 'a fractional ready port', input: () => sidecar({}, { ready: { port: 22000.5 } }), message: /ready\.port must be a port number/ },
    { name: 'ready on the admin port', input: () => sidecar({}, { ready: { port: 19000 } }), message: /ready\.port 19000 is the admin port/ },
    {
      name: 'an admin DNS name',
      input: () => sidecar({}, { admin: { address: 'envoy.local' } }),
      message: /admin\.address must be an IP address \(Envoy binds it\)/,
    },
    { name: 'no servers', input: () => sidecar({}, { servers: { addresses: [] } }), message: /servers\.addresses must list at least one/ },
    {
      name: 'a server address with a port',
      input: () => sidecar({}, { servers: { addresses: ['10.0.0.1:8502'] } }),
      message: /"10\.0\.0\.1:8502" is neither an IP address nor a DNS name \(give the port as servers\.grpcPort/,
    },
    {
      name: 'TLS without a CA',
      input: () => sidecar({}, { servers: { addresses: ['10.0.0.1'], tls: {} } }),
      message: /TLS to the Consul servers is on but no CA is given/,
    },
    {
      name: 'a CA PEM without a certificate',
      input: () => sidecar({}, { servers: { addresses: ['10.0.0.1'], tls: { caPem: 'nope' } } }),
      message: /caPem holds no PEM certificate/,
    },
    { name: 'a token with a newline', input: () => sidecar({}, { token: `${TOKEN}\n` }), message: /the ACL token has whitespace .* trailing newline/ },
    {
      name: 'a non-object Proxy.Config',
      input: () => proxyWith({ Proxy: { DestinationServiceName: 'web', Config: [] } }),
      message: /Proxy\.Config must be an object/,
    },
    {
      name: 'prometheus TLS without a key',
      input: () => sidecar({ envoy_prometheus_bind_addr: '0.0.0.0:20200' }, { prometheus: { certFile: '/c.pem' } }),
      message: /needs prometheus\.certFile, prometheus\.keyFile and prometheus\.caFile together/,
    },
  ];
  for (const key of [
    'envoy_extra_static_clusters_json',
    'envoy_extra_static_listeners_json',
    'envoy_extra_stats_sinks_json',
    'envoy_stats_config_json',
    'envoy_tracing_json',
  ]) {
    cases.push({
      name: `malformed JSON in ${key}`,
      input: () => sidecar({ [key]: '{"name": "x",' }),
      code: 'envoy-bootstrap-proxy-config',
      message: new RegExp(`proxy web-abc123-sidecar-proxy: Proxy\\.Config key ${key} is not valid JSON \\(`),
    });
  }
  cases.push(
    {
      name: 'a JSON array as tracing',
      input: () => sidecar({ envoy_tracing_json: '[]' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_tracing_json must be a JSON object/,
    },
    {
      name: 'a number among extra clusters',
      input: () => sidecar({ envoy_extra_static_clusters_json: '{"name":"a"}, 3' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_extra_static_clusters_json must hold JSON objects, but item 2 is number/,
    },
    {
      name: 'an extra cluster without a name',
      input: () => sidecar({ envoy_extra_static_clusters_json: '{"type":"STATIC"}' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_extra_static_clusters_json has a cluster without a name/,
    },
    {
      name: 'an extra cluster named like the ADS cluster',
      input: () => sidecar({ envoy_extra_static_clusters_json: '{"name":"local_agent"}' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /static cluster "local_agent" is defined twice/,
    },
    {
      name: 'an extra listener named like the ready listener',
      input: () => sidecar({ envoy_extra_static_listeners_json: '{"name":"envoy_ready_listener"}' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /static listener "envoy_ready_listener" is defined twice/,
    },
    {
      name: 'an object as a string key',
      input: () => sidecar({ envoy_statsd_url: { url: 'x' } }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_statsd_url must be a string, got object/,
    },
    {
      name: 'a statsd URL with a name',
      input: () => sidecar({ envoy_statsd_url: 'udp://statsd.local:8125' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_statsd_url must be udp:\/\/<ip>:<port> with an IP address/,
    },
    {
      name: 'a statsd URL over tcp',
      input: () => sidecar({ envoy_dogstatsd_url: 'tcp://127.0.0.1:8125' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_dogstatsd_url uses the unsupported address protocol "tcp"/,
    },
    {
      name: 'a statsd URL from an unset variable',
      input: () => sidecar({ envoy_statsd_url: '$NOPE' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /names the environment variable NOPE, which is not set/,
    },
    {
      name: 'a prometheus bind address without port',
      input: () => sidecar({ envoy_prometheus_bind_addr: '0.0.0.0' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_prometheus_bind_addr must be <ip>:<port>/,
    },
    {
      name: 'a flush interval in minutes',
      input: () => sidecar({ envoy_stats_flush_interval: '1m' }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_stats_flush_interval is "1m"; Envoy wants a duration in seconds/,
    },
    {
      name: 'a stats tag without a name',
      input: () => sidecar({ envoy_stats_tags: ['=x'] }),
      code: 'envoy-bootstrap-proxy-config',
      message: /envoy_stats_tags has an entry without a tag name/,
    },
    {
      name: 'access logs to a file without a path',
      input: () => proxyWith({ Proxy: { DestinationServiceName: 'web', AccessLogs: { Enabled: true, Type: 'file' } } }),
      code: 'envoy-bootstrap-proxy-config',
      message: /AccessLogs\.Type is file but AccessLogs\.Path is empty/,
    },
  );

  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      assertError(() => generateEnvoyBootstrap(c.input()), c.code ?? 'envoy-bootstrap-invalid', c.message);
    });
  }

  it('never shows the token, not even a part that a JSON parser would quote', () => {
    for (const text of [`{"token": x${TOKEN}}`, `{"a": 1}, {"token": ${TOKEN}}`]) {
      const err = assertError(
        () => generateEnvoyBootstrap(sidecar({ envoy_tracing_json: text, envoy_extra_static_clusters_json: text })),
        'envoy-bootstrap-proxy-config',
        /is not valid JSON \((Unexpected token '.' in the JSON|.* at position \d+.*)\)/,
      );
      assert.ok(!err.message.includes(TOKEN.slice(0, 8)), err.message);
    }
  });
});
