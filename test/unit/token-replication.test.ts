// waitForTokenReplication under a login storm: the servers' 429s and 503s (request
// rate limits) are waited out with backoff and do not use up the attempts that
// find the token unknown.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { ConsulHttpClient, waitForTokenReplication } from '@consul-ecs-ts/core';
import { fakeClock } from '../helpers/fake-clock.ts';

const ORIGIN = 'http://127.0.0.1:8500';
const TOKEN = '3f1d6c9e-5b7a-4c1e-9d2f-8a6b4c2e1f0a';
const SELF = { path: '/v1/acl/token/self?stale=', method: 'GET' };
const RATE_LIMITED = 'rate limit exceeded, try again later or against a different server';

describe('waitForTokenReplication', () => {
  let agent: MockAgent;
  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
  });
  afterEach(() => agent.close());
  const client = () => new ConsulHttpClient({ address: '127.0.0.1:8500', dispatcher: agent, retryDeadlineMs: 60_000 });

  it('waits out more 429s and 503s than its attempts, backing off, then reads the token', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept(SELF).reply(429, RATE_LIMITED).times(12);
    pool.intercept(SELF).reply(503, 'rate limit exceeded for operation that can only be performed by the leader, try again later');
    pool.intercept(SELF).reply(403, 'ACL not found');
    pool.intercept(SELF).reply(200, { AccessorID: 'a', SecretID: TOKEN });
    const clock = fakeClock();
    const token = await waitForTokenReplication(client(), TOKEN, { clock, attempts: 3 });
    assert.equal(token.AccessorID, 'a');
    // 13 busy answers with growing pauses (capped at 5 s), then one unknown token at the 100 ms interval.
    assert.equal(clock.sleeps.length, 14);
    assert.ok(clock.sleeps[0]! >= 125 && clock.sleeps[0]! <= 250, `first backoff ${clock.sleeps[0]}`);
    assert.ok(clock.sleeps[4]! > clock.sleeps[0]!, 'the backoff grows');
    assert.ok(Math.max(...clock.sleeps) <= 5000);
    assert.equal(clock.sleeps.at(-1), 100);
  });

  it('gives up once the servers have been busy for busyDeadlineMs, saying so', async () => {
    agent.get(ORIGIN).intercept(SELF).reply(429, RATE_LIMITED).persist();
    const clock = fakeClock();
    await assert.rejects(
      waitForTokenReplication(client(), TOKEN, { clock, busyDeadlineMs: 10_000 }),
      (err: Error & { code?: string }) =>
        err.code === 'consul-token-not-replicated' &&
        /busy or unreachable for 10s/.test(err.message) &&
        /HTTP 429/.test(err.message) &&
        !err.message.includes(TOKEN),
    );
    assert.equal(
      clock.sleeps.reduce((a, b) => a + b, 0),
      10_000,
    );
  });

  it('still fails after its attempts when the token stays unknown', async () => {
    agent.get(ORIGIN).intercept(SELF).reply(403, 'ACL not found').times(3);
    const clock = fakeClock();
    await assert.rejects(waitForTokenReplication(client(), TOKEN, { clock, attempts: 3 }), /stale consistency after 3 attempts/);
    assert.deepEqual(clock.sleeps, [100, 100]);
  });
});
