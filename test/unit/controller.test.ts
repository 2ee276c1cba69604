// The controller's pieces with recorded answers (undici MockAgent): the signed
// ECS JSON API calls, the policies it writes, what it reads from token
// descriptions, the guard against an incomplete task listing, and the
// Consul Enterprise paths (partitions, namespaces), which no CE server can run.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { AclAdmin, AwsApiError, CatalogClient, ConsulEcsError, ConsulHttpClient, EcsApiClient, ecsEndpoint, signJsonRequest } from '@consul-ecs-ts/core';
import { anonymousPolicyRules, apiGatewayPolicyRules, controllerPartition, meshGatewayPolicyRules } from '../../packages/core/src/controller/acl-setup.ts';
import { loginTokenTask, reapStoppedTasks } from '../../packages/core/src/controller/task-reaper.ts';

const sigv4 = JSON.parse(readFileSync(new URL('../fixtures/ecs-list-tasks-sigv4.json', import.meta.url), 'utf8')) as {
  request: { url: string; body: string; region: string; accessKeyId: string; secretAccessKey: string; sessionToken: string };
  botocoreAuthorization: string;
};
const anchorRules = (
  JSON.parse(readFileSync(new URL('../fixtures/controller-policy-rules.json', import.meta.url), 'utf8')) as { rules: Record<string, string> }
).rules;

const CREDS = {
  accessKeyId: 'ASIAEXAMPLEUNITTEST1',
  secretAccessKey: 'unitTestSecretAccessKeyExample000000000',
  sessionToken: 'unit-test-session-token-0123456789',
};
const ECS = 'https://ecs.us-east-1.amazonaws.com';
const CONSUL = 'http://consul.test:8500';
const CLUSTER = 'arn:aws:ecs:us-east-1:123456789012:cluster/prod';
const taskArn = (id: string) => `arn:aws:ecs:us-east-1:123456789012:task/prod/${id}`;
const loginDescription = (taskId: string, cluster = CLUSTER) =>
  `token created via login: ${JSON.stringify({ 'consul.hashicorp.com/cluster': cluster, 'consul.hashicorp.com/task-id': taskId })}`;

function ecsClient(agent: MockAgent): EcsApiClient {
  return new EcsApiClient({ region: 'us-east-1', endpoint: new URL(ECS), credentials: async () => CREDS, dispatcher: agent });
}

/** Intercepts ECS operations; `handler` gets the operation and the parsed body. */
function mockEcs(agent: MockAgent, handler: (op: string, body: Record<string, unknown>, headers: Record<string, string>) => unknown): void {
  agent
    .get(ECS)
    .intercept({ path: '/', method: 'POST' })
    .reply((req) => {
      const headers = req.headers as Record<string, string>;
      const op = headers['X-Amz-Target']!.split('.')[1]!;
      return { statusCode: 200, data: JSON.stringify(handler(op, JSON.parse(String(req.body)), headers)) };
    })
    .persist();
}

