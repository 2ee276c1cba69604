// Property tests of the ECS task metadata parser: whatever the metadata endpoint
// answers, TaskMetadataClient.task() and taskInfo() give a TaskInfo of the right
// types or a ConsulEcsError, never a TypeError; and task ARNs round-trip.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { MockAgent } from 'undici';
import { parseTaskArn } from '../../packages/core/src/aws/arn.ts';
import { taskInfo, TaskMetadataClient, type TaskInfo } from '../../packages/core/src/ecs/task-metadata.ts';
import { ConsulEcsError } from '../../packages/core/src/util/errors.ts';
import { fakeClock } from '../helpers/fake-clock.ts';

const RUNS = 300;
const ORIGIN = 'http://169.254.170.2';

const segment = fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/);
const region = fc.constantFrom('us-east-1', 'us-west-2', 'eu-central-1', 'ap-southeast-2', 'cn-north-1', 'us-gov-west-1');
const partition = fc.constantFrom('aws', 'aws-cn', 'aws-us-gov');
const account = fc.stringMatching(/^[0-9]{12}$/);
const taskId = fc.stringMatching(/^[0-9a-f]{32}$/);

/** The parts of a task ARN, and the ARN (new format `task/<cluster>/<id>`, or old `task/<id>`). */
const taskArn = fc.record({ partition, region, account, cluster: fc.option(segment, { nil: undefined }), taskId }).map((p) => ({
  ...p,
  arn: `arn:${p.partition}:ecs:${p.region}:${p.account}:task/${p.cluster === undefined ? '' : `${p.cluster}/`}${p.taskId}`,
}));

/** An ARN-ish string: real ARNs, odd ones (wrong service, resource, too few parts) and any text. */
const oddArn = fc.oneof(
  taskArn.map((t) => t.arn),
  fc.tuple(fc.constantFrom('arn', 'ARN', ''), partition, fc.constantFrom('ecs', 'ec2', ''), region, account, fc.string()).map((parts) => parts.join(':')),
  fc.array(fc.constantFrom('arn', 'aws', 'ecs', 'task', 'task/', 'task/c/', '/', ':', ''), { maxLength: 8 }).map((parts) => parts.join(':')),
  fc.string(),
);

/** Anything JSON can hold, for a field of the wrong type. */
const wrong = fc.jsonValue({ maxDepth: 2 });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: wrong }), { nil: undefined });

const network = fc.oneof(
  fc.record(
    { NetworkMode: maybe(fc.constantFrom('awsvpc', 'bridge', 'host', '')), IPv4Addresses: maybe(fc.array(maybe(fc.ipV4()), { maxLength: 2 })) },
    { requiredKeys: [] },
  ),
  wrong,
);
const container = fc.oneof(
  fc.record(
    {
      Name: maybe(segment),
      DesiredStatus: maybe(fc.constantFrom('RUNNING', 'STOPPED')),
      KnownStatus: maybe(fc.constantFrom('RUNNING', 'STOPPED', 'PENDING')),
      Networks: maybe(fc.array(network, { maxLength: 2 })),
    },
    { requiredKeys: [] },
  ),
  wrong,
);

/** Task documents around the v4 shape: fields missing, of the wrong type, odd ARNs. */
const taskDocument = fc.record(
  {
    Cluster: maybe(
      fc.oneof(
        segment,
        taskArn.map((t) => `arn:${t.partition}:ecs:${t.region}:${t.account}:cluster/${t.cluster ?? 'default'}`),
      ),
    ),
    TaskARN: maybe(oddArn),
    Family: maybe(segment),
    AvailabilityZone: maybe(fc.constantFrom('us-west-2a', 'eu-central-1b')),
    LaunchType: maybe(fc.constantFrom('EC2', 'FARGATE', 'EXTERNAL')),
    Containers: maybe(fc.array(container, { maxLength: 3 })),
  },
  { requiredKeys: [] },
);

/** What a TaskInfo always holds. */
function assertTaskInfo(info: TaskInfo): void {
  for (const key of ['taskArn', 'taskId', 'region', 'account', 'partition', 'clusterArn', 'family', 'nodeIp'] as const) {
    assert.equal(typeof info[key], 'string', `${key} is ${JSON.stringify(info[key])}`);
  }
  for (const key of ['availabilityZone', 'launchType', 'networkMode'] as const) {
    assert.ok(info[key] === undefined || typeof info[key] === 'string', `${key} is ${JSON.stringify(info[key])}`);
  }
  assert.match(info.clusterArn, /^arn:/);
}

