// FailoverConsulClient, and mesh-init through it: each attempt of a call goes to
// the Consul server in use, and a server that fails (no connection, HTTP 5xx)
// makes the next attempts go to the next one. The servers are small HTTP
// servers on loopback addresses of their own, and for mesh-init two front
// servers of one ConsulStandIn (one Consul cluster, two of its servers).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConsulApiError, ConsulHttpClient, createLogger, meshInit, validateConfig } from '@consul-ecs-ts/core';
import { AwsIamStandIn, ConsulStandIn, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { FailoverConsulClient } from '../../packages/core/src/consul/failover-client.ts';

const SERVICE_NAME_TAG = 'consul.hashicorp.com.service-name';

/** An HTTP server on one loopback address; `stop()` closes it and every connection, as a server that exits. */
class LoopbackHttp {
  readonly requests: string[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  #stopped = false;
  #port = 0;

  constructor(
    readonly host: string,
    /** How it answers; a test may change it. */
    public handle: (req: IncomingMessage, res: ServerResponse) => void,
  ) {
    this.#server = createServer((req, res) => {
      this.requests.push(`${req.method} ${req.url?.split('?')[0]}`);
      this.handle(req, res);
    });
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  async listen(port: number): Promise<this> {
    this.#server.listen(port, this.host);
    await once(this.#server, 'listening');
    this.#port = (this.#server.address() as { port: number }).port;
    return this;
  }

  /** Its port, also once it has stopped. */
  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const closed = new Promise((r) => this.#server.close(r));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}

/** Answers every request with `status` and `body`. */
const answering = (status: number, body: string) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(body);
};

/** Forwards every request to `target` (host:port), as one server of a cluster serves the cluster's state. */
const forwardingTo = (target: () => string) => (req: IncomingMessage, res: ServerResponse) => {
  const [hostname, port] = target().split(':');
  const upstream = request({ hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => res.destroy());
  req.pipe(upstream);
};

const quietLogger = (sink: { log: string }) => createLogger({ level: 'debug', write: (t) => (sink.log += t) });
const fast = { initialDelayMs: 10, maxDelayMs: 20 };

describe('FailoverConsulClient', () => {
  const started: LoopbackHttp[] = [];
  const clients: ConsulHttpClient[] = [];

  /** Servers at 127.0.0.11, .12, … on one port, as consulServers.hosts gives them (one HTTP port for all). */
  async function servers(...handlers: Array<((req: IncomingMessage, res: ServerResponse) => void) | 'stopped'>): Promise<LoopbackHttp[]> {
    let port = 0;
    const out: LoopbackHttp[] = [];
    for (const [i, handler] of handlers.entries()) {
      const server = await new LoopbackHttp(`127.0.0.${11 + i}`, handler === 'stopped' ? answering(200, '"never"') : handler).listen(port);
      port = server.port;
      started.push(server);
      out.push(server);
      if (handler === 'stopped') await server.stop();
    }
    return out;
  }

  function failoverOver(list: LoopbackHttp[], sink = { log: '' }, opts: { closeGivenClients?: boolean } = {}) {
    const given = list.map((s) => new ConsulHttpClient({ address: s.address }));
    clients.push(...given);
    return new FailoverConsulClient(given, { logger: quietLogger(sink), backoff: fast, retryDeadlineMs: 5000, ...opts });
  }

  afterEach(async () => {
    await Promise.all(started.splice(0).map((s) => s.stop()));
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  it('retries a call on the next server when the one in use refuses the connection or answers 5xx, and stays there', async () => {
    const [a, b, c] = await servers('stopped', answering(500, 'No cluster leader'), answering(200, '"10.0.0.3:8300"'));
    const sink = { log: '' };
    const consul = failoverOver([a!, b!, c!], sink);
    assert.equal(consul.baseUrl.host, a!.address);

    assert.equal(await consul.call({ path: '/v1/status/leader' }), '10.0.0.3:8300');
    assert.equal(consul.baseUrl.host, c!.address, 'the server that answered is in use');
    assert.deepEqual(b!.requests, ['GET /v1/status/leader']);
    assert.match(sink.log, new RegExp(`switching to Consul server: address=http://${b!.address.replaceAll('.', '\\.')}`));
    assert.match(sink.log, new RegExp(`switching to Consul server: address=http://${c!.address.replaceAll('.', '\\.')}`));

    await consul.call({ path: '/v1/status/leader' });
    assert.equal(c!.requests.length, 2);
    assert.equal(b!.requests.length, 1, 'the next call went straight to the server in use');
  });

  it('with retryDeadlineMs 0 makes one attempt; the next call goes to the next server', async () => {
    const [a, b] = await servers(answering(503, 'rpc error making call: stream closed'), answering(200, 'true'));
    const consul = failoverOver([a!, b!]);
    await assert.rejects(consul.send({ method: 'PUT', path: '/v1/catalog/register', retryDeadlineMs: 0 }), (err: unknown) => {
      assert.ok(err instanceof ConsulApiError && err.status === 503, String(err));
      return true;
    });
    assert.equal(b!.requests.length, 0, 'one attempt only');
    assert.equal(consul.baseUrl.host, b!.address);
    assert.deepEqual(await consul.send({ method: 'PUT', path: '/v1/catalog/register', retryDeadlineMs: 0 }), { status: 200, text: 'true' });
  });

  it('keeps the server in use on a 4xx and retries a 429 on it', async () => {
    let limited = 2;
    const [a, b] = await servers(
      (req, res) => {
        if (req.url?.startsWith('/v1/acl/token/self')) return answering(403, 'ACL not found')(req, res);
        if (limited-- > 0) return answering(429, 'rate limit exceeded')(req, res);
        answering(200, '{}')(req, res);
      },
      answering(200, '{}'),
    );
    const consul = failoverOver([a!, b!]);
    await assert.rejects(consul.call({ path: '/v1/acl/token/self' }), /HTTP 403: ACL not found/);
    assert.deepEqual(await consul.call({ path: '/v1/catalog/services' }), {});
    assert.equal(a!.requests.length, 4, 'the 403, two 429s and the answer, all from the first server');
    assert.deepEqual(b!.requests, []);
    assert.equal(consul.baseUrl.host, a!.address);
  });

  it('calls failing together on one server move on once, not past the next server', async () => {
    const [a, b, c] = await servers('stopped', answering(200, 'true'), answering(200, 'true'));
    const consul = failoverOver([a!, b!, c!]);
    const results = await Promise.allSettled([1, 2, 3].map(() => consul.send({ path: '/v1/agent/self', retryDeadlineMs: 0 })));
    assert.ok(results.every((r) => r.status === 'rejected'));
    assert.equal(consul.baseUrl.host, b!.address);
    await Promise.all([1, 2, 3].map(() => consul.send({ path: '/v1/agent/self', retryDeadlineMs: 0 })));
    assert.equal(b!.requests.length, 3);
    assert.deepEqual(c!.requests, []);
  });

  it('gives up at the call deadline when every server fails, with the last error', async () => {
    const [a, b] = await servers('stopped', answering(500, 'No cluster leader'));
    const consul = failoverOver([a!, b!]);
    const started = Date.now();
    await assert.rejects(consul.call({ path: '/v1/status/leader', retryDeadlineMs: 300 }), /could not connect|No cluster leader/);
    assert.ok(Date.now() - started < 2000, 'within the deadline');
    assert.ok(b!.requests.length >= 2, 'it went round the servers');
  });

  it('closes the clients given only when told to', async () => {
    const closed: string[] = [];
    const given = ['127.0.0.11:1', '127.0.0.12:1'].map((address) => {
      const c = new ConsulHttpClient({ address });
      c.close = async () => void closed.push(address);
      return c;
    });
    await new FailoverConsulClient(given).close();
    assert.deepEqual(closed, []);
    await new FailoverConsulClient(given, { closeGivenClients: true }).close();
    assert.deepEqual(closed, ['127.0.0.11:1', '127.0.0.12:1']);
  });
});

describe('mesh-init when the Consul server in use stops', () => {
  let aws: AwsIamStandIn;
  let consul: ConsulStandIn;
  let sim: EcsAgentSimulator;
  let dir: string;
  /** Two servers of one cluster: each forwards to the stand-in, which holds the cluster's state. */
  let first: LoopbackHttp;
  let second: LoopbackHttp;
  const toStandIn = (req: IncomingMessage, res: ServerResponse) => forwardingTo(() => consul.address.replace(/^https?:\/\//, ''))(req, res);
  /** Runs once, when the task first asks for its role's credentials (just before it signs its login). */
  let onCredentials: (() => Promise<void>) | undefined;

  beforeEach(async () => {
    aws = await new AwsIamStandIn({ roles: [{ name: 'web', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } }] }).start();
    consul = await new ConsulStandIn({ authMethod: { stsEndpoint: aws.url } }).start();
    const source = aws.credentialsFor('web');
    onCredentials = undefined;
    sim = await new EcsAgentSimulator({
      family: 'web',
      containers: [{ name: 'app' }, { name: 'consul-dataplane' }],
      credentials: async () => {
        const hook = onCredentials;
        onCredentials = undefined;
        await hook?.();
        return source();
      },
    }).start();
    consul.registerNode(sim.clusterArn);
    first = await new LoopbackHttp('127.0.0.21', toStandIn).listen(0);
    second = await new LoopbackHttp('127.0.0.22', toStandIn).listen(first.port);
    dir = await mkdtemp(join(tmpdir(), 'mesh-init-failover-'));
  });
  afterEach(async () => {
    await Promise.all([first.stop(), second.stop()]);
    await sim.stop();
    await consul.stop();
    await aws.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function run() {
    const config = await validateConfig({
      bootstrapDir: dir,
      consulServers: { hosts: 'exec=cat servers', defaults: { tls: false }, http: { https: false, port: first.port } },
      consulLogin: { enabled: true },
      service: { name: 'web', port: 8080 },
      proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
      transparentProxy: { enabled: false },
    });
    const sink = { log: '' };
    const started = Date.now();
    const result = await meshInit({ config, env: sim.containerEnv(), addresses: [first.host, second.host], logger: quietLogger(sink), deadlineMs: 20_000 });
    await result.client.close();
    return { result, log: sink.log, durationMs: Date.now() - started };
  }

  /** One token, the one written to service-token; the service and its sidecar registered once. */
  async function assertJoinedOnce(): Promise<void> {
    assert.equal(consul.tokens.length, 1, 'one login token');
    assert.equal((await readFile(join(dir, 'service-token'), 'utf8')).trim(), consul.tokens[0]!.secretId);
    assert.deepEqual(
      consul.services(sim.clusterArn).map((s) => s.ID),
      [`web-${sim.taskId}`, `web-${sim.taskId}-sidecar-proxy`],
    );
  }

  it('logs in and registers through the next server when the first stops just before the login', async () => {
    onCredentials = () => first.stop();
    const { result, log, durationMs } = await run();
    assert.equal(result.client.baseUrl.host, second.address);
    assert.deepEqual(first.requests, ['GET /v1/status/leader'], 'only the probe reached the first server');
    assert.equal(second.requests.filter((r) => r === 'POST /v1/acl/login').length, 1, 'one login');
    assert.match(log, /login failed; retrying/);
    assert.match(log, /switching to Consul server: address=http:\/\/127\.0\.0\.22/);
    await assertJoinedOnce();
    assert.ok(durationMs < 10_000, `${durationMs} ms`);
  });

  it('goes on through the next server, without a second login, when the first stops once the login has answered', async () => {
    // The first server answers the login, and stops at the request after it, leaving it unanswered.
    let answeredLogin = false;
    first.handle = (req, res) => {
      if (answeredLogin) return void first.stop();
      if (req.url?.startsWith('/v1/acl/login')) res.on('finish', () => (answeredLogin = true));
      toStandIn(req, res);
    };
    const { result, log } = await run();
    assert.equal(result.client.baseUrl.host, second.address);
    assert.equal(first.requests.filter((r) => r === 'POST /v1/acl/login').length, 1);
    assert.equal(second.requests.filter((r) => r === 'POST /v1/acl/login').length, 0, 'no second login');
    assert.ok(second.requests.includes('PUT /v1/catalog/register'), 'registered through the second server');
    assert.match(log, /switching to Consul server: address=http:\/\/127\.0\.0\.22/);
    await assertJoinedOnce();
  });

  it('once a server has failed, reads the token back again while the next server does not know it yet (a new leader not elected)', async () => {
    let answeredLogin = false;
    first.handle = (req, res) => {
      if (answeredLogin) return void first.stop();
      if (req.url?.startsWith('/v1/acl/login')) res.on('finish', () => (answeredLogin = true));
      toStandIn(req, res);
    };
    // The second server answers "ACL not found" to the token's first 25 stale reads: more than one read-back's 20.
    let unknownFor = 25;
    second.handle = (req, res) => {
      if (req.url?.startsWith('/v1/acl/token/self') && unknownFor-- > 0) return answering(403, 'ACL not found')(req, res);
      toStandIn(req, res);
    };
    const { log } = await run();
    assert.match(log, /the new token is not known yet since a Consul server failed; reading it back again/);
    assert.ok(unknownFor < 0, 'every refusal was seen');
    await assertJoinedOnce();
  });

  it('fails with consul-login-timeout at its deadline when no server answers, naming the last server tried', async () => {
    await first.stop();
    await second.stop();
    const config = await validateConfig({
      bootstrapDir: dir,
      consulServers: { hosts: '127.0.0.21', defaults: { tls: false }, http: { https: false, port: first.port } },
      consulLogin: { enabled: true },
      service: { name: 'web', port: 8080 },
      transparentProxy: { enabled: false },
    });
    await assert.rejects(meshInit({ config, env: sim.containerEnv(), addresses: [first.host, second.host], deadlineMs: 1500 }), (err: unknown) => {
      assert.equal((err as { code?: string }).code, 'consul-login-timeout');
      assert.match(String(err), /could not log in to Consul at http:\/\/127\.0\.0\.2[12]:\d+ within 2s/);
      return true;
    });
    assert.deepEqual(consul.tokens, []);
  });
});
