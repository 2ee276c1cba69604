// The built executable against a real 3-server Consul cluster (Raft, ACLs on,
// the aws-iam auth method pointed at moto) while servers fail: the leader
// stopped during mesh-init (given the followers first, or the leader first) and
// during health-sync, a follower lagging while a new token replicates, and
// servers replaced at new addresses under health-sync and the controller.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { ConsulHttpClient, waitForTokenReplication, type AclToken, type HealthCheck } from '@consul-ecs-ts/core';
import { assumeRoleCredentials, EcsAgentSimulator, type EcsAgentSimulatorOptions } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from '../../scripts/lib/aws-admin.ts';
import { ConsulCluster } from '../../scripts/lib/consul-cluster.ts';
import { MotoServer } from '../../scripts/lib/local-stack.ts';
import { eventually, SEA } from '../helpers/mesh-task.ts';

const SERVER_ID = 'consul.test.local';

interface Run {
  exitCode: number;
  output: string;
  durationMs: number;
}

describe('a real Consul cluster: servers failing under mesh-init, health-sync and the controller', () => {
  let moto: MotoServer;
  let cluster: ConsulCluster;
  let sim: EcsAgentSimulator;
  let dir: string;
  let roleName: string;
  let roleArn: string;
  /** Runs once, at the task's first request for its role's credentials (just before it signs its login). */
  let onCredentials: (() => Promise<void>) | undefined;
  const outputs: string[] = [];
  const secrets = new Set<string>();
  let roles = 0;

  before(async () => {
    moto = await MotoServer.start();
    secrets.add(moto.admin.credentials.secretAccessKey);
  });
  after(async () => {
    await moto.dispose();
  });

  beforeEach(async () => {
    cluster = await ConsulCluster.start();
    secrets.add(cluster.managementToken);
    await cluster.configureIamAuthMethod(moto, { serverIdHeaderValue: SERVER_ID });
    roleName = `web-task-${++roles}`;
    roleArn = (await moto.admin.createRole({ name: roleName, path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } })).arn;
    onCredentials = undefined;
    sim = await taskSimulator(roleArn);
    // The cluster's node, as the controller registers it.
    await cluster.api('PUT', '/v1/catalog/register', { Node: sim.clusterArn, Address: '127.0.0.1', NodeMeta: { 'synthetic-node': 'true' } });
    dir = await mkdtemp(join(tmpdir(), 'cluster-bootstrap-'));
  });
  afterEach(async () => {
    await sim.stop();
    await moto.admin.deleteRole(roleName).catch(() => {});
    await cluster.dispose();
    await rm(dir, { recursive: true, force: true });
    assertNoSecretsPrinted();
    outputs.length = 0;
  });

  /** A task's ECS agent, handing out the role's credentials (and running `onCredentials` at the first request). */
  async function taskSimulator(arn: string, opts: EcsAgentSimulatorOptions = {}): Promise<EcsAgentSimulator> {
    const source = assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: arn });
    const agent = new EcsAgentSimulator({
      family: 'web',
      containers: [
        { name: 'app', hasHealthCheck: true, health: 'HEALTHY' },
        { name: 'consul-dataplane', hasHealthCheck: true, health: 'HEALTHY' },
      ],
      ...opts,
      credentials: async () => {
        const hook = onCredentials;
        onCredentials = undefined;
        await hook?.();
        const doc = await source();
        secrets.add(doc.SecretAccessKey);
        if (doc.Token) secrets.add(doc.Token);
        return doc;
      },
    });
    await agent.start();
    secrets.add(agent.authorizationToken);
    return agent;
  }

  function assertNoSecretsPrinted(): void {
    const all = outputs.join('\n');
    for (const s of secrets) if (s.length >= 8) assert.ok(!all.includes(s), `a secret (${s.slice(0, 4)}…) appears in the output`);
  }

  /** The task's config: `hosts` as given (an address or exec=…), plain HTTP to the cluster's ports. */
  function config(hosts: string): Record<string, unknown> {
    return {
      bootstrapDir: dir,
      logLevel: 'DEBUG',
      consulServers: {
        hosts,
        defaults: { tls: false },
        http: { https: false, port: cluster.ports.http },
        grpc: { port: cluster.ports.grpc },
      },
      consulLogin: { enabled: true, stsEndpoint: moto.url, serverIdHeaderValue: SERVER_ID },
      service: { name: 'web', port: 8080 },
      proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
      healthSyncContainers: ['app'],
      transparentProxy: { enabled: false },
    };
  }

  /** Starts the executable as the task's container would; `result` settles when it exits. */
  function spawn(command: string, hosts: string, timeoutMs = 60_000) {
    const started = Date.now();
    const proc = execa(SEA, [command], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...sim.containerEnv(), CONSUL_ECS_CONFIG_JSON: JSON.stringify(config(hosts)) },
      extendEnv: false,
      reject: false,
      timeout: timeoutMs,
      all: true,
    });
    let live = '';
    proc.all?.on('data', (d: Buffer) => (live += d.toString()));
    const result: Promise<Run> = proc.then((r) => {
      outputs.push(String(r.all));
      return { exitCode: r.exitCode ?? -1, output: String(r.all), durationMs: Date.now() - started };
    });
    return { proc, result, output: () => live };
  }

  const serviceId = () => `web-${sim.taskId}`;
  const nodeServiceIds = async () => (await cluster.nodeServices(sim.clusterArn)).map((s) => s.ID).sort();
  const checks = async () => (await cluster.api<HealthCheck[]>('GET', `/v1/health/node/${encodeURIComponent(sim.clusterArn)}`)).filter((c) => c.ServiceID);
  const allStatus = async (status: string) => {
    const cs = await checks();
    return cs.length === 3 && cs.every((c) => c.Status === status) ? true : undefined;
  };
  const tokenFile = () => join(dir, 'service-token');
  const readToken = async () => {
    const token = (await readFile(tokenFile(), 'utf8')).trim();
    secrets.add(token);
    return token;
  };

  /** The task joined exactly once: the service and its sidecar, three checks, one login token (the one it sunk). */
  async function assertJoinedOnce(): Promise<void> {
    assert.deepEqual(await nodeServiceIds(), [serviceId(), `${serviceId()}-sidecar-proxy`]);
    const instances = await cluster.api<Array<{ ServiceID: string }>>('GET', '/v1/catalog/service/web');
    assert.deepEqual(
      instances.map((i) => i.ServiceID),
      [serviceId()],
      'one instance of web',
    );
    assert.equal((await checks()).length, 3);
    const token = await readToken();
    const self = await (await cluster.leader()).client().call<AclToken>({ path: '/v1/acl/token/self', token });
    assert.deepEqual(
      (await cluster.loginTokens()).map((t) => t.AccessorID),
      [self.AccessorID],
      'the sunk token is the only login token',
    );
  }

  /**
   * The leader is stopped at `moment`. mesh-init is given the followers first
   * (it talks to a follower, the other follower and the old leader after it), or
   * with `leaderFirst` the leader first: then the server it talks to stops under it.
   */
  async function meshInitWhileLeaderStops(moment: 'before the login' | 'once the login token exists', opts: { leaderFirst?: boolean } = {}): Promise<Run> {
    const leader = await cluster.leader();
    const followers = await cluster.followers();
    const hosts = await cluster.writeHostsFile(join(dir, 'servers'), opts.leaderFirst ? [leader, ...followers] : [...followers, leader]);
    let stopped: Promise<void> | undefined;
    if (moment === 'before the login') onCredentials = () => (stopped = cluster.stop(leader));
    const mi = spawn('mesh-init', hosts);
    if (moment === 'once the login token exists' && opts.leaderFirst) {
      // mesh-init is held still from its login's answer until the leader has stopped: what it sends after
      // the login (the token's read-back, the registrations) meets a stopped server.
      const held = new Promise<void>((resolve) => {
        const watch = (d: Buffer) => {
          if (!d.toString().includes('logged in to Consul')) return;
          mi.proc.kill('SIGSTOP');
          mi.proc.all?.off('data', watch);
          resolve();
        };
        mi.proc.all?.on('data', watch);
      });
      await Promise.race([held, mi.result]);
      stopped = cluster.stop(leader).finally(() => mi.proc.kill('SIGCONT'));
    } else if (moment === 'once the login token exists') {
      await eventually('the login token', 20_000, async () => ((await leader.api<unknown[]>('GET', '/v1/acl/tokens')).length > 2 ? true : undefined));
      stopped = cluster.stop(leader);
    }
    const res = await mi.result;
    await stopped;
    assert.equal(leader.running, false, 'the leader was stopped');
    assert.notEqual(await cluster.leader(), leader);
    assert.equal(res.exitCode, 0, res.output);
    assert.match(res.output, /successfully initialized the task/);
    await assertJoinedOnce();
    return res;
  }

  it('mesh-init joins once when the leader is stopped just before its login', async () => {
    await meshInitWhileLeaderStops('before the login');
  });

  it('mesh-init joins once when the leader is stopped as its login token is committed', async () => {
    await meshInitWhileLeaderStops('once the login token exists');
  });

  it('mesh-init given the leader first moves to a follower when the leader is stopped just before its login: joins once, inside its deadline', async () => {
    const res = await meshInitWhileLeaderStops('before the login', { leaderFirst: true });
    assert.match(res.output, /switching to Consul server/);
    assert.ok(res.durationMs < 60_000, `mesh-init took ${res.durationMs} ms`);
  });

  it('mesh-init given the leader first goes on through a follower when the leader is stopped as its login token is committed: no second login, no orphan token', async () => {
    const res = await meshInitWhileLeaderStops('once the login token exists', { leaderFirst: true });
    assert.match(res.output, /switching to Consul server/);
    assert.equal(res.output.match(/logged in to Consul/g)?.length, 1, 'one login');
    assert.ok(res.durationMs < 60_000, `mesh-init took ${res.durationMs} ms`);
  });

  it('health-sync talking to the leader goes on after the leader is stopped: changes reach Consul, nothing twice, clean stop', async () => {
    const leader = await cluster.leader();
    const followers = await cluster.followers();
    const hosts = await cluster.writeHostsFile(join(dir, 'servers'), [leader, ...followers]);
    // mesh-init on the followers; health-sync's first choice is the leader.
    const mi = await spawn('mesh-init', await cluster.writeHostsFile(join(dir, 'mesh-init-servers'), followers)).result;
    assert.equal(mi.exitCode, 0, mi.output);
    await readToken();
    const hs = spawn('health-sync', hosts, 90_000);
    try {
      await eventually('passing', 10_000, () => allStatus('passing'));
      await cluster.stop(leader);
      sim.setHealth('app', 'UNHEALTHY');
      await eventually('the change made after the leader stopped', 20_000, () => allStatus('critical'));
      sim.setHealth('app', 'HEALTHY');
      await eventually('and the next', 10_000, () => allStatus('passing'));
      assert.match(hs.output(), /switching to Consul server/);
      assert.deepEqual(await nodeServiceIds(), [serviceId(), `${serviceId()}-sidecar-proxy`], 'registered once');

      hs.proc.kill('SIGTERM');
      await eventually('critical at shutdown', 5000, () => allStatus('critical'));
      sim.stopContainer('consul-dataplane');
      const res = await hs.result;
      assert.equal(res.exitCode, 0, res.output);
      assert.deepEqual(await nodeServiceIds(), [], 'deregistered');
      assert.deepEqual(await cluster.loginTokens(), [], 'logged out');
    } finally {
      hs.proc.kill('SIGKILL');
      await hs.result;
    }
  });

  it('a new token is read back with stale consistency from a lagging follower before it is used there', async () => {
    const [follower] = await cluster.followers();
    const leader = await cluster.leader();
    // The follower freezes; the login goes through the leader meanwhile.
    follower!.pause();
    const loginRun = await execa(
      SEA,
      [
        'login',
        '-http-addr',
        leader.httpAddr,
        '-aws-sts-endpoint',
        moto.url,
        '-aws-iam-endpoint',
        moto.url,
        '-aws-server-id-header-value',
        SERVER_ID,
        '-token-sink-file',
        tokenFile(),
      ],
      { env: { PATH: process.env.PATH ?? '', ...sim.containerEnv() }, extendEnv: false, reject: false, all: true },
    );
    outputs.push(String(loginRun.all));
    assert.equal(loginRun.exitCode, 0, `${loginRun.message}\n${String(loginRun.all)}`);
    const token = await readToken();

    // The follower's log is behind by the token and more writes.
    for (let i = 0; i < 50; i++) await cluster.api('PUT', `/v1/kv/lag/${i}`, 'x'.repeat(1024));
    const onFollower = new ConsulHttpClient({ address: follower!.httpAddr, retryDeadlineMs: 0, timeoutMs: 10_000 });
    try {
      let settled = false;
      const replicated = waitForTokenReplication(onFollower, token, { attempts: 100, intervalMs: 50 }).finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(settled, false, 'the read-back waits while the follower cannot answer');
      follower!.resume();
      const self = await replicated;
      const onLeader = await leader.client().call<AclToken>({ path: '/v1/acl/token/self', token });
      assert.equal(self.AccessorID, onLeader.AccessorID);
      // Usable there: a read the token's service identity allows, answered by the follower itself.
      const services = await onFollower.call<Record<string, string[]>>({ path: '/v1/catalog/services', query: { stale: true }, token });
      assert.equal(typeof services, 'object');
      const kv = await onFollower.call<unknown[]>({ path: '/v1/kv/lag/49', query: { stale: true }, token: cluster.managementToken });
      assert.equal(kv.length, 1, 'the follower had caught up with the writes made after the token');
    } finally {
      follower!.resume();
      await onFollower.close();
    }
  });

  it('mesh-init pointed only at a lagging follower waits until the follower knows its token, then the token works there', async () => {
    const [follower] = await cluster.followers();
    follower!.pause();
    const mi = spawn('mesh-init', follower!.address);
    for (let i = 0; i < 50; i++) await cluster.api('PUT', `/v1/kv/lag/${i}`, 'x'.repeat(1024));
    await new Promise((r) => setTimeout(r, 1000));
    follower!.resume();
    const res = await mi.result;
    assert.equal(res.exitCode, 0, res.output);
    assert.match(res.output, /the token reads back with stale consistency/);
    await assertJoinedOnce();
    const token = await readToken();
    const onFollower = follower!.client();
    try {
      await onFollower.call({ path: '/v1/acl/token/self', query: { stale: true }, token });
      await onFollower.call({ path: '/v1/catalog/services', query: { stale: true }, token });
    } finally {
      await onFollower.close();
    }
  });

  it('health-sync follows the servers when all are replaced at new addresses and consulServers.hosts re-resolves', async () => {
    const serversFile = join(dir, 'servers');
    const hosts = await cluster.writeHostsFile(serversFile);
    const mi = await spawn('mesh-init', hosts).result;
    assert.equal(mi.exitCode, 0, mi.output);
    await readToken();
    const hs = spawn('health-sync', hosts, 90_000);
    try {
      await eventually('passing', 10_000, () => allStatus('passing'));
      // Three new servers join at new addresses; the three the task was given leave, one by one.
      const originals = [...cluster.servers];

      await Promise.all(originals.map(() => cluster.add({}, { voter: true })));
      let health: 'HEALTHY' | 'UNHEALTHY' = 'HEALTHY';
      for (const old of originals) {
        await cluster.remove(old);
        await cluster.writeHostsFile(serversFile);
        health = health === 'HEALTHY' ? 'UNHEALTHY' : 'HEALTHY';
        sim.setHealth('app', health);
        await eventually(`the change after ${old.name} left`, 25_000, () => allStatus(health === 'HEALTHY' ? 'passing' : 'critical'));
      }
      const newOrigins = cluster.running().map((s) => s.httpAddr.replace(/^http:\/\//, ''));
      assert.match(hs.output(), /found the Consul servers at new addresses/);
      assert.ok(
        newOrigins.some((o) => hs.output().includes(o)),
        'it talks to a new server',
      );

      hs.proc.kill('SIGTERM');
      await eventually('critical at shutdown', 5000, () => allStatus('critical'));
      sim.stopContainer('consul-dataplane');
      const res = await hs.result;
      assert.equal(res.exitCode, 0, res.output);
      assert.deepEqual(await nodeServiceIds(), [], 'deregistered through a new server');
      assert.deepEqual(await cluster.loginTokens(), [], 'logged out through a new server');
    } finally {
      hs.proc.kill('SIGKILL');
      await hs.result;
    }
  });
  it("the controller follows the servers when all are replaced at new addresses: a stopped task's token and instances are removed through a new server", async () => {
    // The controller's own task and a mesh task, running in moto's ECS cluster.
    const ecsCluster = 'cluster-with-replaced-servers';
    await moto.admin.createCluster(ecsCluster);
    const [own] = await moto.admin.runTasks(ecsCluster, 'consul-ecs-controller');
    const [meshTask] = await moto.admin.runTasks(ecsCluster, 'web', { tags: { 'consul.hashicorp.com/mesh': 'true' } });
    const controllerRole = `controller-task-${roles}`;
    const role = await moto.admin.createRole({
      name: controllerRole,
      path: '/ecs/',
      tags: {},
      allowGetRole: false,
      allowActions: ['ecs:ListTasks', 'ecs:DescribeTasks'],
    });
    const taskIdOf = (arn: string) => arn.split('/').pop()!;
    const ctrlSim = await taskSimulator(role.arn, {
      cluster: ecsCluster,
      family: 'consul-ecs-controller',
      taskId: taskIdOf(own!.taskArn!),
      containers: [{ name: 'consul-ecs-controller', hasHealthCheck: false }],
    });
    await sim.stop();
    sim = await taskSimulator(roleArn, { cluster: ecsCluster, taskId: taskIdOf(meshTask!.taskArn!) });
    assert.equal(sim.clusterArn, ctrlSim.clusterArn);
    const serversFile = join(dir, 'servers');
    const hosts = await cluster.writeHostsFile(serversFile);
    const controllerConfig = {
      bootstrapDir: '/consul',
      logLevel: 'DEBUG',
      controller: { iamRolePath: '/consul-ecs/', partitionsEnabled: false, partition: '' },
      consulServers: { ...(config(hosts).consulServers as object) },
    };
    const started = Date.now();
    const controller = execa(SEA, ['controller'], {
      env: {
        PATH: process.env.PATH ?? '',
        ...ctrlSim.containerEnv(),
        CONSUL_ECS_CONFIG_JSON: JSON.stringify(controllerConfig),
        CONSUL_HTTP_TOKEN: cluster.managementToken,
        AWS_ENDPOINT_URL_ECS: moto.url,
      },
      extendEnv: false,
      reject: false,
      timeout: 120_000,
      all: true,
    });
    let output = '';
    controller.all?.on('data', (d: Buffer) => (output += d.toString()));
    try {
      await eventually("the controller's first pass", 30_000, async () => (/reconcile finished/.test(output) ? true : undefined));
      const mi = await spawn('mesh-init', hosts).result;
      assert.equal(mi.exitCode, 0, mi.output);
      await assertJoinedOnce();
      const passes = () => output.match(/reconcile finished/g)?.length ?? 0;
      const before = passes();
      await eventually('a pass that leaves the running task as it is', 15_000, async () => (passes() > before ? true : undefined));
      assert.equal((await cluster.loginTokens()).length, 1);

      // Three new servers join at new addresses; the three the controller was given leave.
      const originals = [...cluster.servers];
      await Promise.all(originals.map(() => cluster.add({}, { voter: true })));
      for (const old of originals) await cluster.remove(old);
      await cluster.writeHostsFile(serversFile);
      await moto.admin.stopTask(ecsCluster, meshTask!.taskArn!);

      await eventually("the stopped task's token and instances removed", 30_000, async () =>
        (await cluster.loginTokens()).length === 0 && (await nodeServiceIds()).length === 0 ? true : undefined,
      );
      assert.match(output, /found the Consul servers at new addresses/);
      assert.match(output, /deleted the login token of a task that no longer runs/);
      assert.equal(output.match(/deregistered a service of a task that no longer runs/g)?.length, 2);
      const newAddresses = cluster.running().map((s) => s.httpAddr);
      assert.ok(
        newAddresses.some((a) => output.includes(a)),
        `it talks to a new server (${newAddresses.join(', ')})`,
      );
      controller.kill('SIGTERM');
      const res = await controller;
      assert.equal(res.exitCode, 0, output);
      // Mostly the servers' replacement; the controller's own part is one pass (10 s) at most.
      assert.ok(Date.now() - started < 90_000, `${Date.now() - started} ms`);
    } finally {
      controller.kill('SIGKILL');
      await controller;
      outputs.push(output);
      await ctrlSim.stop();
      await moto.admin.deleteRole(controllerRole).catch(() => {});
    }
  });
});
