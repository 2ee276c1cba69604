// health-sync with 50 synced containers in a task, against a real Consul through
// a counting proxy: whatever number of containers change their ECS health at
// once, it writes the change in one catalog call (only the checks that changed,
// with the dataplane's aggregate), and nothing when nothing changed.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { countByOperation, CountingProxy } from '../../scripts/lib/counting-proxy.ts';
import { appContainers, applyBatch, batchChanges, checkStatuses } from '../../scripts/lib/health-batches.ts';
import { LoginStack } from '../helpers/login-stack.ts';
import { eventually, meshConfig, meshEnv } from '../helpers/mesh-task.ts';

const CONTAINERS = 50;

describe(`health-sync with ${CONTAINERS} synced containers`, () => {
  let stack: LoginStack;
  let proxy: CountingProxy;
  let dir: string;
  const runs: Array<ReturnType<LoginStack['spawn']>> = [];

  beforeEach(async () => {
    stack = await LoginStack.start();
    proxy = await CountingProxy.start({ target: stack.consul.httpAddr });
    dir = await mkdtemp(join(stack.dir, 'health-sync-scale-'));
  });
  afterEach(async (t) => {
    for (const run of runs.splice(0)) {
      if (run.proc.exitCode === null) {
        run.proc.kill('SIGKILL');
        if ('diagnostic' in t) t.diagnostic(run.output().slice(-5000));
      }
    }
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
    await stack.dispose();
  });

  it('writes each batch of changes, 1 to 50 containers at once, in one catalog call; nothing when nothing changed; all critical in one call at SIGTERM', async () => {
    const containers = appContainers(CONTAINERS);
    const sim: EcsAgentSimulator = await stack.webTask(containers.map((name) => ({ name, hasHealthCheck: true, health: 'HEALTHY' })));
    const service = 'web';
    const serviceId = `${service}-${sim.taskId}`;
    const config = meshConfig(stack, dir, {
      consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: proxy.port }, grpc: { port: stack.consul.ports.grpc } },
      service: { name: service, port: 8080 },
      healthSyncContainers: containers,
    });
    const env = meshEnv(sim, config);
    const init = await stack.cli(['mesh-init'], env);
    assert.equal(init.exitCode, 0, init.stderr);
    const sync = stack.spawn(['health-sync'], env, { timeoutMs: 90_000 });
    runs.push(sync);
    await eventually('the first sync', 20_000, async () => {
      const s = await checkStatuses(stack.consul, service, serviceId);
      return s.size === CONTAINERS + 1 && [...s.values()].every((v) => v === 'passing') ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 1200));
    const health = new Map(containers.map((c) => [c, 'HEALTHY'] as [string, 'HEALTHY' | 'UNHEALTHY']));

    // Nothing changes for two periods: no call.
    const quietFrom = proxy.calls.length;
    await new Promise((r) => setTimeout(r, 2200));
    assert.deepEqual(proxy.calls.slice(quietFrom), []);

    // Batches of 50, 25, 1 and 10 containers: one catalog write each, and no other call.
    const batches = [
      new Map(containers.map((c) => [c, 'UNHEALTHY' as const])),
      batchChanges(containers, 1, 25),
      batchChanges(containers, 2, 1),
      batchChanges(containers, 5, 10),
    ];
    for (const changes of batches) {
      const { calls } = await applyBatch({ sim, consul: stack.consul, proxy, serviceName: service, serviceId, changes, health, settleMs: 1200 });
      assert.deepEqual(countByOperation(calls), { 'PUT /v1/catalog/register': 1 }, `a batch of ${changes.size}`);
    }

    // SIGTERM: every check critical in one call, then deregistration once the dataplane stops.
    const stopFrom = proxy.calls.length;
    process.kill(sync.proc.pid!, 'SIGTERM');
    await eventually('all checks critical', 10_000, async () =>
      [...(await checkStatuses(stack.consul, service, serviceId)).values()].every((v) => v === 'critical') ? true : undefined,
    );
    assert.deepEqual(countByOperation(proxy.calls.slice(stopFrom)), { 'PUT /v1/catalog/register': 1 });
    sim.stopContainer('consul-dataplane');
    const done = await sync.result;
    assert.equal(done.exitCode, 0, done.stderr);
    assert.equal((await checkStatuses(stack.consul, service, serviceId)).size, 0);
    stack.assertNoSecretsPrinted();
  });
});