describe('ECS API client', () => {
  it('signs a JSON 1.1 request exactly as botocore does', async () => {
    const r = sigv4.request;
    const signed = await signJsonRequest({
      url: new URL(r.url),
      body: r.body,
      region: r.region,
      service: 'ecs',
      credentials: { accessKeyId: r.accessKeyId, secretAccessKey: r.secretAccessKey, sessionToken: r.sessionToken },
      headers: { 'X-Amz-Target': 'AmazonEC2ContainerServiceV20141113.ListTasks' },
      signingDate: new Date('2026-01-02T03:04:05Z'),
    });
    assert.equal(signed.headers.Authorization, sigv4.botocoreAuthorization);
    assert.equal(signed.headers['Content-Type'], 'application/x-amz-json-1.1');
  });

  it('lists the running tasks of a cluster over every page and describes them with tags, 100 at a time', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const arns = Array.from({ length: 150 }, (_, i) => taskArn(`t${i}`));
    const calls: string[] = [];
    mockEcs(agent, (op, body, headers) => {
      assert.match(headers.Authorization!, /Credential=ASIAEXAMPLEUNITTEST1\/\d{8}\/us-east-1\/ecs\/aws4_request/);
      assert.equal(headers['X-Amz-Security-Token'], CREDS.sessionToken);
      assert.equal(body.cluster, CLUSTER);
      if (op === 'ListTasks') {
        calls.push(`ListTasks ${String(body.nextToken ?? '')}`);
        assert.equal(body.desiredStatus, 'RUNNING');
        return body.nextToken ? { taskArns: arns.slice(100) } : { taskArns: arns.slice(0, 100), nextToken: 'page2' };
      }
      assert.equal(op, 'DescribeTasks');
      assert.deepEqual(body.include, ['TAGS']);
      const tasks = body.tasks as string[];
      calls.push(`DescribeTasks ${tasks.length}`);
      return { tasks: tasks.map((a) => ({ taskArn: a, tags: [{ key: 'consul.hashicorp.com/mesh', value: 'true' }] })), failures: [] };
    });
    const tasks = await ecsClient(agent).runningTasks(CLUSTER);
    assert.equal(tasks.length, 150);
    assert.deepEqual(calls, ['ListTasks ', 'ListTasks page2', 'DescribeTasks 100', 'DescribeTasks 50']);
    await agent.close();
  });

  it('reports an AWS error by its code and message, without credentials', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    agent
      .get(ECS)
      .intercept({ path: '/', method: 'POST' })
      .reply(400, JSON.stringify({ __type: 'com.amazonaws.ecs#ClusterNotFoundException', message: 'Cluster not found.' }));
    const err = await ecsClient(agent)
      .listRunningTaskArns(CLUSTER)
      .catch((e: unknown) => e);
    assert.ok(err instanceof AwsApiError);
    assert.equal(err.awsCode, 'ClusterNotFoundException');
    assert.equal(err.message, `AWS ListTasks at ${ECS} failed with HTTP 400 ClusterNotFoundException: Cluster not found.`);
    for (const secret of [CREDS.secretAccessKey, CREDS.sessionToken]) assert.ok(!err.message.includes(secret));
    await agent.close();
  });

  it('takes the endpoint from AWS_ENDPOINT_URL_ECS, then AWS_ENDPOINT_URL, else the region', () => {
    assert.equal(ecsEndpoint({}, 'eu-west-1').href, 'https://ecs.eu-west-1.amazonaws.com/');
    assert.equal(ecsEndpoint({}, 'cn-north-1').href, 'https://ecs.cn-north-1.amazonaws.com.cn/');
    assert.equal(ecsEndpoint({ AWS_ENDPOINT_URL: 'http://all:1', AWS_ENDPOINT_URL_ECS: 'http://ecs:2' }, 'x').href, 'http://ecs:2/');
    assert.equal(ecsEndpoint({ AWS_ENDPOINT_URL: 'http://all:1' }, 'x').href, 'http://all:1/');
    assert.equal(
      ecsEndpoint({ AWS_ENDPOINT_URL: 'http://all:1', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }, 'us-east-1').host,
      'ecs.us-east-1.amazonaws.com',
    );
    assert.throws(() => ecsEndpoint({ AWS_ENDPOINT_URL_ECS: 'not a url' }, 'x'), /the ECS endpoint "not a url".*is not a URL/);
  });
});

describe('controller ACL setup', () => {
  it('writes the policy rules consul-ecs writes, for CE and Enterprise', () => {
    assert.equal(apiGatewayPolicyRules(false), anchorRules['api false/']);
    assert.equal(apiGatewayPolicyRules(true), anchorRules['api true/default']);
    assert.equal(meshGatewayPolicyRules(undefined), anchorRules['mesh false/']);
    assert.equal(meshGatewayPolicyRules('default'), anchorRules['mesh true/default']);
    assert.equal(meshGatewayPolicyRules('part1'), anchorRules['mesh true/part1']);
    assert.equal(anonymousPolicyRules(false), anchorRules['anon false/']);
    assert.equal(anonymousPolicyRules(true), anchorRules['anon true/default']);
  });

  it('uses the default partition when partitions are on and none is named; refuses a partition without them', () => {
    assert.equal(controllerPartition({ iamRolePath: '/', partitionsEnabled: false }), undefined);
    assert.equal(controllerPartition({ iamRolePath: '/', partitionsEnabled: true }), 'default');
    assert.equal(controllerPartition({ iamRolePath: '/', partitionsEnabled: true, partition: 'p1' }), 'p1');
    assert.throws(
      () => controllerPartition({ iamRolePath: '/', partitionsEnabled: false, partition: 'p1' }),
      /controller\.partition is set but controller\.partitionsEnabled is not/,
    );
  });
});

