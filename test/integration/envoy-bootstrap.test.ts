// The Envoy bootstrap against the real peers: Envoy 1.36 validates it, it is
// compared field by field with what `consul connect envoy -bootstrap` (Consul
// 1.22) generates for the same registration, and a real Envoy started with it
// gets its listeners and clusters over ADS straight from the Consul server's
// gRPC port, for a proxy registered in the catalog only (agentless).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import {
  ConsulHttpClient,
  generateEnvoyBootstrap,
  renderEnvoyBootstrap,
  type EnvoyBootstrap,
  type EnvoyBootstrapInput,
  type EnvoyProxyService,
} from '@consul-ecs-ts/core';
import { ConsulServer, freePort, peerBinary } from '../../scripts/lib/local-stack.ts';
import { eventually as waitFor } from '../helpers/mesh-task.ts';

// ---------------------------------------------------------------------------
// Helpers

interface NodeServices {
  Node: { Node: string; Datacenter: string };
  Services: EnvoyProxyService[];
}

/** Reads a service back from the catalog as consul-dataplane's bootstrap does: with proxy-defaults merged in. */
async function catalogService(api: Api, node: string, id: string): Promise<{ svc: EnvoyProxyService; datacenter: string }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const list = await api<NodeServices | null>('GET', `/v1/catalog/node-services/${encodeURIComponent(node)}?merge-central-config`);
    const svc = list?.Services.find((s) => s.ID === id);
    if (svc) return { svc, datacenter: list!.Node.Datacenter };
    // Agent registrations reach the catalog by anti-entropy, a moment later.
    if (Date.now() > deadline) throw new Error(`service ${id} did not show up in the catalog of node ${node}`);
    await sleep(100);
  }
}

type Api = <T = unknown>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown) => Promise<T>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: await res.text() };
}

/** A CA and a server certificate made by `consul tls` (SANs: server.dc1.consul, localhost, 127.0.0.1). */
async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  await execa(peerBinary('consul'), ['tls', 'ca', 'create'], { cwd: dir, timeout: 30_000 });
  await execa(peerBinary('consul'), ['tls', 'cert', 'create', '-server', '-dc', 'dc1'], { cwd: dir, timeout: 30_000 });
  return { ca: join(dir, 'consul-agent-ca.pem'), cert: join(dir, 'dc1-server-consul-0.pem'), key: join(dir, 'dc1-server-consul-0-key.pem') };
}

async function envoyValidate(file: string): Promise<void> {
  const r = await execa(peerBinary('envoy'), ['--mode', 'validate', '-c', file, '-l', 'warn'], { reject: false, timeout: 60_000, all: true });
  assert.equal(r.exitCode, 0, `envoy --mode validate refused ${file}:\n${r.all}`);
  assert.match(r.all ?? '', /configuration '.*' OK/);
}

/** A real Envoy started with a bootstrap, its admin API on a free port; stop() ends it. */
class RunningEnvoy {
  private constructor(
    readonly proc: ResultPromise,
    readonly adminUrl: string,
    readonly readyUrl: string,
    readonly logFile: string,
  ) {}

  static async start(dir: string, name: string, bootstrap: EnvoyBootstrap): Promise<RunningEnvoy> {
    const file = join(dir, `${name}.json`);
    await writeFile(file, renderEnvoyBootstrap(bootstrap), { mode: 0o600 });
    const logFile = join(dir, `${name}.log`);
    // --disable-hot-restart: no shared memory, so several Envoys run side by side
    // and nothing is left in /dev/shm when one is killed.
    const proc = execa(peerBinary('envoy'), ['-c', file, '--disable-hot-restart', '-l', 'info', '--log-path', logFile], {
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'ignore',
      reject: false,
      cleanup: true,
      timeout: 120_000,
    });
    const admin = bootstrap.admin.address.socket_address;
    const ready = bootstrap.static_resources.listeners?.find((l) => l.name === 'envoy_ready_listener')?.address as
      { socket_address: { address: string; port_value: number } } | undefined;
    return new RunningEnvoy(
      proc,
      `http://${admin.address}:${admin.port_value}`,
      ready ? `http://${ready.socket_address.address}:${ready.socket_address.port_value}/ready` : '',
      logFile,
    );
  }

