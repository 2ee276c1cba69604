import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Agent, MockAgent } from 'undici';
import { aclLogin, ConsulHttpClient, waitForTokenReplication } from '@consul-ecs-ts/core';
import { isLoginSetUpPending } from '../../packages/core/src/consul/acl.ts';
import { fakeClock } from '../helpers/fake-clock.ts';

const ORIGIN = 'http://127.0.0.1:8500';
const TOKEN = '3f1d6c9e-5b7a-4c1e-9d2f-8a6b4c2e1f0a';

describe('Consul HTTP client', () => {
  let agent: MockAgent;
  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
  });
  afterEach(() => agent.close());

  const client = (clock = fakeClock()) => new ConsulHttpClient({ address: '127.0.0.1:8500', dispatcher: agent, clock, retryDeadlineMs: 60_000 });

  it('retries 5xx and 429, then succeeds', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/v1/status/leader', method: 'GET' }).reply(500, 'No cluster leader');
    pool.intercept({ path: '/v1/status/leader', method: 'GET' }).reply(429, 'slow down');
    pool.intercept({ path: '/v1/status/leader', method: 'GET' }).reply(200, '"127.0.0.1:8300"');
    const clock = fakeClock();
    assert.equal(await client(clock).call({ path: '/v1/status/leader' }), '127.0.0.1:8300');
    assert.equal(clock.sleeps.length, 2);
  });

  it('retries connection errors', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/v1/status/leader', method: 'GET' }).replyWithError(new Error('connect ECONNREFUSED'));
    pool.intercept({ path: '/v1/status/leader', method: 'GET' }).reply(200, '"x"');
    assert.equal(await client().call({ path: '/v1/status/leader' }), 'x');
  });

  it('does not retry other 4xx, and never echoes the token', async () => {
    agent.get(ORIGIN).intercept({ path: '/v1/acl/token/self', method: 'GET' }).reply(403, `ACL not found for token ${TOKEN}`);
    const clock = fakeClock();
    await assert.rejects(client(clock).call({ path: '/v1/acl/token/self', token: TOKEN }), (err: Error & { status?: number }) => {
      assert.equal(err.status, 403);
      assert.match(err.message, /Consul GET \/v1\/acl\/token\/self at http:\/\/127\.0\.0\.1:8500 failed with HTTP 403: ACL not found for token \[redacted\]/);
      assert.doesNotMatch(err.message, new RegExp(TOKEN));
      return true;
    });
    assert.equal(clock.sleeps.length, 0);
  });

  it('gives up at the deadline when Consul stays down', async () => {
    agent.get(ORIGIN).intercept({ path: '/v1/status/leader', method: 'GET' }).replyWithError(new Error('connect ECONNREFUSED')).persist();
    const clock = fakeClock();
    const start = clock.now();
    await assert.rejects(client(clock).call({ path: '/v1/status/leader' }), /could not connect/);
    assert.ok(clock.now() - start <= 60_000);
  });

  it('sends login with meta and the namespace/partition query, turning a 403 into a clear refusal', async () => {
    agent
      .get(ORIGIN)
      .intercept({
        path: '/v1/acl/login?ns=team&partition=part',
        method: 'POST',
        body: (b) => {
          const j = JSON.parse(b) as Record<string, unknown>;
          return j.AuthMethod === 'm' && j.BearerToken === 'bearer-secret-value' && (j.Meta as Record<string, string>).k === 'v';
        },
      })
      .reply(403, 'Permission denied: IAM principal arn:aws:iam::1:role/x is not trusted');
    await assert.rejects(
      aclLogin(client(), { authMethod: 'm', bearerToken: 'bearer-secret-value', meta: { k: 'v' }, namespace: 'team', partition: 'part' }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'consul-login-refused');
        assert.match(
          err.message,
          /refused the login to auth method "m" \(HTTP 403\): Permission denied: IAM principal .* is not trusted\. Likely cause: the IAM role is not under a path/,
        );
        assert.doesNotMatch(err.message, /bearer-secret-value/);
        return true;
      },
    );
  });

  it('tells a login refused because the auth method or its binding rule does not exist yet from a final refusal', async () => {
    const refusal = async (body: string) => {
      agent.get(ORIGIN).intercept({ path: '/v1/acl/login', method: 'POST' }).reply(403, body);
      return aclLogin(client(), { authMethod: 'm', bearerToken: 'b' }).then(
        () => assert.fail('the login was accepted'),
        (err: unknown) => err,
      );
    };
    assert.equal(isLoginSetUpPending(await refusal('ACL not found: auth method "m" not found')), true);
    assert.equal(isLoginSetUpPending(await refusal('Permission denied')), true);
    assert.equal(isLoginSetUpPending(await refusal('Permission denied: IAM principal arn:aws:iam::1:role/x is not trusted')), false);
    assert.equal(isLoginSetUpPending(await refusal('invalid bind name: entity_tags')), false);
    assert.equal(isLoginSetUpPending(new Error('Permission denied')), false);
  });

  it('reads the token back with ?stale, bounded', async () => {
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/v1/acl/token/self?stale=', method: 'GET' }).reply(403, 'ACL not found').times(2);
    pool.intercept({ path: '/v1/acl/token/self?stale=', method: 'GET' }).reply(200, { AccessorID: 'a', SecretID: TOKEN });
    const clock = fakeClock();
    assert.equal((await waitForTokenReplication(client(clock), TOKEN, { clock })).AccessorID, 'a');
    assert.deepEqual(clock.sleeps, [100, 100]);

    pool.intercept({ path: '/v1/acl/token/self?stale=', method: 'GET' }).reply(403, 'ACL not found').times(3);
    await assert.rejects(waitForTokenReplication(client(), TOKEN, { attempts: 3 }), /could not be read back with stale consistency after 3 attempts/);
  });

  it('sends a call made as soon as another returns over the same connection', async (t) => {
    // undici frees a connection one turn of the event loop after its response; a
    // call made before then would open another (with HTTPS, another TLS handshake).
    let connections = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(JSON.stringify(req.url)));
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const dispatcher = new Agent();
    t.after(async () => {
      await dispatcher.close();
      await new Promise((resolve) => server.close(resolve));
    });
    const consul = new ConsulHttpClient({ address: `127.0.0.1:${(server.address() as AddressInfo).port}`, dispatcher });

    assert.equal(await consul.call({ path: '/v1/acl/login', method: 'POST', body: {} }), '/v1/acl/login');
    assert.equal(await consul.call({ path: '/v1/acl/token/self' }), '/v1/acl/token/self');
    const parallel = await Promise.all(['/v1/catalog/register', '/v1/catalog/register'].map((path) => consul.call({ path, method: 'PUT', body: {} })));
    assert.deepEqual(parallel, ['/v1/catalog/register', '/v1/catalog/register']);
    assert.equal(connections, 2, 'the first connection is reused, and one more is opened for the call made alongside');
  });
});
