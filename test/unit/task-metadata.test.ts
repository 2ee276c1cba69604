import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { containerStopped, parseTaskArn, taskInfo, TaskMetadataClient, type EcsTaskMetadata } from '@consul-ecs-ts/core';
import { fakeClock } from '../helpers/fake-clock.ts';

const TASK_ARN = 'arn:aws:ecs:us-west-2:123456789012:task/my-cluster/0123456789abcdef0123456789abcdef';

function task(over: Partial<EcsTaskMetadata> = {}): EcsTaskMetadata {
  return {
    Cluster: 'my-cluster',
    TaskARN: TASK_ARN,
    Family: 'Web-App',
    AvailabilityZone: 'us-west-2b',
    Containers: [{ Name: 'app', Type: 'NORMAL', DesiredStatus: 'RUNNING', KnownStatus: 'RUNNING', Networks: [{ IPv4Addresses: ['10.0.1.7'] }] }],
    ...over,
  };
}

describe('task metadata', () => {
  it('derives region, account, task id and the cluster ARN from the task ARN', () => {
    const info = taskInfo(task());
    assert.equal(info.region, 'us-west-2');
    assert.equal(info.account, '123456789012');
    assert.equal(info.taskId, '0123456789abcdef0123456789abcdef');
    assert.equal(info.clusterArn, 'arn:aws:ecs:us-west-2:123456789012:cluster/my-cluster');
    assert.equal(info.nodeIp, '10.0.1.7');
    assert.equal(info.availabilityZone, 'us-west-2b');
  });

  it('takes Cluster as is when it is an ARN, and falls back to 127.0.0.1 without networks', () => {
    const info = taskInfo(task({ Cluster: 'arn:aws:ecs:us-west-2:123456789012:cluster/other', Containers: [] }));
    assert.equal(info.clusterArn, 'arn:aws:ecs:us-west-2:123456789012:cluster/other');
    assert.equal(info.nodeIp, '127.0.0.1');
  });

  it('rejects a malformed task ARN with the ARN and the expected form', () => {
    assert.throws(() => parseTaskArn('arn:aws:ecs:us-west-2:1:service/x'), /task ARN "arn:aws:ecs:us-west-2:1:service\/x" is not of the form/);
  });

  it('treats a container as stopped only when desired and known status are STOPPED', () => {
    assert.equal(containerStopped({ DesiredStatus: 'STOPPED', KnownStatus: 'RUNNING' }), false);
    assert.equal(containerStopped({ DesiredStatus: 'STOPPED', KnownStatus: 'STOPPED' }), true);
  });

  it('fetches /task, retrying a 5xx', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const pool = agent.get('http://169.254.170.2');
    pool.intercept({ path: '/v4/abc/task', method: 'GET' }).reply(503, 'busy');
    pool.intercept({ path: '/v4/abc/task', method: 'GET' }).reply(200, task());
    const client = new TaskMetadataClient({ baseUrl: 'http://169.254.170.2/v4/abc', dispatcher: agent, clock: fakeClock() });
    assert.equal((await client.task()).TaskARN, TASK_ARN);
    await agent.close();
  });

  it('says to run inside ECS when the metadata URI is not set', () => {
    assert.throws(() => new TaskMetadataClient({ baseUrl: '' }), /ECS_CONTAINER_METADATA_URI_V4 is not set/);
  });
});