describe('task reaper', () => {
  it('reads the task and cluster of a login token from its description, and nothing from other tokens', () => {
    assert.deepEqual(loginTokenTask(loginDescription('abc')), { taskId: 'abc', cluster: CLUSTER });
    assert.equal(loginTokenTask('Anonymous Token'), undefined);
    assert.equal(loginTokenTask('token created via login: {"consul.hashicorp.com/task-id":"abc"}'), undefined);
    assert.equal(loginTokenTask(undefined), undefined);
  });

  const setUp = (agent: MockAgent) => {
    const http = new ConsulHttpClient({ address: CONSUL, dispatcher: agent, retryDeadlineMs: 0 });
    const token = () => 'management-token-for-unit-tests';
    return { http, admin: new AclAdmin(http, token), catalog: new CatalogClient(http, token) };
  };

  it("removes nothing when ECS leaves the controller's own task out of the listing", async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const consul = agent.get(CONSUL);
    consul.intercept({ path: '/v1/acl/tokens', method: 'GET' }).reply(200, [{ AccessorID: 'a1', Description: loginDescription('gone') }]);
    consul.intercept({ path: (p) => p.startsWith('/v1/catalog/node-services/'), method: 'GET' }).reply(200, {
      Services: [{ ID: 'web-gone', Service: 'web', Meta: { 'task-id': 'gone' } }],
    });
    mockEcs(agent, (op, body) => (op === 'ListTasks' ? { taskArns: [] } : { tasks: (body.tasks as string[]).map((taskArn) => ({ taskArn })) }));
    const { admin, catalog } = setUp(agent);
    const err = await reapStoppedTasks({ ecs: ecsClient(agent), admin, catalog, clusterArn: CLUSTER, ownTaskArn: taskArn('self') }).catch((e: unknown) => e);
    assert.ok(err instanceof ConsulEcsError);
    assert.equal(err.code, 'ecs-listing-incomplete');
    assert.match(err.message, /did not list the controller's own task .*task\/prod\/self.*removing nothing/);
    // No DELETE or deregistration was intercepted (the agent refuses anything else).
    await agent.close();
  });

  /**
   * A partition part1 with namespaces default and team-a, login tokens of a
   * running and a stopped task (and another cluster's), their services, and
   * ECS tasks tagged for part1/team-b and part2/team-c. Returns the requests
   * Consul saw, in order.
   */
  const enterpriseCluster = (agent: MockAgent, policyRead: 404 | 500): string[] => {
    const consul = agent.get(CONSUL);
    const seen: string[] = [];
    const record = (req: { method: string; path: string; body?: unknown }) => seen.push(`${req.method} ${req.path}${req.body ? ` ${String(req.body)}` : ''}`);
    const reply = (status: number, data: unknown) => (req: { method: string; path: string; body?: unknown }) => {
      record(req);
      return { statusCode: status, data: JSON.stringify(data) };
    };
    consul.intercept({ path: '/v1/namespaces?partition=part1', method: 'GET' }).reply(reply(200, [{ Name: 'default', ACLs: {} }, { Name: 'team-a' }]));
    consul
      .intercept({ path: '/v1/acl/tokens?partition=part1&ns=default', method: 'GET' })
      .reply(reply(200, [{ AccessorID: 'keep', Description: loginDescription('running'), Partition: 'part1', Namespace: 'default' }]));
    consul.intercept({ path: '/v1/acl/tokens?partition=part1&ns=team-a', method: 'GET' }).reply(
      reply(200, [
        { AccessorID: 'drop', Description: loginDescription('gone'), Partition: 'part1', Namespace: 'team-a' },
        { AccessorID: 'other-cluster', Description: loginDescription('gone', 'arn:aws:ecs:us-east-1:123456789012:cluster/other') },
      ]),
    );
    consul.intercept({ path: `/v1/catalog/node-services/${encodeURIComponent(CLUSTER)}?partition=part1&ns=*`, method: 'GET' }).reply(
      reply(200, {
        Services: [
          { ID: 'web-running', Service: 'web', Meta: { 'task-id': 'running' }, Namespace: 'default', Partition: 'part1' },
          { ID: 'api-gone', Service: 'api', Meta: { 'task-id': 'gone' }, Namespace: 'team-a', Partition: 'part1' },
          { ID: 'no-meta', Service: 'x' },
        ],
      }),
    );
    consul
      .intercept({ path: '/v1/acl/policy/name/cross-namespace-read?partition=part1&ns=default', method: 'GET' })
      .reply(reply(policyRead, policyRead === 404 ? 'ACL not found' : 'rpc error'));
    consul.intercept({ path: '/v1/acl/policy?partition=part1&ns=default', method: 'PUT' }).reply(reply(200, { ID: 'p' }));
    consul.intercept({ path: '/v1/namespace/default?partition=part1', method: 'PUT' }).reply(reply(200, {}));
    consul.intercept({ path: '/v1/namespace?partition=part1', method: 'PUT' }).reply(reply(200, {}));
    consul.intercept({ path: '/v1/acl/token/drop?partition=part1&ns=team-a', method: 'DELETE' }).reply(reply(200, true));
    consul.intercept({ path: '/v1/catalog/deregister', method: 'PUT' }).reply(reply(200, true));
    mockEcs(agent, (op, body) =>
      op === 'ListTasks'
        ? { taskArns: [taskArn('self'), taskArn('running'), taskArn('other-part')] }
        : {
            tasks: (body.tasks as string[]).map((a) => ({
              taskArn: a,
              tags: a.endsWith('/running')
                ? [
                    { key: 'consul.hashicorp.com/mesh', value: 'true' },
                    { key: 'consul.hashicorp.com/partition', value: 'part1' },
                    { key: 'consul.hashicorp.com/namespace', value: 'team-b' },
                  ]
                : a.endsWith('/other-part')
                  ? [
                      { key: 'consul.hashicorp.com/mesh', value: 'true' },
                      { key: 'consul.hashicorp.com/partition', value: 'part2' },
                      { key: 'consul.hashicorp.com/namespace', value: 'team-c' },
                    ]
                  : [],
            })),
          },
    );
    return seen;
  };

  /** One reaper pass over {@link enterpriseCluster} in partition part1; the cross-namespace policy read answers `policyStatus`. */
  const reapEnterprise = async (policyStatus: 404 | 500) => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const seen = enterpriseCluster(agent, policyStatus);
    const { admin, catalog } = setUp(agent);
    const res = await reapStoppedTasks({ ecs: ecsClient(agent), admin, catalog, clusterArn: CLUSTER, partition: 'part1', ownTaskArn: taskArn('self') });
    return { agent, seen, res };
  };

  it('Enterprise: lists tokens in every namespace of its partition, creates the tagged namespaces, removes what stopped tasks left', async () => {
    const { agent, seen, res } = await reapEnterprise(404);
    assert.deepEqual(res, { running: 3, tokensDeleted: ['drop'], servicesDeregistered: ['api-gone'], namespacesCreated: ['team-b'], errors: [] });
    const writes = seen.filter((s) => !s.startsWith('GET'));
    assert.match(writes[0]!, /^PUT \/v1\/acl\/policy\?partition=part1&ns=default .*"Name":"cross-namespace-read".*partition \\"part1\\"/);
    assert.match(writes[1]!, /^PUT \/v1\/namespace\/default\?partition=part1 .*"PolicyDefaults":\[\{"Name":"cross-namespace-read"\}\]/);
    assert.equal(writes[2], 'PUT /v1/namespace?partition=part1 {"Name":"team-b","ACLs":{"PolicyDefaults":[{"Name":"cross-namespace-read"}]}}');
    assert.equal(writes[3], 'DELETE /v1/acl/token/drop?partition=part1&ns=team-a');
    assert.match(
      writes[4]!,
      /^PUT \/v1\/catalog\/deregister \{"Node":"arn:aws:ecs:us-east-1:123456789012:cluster\/prod","ServiceID":"api-gone","Namespace":"team-a","Partition":"part1"\}/,
    );
    assert.equal(writes.length, 5);
    await agent.close();
  });

  it('Enterprise: a failure while reconciling namespaces is reported, and what stopped tasks left is still removed', async () => {
    const { agent, seen, res } = await reapEnterprise(500);
    assert.deepEqual(res.tokensDeleted, ['drop']);
    assert.deepEqual(res.servicesDeregistered, ['api-gone']);
    assert.deepEqual(res.namespacesCreated, []);
    assert.equal(res.errors.length, 1);
    assert.match(res.errors[0]!, /^reconciling namespaces: Consul GET \/v1\/acl\/policy\/name\/cross-namespace-read .*HTTP 500/);
    assert.ok(!seen.some((r) => r.startsWith('PUT /v1/namespace')), 'no namespace written');
    await agent.close();
  });
});
