// mesh-init, health-sync and control-plane against a real Consul (ACLs on, the
// aws-iam auth method), moto and the ECS agent simulator, as a mesh task runs them.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { aclLogin, aclLogout, type HealthCheck } from '@consul-ecs-ts/core';
import type { EcsAgentSimulator as Sim } from '@consul-ecs-ts/core/testkit';
import { startEnvoyFromBootstrap } from '../../scripts/lib/envoy.ts';
import { freePorts } from '../../scripts/lib/local-stack.ts';
import { LoginStack } from '../helpers/login-stack.ts';
import { eventually, meshConfig, meshEnv, outputMatches, readDataplaneConfig, SEA } from '../helpers/mesh-task.ts';

describe('control plane against Consul, moto and the simulated task', () => {
  let stack: LoginStack;
  let sim: Sim;
  let dir: string;
  let node: string;
  const services = () => stack.nodeServices(node);
  const checks = async () => (await stack.consul.api<HealthCheck[]>('GET', `/v1/health/node/${encodeURIComponent(node)}`)).filter((c) => c.ServiceID);
  const statusOf = async () => Object.fromEntries((await checks()).map((c) => [c.CheckID.replace(`${sim.taskId}-`, ''), c.Status]));
  const loginTokens = () => stack.loginTokens();

  beforeEach(async () => {
    stack = await LoginStack.start();
    sim = await stack.webTask([{ name: 'consul-ecs-control-plane', hasHealthCheck: false }]);
    node = sim.clusterArn;
    dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
  });
  afterEach(async () => {
    await stack.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('mesh-init: token sunk, service and sidecar registered with IDs, meta, checks and proxy config; files with their modes', async () => {
    const res = await stack.cli(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)));
    assert.equal(res.exitCode, 0, res.stderr);
    assert.match(res.stderr, /successfully initialized the task to operate as part of the mesh/);

    const id = `web-${sim.taskId}`;
    const byId = Object.fromEntries((await services()).map((s) => [s.ID, s]));
    assert.deepEqual(Object.keys(byId).sort(), [id, `${id}-sidecar-proxy`]);
    const svc = byId[id]!;
    assert.equal(svc.Service, 'web');
    assert.equal(svc.Port, 8080);
    assert.deepEqual(svc.Tags, ['v1']);
    assert.deepEqual(svc.Meta, { 'task-id': sim.taskId, 'task-arn': sim.taskArn, source: 'consul-ecs', team: 'payments' });
    assert.deepEqual(svc.Locality, { Region: 'us-east-1', Zone: 'us-east-1a' });
    const proxy = byId[`${id}-sidecar-proxy`]!;
    assert.equal(proxy.Kind, 'connect-proxy');
    assert.equal(proxy.Service, 'web-sidecar-proxy');
    assert.equal(proxy.Port, 20000);
    assert.equal(proxy.Proxy?.DestinationServiceID, id);
    assert.equal(proxy.Proxy?.DestinationServiceName, 'web');
    assert.equal(proxy.Proxy?.LocalServicePort, 8080);
    assert.deepEqual(
      proxy.Proxy?.Upstreams?.map((u) => [u.DestinationName, u.LocalBindPort]),
      [['backend', 1234]],
    );

    const cs = await checks();
    assert.deepEqual(cs.map((c) => c.CheckID).sort(), [`${id}-app`, `${id}-consul-dataplane`, `${id}-sidecar-proxy-consul-dataplane`]);
    for (const c of cs) {
      assert.equal(c.Status, 'critical');
      assert.equal(c.Type, 'consul-ecs-health-check');
      assert.equal(c.Output, `Service ${c.ServiceName} is not ready`);
    }
    assert.equal(cs.find((c) => c.CheckID === `${id}-app`)?.Name, 'Consul ECS health check synced');
    assert.equal(cs.find((c) => c.CheckID === `${id}-consul-dataplane`)?.Name, 'Consul dataplane readiness');

    const mode = async (f: string) => ((await stat(join(dir, f))).mode & 0o777).toString(8);
    assert.equal(await mode('service-token'), '600');
    assert.equal(await mode('consul-dataplane.json'), '444');
    assert.equal(await mode('consul-ecs'), '755');
    const token = await stack.readToken(join(dir, 'service-token'));
    const self = await stack.consul.client().call<{ ServiceIdentities?: Array<{ ServiceName: string }> }>({ path: '/v1/acl/token/self', token });
    assert.deepEqual(
      self.ServiceIdentities?.map((s) => s.ServiceName),
      ['web'],
    );

    const dp = await readDataplaneConfig(dir);
    assert.deepEqual(dp.proxy, { nodeName: node, id: `${id}-sidecar-proxy`, namespace: '', partition: '' });
    assert.equal(dp.consul.addresses, '127.0.0.1');
    assert.equal(dp.consul.grpcPort, stack.consul.ports.grpc);
    assert.deepEqual(dp.consul.tls, { disabled: true });
    assert.equal(dp.consul.credentials.type, 'login');
    assert.equal(dp.consul.credentials.login.authMethod, 'iam-ecs-service-token');
    assert.deepEqual(dp.envoy, { readyBindAddress: '127.0.0.1', readyBindPort: 22000 });
    assert.deepEqual(dp.xdsServer, { bindAddress: '127.0.0.1' });
    assert.equal(dp.logging.logLevel, 'DEBUG');
    stack.secrets.add(dp.consul.credentials.login.bearerToken);
    assert.deepEqual(dp.consul.credentials.login.meta, { 'consul.hashicorp.com/task-id': sim.taskId, 'consul.hashicorp.com/cluster': sim.clusterArn });
    // consul-dataplane logs in with the bearer token mesh-init logged in with (as the anchor's does): Consul takes it again.
    const dpLogin = await aclLogin(stack.consul.client(), {
      authMethod: dp.consul.credentials.login.authMethod,
      bearerToken: dp.consul.credentials.login.bearerToken,
      meta: dp.consul.credentials.login.meta,
    });
    stack.secrets.add(dpLogin.SecretID);
    assert.deepEqual(
      dpLogin.ServiceIdentities?.map((s) => s.ServiceName),
      ['web'],
    );
    assert.notEqual(dpLogin.SecretID, token, 'a token of its own');
    await aclLogout(stack.consul.client(), dpLogin.SecretID);

    // The executable copy runs with no Node.js at all.
    const copied = await execa(join(dir, 'consul-ecs'), ['version'], { env: { PATH: '/nonexistent' }, extendEnv: false });
    assert.match(copied.stdout, /^consul-ecs v\d+\.\d+\.\d+/);
    const dial = await execa(join(dir, 'consul-ecs'), ['net-dial', `127.0.0.1:${stack.consul.ports.http}`], {
      env: { PATH: '/nonexistent' },
      extendEnv: false,
      reject: false,
    });
    assert.equal(dial.exitCode, 0);

    // Idempotent: a second run leaves the same registrations and one login token.
    const again = await stack.cli(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)));
    assert.equal(again.exitCode, 0, again.stderr);
    assert.deepEqual((await services()).map((s) => s.ID).sort(), [id, `${id}-sidecar-proxy`]);
    assert.equal((await loginTokens()).length, 1, 'the replaced token was logged out');
    await stack.readToken(join(dir, 'service-token'));
    stack.assertNoSecretsPrinted();
  });

  it('Envoy started from the envoy-bootstrap.json mesh-init wrote gets its listeners from Consul over ADS', async () => {
    const [readyPort, publicPort, upstreamPort] = await freePorts(3);
    const config = meshConfig(stack, dir, {
      proxy: { healthCheckPort: readyPort, publicListenerPort: publicPort, upstreams: [{ destinationName: 'backend', localBindPort: upstreamPort }] },
    });
    assert.equal((await stack.cli(['mesh-init'], meshEnv(sim, config))).exitCode, 0);
    await stack.readToken(join(dir, 'service-token'));
    assert.equal(((await stat(join(dir, 'envoy-bootstrap.json'))).mode & 0o777).toString(8), '444', "read by Envoy's user, not mesh-init's");
    const bootstrap = JSON.parse(await readFile(join(dir, 'envoy-bootstrap.json'), 'utf8'));
    assert.equal(bootstrap.node.id, `web-${sim.taskId}-sidecar-proxy`);
    assert.equal(bootstrap.node.cluster, 'web');
    assert.equal(bootstrap.node.metadata.node_name, sim.clusterArn);
    const envoy = await startEnvoyFromBootstrap(join(dir, 'envoy-bootstrap.json'));
    try {
      await eventually('Envoy ready', 15_000, async () => ((await fetch(`http://127.0.0.1:${readyPort}/ready`)).status === 200 ? true : undefined)).catch(
        async (err) => {
          await envoy.stop();
          throw new Error(`${String(err)}; envoy said: ${String((await envoy.proc).stderr).slice(-1500)}`);
        },
      );
      const listeners = await envoy.listeners();
      assert.match(listeners, new RegExp(`public_listener:127\\.0\\.0\\.1:${publicPort}::`));
      assert.match(listeners, new RegExp(`backend:127\\.0\\.0\\.1:${upstreamPort}::`));
    } finally {
      await envoy.stop();
    }
  });

  it('the self-contained executable runs mesh-init and copies itself into the bootstrap dir', async () => {
    const env = meshEnv(sim, meshConfig(stack, dir));
    delete env.CONSUL_ECS_EXECUTABLE;
    const res = await execa(SEA, ['mesh-init'], { env: { ...env, PATH: '/nonexistent' }, extendEnv: false, reject: false });
    stack.outputs.push(String(res.stderr));
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.equal((await stat(join(dir, 'consul-ecs'))).size, (await stat(SEA)).size);
    assert.match(String(res.stderr), new RegExp(`copied binary: source=${SEA.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.includes('.tmp')),
      [],
      'no temporary file left',
    );
    await stack.readToken(join(dir, 'service-token'));

    // The loader and libraries the copy runs with, beside it (mesh-task-containers.test.ts runs
    // the copy in an image with no files at all).
    const libs = join(dir, '.consul-ecs-lib');
    assert.deepEqual(
      (await readdir(libs)).filter((f) => f.includes('.tmp')),
      [],
      'no temporary library left',
    );
    for (const lib of ['ld-linux-x86-64.so.2', 'libc.so.6', 'libstdc++.so.6', 'libgcc_s.so.1'])
      assert.equal((await stat(join(libs, lib))).mode & 0o777, 0o755, lib);
    stack.assertNoSecretsPrinted();
  });

  // mesh-init starts copying the executable into the bootstrap dir as soon as the
  // config is valid; whatever stops it, nothing of the copy may stay.
  it('the self-contained executable with an invalid config: exit 1, nothing written', async () => {
    const bad = meshConfig(stack, dir, { service: { name: 'web', port: 'eighty' } });
    const res = await execa(SEA, ['mesh-init'], { env: { ...meshEnv(sim, bad), PATH: '/nonexistent' }, extendEnv: false, reject: false });
    assert.equal(res.exitCode, 1, String(res.stderr));
    assert.match(String(res.stderr), /service\.port|service\/port/);
    assert.deepEqual(await readdir(dir), []);
  });

  it('the self-contained executable stopped by SIGTERM at any moment of its start leaves nothing in the bootstrap dir', async () => {
    // Consul is down, so mesh-init never gets past its login: each SIGTERM lands in start-up.
    await stack.consul.stop();
    const env = { ...meshEnv(sim, meshConfig(stack, dir)), PATH: '/nonexistent' };
    // Every 3 ms through the executable's start (a signal in the wrong ~1 ms once left the copy's file), then later.
    for (const delayMs of [...Array.from({ length: 21 }, (_, i) => i * 3), 100, 150]) {
      const proc = execa(SEA, ['mesh-init'], { env, extendEnv: false, reject: false, timeout: 30_000 });
      await new Promise((r) => setTimeout(r, delayMs));
      proc.kill('SIGTERM');
      const res = await proc;
      // Killed by the signal before the command handles signals, or stopped by it after.
      assert.ok(
        res.signal === 'SIGTERM' || res.exitCode === 0 || res.exitCode === 1,
        `after ${delayMs} ms: ${res.signal ?? res.exitCode} ${String(res.stderr)}`,
      );
      assert.deepEqual(await readdir(dir), [], `after ${delayMs} ms (${res.signal ?? `exit ${res.exitCode}`})`);
    }
  });

  it('health-sync: ECS health changes reach Consul within two periods; the dataplane check follows the aggregate', async () => {
    assert.equal((await stack.cli(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)))).exitCode, 0);
    await stack.readToken(join(dir, 'service-token'));
    const hs = stack.spawn(['health-sync'], meshEnv(sim, meshConfig(stack, dir)), { timeoutMs: 120_000 });
    try {
      const all = (s: string) => ({ app: s, 'consul-dataplane': s, 'sidecar-proxy-consul-dataplane': s });
      const expectWithin2s = async (want: Record<string, string>, what: string) =>
        eventually(what, 2000, async () => {
          const got = await statusOf();
          const norm = Object.fromEntries(Object.entries(got).map(([k, v]) => [k.replace(/^web-/, ''), v]));
          return JSON.stringify(norm) === JSON.stringify(Object.fromEntries(Object.entries(want).map(([k, v]) => [k, v]))) ? true : undefined;
        });
      await eventually('first sync', 5000, async () => ((await statusOf())[`web-app`] === 'passing' ? true : undefined));
      await expectWithin2s(all('passing'), 'all passing');

      sim.setHealth('app', 'UNHEALTHY');
      await expectWithin2s(
        { app: 'critical', 'consul-dataplane': 'critical', 'sidecar-proxy-consul-dataplane': 'critical' },
        'app unhealthy → dataplane critical',
      );
      sim.setHealth('app', 'HEALTHY');
      await expectWithin2s(all('passing'), 'app healthy again');
      sim.setHealth('consul-dataplane', 'UNHEALTHY');
      await expectWithin2s({ app: 'passing', 'consul-dataplane': 'critical', 'sidecar-proxy-consul-dataplane': 'critical' }, 'dataplane unhealthy');
      sim.setHealth('consul-dataplane', 'HEALTHY');
      await expectWithin2s(all('passing'), 'dataplane healthy again');
      sim.removeContainer('app');
      await expectWithin2s(all('critical'), 'app missing counts as unhealthy');
    } finally {
      hs.proc.kill('SIGKILL');
      await hs.result;
    }
  });

  it('shutdown: SIGTERM marks all checks critical before anything is deregistered, waits for the dataplane, then deregisters and logs out', async () => {
    assert.equal((await stack.cli(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)))).exitCode, 0);
    const token = await stack.readToken(join(dir, 'service-token'));
    const hs = stack.spawn(['health-sync'], meshEnv(sim, meshConfig(stack, dir)), { timeoutMs: 120_000 });
    await eventually('passing', 5000, async () =>
      Object.values(await statusOf()).every((s) => s === 'passing') && (await checks()).length === 3 ? true : undefined,
    );

    hs.proc.kill('SIGTERM');
    await eventually('all critical after SIGTERM', 2000, async () => (Object.values(await statusOf()).every((s) => s === 'critical') ? true : undefined));
    // Another SIGTERM changes nothing: the stop under way goes on.
    process.kill(hs.proc.pid!, 'SIGTERM');
    // The dataplane is still running: nothing is deregistered yet, the token still works.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await services()).length, 2);
    await stack.consul.client().call({ path: '/v1/acl/token/self', token });

    sim.stopContainer('consul-dataplane');
    const res = await hs.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.equal((await services()).length, 0, 'service and proxy are gone');
    assert.equal((await loginTokens()).length, 0, 'the token is gone');
    await assert.rejects(stat(join(dir, 'service-token')), /ENOENT/);
    const order = ['set all Consul health checks to critical', 'dataplane has stopped', 'deregistered: id=web-', 'logged out of Consul'].map((m) =>
      res.stderr.indexOf(m),
    );
    assert.ok(
      order.every((i, n) => i >= 0 && (n === 0 || i > order[n - 1]!)),
      `shutdown steps in order: ${order}`,
    );
    stack.assertNoSecretsPrinted();
  });

  /**
   * health-sync with the bootstrap dir mounted read-only, as terraform-aws-consul-ecs's
   * mesh-task mounts it, as user `uid`. The self-contained executable, which any user may run.
   * (The images themselves, in terraform's task definitions, are run by mesh-task-containers.test.ts.)
   */
  const readOnlyHealthSync = (uid: number) => {
    const env = meshEnv(sim, meshConfig(stack, dir));
    const script = `mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec setpriv --reuid=${uid} --regid=${uid} --clear-groups "$2" health-sync`;
    const proc = execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', dir, SEA], {
      env,
      extendEnv: false,
      reject: false,
      timeout: 120_000,
    });
    let live = '';
    proc.stderr?.on('data', (d: Buffer) => (live += d.toString()));
    const result = proc.then((r) => (stack.outputs.push(String(r.stderr)), { exitCode: r.exitCode, stderr: String(r.stderr) }));
    return { pid: proc.pid!, output: () => live, result };
  };

  it('health-sync as a user who cannot read the token mesh-init wrote logs in with the task role itself', async () => {
    // mesh-init as root gives its token file (0600) to 5996; health-sync runs as 6000.
    await chmod(dir, 0o755);
    assert.equal((await stack.cli(['mesh-init'], meshEnv(sim, meshConfig(stack, dir)))).exitCode, 0);
    const meshInitToken = await stack.readToken(join(dir, 'service-token'));
    const hs = readOnlyHealthSync(6000);
    await eventually('passing', 10_000, async () =>
      (await checks()).length === 3 && Object.values(await statusOf()).every((s) => s === 'passing') ? true : undefined,
    );
    await outputMatches(hs.output, /cannot read the service token mesh-init wrote; logging in with the task role instead.*EACCES/);
    const tokens = await loginTokens();
    assert.equal(tokens.length, 2, "mesh-init's token and health-sync's");
    assert.ok(
      tokens.every((t) => t.Description?.includes(sim.taskId)),
      'both carry the task meta',
    );
    // SIGTERM, all checks critical, the dataplane stops: health-sync's graceful stop, which must end with exit 0.
    process.kill(hs.pid, 'SIGTERM');
    await eventually('all critical', 3000, async () => (Object.values(await statusOf()).every((s) => s === 'critical') ? true : undefined));
    sim.stopContainer('consul-dataplane');
    const res = await hs.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.equal((await services()).length, 0, 'service and proxy are gone');
    assert.match(res.stderr, /logged out of Consul/);
    // health-sync's own token is gone; mesh-init's, which it cannot read, stays for the controller to remove.
    const left = await loginTokens();
    assert.equal(left.length, 1);
    await stack.consul.client().call({ path: '/v1/acl/token/self', token: meshInitToken });
    stack.assertNoSecretsPrinted();
  });

  it('mesh-init as a user who cannot write the bootstrap dir fails naming the dir and the uid, and leaves nothing', async () => {
    // ECS makes a task's volume root's, mode 0755, unless the image that mounts it first has the path as a VOLUME.
    await chmod(dir, 0o755);
    const refused = await execa('setpriv', ['--reuid=5996', '--regid=5996', '--clear-groups', SEA, 'mesh-init'], {
      env: meshEnv(sim, meshConfig(stack, dir)),
      extendEnv: false,
      reject: false,
    });
    stack.outputs.push(refused.stderr);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, new RegExp(`cannot write ${join(dir, 'service-token')}: EACCES.*check that ${dir} exists and that uid 5996 can write to it`));
    assert.deepEqual(await services(), [], 'nothing left registered');
    assert.equal((await loginTokens()).length, 0, 'no token left');
    stack.assertNoSecretsPrinted();
  });

  it('control-plane: one process does mesh-init then health-sync, and shuts down cleanly', async () => {
    const cp = stack.spawn(['control-plane'], meshEnv(sim, meshConfig(stack, dir)), { timeoutMs: 120_000 });
    await eventually('registered and passing', 10_000, async () =>
      Object.values(await statusOf()).length === 3 && Object.values(await statusOf()).every((s) => s === 'passing') ? true : undefined,
    );
    await stack.readToken(join(dir, 'service-token'));
    cp.proc.kill('SIGTERM');
    await eventually('all critical', 2000, async () => (Object.values(await statusOf()).every((s) => s === 'critical') ? true : undefined));
    sim.stopContainer('consul-dataplane');
    const res = await cp.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.equal((await services()).length, 0);
    assert.equal((await loginTokens()).length, 0);
    stack.assertNoSecretsPrinted();
  });

  it('SIGTERM during start-up: clean exit, no files, no token, nothing registered', async () => {
    // Consul is down, so mesh-init is retrying its login when SIGTERM arrives.
    await stack.consul.stop();
    const cp = stack.spawn(['control-plane'], meshEnv(sim, meshConfig(stack, dir)), { timeoutMs: 60_000 });
    await eventually('retrying', 10_000, async () => (/login failed; retrying/.test(cp.output()) ? true : undefined));
    cp.proc.kill('SIGTERM');
    const res = await cp.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.deepEqual(await readdir(dir), [], 'no files in the bootstrap dir');
    stack.assertNoSecretsPrinted();
  });

  it('invalid config: a path-naming error, exit 1, nothing written and nothing registered', async () => {
    const bad = meshConfig(stack, dir, { service: { name: 'web', port: 'eighty' }, healthSyncContainers: 'app' });
    const res = await stack.cli(['mesh-init'], meshEnv(sim, bad));
    assert.equal(res.exitCode, 1);
    assert.match(res.stderr, /service\.port|service\/port/);
    assert.match(res.stderr, /healthSyncContainers/);
    assert.deepEqual(await readdir(dir), []);
    assert.equal((await services()).length, 0);
    assert.equal((await loginTokens()).length, 0);
  });
});
