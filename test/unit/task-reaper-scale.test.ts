// The controller's pass over many tasks: what it asks ECS (ListTasks pages only
// on Consul CE; DescribeTasks too on Enterprise, for the namespaces' tags), and
// its removals, a bounded number at a time, tokens before service instances.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { AclAdmin, CatalogClient, ConsulHttpClient, EcsApiClient, type AclTokenListEntry, type AgentService } from '@consul-ecs-ts/core';
import { REMOVAL_CONCURRENCY, reapStoppedTasks } from '../../packages/core/src/controller/task-reaper.ts';

const ECS = 'https://ecs.us-east-1.amazonaws.com';
const CONSUL = 'http://consul.test:8500';
const CLUSTER = 'arn:aws:ecs:us-east-1:123456789012:cluster/prod';
const taskArn = (id: string) => `arn:aws:ecs:us-east-1:123456789012:task/prod/${id}`;
const loginDescription = (taskId: string) =>
  `token created via login: ${JSON.stringify({ 'consul.hashicorp.com/cluster': CLUSTER, 'consul.hashicorp.com/task-id': taskId })}`;
const ids = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** ECS at a MockAgent: ListTasks in pages of 100 over `running`, DescribeTasks of what is asked; records each operation. */
function mockEcs(agent: MockAgent, running: string[]): string[] {
  const ops: string[] = [];
  agent
    .get(ECS)
    .intercept({ path: '/', method: 'POST' })
    .reply((req) => {
      const op = (req.headers as Record<string, string>)['X-Amz-Target']!.split('.')[1]!;
      const body = JSON.parse(String(req.body)) as { nextToken?: string; tasks?: string[] };
      ops.push(op);
      if (op === 'ListTasks') {
        const offset = Number(body.nextToken ?? 0);
        const next = offset + 100 < running.length ? String(offset + 100) : undefined;
        return { statusCode: 200, data: JSON.stringify({ taskArns: running.slice(offset, offset + 100).map(taskArn), nextToken: next }) };
      }
      return { statusCode: 200, data: JSON.stringify({ tasks: body.tasks!.map((a) => ({ taskArn: a, tags: [] })) }) };
    })
    .persist();
  return ops;
}

/**
 * Consul stand-in for the reaper: the tokens and instances of `tasks`, with
 * removals that take `delayMs` each; records how many removals were in flight
 * at most, and the order in which they started.
 */
function fakeConsul(tasks: string[], opts: { delayMs?: number; failToken?: string } = {}) {
  const tokens: AclTokenListEntry[] = tasks.map((t) => ({ AccessorID: `tok-${t}`, Description: loginDescription(t) }) as AclTokenListEntry);
  const services: AgentService[] = tasks.flatMap((t) => [
    { ID: `web-${t}`, Service: 'web', Port: 8080, Address: '', Meta: { 'task-id': t } },
    { ID: `web-${t}-sidecar-proxy`, Service: 'web-sidecar-proxy', Port: 20000, Address: '', Meta: { 'task-id': t } },
  ]);
  const state = { inFlight: 0, maxInFlight: 0, started: [] as string[] };
  const removal = async (what: string) => {
    state.started.push(what);
    state.maxInFlight = Math.max(state.maxInFlight, ++state.inFlight);
    await new Promise((r) => setTimeout(r, opts.delayMs ?? 1));
    state.inFlight--;
    if (what === `token ${opts.failToken}`) throw new Error(`Consul DELETE /v1/acl/token/${opts.failToken} failed with HTTP 500: rpc error`);
  };
  const http = new ConsulHttpClient({ address: CONSUL, retryDeadlineMs: 0 });
  const admin = Object.assign(new AclAdmin(http, () => 't'), {
    listTokens: async () => tokens,
    deleteToken: (id: string) => removal(`token ${id}`),
  });
  const catalog = Object.assign(new CatalogClient(http, () => 't'), {
    nodeServices: async () => services,
    deregisterService: (_node: string, id: string) => removal(`service ${id}`),
  });
  return { admin, catalog, state };
}

function ecsClient(agent: MockAgent): EcsApiClient {
  const credentials = async () => ({ accessKeyId: 'ASIAEXAMPLEUNITTEST1', secretAccessKey: 'unitTestSecretAccessKeyExample000000000' });
  return new EcsApiClient({ region: 'us-east-1', endpoint: new URL(ECS), credentials, dispatcher: agent });
}

