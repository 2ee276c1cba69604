// Injected faults: the built executable's login, mesh-init, health-sync and
// controller against the real Consul and moto, each behind a fault proxy of
// the project's own (scripts/lib/fault-proxy.ts) that answers 5xx or 429,
// resets connections part-way, adds latency, never answers, or sends a huge
// body. Each test checks the documented outcome (docs/faults.md): a retry with
// backoff, a move to the healthy server, or a clear error naming the cause, and
// that no token or registration is left behind that should not be.
// control-plane-faults.test.ts covers Consul stopped, restarted and moved.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import type { AclAuthMethod, HealthCheck } from '@consul-ecs-ts/core';
import { assumeRoleCredentials, type EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import type { Role } from '../../scripts/lib/aws-admin.ts';
import { FaultProxy, type Fault, type SeenRequest } from '../../scripts/lib/fault-proxy.ts';
import { freePort } from '../../scripts/lib/local-stack.ts';
import { LoginStack, SERVER_ID } from '../helpers/login-stack.ts';
import { eventually, meshConfig, meshEnv, outputMatches, registerClusterNode, SEA } from '../helpers/mesh-task.ts';

/** The two Consul servers the tasks are given: proxies on two loopback addresses, one port. */
const SERVER_A = '127.0.0.2';
const SERVER_B = '127.0.0.3';
const CLUSTER = 'faults-cluster';

interface SeaRun {
  proc: ResultPromise;
  result: Promise<{ exitCode: number; output: string; durationMs: number }>;
  output: () => string;
  /** The largest resident set the process had, in kB (VmHWM), as last read while it ran. */
  peakRssKb: () => number;
}

const isLogin = (r: Omit<SeenRequest, 'fault'>) => r.method === 'POST' && r.path.startsWith('/v1/acl/login');
/** STS GetCallerIdentity sent by the consul-ecs executable itself (Consul's own calls are Go's). */
const isOwnGetCallerIdentity = (r: Omit<SeenRequest, 'fault'>) =>
  r.body.includes('Action=GetCallerIdentity') && !/Go-http-client/.test(r.headers['user-agent'] ?? '');
const isConsulsGetCallerIdentity = (r: Omit<SeenRequest, 'fault'>) =>
  r.body.includes('Action=GetCallerIdentity') && /Go-http-client/.test(r.headers['user-agent'] ?? '');
const isListTasks = (r: Omit<SeenRequest, 'fault'>) => (r.headers['x-amz-target'] ?? '').endsWith('.ListTasks');

describe('injected faults', () => {
  let stack: LoginStack;
  /** Consul behind two proxies (two "servers"), and moto (STS, IAM, ECS) behind one. */
  let serverA: FaultProxy;
  let serverB: FaultProxy;
  let aws: FaultProxy;
  let role: Role;
  let dir: string;
  const runs: SeaRun[] = [];

  /** Runs the built executable as a container would, its output kept for the secret check. */
  const sea = (args: string[], env: Record<string, string>, timeoutMs = 60_000): SeaRun => {
    const started = Date.now();
    const proc = execa(SEA, args, { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false, timeout: timeoutMs, all: true });
    let live = '';
    proc.all?.on('data', (d: Buffer) => (live += d.toString()));
    let peak = 0;
    const readPeak = async () => {
      const status = await readFile(`/proc/${proc.pid}/status`, 'utf8').catch(() => '');
      const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
      if (kb > peak) peak = kb;
    };
    const poll = setInterval(() => void readPeak(), 20);
    const result = proc.then((r) => {
      clearInterval(poll);
      stack.outputs.push(String(r.all));
      return { exitCode: r.exitCode ?? -1, output: String(r.all), durationMs: Date.now() - started };
    });
    const run = { proc, result, output: () => live, peakRssKb: () => peak };
    runs.push(run);
    return run;
  };

  /** A new task of the `web` service (app and dataplane HEALTHY), its cluster's node registered. */
  const newTask = async (): Promise<EcsAgentSimulator> => {
    const sim = await stack.simulator(role.arn, {
      cluster: CLUSTER,
      containers: [
        { name: 'app', hasHealthCheck: true, health: 'HEALTHY' },
        { name: 'consul-dataplane', hasHealthCheck: true, health: 'HEALTHY' },
      ],
    });
    await registerClusterNode(stack, sim.clusterArn);
    return sim;
  };
  const tokensOf = async (sim: EcsAgentSimulator) =>
    (await stack.loginTokens()).filter((t) => t.Description?.includes(`"consul.hashicorp.com/task-id":"${sim.taskId}"`));
  const servicesOf = async (sim: EcsAgentSimulator) => (await stack.nodeServices(sim.clusterArn)).filter((s) => s.Meta?.['task-id'] === sim.taskId);

  /** The mesh task's config, with the Consul servers `hosts` (behind the proxies) and STS behind its proxy. */
  const taskConfig = (hosts: string) => {
    const config = meshConfig(stack, dir);
    const servers = config.consulServers as { hosts: string; http: { port: number } };
    servers.hosts = hosts;
    servers.http.port = serverA.port;
    (config.consulLogin as Record<string, unknown>).stsEndpoint = aws.url;
    return config;
  };
  const bothServers = () => taskConfig(`exec=/bin/echo ${SERVER_A} ${SERVER_B}`);

  /** `consul-ecs login` flags: Consul through server A's proxy, STS and IAM through the AWS proxy. */
  const loginArgs = (sink: string, timeoutSec = 20) => [
    'login',
    '-http-addr',
    serverA.url,
    '-aws-sts-endpoint',
    aws.url,
    '-aws-iam-endpoint',
    aws.url,
    '-aws-server-id-header-value',
    SERVER_ID,
    '-token-sink-file',
    sink,
    '-timeout',
    String(timeoutSec),
  ];

  before(async () => {
    stack = await LoginStack.start();
    // Consul asks STS (and IAM) through the proxy too, to check the signed request.
    aws = await FaultProxy.start({ target: { host: '127.0.0.1', port: stack.moto.port } });
    const method = await stack.consul.api<AclAuthMethod>('GET', '/v1/acl/auth-method/iam-ecs-service-token');
    await stack.consul.api('PUT', '/v1/acl/auth-method/iam-ecs-service-token', {
      ...method,
      Config: { ...method.Config, STSEndpoint: aws.url, IAMEndpoint: aws.url },
    });
    const port = await freePort();
    const consul = { host: '127.0.0.1', port: stack.consul.ports.http };
    serverA = await FaultProxy.start({ target: consul, host: SERVER_A, port });
    serverB = await FaultProxy.start({ target: consul, host: SERVER_B, port });
    role = await stack.role('web-task', { service: 'web' });
  });
  after(async () => {
    await Promise.all([serverA, serverB, aws].map((p) => p?.close()));
    await stack?.dispose();
  });
  beforeEach(async () => {
    for (const proxy of [serverA, serverB, aws]) {
      proxy.set({ kind: 'pass' });
      proxy.requests.length = 0;
      proxy.connections = 0;
    }
    dir = await mkdtemp(join(tmpdir(), 'faults-'));
  });
  afterEach(async (t) => {
    for (const run of runs.splice(0)) {
      if (run.proc.exitCode === null) {
        run.proc.kill('SIGKILL');
        if ('diagnostic' in t) t.diagnostic(run.output());
        await run.result;
      }
    }
    // What a test left on purpose (a running task's token and services) goes before the next.
    for (const token of await stack.loginTokens()) await stack.consul.api('DELETE', `/v1/acl/token/${token.AccessorID}`);
    await rm(dir, { recursive: true, force: true });
    stack.assertNoSecretsPrinted();
  });

  it('login: Consul answers 503, then 429 with Retry-After: retried with backoff, one token made, gone after logout', async () => {
    const sim = await newTask();
    const sink = join(dir, 'token');
    serverA.set(
      [
        { kind: 'status', status: 503, body: 'No cluster leader' },
        { kind: 'status', status: 429, retryAfterSeconds: 1, body: 'rate limit exceeded' },
      ],
      { when: isLogin },
    );
    const res = await sea(loginArgs(sink), sim.containerEnv()).result;
    assert.equal(res.exitCode, 0, res.output);
    assert.deepEqual(
      serverA.seen('POST', '/v1/acl/login').map((r) => r.fault),
      ['status', 'status', 'pass'],
    );
    assert.match(res.output, /login failed; retrying: attempt=1 retry-in-ms=\d+ error=".*HTTP 503: No cluster leader/);
    assert.match(res.output, /login failed; retrying: attempt=2 retry-in-ms=\d+ error=".*HTTP 429: rate limit exceeded/);
    assert.equal((await tokensOf(sim)).length, 1, 'one token: the faulty answers made none');
    await stack.readToken(sink);
    const logout = await sea(['logout', '-http-addr', serverA.url, '-token-file', sink], {}).result;
    assert.equal(logout.exitCode, 0, logout.output);
    assert.deepEqual(await tokensOf(sim), []);
  });

  it('login: a connection reset part-way through the request is retried and makes one token; one reset part-way through the answer leaves a token for the controller', async () => {
    const sim = await newTask();
    const sink = join(dir, 'token');
    serverA.set({ kind: 'reset-request', afterBytes: 40 }, { when: isLogin, times: 2 });
    const res = await sea(loginArgs(sink), sim.containerEnv()).result;
    assert.equal(res.exitCode, 0, res.output);
    assert.match(res.output, /login failed; retrying: attempt=2 .*could not connect.*\(consul-unreachable\)/);
    assert.equal((await tokensOf(sim)).length, 1, 'the cut requests never reached Consul');

    // The answer lost after Consul made the token: the retry makes another. The
    // lost one carries the task's meta, so the controller removes it once the
    // task stops (as it would with consul-ecs, whose login is the same call).
    const second = await newTask();
    serverA.set({ kind: 'reset-response', afterBytes: 20 }, { when: isLogin, times: 1 });
    const cut = await sea(loginArgs(join(dir, 'token2')), second.containerEnv()).result;
    assert.equal(cut.exitCode, 0, cut.output);
    assert.match(cut.output, /login failed; retrying: attempt=1 /);
    const tokens = await tokensOf(second);
    assert.equal(tokens.length, 2);
    for (const t of tokens) assert.match(t.Description ?? '', new RegExp(`"consul.hashicorp.com/cluster":"${second.clusterArn}"`));
    await stack.readToken(join(dir, 'token2'));
  });

  it('login: a Consul that accepts and never answers is given up at the -timeout deadline (consul-login-timeout), not after the request timeout', async () => {
    const sim = await newTask();
    serverA.set({ kind: 'hang' });
    const res = await sea(loginArgs(join(dir, 'token'), 3), sim.containerEnv()).result;
    assert.equal(res.exitCode, 1, res.output);
    assert.match(
      res.output,
      /could not log in to Consul at http:\/\/127\.0\.0\.2:\d+ within 3s: no answer from .* before the deadline.*\(consul-login-timeout\)/,
    );
    assert.ok(res.durationMs < 10_000, `gave up after ${res.durationMs} ms`);
    assert.deepEqual(await tokensOf(sim), []);
  });

  it("login: STS GetCallerIdentity (the login's own) answering 503, throttling (429) and resetting is retried; STS failing until the deadline fails naming STS", async () => {
    const sim = await newTask();
    // Keys without the role's ARN: login asks STS who it is before it signs.
    const creds = await assumeRoleCredentials({ stsEndpoint: stack.moto.url, credentials: stack.moto.admin.credentials, roleArn: role.arn })();
    for (const s of [creds.SecretAccessKey, creds.Token ?? '']) stack.secrets.add(s);
    const env = {
      ECS_CONTAINER_METADATA_URI_V4: sim.containerEnv().ECS_CONTAINER_METADATA_URI_V4!,
      AWS_ACCESS_KEY_ID: creds.AccessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.SecretAccessKey,
      AWS_SESSION_TOKEN: creds.Token ?? '',
    };
    aws.set(
      [
        { kind: 'status', status: 503 },
        { kind: 'status', status: 429, retryAfterSeconds: 1 },
        { kind: 'reset-request', afterBytes: 100 },
      ],
      { when: isOwnGetCallerIdentity },
    );
    const res = await sea(loginArgs(join(dir, 'token')), env).result;
    assert.equal(res.exitCode, 0, res.output);
    assert.match(res.output, /attempt=1 .*AWS GetCallerIdentity at http:\/\/127\.0\.0\.1:\d+ failed with HTTP 503/);
    assert.match(res.output, /attempt=2 .*AWS GetCallerIdentity .* failed with HTTP 429/);
    assert.match(res.output, /attempt=3 .*cannot reach AWS STS at .* for GetCallerIdentity.*\(aws-unreachable\)/);
    assert.equal((await tokensOf(sim)).length, 1);
    await stack.readToken(join(dir, 'token'));

    aws.set(
      { kind: 'status', status: 500, body: '<ErrorResponse><Error><Code>InternalFailure</Code><Message>down</Message></Error></ErrorResponse>' },
      { when: isOwnGetCallerIdentity },
    );
    const failed = await sea(loginArgs(join(dir, 'token2'), 2), env).result;
    assert.equal(failed.exitCode, 1, failed.output);
    assert.match(
      failed.output,
      /login failed: error="AWS GetCallerIdentity at http:\/\/127\.0\.0\.1:\d+ failed with HTTP 500 InternalFailure: down \(aws-api-error\)"/,
    );
    assert.equal((await tokensOf(sim)).length, 1, 'no token from the failed login');
  });

  it("mesh-init: Consul's own STS call answering 503 is retried; the task is registered once", async () => {
    const sim = await newTask();
    aws.set({ kind: 'status', status: 503 }, { when: isConsulsGetCallerIdentity, times: 2 });
    const res = await sea(['mesh-init'], meshEnv(sim, taskConfig(SERVER_A))).result;
    assert.equal(res.exitCode, 0, res.output);
    assert.equal(aws.requests.filter((r) => r.fault === 'status').length, 2);
    assert.match(res.output, /login failed; retrying: attempt=2 .*HTTP 500: error making request/);
    assert.equal((await tokensOf(sim)).length, 1);
    assert.equal((await servicesOf(sim)).length, 2);
    await stack.readToken(join(dir, 'service-token'));
  });

  for (const [what, fault] of [
    ['answers 503', { kind: 'status', status: 503 }],
    ['resets every connection', { kind: 'reset-request', afterBytes: 0 }],
    ['answers only after 8 s, beyond the 5 s it is given', { kind: 'delay', ms: 8000, per: 'connection' }],
  ] as Array<[string, Fault]>) {
    it(`mesh-init: the first of two Consul servers ${what}: the task logs in and registers through the second`, async () => {
      const sim = await newTask();
      serverA.set(fault);
      const res = await sea(['mesh-init'], meshEnv(sim, bothServers())).result;
      assert.equal(res.exitCode, 0, res.output);
      assert.match(res.output, /Consul server not answering; trying the next: address=127\.0\.0\.2/);
      assert.deepEqual(
        serverA.requests.map((r) => r.path),
        ['/v1/status/leader'],
        'only the probe went to the first',
      );
      assert.equal(serverB.seen('POST', '/v1/acl/login').length, 1);
      assert.equal((await tokensOf(sim)).length, 1);
      assert.deepEqual((await servicesOf(sim)).map((s) => s.ID).sort(), [`web-${sim.taskId}`, `web-${sim.taskId}-sidecar-proxy`]);
      await stack.readToken(join(dir, 'service-token'));
    });
  }

  for (const [what, fault] of [
    ['resets connections', { kind: 'reset-request', afterBytes: 0 }],
    ['answers 500', { kind: 'status', status: 500, body: 'No cluster leader' }],
  ] as Array<[string, Fault]>) {
    it(`health-sync: the server in use ${what}: it moves to the other, syncs through it, and deregisters and logs out at SIGTERM`, async () => {
      const sim = await newTask();
      const config = bothServers();
      assert.equal((await sea(['mesh-init'], meshEnv(sim, config)).result).exitCode, 0);
      await stack.readToken(join(dir, 'service-token'));
      const checks = async () =>
        (await stack.consul.api<HealthCheck[]>('GET', `/v1/health/node/${encodeURIComponent(sim.clusterArn)}`)).filter((c) => c.ServiceID.includes(sim.taskId));
      const all = async (status: string) => {
        const cs = await checks();
        return cs.length > 0 && cs.every((c) => c.Status === status) ? true : undefined;
      };
      const hs = sea(['health-sync'], meshEnv(sim, config), 120_000);
      await eventually('passing', 10_000, () => all('passing'));
      assert.ok(serverA.seen('PUT', '/v1/catalog/register').length > 0, 'it synced through the first server');

      serverA.set(fault);
      sim.setHealth('app', 'UNHEALTHY');
      await eventually('the change, through the second server', 15_000, () => all('critical'));
      await outputMatches(hs.output, /switching to Consul server: address=http:\/\/127\.0\.0\.3:\d+/);

      process.kill(hs.proc.pid!, 'SIGTERM');
      sim.stopContainer('consul-dataplane');
      const res = await hs.result;
      assert.equal(res.exitCode, 0, res.output);
      assert.deepEqual(await servicesOf(sim), [], 'deregistered');
      assert.deepEqual(await tokensOf(sim), [], 'logged out');
    });
  }

  it("login: Consul answering a 200 MB body fails at once with response-too-large, the executable's memory bounded", async () => {
    const sim = await newTask();
    serverA.set({ kind: 'huge-body', bytes: 200 * 1024 * 1024 }, { when: isLogin });
    const run = sea([...loginArgs(join(dir, 'token')), '-log-level', 'debug'], sim.containerEnv());
    const res = await run.result;
    assert.equal(res.exitCode, 1, res.output);
    assert.match(
      res.output,
      /Consul POST \/v1\/acl\/login at http:\/\/127\.0\.0\.2:\d+ answered with a body larger than 4 MiB, the most this call reads; check that the address points at a Consul server's HTTP API \(response-too-large\)/,
    );
    assert.equal(serverA.seen('POST', '/v1/acl/login').length, 1, 'not retried');
    assert.ok(run.peakRssKb() > 0, 'the peak RSS was read');
    assert.ok(run.peakRssKb() < 160 * 1024, `peak RSS ${run.peakRssKb()} kB`);
  });

  it('login: an error answer of 1 MB is quoted in the error by its first 512 bytes', async () => {
    const sim = await newTask();
    serverA.set({ kind: 'status', status: 500, body: `rpc error: ${'x'.repeat(1024 * 1024)}` }, { when: isLogin });
    const res = await sea(loginArgs(join(dir, 'token')), sim.containerEnv()).result;
    assert.equal(res.exitCode, 1, res.output);
    assert.match(res.output, /Consul refused the login .*\(HTTP 500\): rpc error: x{500,512}… \(1048587 bytes in all\)\. Likely cause/);
    assert.ok(res.output.length < 4096, `output of ${res.output.length} characters`);
  });

  it('controller: ECS ListTasks answering 503, then 200 MB, removes nothing and keeps running with memory bounded; the next good pass removes what a stopped task left', async () => {
    const clusterArn = await stack.moto.admin.createCluster(CLUSTER);
    const [own] = await stack.moto.admin.runTasks(CLUSTER, 'consul-ecs-controller');
    const ctrlRole = await stack.role('controller-task', {
      path: '/ecs/',
      service: null,
      allowGetRole: false,
      allowActions: ['ecs:ListTasks', 'ecs:DescribeTasks'],
    });
    const ctrl = await stack.simulator(ctrlRole.arn, {
      cluster: CLUSTER,
      family: 'consul-ecs-controller',
      taskId: own!.taskArn!.split('/').pop()!,
      containers: [{ name: 'consul-ecs-controller', hasHealthCheck: false }],
    });
    // A task that ran and stopped (ECS no longer lists it): its token and services remain.
    const stopped = await newTask();
    assert.equal(stopped.clusterArn, clusterArn);
    assert.equal((await sea(['mesh-init'], meshEnv(stopped, taskConfig(SERVER_A))).result).exitCode, 0);
    await stack.readToken(join(dir, 'service-token'));
    assert.equal((await tokensOf(stopped)).length, 1);

    aws.set(
      [
        { kind: 'status', status: 503, body: '{"__type":"ServerException","message":"try later"}', contentType: 'application/x-amz-json-1.1' },
        { kind: 'huge-body', bytes: 200 * 1024 * 1024 },
      ],
      { when: isListTasks },
    );
    const config = {
      bootstrapDir: dir,
      logLevel: 'DEBUG',
      controller: { iamRolePath: '/consul-ecs/', partitionsEnabled: false, partition: '' },
      consulServers: (taskConfig(SERVER_A) as { consulServers: unknown }).consulServers,
    };
    const run = sea(
      ['controller'],
      {
        ...ctrl.containerEnv(),
        CONSUL_ECS_CONFIG_JSON: JSON.stringify(config),
        CONSUL_HTTP_TOKEN: stack.consul.managementToken,
        AWS_ENDPOINT_URL_ECS: aws.url,
      },
      120_000,
    );
    await eventually('the first pass fails', 30_000, async () => (/error during reconcile/.test(run.output()) ? true : undefined));
    assert.match(
      run.output(),
      /error during reconcile: error="AWS ListTasks at http:\/\/127\.0\.0\.1:\d+ failed with HTTP 503 ServerException: try later \(aws-api-error\)"/,
    );
    assert.equal((await tokensOf(stopped)).length, 1, 'nothing removed on a failed listing');
    await eventually('the second pass fails', 15_000, async () => (/response-too-large/.test(run.output()) ? true : undefined));
    assert.match(
      run.output(),
      /AWS ECS at http:\/\/127\.0\.0\.1:\d+ answered ListTasks with a body larger than 4 MiB, the most this call reads; check that the endpoint points at AWS \(response-too-large\)/,
    );
    assert.equal((await tokensOf(stopped)).length, 1, 'nothing removed on a listing too large to read');
    assert.ok(run.peakRssKb() > 0 && run.peakRssKb() < 160 * 1024, `peak RSS ${run.peakRssKb()} kB`);
    assert.equal(run.proc.exitCode, null, 'the controller keeps running');

    await eventually('the third pass removes what the stopped task left', 15_000, async () => ((await tokensOf(stopped)).length === 0 ? true : undefined));
    await eventually('and its services', 5000, async () => ((await servicesOf(stopped)).length === 0 ? true : undefined));
    run.proc.kill('SIGTERM');
    assert.equal((await run.result).exitCode, 0);
  });
});
