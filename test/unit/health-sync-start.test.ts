// runHealthSync's start against recorded answers: how long it keeps trying to
// read the task's checks while Consul does not answer.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { ConsulHttpClient, createLogger, resolveConfig, runHealthSync, type EcsTaskMetadata, type HealthCheck } from '@consul-ecs-ts/core';
import { stopReason } from '../../packages/core/src/util/errors.ts';
import { fakeClock } from '../helpers/fake-clock.ts';

const CONSUL = 'http://127.0.0.1:8500';
const METADATA = 'http://metadata.test';
const TASK_ID = '0123456789abcdef0123456789abcdef';
const SERVICE_ID = `web-${TASK_ID}`;
const task: EcsTaskMetadata = {
  Cluster: 'c',
  TaskARN: `arn:aws:ecs:us-west-2:123456789012:task/c/${TASK_ID}`,
  Family: 'web',
  Containers: [{ Name: 'app', Type: 'NORMAL', DesiredStatus: 'RUNNING', KnownStatus: 'RUNNING', Health: { status: 'HEALTHY' } }],
};
const check = (serviceId: string, container: string): HealthCheck =>
  ({ Node: 'n', CheckID: `${serviceId}-${container}`, ServiceID: serviceId, Status: 'critical' }) as HealthCheck;

describe('health-sync start', () => {
  let agent: MockAgent;
  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    agent.get(METADATA).intercept({ path: '/v4/t/task' }).reply(200, task).persist();
  });
  afterEach(() => agent.close());

  /** Consul refuses connections `failures` times, then answers with the task's checks. */
  function consulDownFor(failures: number) {
    const consul = agent.get(CONSUL);
    const checks = (path: string) => path.startsWith('/v1/health/checks/');
    consul.intercept({ path: checks }).replyWithError(new Error('connect ECONNREFUSED 127.0.0.1:8500')).times(failures);
    consul.intercept({ path: (p) => p.startsWith('/v1/health/checks/web?') }).reply(200, [check(SERVICE_ID, 'app'), check(SERVICE_ID, 'consul-dataplane')]);
    consul
      .intercept({ path: (p) => p.startsWith('/v1/health/checks/web-sidecar-proxy?') })
      .reply(200, [check(`${SERVICE_ID}-sidecar-proxy`, 'consul-dataplane')]);
    consul.intercept({ path: '/v1/catalog/register', method: 'PUT' }).reply(200, 'true').persist();
    consul.intercept({ path: '/v1/catalog/deregister', method: 'PUT' }).reply(200, 'true').persist();
  }

  /** Runs it with a fake clock until it starts syncing (then stops it, as SIGTERM would). */
  async function run(startDeadlineMs?: number) {
    const clock = fakeClock();
    const stop = new AbortController();
    let log = '';
    const started = clock.now();
    await runHealthSync({
      config: resolveConfig({ bootstrapDir: '/consul', consulServers: { hosts: '127.0.0.1' }, healthSyncContainers: ['app'] }),
      env: { ECS_CONTAINER_METADATA_URI_V4: `${METADATA}/v4/t` },
      clients: [new ConsulHttpClient({ address: CONSUL, dispatcher: agent, clock })],
      token: 'static-token-value',
      logoutOnShutdown: false,
      signal: stop.signal,
      dispatcher: agent,
      clock,
      startDeadlineMs,
      logger: createLogger({
        level: 'info',
        write: (line) => {
          log += line;
          if (line.includes('syncing ECS health into Consul')) stop.abort(new Error('received SIGINT'));
        },
      }),
    });
    return { log, waitedMs: clock.now() - started };
  }

  it('gives up reading the checks after 2 minutes by default', async () => {
    consulDownFor(100);
    await assert.rejects(run(), /could not connect/);
  });

  it('with no start deadline, keeps trying until Consul answers', async () => {
    consulDownFor(100);
    const { log, waitedMs } = await run(Number.POSITIVE_INFINITY);
    assert.ok(waitedMs > 120_000, `waited ${waitedMs} ms`);
    assert.match(log, /unable to read the checks from Consul; retrying/);
    assert.match(log, /syncing ECS health into Consul/);
    assert.match(log, /deregistered: id=web-0123/);
    // The shutdown says which signal started it.
    assert.match(log, /received SIGINT: marking all checks critical/);
  });
});

describe('stopReason', () => {
  const aborted = (reason?: unknown) => {
    const c = new AbortController();
    c.abort(reason);
    return c.signal;
  };
  it('gives the abort reason, or "stop requested" for a plain abort', () => {
    assert.equal(stopReason(aborted(new Error('received SIGTERM'))), 'received SIGTERM');
    assert.equal(stopReason(aborted('received SIGINT')), 'received SIGINT');
    assert.equal(stopReason(aborted()), 'stop requested');
  });
});
