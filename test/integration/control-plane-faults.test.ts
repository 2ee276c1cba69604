// Faults: Consul restarted while health-sync runs (state kept in a data dir),
// Consul unreachable when mesh-init starts; and a config using every
// registration field, read back from Consul.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import type { HealthCheck } from '@consul-ecs-ts/core';
import type { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { createIamAuthMethod, createServiceBindingRule, peerBinary } from '../../scripts/lib/local-stack.ts';
import { LoginStack, SERVER_ID } from '../helpers/login-stack.ts';
import { eventually, outputMatches, meshConfig, meshEnv } from '../helpers/mesh-task.ts';

describe('control plane faults', () => {
  let stack: LoginStack;
  let sim: EcsAgentSimulator;
  let dir: string;
  let dataDir: string;
  const checks = async () => (await stack.consul.api<HealthCheck[]>('GET', `/v1/health/node/${encodeURIComponent(sim.clusterArn)}`)).filter((c) => c.ServiceID);
  const allStatus = async (status: string) => {
    const cs = await checks();
    return cs.length === 3 && cs.every((c) => c.Status === status) ? true : undefined;
  };

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'consul-data-'));
    stack = await LoginStack.start({ dataDir });
    sim = await stack.webTask();
    dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
  });
  afterEach(async () => {
    await stack.dispose();
    await rm(dir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it('health-sync survives a Consul restart: changes made while it was down reach Consul after', async () => {
    assert.equal((await stack.cli(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)))).exitCode, 0);
    await stack.readToken(join(dir, 'service-token'));
    const hs = stack.spawn(['health-sync'], meshEnv(sim, meshConfig(stack, dir)), { timeoutMs: 120_000 });
    try {
      await eventually('passing', 5000, () => allStatus('passing'));
      await stack.consul.stop();
      sim.setHealth('app', 'UNHEALTHY');
      await eventually('a failed write is reported', 5000, async () =>
        /failed to update Consul health status; will retry/.test(hs.output()) ? true : undefined,
      );
      await stack.consul.restart();
      await eventually('the change made while Consul was down', 10_000, () => allStatus('critical'));
      sim.setHealth('app', 'HEALTHY');
      await eventually('sync resumed', 3000, () => allStatus('passing'));
      assert.equal(hs.proc.exitCode, null, 'health-sync kept running');
    } finally {
      hs.proc.kill('SIGKILL');
      await hs.result;
    }
  });

  it('health-sync finds the Consul servers again when the known one is gone: a server replaced at a new address', async () => {
    // consulServers.hosts runs a command that prints the servers' addresses, as
    // `exec=discover …` does with cloud auto-join; a file stands in for the cloud.
    const servers = join(dir, 'servers');
    await writeFile(servers, '127.0.0.1\n');
    const config = meshConfig(stack, dir);
    (config.consulServers as Record<string, unknown>).hosts = `exec=/bin/cat ${servers}`;
    assert.equal((await stack.cli(['mesh-init'], meshEnv(sim, config))).exitCode, 0);
    await stack.readToken(join(dir, 'service-token'));
    const hs = stack.spawn(['health-sync'], meshEnv(sim, config), { timeoutMs: 120_000 });
    await eventually('passing', 5000, () => allStatus('passing'));

    // The server is replaced by one at 127.0.0.2 (same data): 127.0.0.1 refuses connections.
    await writeFile(servers, '127.0.0.2\n');
    await stack.consul.moveTo('127.0.0.2');
    sim.setHealth('app', 'UNHEALTHY');
    await eventually('the change reaches the server at its new address', 15_000, () => allStatus('critical'));
    await outputMatches(hs.output, /found the Consul servers at new addresses: addresses=http:\/\/127\.0\.0\.2:\d+/);

    process.kill(hs.proc.pid!, 'SIGTERM');
    await eventually('critical at shutdown', 3000, () => allStatus('critical'));
    sim.stopContainer('consul-dataplane');
    const res = await hs.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.deepEqual(await checks(), [], 'deregistered through the new address');
    assert.deepEqual(await stack.loginTokens(), [], 'logged out through the new address');
    stack.assertNoSecretsPrinted();
  });

  it('health-sync waits at start until the Consul servers can be found', async () => {
    assert.equal((await stack.cli(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)))).exitCode, 0);
    await stack.readToken(join(dir, 'service-token'));
    const servers = join(dir, 'servers');
    const config = meshConfig(stack, dir);
    (config.consulServers as Record<string, unknown>).hosts = `exec=/bin/cat ${servers}`;
    const hs = stack.spawn(['health-sync'], meshEnv(sim, config), { timeoutMs: 120_000 });
    try {
      await eventually('retrying', 10_000, async () => (/cannot find the Consul servers yet; retrying.*\/bin\/cat/.test(hs.output()) ? true : undefined));
      await writeFile(servers, '127.0.0.1\n');
      await eventually('syncing once the servers are found', 15_000, () => allStatus('passing'));
      assert.equal(hs.proc.exitCode, null, 'health-sync kept running');
    } finally {
      hs.proc.kill('SIGKILL');
      await hs.result;
    }
  });

  it('mesh-init retries while Consul is unreachable, then initialises the task', async () => {
    await stack.consul.stop();
    const mi = stack.spawn(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)), { timeoutMs: 120_000 });
    await eventually('retrying', 10_000, async () => (/login failed; retrying/.test(mi.output()) ? true : undefined));
    await stack.consul.restart();
    const res = await mi.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.match(res.stderr, /successfully initialized the task/);
    assert.equal((await checks()).length, 3);
    await stack.readToken(join(dir, 'service-token'));
    stack.assertNoSecretsPrinted();
  });

  it('mesh-init started before the controller set up Consul waits for the auth method and its binding rule', async () => {
    // A fresh deployment: the tasks start while the controller is still creating them.
    await stack.consul.api('DELETE', '/v1/acl/auth-method/iam-ecs-service-token');
    const mi = stack.spawn(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)), { timeoutMs: 120_000 });
    await eventually('retrying', 10_000, async () =>
      /login failed; retrying.*auth method \\"iam-ecs-service-token\\" not found/.test(mi.output()) ? true : undefined,
    );
    // The auth method first, its binding rule later, as the controller makes them.
    await createIamAuthMethod(stack.consul, stack.moto, { serverIdHeaderValue: SERVER_ID });
    await eventually('retrying', 10_000, async () => (/login failed; retrying.*Permission denied/.test(mi.output()) ? true : undefined));
    await createServiceBindingRule(stack.consul);
    const res = await mi.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.match(res.stderr, /successfully initialized the task/);
    await stack.readToken(join(dir, 'service-token'));
    stack.assertNoSecretsPrinted();
  });

  it('mesh-init that cannot write its files exits 1 naming the file, and leaves no registration or token behind', async () => {
    const missing = join(dir, 'missing');
    const res = await stack.cli(['mesh-init'], meshEnv(sim, meshConfig(stack, missing)));
    assert.equal(res.exitCode, 1);
    assert.match(res.stderr, new RegExp(`cannot write ${join(missing, 'service-token')}: .*check that ${missing} exists and that uid \\d+ can write to it`));
    assert.match(res.stderr, /undoing the partial initialisation/);
    assert.deepEqual(await checks(), [], 'nothing registered');
    assert.deepEqual(await stack.loginTokens(), [], 'the login token was logged out');
    stack.assertNoSecretsPrinted();
  });

  it('mesh-init that cannot find the Consul servers exits 1 naming consulServers.hosts, and leaves nothing behind', async () => {
    // The servers are looked up while the task metadata and credentials are fetched,
    // after the executable's copy has started: the failure undoes the copy too.
    const config = meshConfig(stack, dir);
    const res = await stack.cli(['mesh-init'], meshEnv(sim, { ...config, consulServers: { ...(config.consulServers as object), hosts: 'exec=false' } }));
    assert.equal(res.exitCode, 1);
    assert.match(res.stderr, /consulServers\.hosts \\"exec=false\\" failed: it exited with code 1.*\(consul-servers-exec-failed\)/);
    assert.deepEqual(await readdir(dir), [], 'nothing in the bootstrap dir');
    assert.deepEqual(await checks(), [], 'nothing registered');
    assert.deepEqual(await stack.loginTokens(), [], 'no login token');
    stack.assertNoSecretsPrinted();
  });

  it('every registration field of the config reaches Consul', async () => {
    const config = meshConfig(stack, dir, {
      service: {
        name: 'api',
        port: 9090,
        tags: ['blue', 'v2'],
        meta: { owner: 'team-a' },
        weights: { passing: 5, warning: 2 },
        enableTagOverride: true,
      },
      proxy: {
        publicListenerPort: 21000,
        localServiceAddress: '127.0.0.2',
        config: { protocol: 'http', local_connect_timeout_ms: 2000 },
        meshGateway: { mode: 'local' },
        upstreams: [
          { destinationName: 'db', localBindPort: 5432, datacenter: 'dc1', config: { connect_timeout_ms: 500 }, meshGateway: { mode: 'remote' } },
          { destinationName: 'cache', localBindPort: 6379, localBindAddress: '127.0.0.3', destinationType: 'service' },
        ],
        expose: { checks: true, paths: [{ listenerPort: 21500, path: '/health', localPathPort: 9090, protocol: 'http' }] },
      },
    });
    const role = await stack.role('api-task', { service: 'api' });
    const apiSim = await stack.simulator(role.arn, { family: 'api', cluster: sim.cluster, containers: [{ name: 'app', hasHealthCheck: true }] });
    const res = await stack.cli(['mesh-init'], meshEnv(apiSim, config));
    assert.equal(res.exitCode, 0, res.stderr);
    await stack.readToken(join(dir, 'service-token'));
    const svcs = await stack.nodeServices(apiSim.clusterArn);
    const svc = svcs.find((s) => s.ID === `api-${apiSim.taskId}`)!;
    const proxy = svcs.find((s) => s.ID === `api-${apiSim.taskId}-sidecar-proxy`)!;
    assert.deepEqual(svc.Tags, ['blue', 'v2']);
    assert.equal(svc.Meta?.owner, 'team-a');
    assert.deepEqual(svc.Weights, { Passing: 5, Warning: 2 });
    assert.equal(svc.EnableTagOverride, true);
    assert.deepEqual(svc.Locality, { Region: 'us-east-1', Zone: 'us-east-1a' });
    assert.equal(proxy.Port, 21000);
    assert.deepEqual(proxy.Weights, { Passing: 5, Warning: 2 });
    const p = proxy.Proxy!;
    assert.equal(p.LocalServiceAddress, '127.0.0.2');
    assert.deepEqual(p.Config, { protocol: 'http', local_connect_timeout_ms: 2000 });
    assert.deepEqual(p.MeshGateway, { Mode: 'local' });
    const db = p.Upstreams!.find((u) => u.DestinationName === 'db')!;
    assert.equal(db.LocalBindPort, 5432);
    assert.equal(db.Datacenter, 'dc1');
    assert.deepEqual(db.Config, { connect_timeout_ms: 500 });
    assert.deepEqual(db.MeshGateway, { Mode: 'remote' });
    const cache = p.Upstreams!.find((u) => u.DestinationName === 'cache')!;
    assert.equal(cache.LocalBindAddress, '127.0.0.3');
    assert.equal(cache.DestinationType, 'service');
    assert.equal(p.Expose?.Checks, true);
    assert.deepEqual(
      p.Expose?.Paths?.map((e) => [e.ListenerPort, e.Path, e.LocalPathPort, e.Protocol]),
      [[21500, '/health', 9090, 'http']],
    );
  });

  it('registers a mesh gateway (and no separate service) with its tagged addresses', async () => {
    const config = meshConfig(stack, dir, {
      service: undefined,
      proxy: undefined,
      healthSyncContainers: [],
      gateway: { kind: 'mesh-gateway', name: 'mgw', lanAddress: { address: '127.0.0.1', port: 9443 }, wanAddress: { address: '198.51.100.7', port: 443 } },
    });
    const role = await stack.role('gw-task', { service: 'mgw' });
    const gwSim = await stack.simulator(role.arn, { family: 'mgw', cluster: sim.cluster, containers: [{ name: 'consul-dataplane', hasHealthCheck: true }] });
    await stack.bindMeshGatewayRole('mgw');
    const res = await stack.cli(['mesh-init'], meshEnv(gwSim, config));
    assert.equal(res.exitCode, 0, res.stderr);
    await stack.readToken(join(dir, 'service-token'));
    const svcs = await stack.nodeServices(gwSim.clusterArn);
    const gws = svcs.filter((s) => s.ID.startsWith('mgw-'));
    assert.equal(gws.length, 1);
    assert.equal(gws[0]!.Kind, 'mesh-gateway');
    assert.equal(gws[0]!.Port, 9443);
    assert.deepEqual(gws[0]!.TaggedAddresses?.lan, { Address: '127.0.0.1', Port: 9443 });
    assert.deepEqual(gws[0]!.TaggedAddresses?.wan, { Address: '198.51.100.7', Port: 443 });
  });

  for (const kind of ['terminating-gateway', 'api-gateway'] as const) {
    it(`registers ${kind === 'api-gateway' ? 'an' : 'a'} ${kind} on port 8443 at the task's address, with its check, proxy config and a valid Envoy bootstrap`, async () => {
      const name = kind === 'api-gateway' ? 'apigw' : 'tgw';
      const config = meshConfig(stack, dir, {
        service: undefined,
        proxy: undefined,
        healthSyncContainers: [],
        gateway: { kind, name, tags: ['edge'], meta: { tier: 'edge' }, proxy: { config: { connect_timeout_ms: 3000 } } },
      });
      const role = await stack.role(`${name}-task`, { service: name });
      const gwSim = await stack.simulator(role.arn, {
        family: name,
        cluster: sim.cluster,
        containers: [{ name: 'consul-dataplane', hasHealthCheck: true, ipv4: '127.0.0.21' }],
      });
      await stack.consul.api('PUT', '/v1/acl/policy', {
        Name: kind,
        Rules: `service_prefix "" { policy = "read" } node_prefix "" { policy = "read" } service "${name}" { policy = "write" }`,
      });
      await stack.consul.api('PUT', '/v1/acl/role', { Name: `consul-ecs-${kind}-role`, Policies: [{ Name: kind }] });
      await stack.consul.api('PUT', '/v1/acl/binding-rule', {
        AuthMethod: 'iam-ecs-service-token',
        BindType: 'role',
        BindName: `consul-ecs-${kind}-role`,
        Selector: `entity_tags["consul.hashicorp.com.service-name"] == "${name}"`,
      });
      const res = await stack.cli(['mesh-init'], meshEnv(gwSim, config));
      assert.equal(res.exitCode, 0, res.stderr);
      await stack.readToken(join(dir, 'service-token'));
      const gws = (await stack.nodeServices(gwSim.clusterArn)).filter((s) => s.ID.startsWith(`${name}-`));
      assert.equal(gws.length, 1);
      const gw = gws[0]!;
      assert.equal(gw.ID, `${name}-${gwSim.taskId}`);
      assert.equal(gw.Kind, kind);
      assert.equal(gw.Port, 8443);
      assert.equal(gw.Address, '127.0.0.21');
      assert.deepEqual(gw.Tags, ['edge']);
      assert.deepEqual(gw.Meta, { 'task-id': gwSim.taskId, 'task-arn': gwSim.taskArn, source: 'consul-ecs', tier: 'edge' });
      assert.equal(gw.TaggedAddresses, undefined);
      assert.deepEqual(gw.Proxy?.Config, { connect_timeout_ms: 3000 });
      const gwChecks = (await stack.consul.api<HealthCheck[]>('GET', `/v1/health/node/${encodeURIComponent(gwSim.clusterArn)}`)).filter(
        (c) => c.ServiceID === gw.ID,
      );
      assert.deepEqual(
        gwChecks.map((c) => [c.CheckID, c.Status]),
        [[`${gw.ID}-consul-dataplane`, 'critical']],
      );
      const bootstrap = join(dir, 'envoy-bootstrap.json');
      const valid = await execa(peerBinary('envoy'), ['--mode', 'validate', '-c', bootstrap], { reject: false });
      assert.equal(valid.exitCode, 0, valid.stderr || valid.stdout);
      assert.equal(JSON.parse(await readFile(bootstrap, 'utf8')).node.id, gw.ID);
    });
  }
});
