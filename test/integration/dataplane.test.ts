// HashiCorp's real consul-dataplane, started from the consul-dataplane.json that
// mesh-init wrote, against a real Consul (ACLs on, the aws-iam auth method pointed
// at moto) and a real Envoy: every shape a terraform mesh task can give it reaches
// ready (its ready port answers, and `<bootstrapDir>/consul-ecs net-dial`, the
// dataplane container's health check, exits 0). Every file is first decoded by
// consul-dataplane's own config types with unknown keys refused, for each release
// the peers install (scripts/lib/dataplane.ts).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { AclTokenListEntry } from '@consul-ecs-ts/core';
import type { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import {
  DATAPLANE_RELEASES,
  dataplaneAccepts,
  startDataplane,
  type DataplaneRelease,
  type DataplaneRuntimeConfig,
  type RunningDataplane,
} from '../../scripts/lib/dataplane.ts';
import { freePorts } from '../../scripts/lib/local-stack.ts';
import { LoginStack } from '../helpers/login-stack.ts';
import { eventually, meshConfig, meshEnv, registerClusterNode } from '../helpers/mesh-task.ts';

/** A loopback address Consul listens on that its TLS certificate (server.dc1.consul, localhost, 127.0.0.1) does not name. */
const UNNAMED_ADDRESS = '127.0.0.2';
const SERVER_NAME = 'server.dc1.consul';

interface InitialisedTask {
  dir: string;
  sim: EcsAgentSimulator;
  readyPort: number;
  configFile: string;
  /** What each release of consul-dataplane made of the file. */
  accepted: Record<DataplaneRelease, DataplaneRuntimeConfig>;
}

describe('consul-dataplane from the files mesh-init wrote', () => {
  let stack: LoginStack;
  const dirs: string[] = [];
  const running: RunningDataplane[] = [];
  let tasks = 0;

  before(async () => {
    stack = await LoginStack.start({ tls: true, alsoListenOn: [UNNAMED_ADDRESS] });
  });
  after(async () => {
    for (const dp of running) await dp.stop(5000);
    await stack.dispose();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const plainServers = () => ({
    hosts: '127.0.0.1',
    defaults: { tls: false },
    http: { https: false, port: stack.consul.ports.http },
    grpc: { port: stack.consul.ports.grpc },
  });
  /** gRPC over TLS (the CA from CONSUL_GRPC_CACERT_PEM); HTTP stays plain. */
  const tlsServers = (hosts: string, tlsServerName?: string) => ({
    hosts,
    defaults: { tls: false },
    http: { https: false, port: stack.consul.ports.http },
    grpc: { port: stack.consul.ports.grpcTls, tls: true, ...(tlsServerName ? { tlsServerName } : {}) },
  });

  /**
   * A task of its own (role tagged for `service`, simulator, cluster node) runs
   * mesh-init with `over` merged into the usual config; the file it wrote must be
   * accepted by every release of consul-dataplane.
   */
  async function initialise(
    service: string,
    over: Record<string, unknown>,
    env: Record<string, string> = {},
    opts: { roleService?: string } = {},
  ): Promise<InitialisedTask> {
    tasks++;
    const role = await stack.role(`dp-${service}-${tasks}`, { service: opts.roleService ?? service });
    const sim = await stack.simulator(role.arn, {
      family: service,
      containers: [
        { name: 'app', hasHealthCheck: true },
        { name: 'consul-dataplane', hasHealthCheck: true },
      ],
    });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'dataplane-'));
    dirs.push(dir);
    const [readyPort, publicPort] = await freePorts(2);
    const config = meshConfig(stack, dir, {
      service: { name: service, port: 8080 },
      proxy: { healthCheckPort: readyPort, publicListenerPort: publicPort },
      ...over,
    });
    const res = await stack.cli(['mesh-init'], meshEnv(sim, config, env));
    assert.equal(res.exitCode, 0, `mesh-init failed:\n${res.stderr}`);
    if (!env.CONSUL_HTTP_TOKEN) await stack.readToken(join(dir, 'service-token'));
    const configFile = join(dir, 'consul-dataplane.json');
    const accepted = {} as InitialisedTask['accepted'];
    for (const release of DATAPLANE_RELEASES) accepted[release] = await dataplaneAccepts(configFile, release);
    const gatewayReadyPort = (over.gateway as { healthCheckPort?: number } | undefined)?.healthCheckPort;
    return { dir, sim, readyPort: gatewayReadyPort ?? readyPort!, configFile, accepted };
  }

  /** Starts consul-dataplane (under `wrapper` if given) and waits until the task's health check passes. */
  async function untilReady(
    task: InitialisedTask,
    opts: { release?: DataplaneRelease; wrapper?: string[]; env?: Record<string, string> } = {},
  ): Promise<RunningDataplane> {
    const dp = await startDataplane(task.configFile, { ...opts, logLevel: 'debug' });
    running.push(dp);
    await eventually(`consul-dataplane ${opts.release ?? ''} ready on ${task.readyPort}`, 60_000, async () => {
      if (dp.proc.exitCode !== null) throw new Error(`consul-dataplane exited ${dp.proc.exitCode}:\n${dp.output().slice(-3000)}`);
      const res = await fetch(`http://127.0.0.1:${task.readyPort}/ready`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 200 ? true : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n--- consul-dataplane's output:\n${dp.output().slice(-4000)}`);
    });
    const dial = await execa(join(task.dir, 'consul-ecs'), ['net-dial', `127.0.0.1:${task.readyPort}`], {
      env: { PATH: '/nonexistent' },
      extendEnv: false,
      reject: false,
    });
    assert.equal(dial.exitCode, 0, `net-dial 127.0.0.1:${task.readyPort} exited ${dial.exitCode}: ${dial.stderr}`);
    stack.outputs.push(dp.output());
    return dp;
  }

  /** Stops it, expecting a clean exit, and returns what it printed. */
  async function stopCleanly(dp: RunningDataplane): Promise<string> {
    const code = await dp.stop();
    running.splice(running.indexOf(dp), 1);
    stack.outputs.push(dp.output());
    assert.equal(code, 0, `consul-dataplane exit code after SIGTERM:\n${dp.output().slice(-3000)}`);
    return dp.output();
  }

  /** The login tokens Consul holds for a task (mesh-init's and the dataplane's own). */
  const tokensOf = async (sim: EcsAgentSimulator): Promise<AclTokenListEntry[]> => {
    const all = await stack.consul.api<Array<AclTokenListEntry & { AccessorID: string }>>('GET', '/v1/acl/tokens');
    const withMeta = await Promise.all(
      all
        .filter((t) => t.AuthMethod)
        .map((t) => stack.consul.api<{ Description: string }>('GET', `/v1/acl/token/${t.AccessorID}`).then((full) => ({ t, full }))),
    );
    return withMeta.filter(({ full }) => full.Description.includes(sim.taskId)).map(({ t }) => t);
  };

  it('plain gRPC: each release logs in with the bearer token in the file, gets its bootstrap and becomes ready; a clean exit logs its token out', async () => {
    const task = await initialise('plain', { consulServers: plainServers() });
    for (const release of DATAPLANE_RELEASES) {
      const cfg = task.accepted[release];
      assert.equal(cfg.credentialsType, 'login');
      assert.equal(cfg.loginAuthMethod, 'iam-ecs-service-token');
      assert.ok(cfg.loginBearerTokenSet);
      assert.equal(cfg.loginMeta?.['consul.hashicorp.com/task-id'], task.sim.taskId);
      assert.equal(cfg.tlsDisabled, true);
      assert.equal(cfg.proxyID, `plain-${task.sim.taskId}-sidecar-proxy`);
      assert.equal(cfg.readyBindPort, task.readyPort);

      const dp = await untilReady(task, { release });
      assert.equal((await tokensOf(task.sim)).length, 2, "mesh-init's token and the dataplane's own");
      await stopCleanly(dp);
      assert.equal((await tokensOf(task.sim)).length, 1, 'the dataplane logged its token out');
    }
    stack.assertNoSecretsPrinted();
  });

  it('gRPC TLS to an address the server certificate names: the CA from CONSUL_GRPC_CACERT_PEM is enough', async () => {
    const task = await initialise('tlsnamed', { consulServers: tlsServers('127.0.0.1') }, { CONSUL_GRPC_CACERT_PEM: stack.consul.caPem });
    const cfg = task.accepted['1.9.9'];
    assert.equal(cfg.tlsDisabled, false);
    assert.equal(cfg.caCertsPath, join(task.dir, 'consul-grpc-ca-cert.pem'));
    assert.equal(cfg.serverName, '');
    await stopCleanly(await untilReady(task));
    stack.assertNoSecretsPrinted();
  });

  it('gRPC TLS to an address the certificate does not name: the configured server name reaches consul-dataplane, which checks it', async () => {
    const task = await initialise('tlsunnamed', { consulServers: tlsServers(UNNAMED_ADDRESS, SERVER_NAME) }, { CONSUL_GRPC_CACERT_PEM: stack.consul.caPem });
    for (const release of DATAPLANE_RELEASES) assert.equal(task.accepted[release].serverName, SERVER_NAME, release);
    await stopCleanly(await untilReady(task));

    // Without the name the same address is refused: the name is what makes it work.
    const unnamed = await initialise('tlsnoname', { consulServers: tlsServers(UNNAMED_ADDRESS) }, { CONSUL_GRPC_CACERT_PEM: stack.consul.caPem });
    assert.equal(unnamed.accepted['1.9.9'].serverName, '');
    const dp = await startDataplane(unnamed.configFile, { logLevel: 'debug' });
    running.push(dp);
    await eventually('a certificate error in the dataplane output', 30_000, async () => (/x509|certificate/i.test(dp.output()) ? true : undefined)).catch(
      () => {},
    );
    assert.match(dp.output(), /x509: certificate is valid for .*not 127\.0\.0\.2|certificate/i);
    const res = await fetch(`http://127.0.0.1:${unnamed.readyPort}/ready`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
    assert.notEqual(res?.status, 200, 'not ready without the server name');
    await dp.stop(5000);
    running.splice(running.indexOf(dp), 1);
    stack.outputs.push(dp.output());
    stack.assertNoSecretsPrinted();
  });

  it('exec= hosts with gRPC TLS: consul-dataplane runs the command for its addresses and checks the configured server name', async () => {
    const hosts = `exec=echo ${UNNAMED_ADDRESS}`;
    const task = await initialise('execd', { consulServers: tlsServers(hosts, SERVER_NAME) }, { CONSUL_GRPC_CACERT_PEM: stack.consul.caPem });
    for (const release of DATAPLANE_RELEASES) {
      assert.equal(task.accepted[release].addresses, hosts);
      assert.equal(task.accepted[release].serverName, SERVER_NAME);
    }
    await stopCleanly(await untilReady(task, { release: '2.0.1' }));
    await stopCleanly(await untilReady(task));
    stack.assertNoSecretsPrinted();
  });

  it('CONSUL_HTTP_TOKEN: no login; consul-dataplane uses the same token as static credentials and leaves it in place', async () => {
    const { SecretID: token, AccessorID } = await stack.consul.api<{ SecretID: string; AccessorID: string }>('PUT', '/v1/acl/token', {
      ServiceIdentities: [{ ServiceName: 'static' }],
    });
    stack.secrets.add(token);
    const task = await initialise('static', { consulServers: plainServers() }, { CONSUL_HTTP_TOKEN: token });
    for (const release of DATAPLANE_RELEASES) {
      assert.equal(task.accepted[release].credentialsType, 'static');
      assert.ok(task.accepted[release].staticTokenSet);
    }
    await stopCleanly(await untilReady(task));
    assert.equal((await tokensOf(task.sim)).length, 0, 'nobody logged in');
    await stack.consul.api('GET', `/v1/acl/token/${AccessorID}`);
    stack.assertNoSecretsPrinted();
  });

  it('a mesh gateway: consul-dataplane runs it as a gateway and reports ready on its health check port', async () => {
    await stack.bindMeshGatewayRole('dpgw');
    const [lanPort, healthCheckPort] = await freePorts(2);
    const task = await initialise('dpgw', {
      consulServers: plainServers(),
      service: undefined,
      proxy: undefined,
      healthSyncContainers: [],
      gateway: { kind: 'mesh-gateway', name: 'dpgw', lanAddress: { address: '127.0.0.1', port: lanPort }, healthCheckPort },
    });
    const cfg = task.accepted['1.9.9'];
    assert.equal(cfg.proxyID, `dpgw-${task.sim.taskId}`);
    assert.equal(cfg.readyBindPort, healthCheckPort);
    const dp = await untilReady(task);
    // Its listener on the LAN port came from Consul.
    const listeners = (await (await fetch(`http://127.0.0.1:${dp.adminPort}/listeners?format=json`)).json()) as { listener_statuses?: Array<{ name: string }> };
    assert.ok(
      listeners.listener_statuses?.some((l) => l.name.includes(String(lanPort))),
      JSON.stringify(listeners),
    );
    await stopCleanly(dp);
    stack.assertNoSecretsPrinted();
  });

  it('under envoy-entrypoint: SIGTERM is held until the app containers stop, then consul-dataplane exits cleanly and logs out', async () => {
    const task = await initialise('held', { consulServers: plainServers() });
    const entrypoint = [join(task.dir, 'consul-ecs'), 'envoy-entrypoint'];
    const dp = await untilReady(task, { wrapper: entrypoint, env: task.sim.containerEnv() });
    assert.equal((await tokensOf(task.sim)).length, 2);

    dp.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(dp.proc.exitCode, null, 'still running while the app runs');
    const ready = await fetch(`http://127.0.0.1:${task.readyPort}/ready`);
    assert.equal(ready.status, 200, 'Envoy still serves while the app runs');

    task.sim.stopContainer('app');
    const code = await eventually('envoy-entrypoint exits', 20_000, async () => (dp.proc.exitCode !== null ? dp.proc.exitCode : undefined));
    running.splice(running.indexOf(dp), 1);
    stack.outputs.push(dp.output());
    assert.equal(code, 0, dp.output().slice(-3000));
    assert.equal((await tokensOf(task.sim)).length, 1, 'the dataplane logged its token out');
    stack.assertNoSecretsPrinted();
  });
});
