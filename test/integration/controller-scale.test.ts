// The controller over a cluster of 200 mesh tasks (moto's ECS; Consul with each
// task's login token and its service and sidecar instances), through counting
// proxies that answer ListTasks in pages as ECS does: a pass asks ECS one call a
// page and Consul two reads; after half the tasks stop, within two passes exactly
// their tokens and instances are gone and every running task keeps all of its own.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { AclToken } from '@consul-ecs-ts/core';
import { clusterConsulState, loginTokenDescription, MESH_TAG, reapProblems, seedMeshTasks, stopTasks } from '../../scripts/lib/controller-scale.ts';
import { countByOperation, CountingProxy, ECS_PAGE_SIZE, type ProxiedCall } from '../../scripts/lib/counting-proxy.ts';
import { CLUSTER, controllerConfig, controllerEnv, controllerTask } from '../helpers/controller-task.ts';
import { LoginStack } from '../helpers/login-stack.ts';
import { eventually } from '../helpers/mesh-task.ts';

const TASKS = 200;
const PASS_LINE = /reconcile finished|error during reconcile/g;
/** What a pass asks of Consul and ECS, by operation; setting Consul up at start is left out. */
const passCalls = (calls: readonly ProxiedCall[]) =>
  countByOperation(
    calls.filter((c) =>
      /^(ListTasks|DescribeTasks|GET \/v1\/acl\/tokens|GET \/v1\/catalog\/node-services\/|DELETE|PUT \/v1\/catalog\/deregister)/.test(c.operation),
    ),
  );

describe(`controller over a cluster of ${TASKS} mesh tasks`, () => {
  let stack: LoginStack;
  const proxies: CountingProxy[] = [];
  const runs: Array<ReturnType<LoginStack['spawn']>> = [];

  beforeEach(async () => {
    stack = await LoginStack.start();
  });
  afterEach(async (t) => {
    for (const run of runs.splice(0)) {
      if (run.proc.exitCode === null) {
        run.proc.kill('SIGKILL');
        if ('diagnostic' in t) t.diagnostic(run.output().slice(-5000));
      }
    }
    for (const p of proxies.splice(0)) await p.close();
    await stack.dispose();
  });

  it('a pass is one ListTasks a page and two Consul reads; half the tasks stop: within two passes exactly their tokens and instances are gone', async () => {
    const { clusterArn, sim: ctrlSim } = await controllerTask(stack);

    // One task logs in for real: the tokens made below carry the description its login got.
    const [real] = await stack.moto.admin.runTasks(CLUSTER, 'web', { tags: { [MESH_TAG]: 'true' } });
    const realTaskId = real!.taskArn!.split('/').pop()!;
    const webRole = await stack.role('web-task', { service: 'web' });
    const realSim = await stack.simulator(webRole.arn, { cluster: CLUSTER, family: 'web', taskId: realTaskId });
    const sink = join(stack.dir, 'real-task-token');
    const login = await stack.cli(['login', ...stack.loginFlags(sink)], realSim.containerEnv());
    assert.equal(login.exitCode, 0, login.stderr);
    const realToken = await stack.consul.client().call<AclToken>({ path: '/v1/acl/token/self', token: await stack.readToken(sink) });
    assert.equal(realToken.Description, loginTokenDescription(clusterArn, realTaskId));

    const tasks = await seedMeshTasks(stack.consul, stack.moto, { cluster: CLUSTER, clusterArn, count: TASKS });
    const stopped = tasks.filter((_, i) => i % 2 === 1);
    const running = tasks.filter((_, i) => i % 2 === 0);

    const ecs = await CountingProxy.start({
      target: stack.moto.url,
      ecs: {
        runningTaskArns: async (cluster) =>
          (await stack.moto.admin.ecs<{ taskArns?: string[] }>('ListTasks', { cluster, desiredStatus: 'RUNNING' })).taskArns ?? [],
      },
    });
    const consul = await CountingProxy.start({ target: stack.consul.httpAddr });
    proxies.push(ecs, consul);
    const config = controllerConfig(stack, {
      hosts: '127.0.0.1',
      defaults: { tls: false },
      http: { https: false, port: consul.port },
      grpc: { port: stack.consul.ports.grpc },
    });
    const run = stack.spawn(['controller'], controllerEnv(stack, ctrlSim, config, { AWS_ENDPOINT_URL_ECS: ecs.url }), { timeoutMs: 110_000 });
    runs.push(run);
    /** Waits for the controller's pass `n` to end; the proxies' calls so far, by operation, for the passes since `from`. */
    const passes = () => run.output().match(PASS_LINE)?.length ?? 0;
    const marks: number[] = [];
    const passDone = async (n: number) => {
      await eventually(`the controller's pass ${n}`, 30_000, async () => (passes() >= n ? true : undefined));
      marks[n] = performance.now();
    };

    await passDone(1);
    assert.doesNotMatch(run.output(), /error during reconcile/);
    const pageCount = Math.ceil((TASKS + 2) / ECS_PAGE_SIZE);
    const firstPass = [...ecs.calls, ...consul.calls].filter((c) => c.startMs <= marks[1]!);
    assert.deepEqual(passCalls(firstPass), { ListTasks: pageCount, 'GET /v1/acl/tokens': 1, 'GET /v1/catalog/node-services/:node': 1 });
    assert.deepEqual(reapProblems(await clusterConsulState(stack.consul, clusterArn), tasks, []), []);

    // Half the tasks stop, and the one that logged in for real.
    await stopTasks(stack.moto, CLUSTER, stopped);
    await stack.moto.admin.stopTask(CLUSTER, real!.taskArn!);
    const stoppedAt = passes();
    await passDone(stoppedAt + 1);
    await passDone(stoppedAt + 2);
    assert.deepEqual(reapProblems(await clusterConsulState(stack.consul, clusterArn), running, stopped), []);
    assert.equal((await stack.loginTokens()).filter((t) => t.AccessorID === realToken.AccessorID).length, 0, "the real login's token is gone too");

    // In all, one removal for each token and instance of the stopped tasks, and no more.
    const afterStop = [...ecs.calls, ...consul.calls].filter((c) => c.startMs > marks[stoppedAt]! && c.startMs <= marks[stoppedAt + 2]!);
    const counts = passCalls(afterStop);
    assert.equal(counts['DELETE /v1/acl/token/:id'], stopped.length + 1);
    assert.equal(counts['PUT /v1/catalog/deregister'], stopped.length * 2);
    assert.equal(counts.DescribeTasks, undefined, 'no DescribeTasks on Consul CE');
    assert.ok(counts.ListTasks! <= 2 * Math.ceil((TASKS + 2 - stopped.length) / ECS_PAGE_SIZE), `ListTasks: ${counts.ListTasks}`);

    process.kill(run.proc.pid!, 'SIGTERM');
    const done = await run.result;
    assert.equal(done.exitCode, 0, done.stderr);
    stack.assertNoSecretsPrinted();
  });
});