describe('task reaper at scale', () => {
  it('on Consul CE asks ECS for the running task ARNs only: one ListTasks a page of 100, no DescribeTasks', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const running = ['self', ...ids(249, 'run')];
    const ops = mockEcs(agent, running);
    const { admin, catalog } = fakeConsul([...ids(249, 'run'), ...ids(5, 'gone')]);
    const res = await reapStoppedTasks({ ecs: ecsClient(agent), admin, catalog, clusterArn: CLUSTER, ownTaskArn: taskArn('self') });
    assert.deepEqual(ops, ['ListTasks', 'ListTasks', 'ListTasks']);
    assert.equal(res.running, 250);
    assert.deepEqual(res.tokensDeleted, ids(5, 'tok-gone'));
    assert.deepEqual(
      res.servicesDeregistered,
      ids(5, 'gone').flatMap((t) => [`web-${t}`, `web-${t}-sidecar-proxy`]),
    );
    assert.deepEqual(res.errors, []);
    await agent.close();
  });

  it('on Enterprise also describes the tasks, 100 at a time, for their namespace tags', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const ops = mockEcs(agent, ['self', ...ids(149, 'run')]);
    agent.get(CONSUL).intercept({ path: '/v1/namespaces?partition=part1', method: 'GET' }).reply(200, []);
    agent.get(CONSUL).intercept({ path: '/v1/acl/policy/name/cross-namespace-read?partition=part1&ns=default', method: 'GET' }).reply(200, { ID: 'p' });
    const { catalog } = fakeConsul([]);
    const admin = new AclAdmin(new ConsulHttpClient({ address: CONSUL, dispatcher: agent, retryDeadlineMs: 0 }), () => 't');
    const res = await reapStoppedTasks({ ecs: ecsClient(agent), admin, catalog, clusterArn: CLUSTER, partition: 'part1', ownTaskArn: taskArn('self') });
    assert.deepEqual(ops, ['ListTasks', 'ListTasks', 'DescribeTasks', 'DescribeTasks']);
    assert.equal(res.running, 150);
    await agent.close();
  });

  it(`removes what 100 stopped tasks left ${REMOVAL_CONCURRENCY} at a time, every token before any service instance, in listing order`, async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    mockEcs(agent, ['self', ...ids(50, 'run')]);
    const gone = ids(100, 'gone');
    const { admin, catalog, state } = fakeConsul([...ids(50, 'run'), ...gone], { delayMs: 5 });
    const res = await reapStoppedTasks({ ecs: ecsClient(agent), admin, catalog, clusterArn: CLUSTER, ownTaskArn: taskArn('self') });
    assert.equal(state.maxInFlight, REMOVAL_CONCURRENCY);
    assert.equal(state.started.length, 300);
    const firstService = state.started.findIndex((s) => s.startsWith('service '));
    assert.equal(firstService, 100, 'the 100 tokens are removed before the first service instance');
    assert.deepEqual(
      res.tokensDeleted,
      gone.map((t) => `tok-${t}`),
    );
    assert.deepEqual(
      res.servicesDeregistered,
      gone.flatMap((t) => [`web-${t}`, `web-${t}-sidecar-proxy`]),
    );
    await agent.close();
  });

  it('one at a time when told so; a removal that fails is reported, and the rest is still done', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    mockEcs(agent, ['self']);
    const { admin, catalog, state } = fakeConsul(ids(10, 'gone'), { failToken: 'tok-gone3' });
    const res = await reapStoppedTasks({ ecs: ecsClient(agent), admin, catalog, clusterArn: CLUSTER, ownTaskArn: taskArn('self'), removalConcurrency: 1 });
    assert.equal(state.maxInFlight, 1);
    assert.deepEqual(
      res.tokensDeleted,
      ids(10, 'tok-gone').filter((t) => t !== 'tok-gone3'),
    );
    assert.equal(res.servicesDeregistered.length, 20);
    assert.deepEqual(res.errors, ['deleting token tok-gone3 of task gone3: Consul DELETE /v1/acl/token/tok-gone3 failed with HTTP 500: rpc error']);
    await agent.close();
  });
});
