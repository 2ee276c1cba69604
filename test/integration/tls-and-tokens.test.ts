// The Consul connection settings end to end: HTTPS and gRPC over TLS with CAs
// from the environment or files and a TLS server name; a static token
// (CONSUL_HTTP_TOKEN) instead of login; servers from an exec= command; and the
// network resilience settings reaching service-defaults.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startEnvoyFromBootstrap } from '../../scripts/lib/envoy.ts';
import { freePorts } from '../../scripts/lib/local-stack.ts';
import { LoginStack, SERVER_ID } from '../helpers/login-stack.ts';
import { eventually, meshConfig, meshEnv, outputMatches, readDataplaneConfig, registerClusterNode } from '../helpers/mesh-task.ts';

describe('TLS, static tokens and server discovery', () => {
  let stack: LoginStack;
  before(async () => {
    stack = await LoginStack.start({ tls: true });
  });
  after(async () => {
    await stack.dispose();
  });

  const loginTokens = () => stack.loginTokens();
  const services = (node: string) => stack.nodeServices(node);

  it('login over HTTPS: CA from a file or from CONSUL_HTTPS_CACERT_PEM, with a TLS server name; a missing CA fails at once', async () => {
    const role = await stack.role('tls-task');
    const sim = await stack.simulator(role.arn);
    const sink = join(stack.dir, 'tls-token');
    const flags = stack.loginFlags(sink);
    flags[1] = stack.consul.httpsAddr;
    const withFile = await stack.cli(['login', ...flags, '-ca-file', stack.consul.caFile, '-tls-server-name', 'server.dc1.consul'], sim.containerEnv());
    assert.equal(withFile.exitCode, 0, withFile.stderr);
    await stack.readToken(sink);
    const withPem = await stack.cli(['login', ...flags], {
      ...sim.containerEnv(),
      CONSUL_HTTPS_CACERT_PEM: stack.consul.caPem,
      CONSUL_TLS_SERVER_NAME: 'server.dc1.consul',
    });
    assert.equal(withPem.exitCode, 0, withPem.stderr);
    await stack.readToken(sink);
    const noCa = await stack.cli(['login', ...flags], sim.containerEnv());
    assert.equal(noCa.exitCode, 1);
    assert.match(noCa.stderr, /the server's certificate was not accepted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\).*consul-tls-error/);
    assert.ok(noCa.durationMs < 10_000, 'a certificate problem is not retried');
    stack.assertNoSecretsPrinted();
  });

  it('mesh-init over HTTPS and gRPC TLS: the CA file and TLS settings reach the dataplane config and Envoy, which gets its listeners', async () => {
    const role = await stack.role('web-tls', { service: 'web' });
    const sim = await stack.simulator(role.arn, { containers: [{ name: 'app', hasHealthCheck: true }] });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const [readyPort, publicPort] = await freePorts(2);
    const config = meshConfig(stack, dir, {
      consulServers: {
        hosts: '127.0.0.1',
        defaults: { tls: true, tlsServerName: 'server.dc1.consul' },
        http: { https: true, port: stack.consul.ports.https },
        grpc: { port: stack.consul.ports.grpcTls },
      },
      proxy: { healthCheckPort: readyPort, publicListenerPort: publicPort },
    });
    const env = meshEnv(sim, config, { CONSUL_HTTPS_CACERT_PEM: stack.consul.caPem, CONSUL_GRPC_CACERT_PEM: stack.consul.caPem });
    const res = await stack.cli(['mesh-init'], env);
    assert.equal(res.exitCode, 0, res.stderr);
    await stack.readToken(join(dir, 'service-token'));
    const caPath = join(dir, 'consul-grpc-ca-cert.pem');
    assert.equal(((await stat(caPath)).mode & 0o777).toString(8), '444');
    assert.equal(await readFile(caPath, 'utf8'), stack.consul.caPem);
    const dp = await readDataplaneConfig(dir);
    assert.deepEqual(dp.consul.tls, { disabled: false, caCertsPath: caPath, serverName: 'server.dc1.consul' });
    assert.equal(dp.consul.grpcPort, stack.consul.ports.grpcTls);
    stack.secrets.add(dp.consul.credentials.login.bearerToken);

    const envoy = await startEnvoyFromBootstrap(join(dir, 'envoy-bootstrap.json'));
    try {
      await eventually('Envoy ready over gRPC TLS', 15_000, async () =>
        (await fetch(`http://127.0.0.1:${readyPort}/ready`)).status === 200 ? true : undefined,
      );
      assert.match(await envoy.listeners(), new RegExp(`public_listener:127\\.0\\.0\\.1:${publicPort}::`));
    } finally {
      await envoy.stop();
    }
    await rm(dir, { recursive: true, force: true });
    stack.assertNoSecretsPrinted();
  });

  it('CONSUL_HTTP_TOKEN: no login, no token file; health-sync deregisters at shutdown and leaves the static token alone', async () => {
    const role = await stack.role('static-task', { service: 'static' });
    const sim = await stack.simulator(role.arn, {
      family: 'static',
      containers: [
        { name: 'app', hasHealthCheck: true },
        { name: 'consul-dataplane', hasHealthCheck: true },
      ],
    });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const { SecretID: token } = await stack.consul.api<{ SecretID: string }>('PUT', '/v1/acl/token', { ServiceIdentities: [{ ServiceName: 'static' }] });
    stack.secrets.add(token);
    const config = meshConfig(stack, dir, { service: { name: 'static', port: 8080 } });
    const env = meshEnv(sim, config, { CONSUL_HTTP_TOKEN: token });
    const before = (await loginTokens()).length;
    assert.equal((await stack.cli(['mesh-init'], env)).exitCode, 0);
    await assert.rejects(stat(join(dir, 'service-token')), /ENOENT/);
    assert.equal((await loginTokens()).length, before, 'no login');
    // consul-dataplane gets the same token, as static credentials: with none it is refused.
    const dp = await readDataplaneConfig(dir);
    assert.deepEqual(dp.consul.credentials, { type: 'static', static: { token } });
    assert.equal((await services(sim.clusterArn)).filter((s) => s.Service.startsWith('static')).length, 2);
    const hs = stack.spawn(['health-sync'], env, { timeoutMs: 60_000 });
    await eventually('syncing', 5000, async () => (/syncing ECS health into Consul/.test(hs.output()) ? true : undefined));
    hs.proc.kill('SIGTERM');
    await eventually('critical', 3000, async () => (/set all Consul health checks to critical/.test(hs.output()) ? true : undefined));
    sim.stopContainer('consul-dataplane');
    const res = await hs.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.equal((await services(sim.clusterArn)).filter((s) => s.Service.startsWith('static')).length, 0);
    await stack.consul.client().call({ path: '/v1/acl/token/self', token });
    assert.doesNotMatch(res.stderr, /logged out/);
    await rm(dir, { recursive: true, force: true });
    stack.assertNoSecretsPrinted();
  });

  it('consulServers.hosts exec=: the command prints the server addresses', async () => {
    const role = await stack.role('exec-task', { service: 'execsvc' });
    const sim = await stack.simulator(role.arn, { family: 'execsvc', containers: [{ name: 'app', hasHealthCheck: true }] });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const config = meshConfig(stack, dir, { service: { name: 'execsvc', port: 8080 } });
    (config.consulServers as Record<string, unknown>).hosts = 'exec=/bin/echo 127.0.0.1';
    const res = await stack.cli(['mesh-init'], meshEnv(sim, config));
    assert.equal(res.exitCode, 0, res.stderr);
    await stack.readToken(join(dir, 'service-token'));
    assert.equal((await services(sim.clusterArn)).filter((s) => s.Service.startsWith('execsvc')).length, 2);
    const bad = meshConfig(stack, dir, { service: { name: 'execsvc', port: 8080 } });
    (bad.consulServers as Record<string, unknown>).hosts = 'exec=/bin/false';
    const failed = await stack.cli(['mesh-init'], meshEnv(sim, bad));
    assert.equal(failed.exitCode, 1);
    assert.match(failed.stderr, /\/bin\/false/);
    await rm(dir, { recursive: true, force: true });
  });

  it('several servers: mesh-init and health-sync use the one that answers', async () => {
    const role = await stack.role('multi-task', { service: 'multi' });
    const sim = await stack.simulator(role.arn, {
      family: 'multi',
      containers: [
        { name: 'app', hasHealthCheck: true, health: 'HEALTHY' },
        { name: 'consul-dataplane', hasHealthCheck: true, health: 'HEALTHY' },
      ],
    });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const config = meshConfig(stack, dir, { service: { name: 'multi', port: 8080 } });
    // Nothing listens on 127.0.0.2: the first server is gone.
    (config.consulServers as Record<string, unknown>).hosts = 'exec=/bin/echo 127.0.0.2 127.0.0.1';
    const env = meshEnv(sim, config);
    const init = await stack.cli(['mesh-init'], env);
    assert.equal(init.exitCode, 0, init.stderr);
    assert.match(init.stderr, /Consul server not answering; trying the next: address=127\.0\.0\.2/);
    await stack.readToken(join(dir, 'service-token'));
    const hs = stack.spawn(['health-sync'], env, { timeoutMs: 60_000 });
    try {
      await eventually('synced through the second server', 10_000, async () => {
        const checks = await stack.consul.api<Array<{ ServiceID: string; Status: string }>>('GET', `/v1/health/node/${encodeURIComponent(sim.clusterArn)}`);
        const mine = checks.filter((c) => c.ServiceID.startsWith('multi-'));
        return mine.length === 3 && mine.every((c) => c.Status === 'passing') ? true : undefined;
      });
      await outputMatches(hs.output, /switching to Consul server: address=http:\/\/127\.0\.0\.1:/);
    } finally {
      hs.proc.kill('SIGKILL');
      await hs.result;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('service.networkResilienceConfig adds a passive health check to service-defaults', async () => {
    const role = await stack.role('resilient-task', { service: 'resilient' });
    const sim = await stack.simulator(role.arn, { family: 'resilient', containers: [{ name: 'app', hasHealthCheck: true }] });
    await registerClusterNode(stack, sim.clusterArn);
    // The ACL controller's policies would allow this; here the role's token gets mesh write.
    await stack.consul.api('PUT', '/v1/acl/policy', { Name: 'resilient-defaults', Rules: 'service "resilient" { policy = "write" } mesh = "write"' });
    await stack.consul.api('PUT', '/v1/acl/binding-rule', {
      AuthMethod: 'iam-ecs-service-token',
      BindType: 'policy',
      BindName: 'resilient-defaults',
      Selector: 'entity_tags["consul.hashicorp.com.service-name"] == "resilient"',
    });
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const config = meshConfig(stack, dir, {
      service: { name: 'resilient', port: 8080, networkResilienceConfig: { enabled: true, outlierDetection: { maxFailures: 3, consecutive5xx: 7 } } },
    });
    const res = await stack.cli(['mesh-init'], meshEnv(sim, config));
    assert.equal(res.exitCode, 0, res.stderr);
    await stack.readToken(join(dir, 'service-token'));
    const entry = await stack.consul.api<{ UpstreamConfig?: { Defaults?: { PassiveHealthCheck?: Record<string, unknown> } } }>(
      'GET',
      '/v1/config/service-defaults/resilient',
    );
    const phc = entry.UpstreamConfig?.Defaults?.PassiveHealthCheck;
    assert.equal(phc?.MaxFailures, 3);
    assert.equal(phc?.EnforcingConsecutive5xx, 100);
    assert.equal(phc?.MaxEjectionPercent, 50);
    assert.equal(phc?.Interval, 10_000_000_000);
    // Consul 1.22 has no Consecutive5xx or gateway-failure settings: named, and left out.
    assert.match(
      res.stderr,
      /does not support some outlier detection settings; they are left out: service=resilient settings=Consecutive5xx,EnforcingConsecutiveGatewayFailure/,
    );
    await rm(dir, { recursive: true, force: true });
    void SERVER_ID;
  });
});