describe('task metadata properties', () => {
  let agent: MockAgent;
  let client: TaskMetadataClient;
  before(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    client = new TaskMetadataClient({ baseUrl: `${ORIGIN}/v4/abc`, dispatcher: agent, clock: fakeClock(), maxAttempts: 1 });
  });
  after(() => agent.close());

  /** The TaskInfo of a metadata answer, as mesh-init gets it; a ConsulEcsError is returned, anything else fails. */
  async function infoFromAnswer(body: string): Promise<TaskInfo | ConsulEcsError> {
    agent.get(ORIGIN).intercept({ path: '/v4/abc/task', method: 'GET' }).reply(200, body);
    try {
      return taskInfo(await client.task());
    } catch (err) {
      assert.ok(err instanceof ConsulEcsError, `expected a ConsulEcsError, got ${err instanceof Error ? err.stack : String(err)}`);
      assert.match(err.code, /^(ecs-metadata-invalid|ecs-task-arn-invalid)$/);
      return err;
    }
  }

  it('a task document around the v4 shape gives a TaskInfo of the right types, or a ConsulEcsError', async () => {
    await fc.assert(
      fc.asyncProperty(taskDocument, async (doc) => {
        const out = await infoFromAnswer(JSON.stringify(doc));
        if (!(out instanceof ConsulEcsError)) assertTaskInfo(out);
      }),
      { numRuns: RUNS },
    );
  });

  it('any JSON answer, or a truncated one, gives a TaskInfo or a ConsulEcsError', async () => {
    const answer = fc.oneof(
      fc.json(),
      fc
        .tuple(
          taskDocument.map((d) => JSON.stringify(d)),
          fc.nat(),
        )
        .map(([text, cut]) => text.slice(0, cut % (text.length + 1))),
    );
    await fc.assert(
      fc.asyncProperty(answer, async (body) => {
        const out = await infoFromAnswer(body);
        if (!(out instanceof ConsulEcsError)) assertTaskInfo(out);
      }),
      { numRuns: RUNS },
    );
  });

  it('a well-formed task document gives its region, account, cluster, task id, family and first IPv4 address', async () => {
    const wellFormed = fc.record({ t: taskArn, family: segment, ip: fc.ipV4(), clusterAsArn: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(wellFormed, async ({ t, family, ip, clusterAsArn }) => {
        const clusterArn = `arn:${t.partition}:ecs:${t.region}:${t.account}:cluster/${t.cluster ?? 'default'}`;
        const doc = {
          Cluster: clusterAsArn || t.cluster === undefined ? clusterArn : t.cluster,
          TaskARN: t.arn,
          Family: family,
          Containers: [{ Name: 'app', DesiredStatus: 'RUNNING', KnownStatus: 'RUNNING', Networks: [{ NetworkMode: 'awsvpc', IPv4Addresses: [ip] }] }],
        };
        const info = await infoFromAnswer(JSON.stringify(doc));
        assert.ok(!(info instanceof ConsulEcsError), info instanceof ConsulEcsError ? info.message : '');
        assert.deepEqual(info, {
          taskArn: t.arn,
          taskId: t.taskId,
          region: t.region,
          account: t.account,
          partition: t.partition,
          clusterArn,
          family,
          nodeIp: ip,
          networkMode: 'awsvpc',
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('parseTaskArn round-trips the parts of a generated task ARN, and any other string is an ecs-task-arn-invalid error', () => {
    fc.assert(
      fc.property(taskArn, (t) => {
        const parsed = parseTaskArn(t.arn);
        assert.deepEqual(parsed, {
          partition: t.partition,
          region: t.region,
          account: t.account,
          taskId: t.taskId,
          ...(t.cluster === undefined ? {} : { cluster: t.cluster }),
        });
      }),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(oddArn, (arn) => {
        try {
          const parsed = parseTaskArn(arn);
          assert.ok(parsed.taskId && arn.endsWith(`/${parsed.taskId}`), `task id ${parsed.taskId} of ${arn}`);
        } catch (err) {
          assert.ok(err instanceof ConsulEcsError && err.code === 'ecs-task-arn-invalid', `got ${String(err)}`);
          assert.ok(err.message.includes('arn:aws:ecs:<region>:<account>:task/<cluster>/<taskId>'), err.message);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('task metadata: answers the properties found to throw a TypeError', () => {
  const arn = 'arn:aws:ecs:us-east-1:123456789012:task/0123456789abcdef0123456789abcdef';
  it('a null document, a Cluster that is not a string or a container that is not an object is ecs-metadata-invalid', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const client = new TaskMetadataClient({ baseUrl: `${ORIGIN}/v4/abc`, dispatcher: agent, clock: fakeClock(), maxAttempts: 1 });
    try {
      for (const [body, message] of [
        ['null', /has no TaskARN or Containers/],
        [JSON.stringify({ TaskARN: arn, Cluster: {}, Containers: [] }), /Cluster is not a string/],
        [JSON.stringify({ TaskARN: arn, Cluster: 'c', Containers: [null] }), /Containers\[0\] is not an object/],
      ] as const) {
        agent.get(ORIGIN).intercept({ path: '/v4/abc/task', method: 'GET' }).reply(200, body);
        await assert.rejects(client.task(), (err) => err instanceof ConsulEcsError && err.code === 'ecs-metadata-invalid' && message.test(err.message));
      }
    } finally {
      await agent.close();
    }
  });

  it('taskInfo reads odd optional fields as absent, and wants a cluster from Cluster or the ARN', () => {
    const info = taskInfo({
      TaskARN: arn,
      Cluster: 'c',
      Family: 7 as unknown as string,
      Containers: [{ Networks: [null, { NetworkMode: 1, IPv4Addresses: [null] }] } as never],
    });
    assert.equal(info.family, '');
    assert.equal(info.nodeIp, '127.0.0.1');
    assert.equal(info.networkMode, undefined);
    assert.throws(() => taskInfo({ TaskARN: arn, Family: 'f', Containers: [] } as never), /names no cluster/);
  });
});