  /** GET /ready on the ready listener: its status, or 0 when nothing answers (Envoy opens its listeners once initialized). */
  async readyStatus(): Promise<number> {
    try {
      return (await httpGet(this.readyUrl)).status;
    } catch {
      return 0;
    }
  }

  async admin(path: string, status = 200): Promise<string> {
    const r = await httpGet(`${this.adminUrl}${path}`);
    assert.equal(r.status, status, `admin ${path}: HTTP ${r.status}`);
    return r.body;
  }

  async stat(name: string): Promise<number> {
    const body = await this.admin(`/stats?filter=${encodeURIComponent(`^${name.replace(/\./g, '\\.')}$`)}`);
    const m = new RegExp(`^${name.replace(/\./g, '\\.')}: (\\d+)$`, 'm').exec(body);
    return m ? Number(m[1]) : NaN;
  }

  async log(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.proc;
    clearTimeout(timer);
  }
}

/** Waits until Envoy answers 200 on /ready; on timeout, says what Envoy logged. */
async function waitReady(envoy: RunningEnvoy, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  try {
    await waitFor(`Envoy ready at ${envoy.readyUrl}`, timeoutMs, async () => ((await envoy.readyStatus()) === 200 ? true : undefined));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- envoy log ---\n${(await envoy.log()).slice(-4000)}`, { cause: err });
  }
  return Date.now() - started;
}

/**
 * A Consul dev server whose gRPC port serves TLS only (the local stack's
 * ConsulServer has plaintext gRPC), with ACLs on as in production.
 */
class TlsConsulServer {
  readonly managementToken = randomUUID();
  readonly ports = { http: 0, grpc_tls: 0, serf_lan: 0, serf_wan: 0, server: 0 };
  #proc: ResultPromise | undefined;

  private constructor(readonly dir: string) {}

  static async start(dir: string, certs: { ca: string; cert: string; key: string }): Promise<TlsConsulServer> {
    const s = new TlsConsulServer(dir);
    for (const k of Object.keys(s.ports) as Array<keyof TlsConsulServer['ports']>) s.ports[k] = await freePort();
    const config = {
      node_name: 'tls-peer',
      datacenter: 'dc1',
      bind_addr: '127.0.0.1',
      client_addr: '127.0.0.1',
      advertise_addr: '127.0.0.1',
      ports: { ...s.ports, https: -1, grpc: -1, dns: -1 },
      connect: { enabled: true },
      performance: { raft_multiplier: 1 },
      acl: { enabled: true, default_policy: 'deny', tokens: { initial_management: s.managementToken, agent: s.managementToken } },
      tls: { defaults: { ca_file: certs.ca, cert_file: certs.cert, key_file: certs.key } },
    };
    const configFile = join(dir, 'consul-tls.json');
    await writeFile(configFile, JSON.stringify(config));
    const log = { file: join(dir, 'consul-tls.log'), append: true };
    s.#proc = execa(peerBinary('consul'), ['agent', '-dev', `-config-file=${configFile}`], {
      stdin: 'ignore',
      stdout: log,
      stderr: log,
      reject: false,
      cleanup: true,
    });
    const client = new ConsulHttpClient({ address: `127.0.0.1:${s.ports.http}`, retryDeadlineMs: 0, timeoutMs: 2000 });
    await waitFor('TLS Consul server', 60_000, async () => {
      if (s.#proc?.exitCode !== null) throw new Error(`consul exited: ${await readFile(log.file, 'utf8')}`);
      if (!(await client.call<string>({ path: '/v1/status/leader' }))) return undefined;
      await client.call({ path: '/v1/acl/token/self', token: s.managementToken });
      return true;
    });
    return s;
  }

  api: Api = (method, path, body) =>
    new ConsulHttpClient({ address: `127.0.0.1:${this.ports.http}`, retryDeadlineMs: 5000 }).call({ method, path, body, token: this.managementToken });

  async dispose(): Promise<void> {
    if (this.#proc && this.#proc.exitCode === null) {
      this.#proc.kill('SIGTERM');
      const timer = setTimeout(() => this.#proc?.kill('SIGKILL'), 10_000);
      await this.#proc;
      clearTimeout(timer);
    }
  }
}

// ---------------------------------------------------------------------------
// Structural comparison with `consul connect envoy -bootstrap`

/** Proto JSON accepts camelCase and snake_case field names; Consul's template mixes them. */
function snakeKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(snakeKeys);
  if (!v || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    // Only proto field names: leave '@type', extension names and runtime keys with dots alone.
    const key = /^[a-z][a-zA-Z0-9]*$/.test(k) ? k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : k;
    out[key] = snakeKeys(x);
  }
  return out;
}

interface Difference {
  path: string;
  ours: unknown;
  consul: unknown;
}

/** Leaf-level differences; lists of uniquely named objects (clusters, listeners, sinks) are matched by name. */
function diff(ours: unknown, consul: unknown, path = ''): Difference[] {
  const isObj = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);
  if (Array.isArray(ours) && Array.isArray(consul)) {
    const names = (a: unknown[]) => a.map((x) => (isObj(x) && typeof x.name === 'string' ? x.name : undefined));
    const [on, cn] = [names(ours), names(consul)];
    const unique = (n: Array<string | undefined>) => n.every((x) => x !== undefined) && new Set(n).size === n.length;
    if (ours.length + consul.length > 0 && unique(on) && unique(cn)) {
      const keys = [...new Set([...on, ...cn])] as string[];
      return keys.flatMap((k) => diff(ours[on.indexOf(k)], consul[cn.indexOf(k)], `${path}[${k}]`));
    }
    const n = Math.max(ours.length, consul.length);
    return Array.from({ length: n }, (_, i) => diff(ours[i], consul[i], `${path}[${i}]`)).flat();
  }
  if (isObj(ours) && isObj(consul)) {
    const keys = [...new Set([...Object.keys(ours), ...Object.keys(consul)])];
    return keys.flatMap((k) => diff(ours[k], consul[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(ours) === JSON.stringify(consul) ? [] : [{ path, ours, consul }];
}

interface ExpectedDifference {
  path: RegExp;
  reason: string;
}

/** Differences that hold for every proxy: each is a decision, with its reason. */
const EXPECTED_DIFFERENCES: ExpectedDifference[] = [
  {
    path: /^static_resources\.clusters\[(local_agent|self_admin)\]\.ignore_health_on_host_removal$/,
    reason: 'Consul sets it (to its default, false) only so that old Envoys detect a v3 bootstrap; we leave the default implicit',
  },
  {
    path: /^static_resources\.clusters\[local_agent\]\.connect_timeout$/,
    reason: 'ours connects to remote Consul servers, not to a local agent on loopback: 5s instead of 1s',
  },
  {
    path: /^static_resources\.clusters\[local_agent\]\.typed_extension_protocol_options\.envoy\.extensions\.upstreams\.http\.v3\.HttpProtocolOptions\.explicit_http_config\.http2_protocol_options\.connection_keepalive$/,
    reason:
      "HTTP/2 keepalive (30s/30s, as consul-dataplane's gRPC client) keeps the long ADS stream alive through NAT and load balancers (an NLB drops idle flows after 350s); Consul servers accept pings every 15s or slower",
  },
];

/** Further differences when gRPC TLS is on. */
const EXPECTED_TLS_DIFFERENCES: ExpectedDifference[] = [
  {
    path: /^static_resources\.clusters\[local_agent\]\.transport_socket\.typed_config\.common_tls_context\.validation_context\.trusted_ca\.(filename|inline_string)$/,
    reason:
      'Envoy reads the CA file (the consul-grpc-ca-cert.pem that mesh-init writes) instead of the CA being inlined, so the bootstrap stays small and follows the file',
  },
  {
    path: /^static_resources\.clusters\[local_agent\]\.transport_socket\.typed_config\.sni$/,
    reason: 'the TLS server name is sent as SNI (consul-ecs tlsServerName): servers behind a name or a load balancer may need it',
  },
  {
    path: /^static_resources\.clusters\[local_agent\]\.transport_socket\.typed_config\.common_tls_context\.validation_context\.match_typed_subject_alt_names(\[\d+\]\..*)?$/,
    reason:
      "the servers' certificate is checked against the TLS server name, as consul-dataplane's Go TLS client does; Consul's template checks only the chain (fine for a loopback agent, not for remote servers)",
  },
  {
    path: /^static_resources\.clusters\[local_agent\]\.transport_socket\.typed_config\.common_tls_context\.alpn_protocols(\[\d+\])?$/,
    reason: 'ALPN h2 is offered explicitly, since grpc-go servers can be set to refuse TLS clients without it',
  },
];

function assertSameStructure(ours: EnvoyBootstrap, consulJson: unknown, expected: ExpectedDifference[]): void {
  const differences = diff(snakeKeys(ours), snakeKeys(consulJson));
  const unexpected = differences.filter((d) => !expected.some((e) => e.path.test(d.path)));
  assert.deepEqual(
    unexpected,
    [],
    `differences from consul connect envoy -bootstrap that no expectedDifferences entry names:\n${JSON.stringify(unexpected, null, 2)}`,
  );
  const unused = expected.filter((e) => !differences.some((d) => e.path.test(d.path)));
  assert.deepEqual(
    unused.map((e) => e.path.source),
    [],
    'expected differences that did not occur (the table is out of date)',
  );
}

// ---------------------------------------------------------------------------
// The proxies used below

const SIDECAR_CONFIG = {
  envoy_prometheus_bind_addr: '0.0.0.0:20200',
  envoy_stats_bind_addr: '0.0.0.0:20201',
  envoy_statsd_url: 'udp://127.0.0.1:8125',
  envoy_dogstatsd_url: 'unix:///var/run/datadog/dsd.socket',
  envoy_stats_tags: ['team=payments', 'canary'],
  envoy_stats_flush_interval: '5s',
  envoy_telemetry_collector_bind_socket_dir: '/tmp/consul-telemetry',
  envoy_extra_static_clusters_json: JSON.stringify({
    name: 'zipkin',
    type: 'STRICT_DNS',
    connect_timeout: '5s',
    load_assignment: {
      cluster_name: 'zipkin',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'zipkin.example', port_value: 9411 } } } }] }],
    },
  }),
  envoy_extra_static_listeners_json: JSON.stringify({
    name: 'zipkin_forward',
    address: { socket_address: { address: '127.0.0.1', port_value: 9412 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.tcp_proxy',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
              stat_prefix: 'zipkin_forward',
              cluster: 'zipkin',
            },
          },
        ],
      },
    ],
  }),
  envoy_extra_stats_sinks_json: JSON.stringify({
    name: 'extra.statsd',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.config.metrics.v3.StatsdSink',
      address: { socket_address: { address: '127.0.0.1', port_value: 9125 } },
      prefix: 'extra',
    },
  }),
  envoy_tracing_json: JSON.stringify({
    http: {
      name: 'envoy.tracers.zipkin',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig',
        collector_cluster: 'zipkin',
        collector_endpoint: '/api/v2/spans',
        collector_endpoint_version: 'HTTP_JSON',
      },
    },
  }),
};

const GATEWAY_CONFIG = { envoy_dogstatsd_url: 'udp://127.0.0.1:8125', envoy_stats_tags: ['role=edge'] };

/** Registers `web` with a sidecar (upstream `db`) and a mesh gateway with the dev agent, and proxy-defaults with access logs. */
async function registerWithAgent(consul: ConsulServer): Promise<void> {
  await consul.api('PUT', '/v1/config', { Kind: 'proxy-defaults', Name: 'global', AccessLogs: { Enabled: true } });
  await consul.api('PUT', '/v1/agent/service/register', {
    Name: 'web',
    ID: 'web-1',
    Port: 8080,
    Connect: {
      SidecarService: {
        Port: 21000,
        Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191 }], Config: SIDECAR_CONFIG },
      },
    },
  });
  await consul.api('PUT', '/v1/agent/service/register', {
    Kind: 'mesh-gateway',
    Name: 'mesh-gw',
    ID: 'mesh-gw-1',
    Port: 8443,
    Proxy: { Config: GATEWAY_CONFIG },
  });
}

// ---------------------------------------------------------------------------

describe('Envoy bootstrap against the real Envoy and Consul', () => {
  let dir: string;
  let consul: ConsulServer | undefined;
  let tlsConsul: TlsConsulServer | undefined;
  const envoys: RunningEnvoy[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'envoy-bootstrap-'));
  });
  afterEach(async () => {
    await Promise.all(envoys.splice(0).map((e) => e.stop()));
    await consul?.dispose();
    await tlsConsul?.dispose();
    consul = tlsConsul = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('Envoy validates the bootstrap of a sidecar (with every envoy_* key) and of a mesh gateway, TLS on and off', async () => {
    consul = await ConsulServer.start();
    await registerWithAgent(consul);
    const certs = await makeCerts(dir);
    const { svc: sidecar, datacenter } = await catalogService(consul.api.bind(consul), 'consul-peer', 'web-1-sidecar-proxy');
    const { svc: gateway } = await catalogService(consul.api.bind(consul), 'consul-peer', 'mesh-gw-1');
    assert.deepEqual(sidecar.Proxy?.AccessLogs?.Enabled, true, 'proxy-defaults are merged into the registration read back');

    const files: string[] = [];
    for (const [name, proxy] of [
      ['sidecar', sidecar],
      ['gateway', gateway],
    ] as const) {
      for (const tls of [false, true]) {
        const b = generateEnvoyBootstrap({
          proxy,
          nodeName: 'consul-peer',
          datacenter,
          servers: {
            addresses: tls ? ['localhost', '127.0.0.1'] : ['127.0.0.1'],
            grpcPort: consul.ports.grpc,
            ...(tls ? { tls: { caFile: certs.ca, serverName: 'server.dc1.consul' } } : {}),
          },
          token: consul.managementToken,
          ...(tls ? { prometheus: { certFile: certs.cert, keyFile: certs.key, caFile: certs.ca } } : {}),
        });
        const file = join(dir, `${name}-${tls ? 'tls' : 'plain'}.json`);
        await writeFile(file, renderEnvoyBootstrap(b));
        files.push(file);
      }
    }
    await Promise.all(files.map(envoyValidate));
  });

  it('matches `consul connect envoy -bootstrap` for the same sidecar and mesh gateway, but for named differences', async () => {
    consul = await ConsulServer.start();
    await registerWithAgent(consul);
    const certs = await makeCerts(dir);
    const api = consul.api.bind(consul);
    const grpcPort = consul.ports.grpc;

    const consulBootstrap = async (args: string[]): Promise<unknown> => {
      const r = await execa(
        peerBinary('consul'),
        [
          'connect',
          'envoy',
          '-bootstrap',
          '-node-name',
          'consul-peer',
          '-token',
          consul!.managementToken,
          '-http-addr',
          consul!.httpAddr,
          '-admin-bind',
          '127.0.0.1:19000',
          '-envoy-ready-bind-address',
          '127.0.0.1',
          '-envoy-ready-bind-port',
          '22000',
          ...args,
        ],
        { reject: false, timeout: 60_000 },
      );
      assert.equal(r.exitCode, 0, `consul connect envoy failed: ${r.stderr}`);
      return JSON.parse(r.stdout);
    };
    const ours = async (id: string, extra: Partial<EnvoyBootstrapInput>) => {
      const { svc, datacenter } = await catalogService(api, 'consul-peer', id);
      return generateEnvoyBootstrap({
        proxy: svc,
        nodeName: 'consul-peer',
        datacenter,
        servers: { addresses: ['127.0.0.1'], grpcPort },
        token: consul!.managementToken,
        ...extra,
      });
    };

    // The sidecar, plaintext; current stats tags only (as consul-dataplane).
    const sidecarPlain = await ours('web-1-sidecar-proxy', {});
    assertSameStructure(
      sidecarPlain,
      await consulBootstrap(['-proxy-id', 'web-1-sidecar-proxy', '-grpc-addr', `127.0.0.1:${grpcPort}`, '-omit-deprecated-tags']),
      EXPECTED_DIFFERENCES,
    );

    // The sidecar over TLS.
    assertSameStructure(
      await ours('web-1-sidecar-proxy', { servers: { addresses: ['127.0.0.1'], grpcPort, tls: { caFile: certs.ca, serverName: 'server.dc1.consul' } } }),
      await consulBootstrap([
        '-proxy-id',
        'web-1-sidecar-proxy',
        '-grpc-addr',
        `https://127.0.0.1:${grpcPort}`,
        '-grpc-ca-file',
        certs.ca,
        '-omit-deprecated-tags',
      ]),
      [...EXPECTED_DIFFERENCES, ...EXPECTED_TLS_DIFFERENCES],
    );

    // The mesh gateway, with the deprecated stats tags Consul keeps by default.
    // `-gateway mesh -service mesh-gw` makes Consul name node.cluster after the
    // gateway (with -proxy-id alone it would use the proxy ID); -register=false
    // because it is registered already.
    assertSameStructure(
      await ours('mesh-gw-1', { omitDeprecatedStatsTags: false }),
      await consulBootstrap(['-proxy-id', 'mesh-gw-1', '-gateway', 'mesh', '-service', 'mesh-gw', '-register=false', '-grpc-addr', `127.0.0.1:${grpcPort}`]),
      EXPECTED_DIFFERENCES,
    );

    // Spot checks that the comparison saw the interesting parts at all.
    assert.deepEqual(sidecarPlain.node.cluster, 'web');
    assert.deepEqual(
      sidecarPlain.static_resources.listeners?.map((l) => l.name),
      ['zipkin_forward', 'envoy_prometheus_metrics_listener', 'envoy_metrics_listener', 'envoy_ready_listener'],
    );
    assert.equal(sidecarPlain.admin.access_log[0]?.name, 'Consul Listener Filter Log');
  });

  it('a catalog-only (agentless) sidecar gets its listeners and clusters over ADS from the server, and turns ready', async () => {
    consul = await ConsulServer.start();
    const api = consul.api.bind(consul);
    // As consul-ecs registers a task: a synthetic node named by the cluster ARN, no agent.
    const node = 'arn:aws:ecs:us-east-1:123456789012:cluster/test';
    const [publicPort, dbPort, adminPort, readyPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    await api('PUT', '/v1/catalog/register', {
      Node: node,
      Address: '127.0.0.1',
      NodeMeta: { 'synthetic-node': 'true' },
      Service: { ID: 'web-1', Service: 'web', Port: 8080, Address: '127.0.0.1' },
    });
    await api('PUT', '/v1/catalog/register', {
      Node: node,
      Address: '127.0.0.1',
      SkipNodeUpdate: true,
      Service: {
        Kind: 'connect-proxy',
        ID: 'web-1-sidecar-proxy',
        Service: 'web-sidecar-proxy',
        Port: publicPort,
        Address: '127.0.0.1',
        Proxy: {
          DestinationServiceName: 'web',
          DestinationServiceID: 'web-1',
          LocalServicePort: 8080,
          LocalServiceAddress: '127.0.0.1',
          Upstreams: [{ DestinationName: 'db', LocalBindPort: dbPort }],
        },
      },
    });
    // The token a task gets from the auth method's binding rule: a service identity.
    const token = await api<{ SecretID: string }>('PUT', '/v1/acl/token', { ServiceIdentities: [{ ServiceName: 'web' }] });
    const { svc, datacenter } = await catalogService(api, node, 'web-1-sidecar-proxy');

    const envoy = await RunningEnvoy.start(
      dir,
      'sidecar',
      generateEnvoyBootstrap({
        proxy: svc,
        nodeName: node,
        datacenter,
        servers: { addresses: ['127.0.0.1'], grpcPort: consul.ports.grpc },
        token: token.SecretID,
        admin: { port: adminPort },
        ready: { port: readyPort },
      }),
    );
    envoys.push(envoy);
    const ms = await waitReady(envoy);

    const listeners = (JSON.parse(await envoy.admin('/listeners?format=json')) as { listener_statuses: Array<{ name: string }> }).listener_statuses.map(
      (l) => l.name,
    );
    assert.ok(listeners.includes(`public_listener:127.0.0.1:${publicPort}`), `listeners: ${listeners.join(', ')}`);
    assert.ok(listeners.includes(`db:127.0.0.1:${dbPort}`), `listeners: ${listeners.join(', ')}`);
    const clusters = (JSON.parse(await envoy.admin('/clusters?format=json')) as { cluster_statuses: Array<{ name: string; added_via_api?: boolean }> })
      .cluster_statuses;
    assert.ok(
      clusters.some((c) => c.name === 'local_app' && c.added_via_api),
      'local_app came over CDS',
    );
    assert.ok(
      clusters.some((c) => /^db\.default\.dc1\.internal\.[0-9a-f-]+\.consul$/.test(c.name) && c.added_via_api),
      'the upstream came over CDS',
    );
    assert.equal(await envoy.stat('control_plane.connected_state'), 1);
    assert.ok((await envoy.stat('cluster_manager.cds.update_success')) >= 1);
    assert.ok((await envoy.stat('listener_manager.lds.update_success')) >= 1);
    // Consul's public listener is open: the mesh can reach the task.
    const pub = await waitFor('public listener accepting', 5000, async () => {
      const r = await execa(
        process.execPath,
        ['-e', `require('net').connect(${publicPort},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(2))`],
        { reject: false, timeout: 5000 },
      );
      return r.exitCode === 0 ? true : undefined;
    });
    assert.equal(pub, true);
    // The ready listener answers nothing but /ready.
    assert.equal((await httpGet(envoy.readyUrl.replace(/\/ready$/, '/stats'))).status, 404);
    assert.ok(ms < 30_000);
  });

  it("agentless ADS needs the proxy's node_name and a token with service:write on the service: without either, Consul sends nothing", async () => {
    consul = await ConsulServer.start();
    const api = consul.api.bind(consul);
    const node = 'ecs-node';
    // Three sidecars of web, one per Envoy. Consul's xDS session limiter lets
    // each server hold ceil(1.1 × catalog proxies / servers) streams and answers
    // RESOURCE_EXHAUSTED ("try another server") beyond that: three Envoys need
    // three registered proxies.
    const ids = ['web-1-sidecar-proxy', 'web-2-sidecar-proxy', 'web-3-sidecar-proxy'];
    for (const id of ids) {
      await api('PUT', '/v1/catalog/register', {
        Node: node,
        Address: '127.0.0.1',
        Service: {
          Kind: 'connect-proxy',
          ID: id,
          Service: 'web-sidecar-proxy',
          Port: await freePort(),
          Address: '127.0.0.1',
          Proxy: { DestinationServiceName: 'web', LocalServicePort: 8080 },
        },
      });
    }
    const webToken = await api<{ SecretID: string }>('PUT', '/v1/acl/token', { ServiceIdentities: [{ ServiceName: 'web' }] });
    const otherToken = await api<{ SecretID: string }>('PUT', '/v1/acl/token', { ServiceIdentities: [{ ServiceName: 'other' }] });
    const bootstrap = async (id: string, token: string) => {
      const { svc, datacenter } = await catalogService(api, node, id);
      return generateEnvoyBootstrap({
        proxy: svc,
        nodeName: node,
        datacenter,
        servers: { addresses: ['127.0.0.1'], grpcPort: consul!.ports.grpc },
        token,
        admin: { port: await freePort() },
        ready: { port: await freePort() },
      });
    };

    // Without node_name, Consul's xDS server looks for the proxy on its own node.
    const noNodeName = await bootstrap(ids[0]!, webToken.SecretID);
    delete (noNodeName.node.metadata as Partial<typeof noNodeName.node.metadata>).node_name;
    // A service identity for another service: no service:write on web.
    const wrongToken = await bootstrap(ids[1]!, otherToken.SecretID);
    const good = await bootstrap(ids[2]!, webToken.SecretID);

    const [a, b, c] = await Promise.all([
      RunningEnvoy.start(dir, 'no-node-name', noNodeName),
      RunningEnvoy.start(dir, 'wrong-token', wrongToken),
      RunningEnvoy.start(dir, 'good', good),
    ]);
    envoys.push(a, b, c);
    await waitReady(c);
    // Give the other two as long again, and more: still nothing.
    await sleep(3000);
    for (const e of [a, b]) {
      assert.equal(await e.readyStatus(), 0, 'Envoy never initializes, so its ready listener never opens');
      assert.match(await e.admin('/ready', 503), /INITIALIZING/);
      assert.equal(await e.stat('listener_manager.lds.update_success'), 0);
      assert.equal(await e.stat('cluster_manager.cds.update_success'), 0);
    }
    // Without node_name the stream stays up: Consul waits for a proxy that is not on its node.
    assert.equal(await a.stat('control_plane.connected_state'), 1);
    // Without service:write Consul cannot build the proxy's config (its leaf
    // certificate needs it) and refuses the stream once it tries.
    const consulLog = await readFile(consul.logFile, 'utf8');
    assert.match(consulLog, /proxy=web-2-sidecar-proxy .*Permission denied: token with AccessorID '[^']+' lacks permission 'service:write' on \\"web\\"/);
  });

  it('over TLS, Envoy checks the server certificate against the DNS name and gets a mesh gateway its config', async () => {
    const certs = await makeCerts(dir);
    tlsConsul = await TlsConsulServer.start(dir, certs);
    const api = tlsConsul.api;
    const node = 'ecs-node';
    await api('PUT', '/v1/catalog/register', {
      Node: node,
      Address: '127.0.0.1',
      Service: { Kind: 'mesh-gateway', ID: 'mesh-gw-1', Service: 'mesh-gw', Port: await freePort(), Address: '127.0.0.1' },
    });
    // The rights consul-ecs's mesh gateway role grants.
    await api('PUT', '/v1/acl/policy', {
      Name: 'mesh-gw',
      Rules:
        'service "mesh-gw" { policy = "write" }\nservice_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\nagent_prefix "" { policy = "read" }\npeering = "read"',
    });
    const token = await api<{ SecretID: string }>('PUT', '/v1/acl/token', { Policies: [{ Name: 'mesh-gw' }] });
    const { svc, datacenter } = await catalogService(api, node, 'mesh-gw-1');
    const bootstrap = async (serverName?: string) =>
      generateEnvoyBootstrap({
        proxy: svc,
        nodeName: node,
        datacenter,
        // A DNS name: a STRICT_DNS cluster, SNI and SAN check on "localhost".
        servers: { addresses: ['localhost'], grpcPort: tlsConsul!.ports.grpc_tls, tls: { caFile: certs.ca, ...(serverName ? { serverName } : {}) } },
        token: token.SecretID,
        admin: { port: await freePort() },
        ready: { port: await freePort() },
      });

    const [byName, byServerName, wrongName] = await Promise.all([
      RunningEnvoy.start(dir, 'tls-localhost', await bootstrap()),
      RunningEnvoy.start(dir, 'tls-server-name', await bootstrap('server.dc1.consul')),
      RunningEnvoy.start(dir, 'tls-wrong-name', await bootstrap('consul.example.com')),
    ]);
    envoys.push(byName, byServerName, wrongName);
    for (const e of [byName, byServerName]) {
      await waitReady(e);
      assert.ok((await e.stat('cluster.local_agent.ssl.handshake')) >= 1);
      const listeners = (JSON.parse(await e.admin('/listeners?format=json')) as { listener_statuses: Array<{ name: string }> }).listener_statuses;
      assert.ok(
        listeners.some((l) => l.name.startsWith('default:')),
        "the mesh gateway's listener came over LDS",
      );
    }
    await waitFor('a refused certificate', 10_000, async () => ((await wrongName.stat('cluster.local_agent.ssl.fail_verify_san')) >= 1 ? true : undefined));
    assert.equal(await wrongName.readyStatus(), 0);
    assert.equal(await wrongName.stat('cluster.local_agent.ssl.handshake'), 0);
  });
});
