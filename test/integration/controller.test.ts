// The controller against a real Consul (ACLs on), moto's ECS and IAM (signatures
// and IAM policies enforced) and the ECS agent simulator for its own task: what
// it sets up in Consul, and how it removes what stopped tasks left behind.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import type { AclAuthMethod, AclBindingRule, AclPolicy, AclRole, AclToken, AclTokenListEntry } from '@consul-ecs-ts/core';
import type { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { CLUSTER, controllerConfig, controllerEnv, controllerTask } from '../helpers/controller-task.ts';
import { LoginStack } from '../helpers/login-stack.ts';
import { eventually, meshConfig, meshEnv, registerClusterNode, SEA } from '../helpers/mesh-task.ts';

/** A mesh task: running in moto's ECS, logged in and registered by a real mesh-init (plain HTTP). */
async function meshTask(stack: LoginStack, dir: string, service: string, roleArn: string) {
  const [task] = await stack.moto.admin.runTasks(CLUSTER, service, { tags: { 'consul.hashicorp.com/mesh': 'true' } });
  const taskArn = task!.taskArn!;
  const sim = await stack.simulator(roleArn, {
    cluster: CLUSTER,
    family: service,
    taskId: taskArn.split('/').pop()!,
    containers: [
      { name: 'app', hasHealthCheck: true },
      { name: 'consul-dataplane', hasHealthCheck: true },
    ],
  });
  const bootstrap = await mkdtemp(join(dir, `${service}-`));
  const env = meshEnv(sim, meshConfig(stack, bootstrap, { service: { name: service, port: 8080 } }));
  const res = await stack.cli(['mesh-init'], env);
  assert.equal(res.exitCode, 0, res.stderr);
  return { taskArn, taskId: sim.taskId, serviceId: `${service}-${sim.taskId}`, sim, env };
}

/** Whether a login token belongs to the task. */
const tokenOfTask = (taskId: string) => (t: AclTokenListEntry) => t.Description?.includes(`"consul.hashicorp.com/task-id":"${taskId}"`) ?? false;

describe('controller against Consul, moto (ECS, IAM) and the simulated task', () => {
  let stack: LoginStack;
  let dir: string;
  let clusterArn: string;
  let ctrlSim: EcsAgentSimulator;
  const runs: Array<ReturnType<LoginStack['spawn']>> = [];

  /** Starts the controller and waits for its first pass over the cluster. */
  const startController = async (env = controllerEnv(stack, ctrlSim)) => {
    const run = stack.spawn(['controller'], env, { timeoutMs: 120_000 });
    runs.push(run);
    await eventually('the controller to finish a pass', 30_000, async () =>
      /reconcile finished|error during reconcile/.test(run.output()) ? true : undefined,
    );
    return run;
  };
  const stop = async (run: ReturnType<LoginStack['spawn']>) => {
    run.proc.kill('SIGTERM');
    return run.result;
  };
  const nodeServices = () => stack.nodeServices(clusterArn);
  const loginTokens = () => stack.loginTokens();

  beforeEach(async () => {
    stack = await LoginStack.start();
    dir = await mkdtemp(join(tmpdir(), 'controller-test-'));
    ({ clusterArn, sim: ctrlSim } = await controllerTask(stack));
  });
  afterEach(async (t) => {
    for (const run of runs.splice(0)) {
      if (run.proc.exitCode === null) {
        run.proc.kill('SIGKILL');
        // Its output, for the failure report.
        if ('diagnostic' in t) t.diagnostic(run.output());
      }
    }
    await stack.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('sets up the auth method, binding rules, gateway policies and roles, the anonymous token and the cluster node; again changes nothing', async () => {
    const run = await startController();
    const account = stack.moto.admin.account;

    // The auth method the stack made (seed 001, STS/IAM at moto) keeps its settings and gains the controller's.
    const method = await stack.consul.api<AclAuthMethod>('GET', '/v1/acl/auth-method/iam-ecs-service-token');
    assert.equal(method.Type, 'aws-iam');
    assert.deepEqual(method.Config?.BoundIAMPrincipalARNs, [`arn:aws:iam::${account}:role/consul-ecs/*`]);
    assert.deepEqual(method.Config?.IAMEntityTags, [
      'consul.hashicorp.com.gateway-kind',
      'consul.hashicorp.com.namespace',
      'consul.hashicorp.com.service-name',
    ]);
    assert.equal(method.Config?.EnableIAMEntityDetails, true);
    assert.equal(method.Config?.STSEndpoint, stack.moto.url);
    assert.equal(method.Config?.ServerIDHeaderValue, 'consul.test.local');

    const rules = await stack.consul.api<AclBindingRule[]>('GET', '/v1/acl/binding-rules?authmethod=iam-ecs-service-token');
    const ours = rules.filter((r) => r.Description?.endsWith('for ECS') || r.Description?.includes('gateways'));
    assert.deepEqual(ours.map((r) => [r.BindType, r.BindName, r.Selector ?? '']).sort(), [
      ['role', 'consul-ecs-api-gateway-role', 'entity_tags["consul.hashicorp.com.gateway-kind"] == "api-gateway"'],
      ['role', 'consul-ecs-mesh-gateway-role', 'entity_tags["consul.hashicorp.com.gateway-kind"] == "mesh-gateway"'],
      ['role', 'consul-ecs-terminating-gateway-role', 'entity_tags["consul.hashicorp.com.gateway-kind"] == "terminating-gateway"'],
      ['service', '${entity_tags.consul.hashicorp.com.service-name}', ''],
    ]);

    const policy = (name: string) => stack.consul.api<AclPolicy>('GET', `/v1/acl/policy/name/${name}`);
    const role = (name: string) => stack.consul.api<AclRole>('GET', `/v1/acl/role/name/${name}`);
    assert.match((await policy('consul-ecs-api-gateway-policy')).Rules!, /^mesh = "read"\n\tnode_prefix "" \{\n\t\tpolicy = "read"/);
    assert.equal((await policy('consul-ecs-mesh-gateway-policy')).Rules, 'mesh = "write"\npeering = "read"');
    assert.deepEqual(
      (await role('consul-ecs-api-gateway-role')).Policies?.map((p) => p.Name),
      ['consul-ecs-api-gateway-policy'],
    );
    assert.deepEqual(
      (await role('consul-ecs-mesh-gateway-role')).Policies?.map((p) => p.Name),
      ['consul-ecs-mesh-gateway-policy'],
    );
    assert.deepEqual((await role('consul-ecs-terminating-gateway-role')).Policies ?? [], []);

    const anonymous = await stack.consul.api<AclToken>('GET', '/v1/acl/token/00000000-0000-0000-0000-000000000002');
    assert.deepEqual(
      anonymous.Policies?.map((p) => p.Name),
      ['anonymous-token-policy'],
    );
    assert.match((await policy('anonymous-token-policy')).Rules!, /node_prefix "" \{\s+policy = "read"[\s\S]*service_prefix "" \{\s+policy = "read"/);

    const node = await stack.consul.api<{ Node: { Node: string; Address: string; Meta: Record<string, string> } }>(
      'GET',
      `/v1/catalog/node/${encodeURIComponent(clusterArn)}`,
    );
    assert.equal(node.Node.Meta['synthetic-node'], 'true');

    const done = await stop(run);
    assert.equal(done.exitCode, 0, done.stderr);

    // A second controller (a restarted task) finds everything in place.
    const before = JSON.stringify([
      rules.length,
      (await stack.consul.api<unknown[]>('GET', '/v1/acl/policies')).length,
      (await stack.consul.api<unknown[]>('GET', '/v1/acl/roles')).length,
    ]);
    const again = await stop(await startController());
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stderr, /ACL auth method already exists; skipping update/);
    assert.match(again.stderr, /anonymous token policy is already attached/);
    const after = JSON.stringify([
      (await stack.consul.api<unknown[]>('GET', '/v1/acl/binding-rules?authmethod=iam-ecs-service-token')).length,
      (await stack.consul.api<unknown[]>('GET', '/v1/acl/policies')).length,
      (await stack.consul.api<unknown[]>('GET', '/v1/acl/roles')).length,
    ]);
    assert.equal(after, before);
    stack.assertNoSecretsPrinted();
  });

  it('creates the auth method when there is none, as consul-ecs configures it', async () => {
    await stack.consul.api('DELETE', '/v1/acl/auth-method/iam-ecs-service-token');
    const done = await stop(await startController());
    assert.equal(done.exitCode, 0, done.stderr);
    assert.match(done.stderr, /ACL auth method created/);
    const method = await stack.consul.api<AclAuthMethod>('GET', '/v1/acl/auth-method/iam-ecs-service-token');
    assert.equal(method.Description, 'AWS IAM auth method for ECS service tokens');
    assert.deepEqual(method.Config, {
      BoundIAMPrincipalARNs: [`arn:aws:iam::${stack.moto.admin.account}:role/consul-ecs/*`],
      EnableIAMEntityDetails: true,
      IAMEntityTags: ['consul.hashicorp.com.gateway-kind', 'consul.hashicorp.com.namespace', 'consul.hashicorp.com.service-name'],
    });
  });

  it('removes the tokens and service instances of tasks that stopped, at start and on later passes; running tasks keep theirs', async () => {
    // The tasks started before this controller did: a node registered by an earlier one.
    await registerClusterNode(stack, clusterArn);
    const web = await stack.role('web-task', { service: 'web' });
    const api = await stack.role('api-task', { service: 'api' });
    const a = await meshTask(stack, dir, 'web', web.arn);
    const b = await meshTask(stack, dir, 'api', api.arn);
    const c = await meshTask(stack, dir, 'web', web.arn);
    // A login token of another cluster's task, which this controller must not touch.
    const foreign = await stack.consul.api<AclToken>('PUT', '/v1/acl/token', {
      Description: `token created via login: {"consul.hashicorp.com/cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/other","consul.hashicorp.com/task-id":"0123"}`,
      ServiceIdentities: [{ ServiceName: 'web' }],
    });
    const tokensOf = async (taskId: string) => (await loginTokens()).filter(tokenOfTask(taskId));
    assert.equal((await tokensOf(a.taskId)).length, 1);
    assert.equal((await nodeServices()).length, 6);

    // Task a stopped before the controller started: its first pass cleans up.
    await stack.moto.admin.stopTask(CLUSTER, a.taskArn);
    const run = await startController();
    await eventually('task a cleaned up', 10_000, async () => ((await tokensOf(a.taskId)).length === 0 ? true : undefined));
    let ids = (await nodeServices()).map((s) => s.ID).sort();
    assert.deepEqual(ids, [b.serviceId, `${b.serviceId}-sidecar-proxy`, c.serviceId, `${c.serviceId}-sidecar-proxy`].sort());
    assert.equal((await tokensOf(b.taskId)).length, 1);
    assert.equal((await tokensOf(c.taskId)).length, 1);

    // Task b stops while it runs: the next pass (10 s later) cleans up.
    await stack.moto.admin.stopTask(CLUSTER, b.taskArn);
    await eventually('task b cleaned up', 25_000, async () => ((await tokensOf(b.taskId)).length === 0 ? true : undefined));
    await eventually('task b deregistered', 5_000, async () => ((await nodeServices()).every((s) => !s.ID.startsWith(b.serviceId)) ? true : undefined));
    ids = (await nodeServices()).map((s) => s.ID).sort();
    assert.deepEqual(ids, [c.serviceId, `${c.serviceId}-sidecar-proxy`].sort());
    assert.equal((await tokensOf(c.taskId)).length, 1);
    assert.equal((await stack.consul.api<AclToken>('GET', `/v1/acl/token/${foreign.AccessorID}`)).AccessorID, foreign.AccessorID);

    const done = await stop(run);
    assert.equal(done.exitCode, 0, done.stderr);
    assert.match(done.stderr, new RegExp(`deleted the login token of a task that no longer runs.*task-id=${a.taskId}`));
    assert.match(done.stderr, new RegExp(`deregistered a service of a task that no longer runs.*id=${b.serviceId}-sidecar-proxy`));
    stack.assertNoSecretsPrinted();
  });

  it('a task that stops while the controller runs: health-sync still ends cleanly when the controller removed its token first', async () => {
    await registerClusterNode(stack, clusterArn);
    const web = await stack.role('web-task', { service: 'web' });
    const a = await meshTask(stack, dir, 'web', web.arn);
    const sync = stack.spawn(['health-sync'], a.env, { timeoutMs: 90_000 });
    await eventually('health-sync running', 10_000, async () => (/syncing ECS health into Consul/.test(sync.output()) ? true : undefined));
    const ctrl = await startController();

    // ECS stops the task: health-sync gets SIGTERM and waits for the dataplane container,
    // and meanwhile the controller's next pass removes the task's token and services.
    await stack.moto.admin.stopTask(CLUSTER, a.taskArn);
    // Signalled directly: execa's kill() would follow up with SIGKILL after 5 s.
    process.kill(sync.proc.pid!, 'SIGTERM');
    await eventually('the controller removed the token', 25_000, async () => ((await loginTokens()).length === 0 ? true : undefined));
    a.sim.setContainer({ name: 'consul-dataplane', desiredStatus: 'STOPPED', knownStatus: 'STOPPED' });
    const res = await sync.result;
    assert.equal(res.exitCode, 0, res.stderr);
    assert.match(res.stderr, /the service token no longer exists: the controller has deleted it/);
    assert.deepEqual(await nodeServices(), []);
    assert.equal((await stop(ctrl)).exitCode, 0);
    stack.assertNoSecretsPrinted();
  });

  it('removes nothing when ECS refuses the listing, and says why', async () => {
    await registerClusterNode(stack, clusterArn);
    const web = await stack.role('web-task', { service: 'web' });
    const a = await meshTask(stack, dir, 'web', web.arn);
    await stack.moto.admin.stopTask(CLUSTER, a.taskArn);
    const role = await stack.role('controller-no-ecs', { path: '/ecs/', service: null, allowGetRole: false });
    ctrlSim = await stack.simulator(role.arn, { cluster: CLUSTER, family: 'consul-ecs-controller', taskId: ctrlSim.taskId });
    const run = await startController();
    const done = await stop(run);
    assert.equal(done.exitCode, 0, done.stderr);
    assert.match(
      done.stderr,
      /error during reconcile.*AWS ListTasks at http:\/\/127\.0\.0\.1:\d+ failed with HTTP 403 AccessDenied: .*not authorized to perform: ecs:ListTasks/,
    );
    assert.equal((await nodeServices()).length, 2);
    assert.equal((await loginTokens()).length, 1);
    stack.assertNoSecretsPrinted();
  });

  it('retries while Consul is unreachable at start, then sets it up', async () => {
    await stack.consul.stop();
    const run = stack.spawn(['controller'], controllerEnv(stack, ctrlSim), { timeoutMs: 120_000 });
    runs.push(run);
    await eventually('retrying', 10_000, async () =>
      /unable to set up Consul for the cluster; retrying.*could not connect/.test(run.output()) ? true : undefined,
    );
    await stack.consul.restart();
    await eventually('set up', 30_000, async () => (/registered the cluster node/.test(run.output()) ? true : undefined));
    const done = await stop(run);
    assert.equal(done.exitCode, 0, done.stderr);
    assert.equal((await stack.consul.api<AclAuthMethod>('GET', '/v1/acl/auth-method/iam-ecs-service-token')).Type, 'aws-iam');
    stack.assertNoSecretsPrinted();
  });

  it("the executable on a read-only root file system (terraform's controller module sets readonlyRootFilesystem) sets Consul up, and exits 0 on SIGTERM", async () => {
    // A bind mount of / made read-only in a mount namespace of its own: the host's stays writable.
    const script = 'mount --bind / / && mount -o remount,bind,ro / && exec "$0" controller';
    const proc = execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, SEA], {
      env: { PATH: process.env.PATH ?? '', ...controllerEnv(stack, ctrlSim) },
      extendEnv: false,
      reject: false,
      timeout: 120_000,
    });
    let live = '';
    proc.stderr?.on('data', (d: Buffer) => (live += d.toString()));
    try {
      await eventually('the controller to finish a pass', 30_000, async () => (/reconcile finished/.test(live) ? true : undefined));
      assert.doesNotMatch(live, /read-only file system|EROFS/i);
      assert.equal((await stack.consul.api<AclAuthMethod>('GET', '/v1/acl/auth-method/iam-ecs-service-token')).Type, 'aws-iam');
      assert.match(live, /registered the cluster node/);
      proc.kill('SIGTERM');
      const done = await proc;
      stack.outputs.push(String(done.stderr));
      assert.equal(done.exitCode, 0, String(done.stderr));
    } finally {
      proc.kill('SIGKILL');
    }
    stack.assertNoSecretsPrinted();
  });

  it('without AWS credentials: a clear error and exit 1, before anything is written to Consul', async () => {
    const env: Record<string, string> = controllerEnv(stack, ctrlSim);
    delete env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
    delete env.AWS_CONTAINER_AUTHORIZATION_TOKEN;
    const res = await stack.cli(['controller'], env);
    assert.equal(res.exitCode, 1);
    assert.match(res.stderr, /no AWS credentials found/);
    const roles = await stack.consul.api<AclRole[]>('GET', '/v1/acl/roles');
    assert.deepEqual(roles, []);
  });

  it('without a token for Consul: a clear error and exit 1', async () => {
    const env = controllerEnv(stack, ctrlSim);
    delete (env as Record<string, string>).CONSUL_HTTP_TOKEN;
    const res = await stack.cli(['controller'], env);
    assert.equal(res.exitCode, 1);
    assert.match(res.stderr, /HTTP 403.*set CONSUL_HTTP_TOKEN to a token with acl:write/);
  });
});

describe('controller over HTTPS', () => {
  let stack: LoginStack;
  let dir: string;
  beforeEach(async () => {
    stack = await LoginStack.start({ tls: true });
    dir = await mkdtemp(join(tmpdir(), 'controller-tls-test-'));
  });
  afterEach(async () => {
    await stack.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('with the CA from CONSUL_HTTPS_CACERT_PEM and a TLS server name it sets up Consul and removes a stopped task; without the CA it fails at once', async () => {
    const { clusterArn, sim } = await controllerTask(stack);
    await registerClusterNode(stack, clusterArn);
    const web = await stack.role('web-task', { service: 'web' });
    const task = await meshTask(stack, dir, 'web', web.arn);
    await stack.moto.admin.stopTask(CLUSTER, task.taskArn);
    const config = controllerConfig(stack, {
      hosts: '127.0.0.1',
      defaults: { tls: true, tlsServerName: 'server.dc1.consul' },
      http: { https: true, port: stack.consul.ports.https },
      grpc: { port: stack.consul.ports.grpcTls },
    });

    // Consul's certificate is not from a CA the system trusts: a clear error, not retried.
    const noCa = await stack.cli(['controller'], controllerEnv(stack, sim, config));
    assert.equal(noCa.exitCode, 1);
    assert.match(noCa.stderr, /certificate was not accepted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    assert.ok(noCa.durationMs < 10_000, 'a certificate problem is not retried');
    assert.equal((await stack.loginTokens()).filter(tokenOfTask(task.taskId)).length, 1, 'nothing removed without a connection');

    const run = stack.spawn(['controller'], controllerEnv(stack, sim, config, { CONSUL_HTTPS_CACERT_PEM: stack.consul.caPem }), { timeoutMs: 60_000 });
    try {
      await eventually('the stopped task cleaned up', 20_000, async () =>
        (await stack.loginTokens()).some(tokenOfTask(task.taskId)) || (await stack.nodeServices(clusterArn)).length ? undefined : true,
      );
    } finally {
      process.kill(run.proc.pid!, 'SIGTERM');
    }
    const done = await run.result;
    assert.equal(done.exitCode, 0, done.stderr);
    assert.match(done.stderr, /registered the cluster node/);
    assert.match(done.stderr, new RegExp(`deleted the login token of a task that no longer runs.*task-id=${task.taskId}`));
    assert.equal((await stack.consul.api<AclAuthMethod>('GET', '/v1/acl/auth-method/iam-ecs-service-token')).Config?.EnableIAMEntityDetails, true);
    stack.assertNoSecretsPrinted();
  });
});
