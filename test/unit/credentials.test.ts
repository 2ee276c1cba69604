import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { defaultCredentialProvider, fromContainerCredentials, refreshing, type AwsCredentials } from '@consul-ecs-ts/core';
import { fakeClock } from '../helpers/fake-clock.ts';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const SESSION = 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN';
const AUTH = 'simulated-authorization-token-value';

describe('container credentials', () => {
  let agent: MockAgent;
  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
  });
  afterEach(() => agent.close());

  it('reads the full URI with the authorization token file, which wins over the env token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'creds-'));
    await writeFile(join(dir, 'token'), `${AUTH}\n`);
    agent
      .get('http://127.0.0.1:51679')
      .intercept({ path: '/v2/credentials/abc', method: 'GET', headers: { authorization: AUTH } })
      .reply(200, {
        AccessKeyId: 'ASIAEXAMPLE',
        SecretAccessKey: SECRET,
        Token: SESSION,
        Expiration: '2026-01-02T04:04:05Z',
        RoleArn: 'arn:aws:iam::123456789012:role/consul-ecs/web-task',
      });
    const provider = fromContainerCredentials({
      env: {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://127.0.0.1:51679/v2/credentials/abc',
        AWS_CONTAINER_AUTHORIZATION_TOKEN: 'not-this-one',
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, 'token'),
      },
      dispatcher: agent,
    });
    const creds = await provider!();
    assert.equal(creds.accessKeyId, 'ASIAEXAMPLE');
    assert.equal(creds.sessionToken, SESSION);
    assert.equal(creds.expiration?.toISOString(), '2026-01-02T04:04:05.000Z');
    assert.equal(creds.principalArn, 'arn:aws:iam::123456789012:role/consul-ecs/web-task', 'the task role, for the login');
  });

  it('uses 169.254.170.2 for the relative URI', async () => {
    agent
      .get('http://169.254.170.2')
      .intercept({ path: '/v2/credentials/rel', method: 'GET' })
      .reply(200, { AccessKeyId: 'ASIAREL', SecretAccessKey: SECRET, Token: SESSION });
    const provider = fromContainerCredentials({ env: { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/rel' }, dispatcher: agent });
    assert.equal((await provider!()).accessKeyId, 'ASIAREL');
  });

  it('refuses a plain-HTTP full URI that is not loopback or an ECS agent address', () => {
    assert.throws(
      () => fromContainerCredentials({ env: { AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://10.1.2.3/creds' } }),
      /host 10\.1\.2\.3 is not allowed over plain HTTP/,
    );
    assert.ok(fromContainerCredentials({ env: { AWS_CONTAINER_CREDENTIALS_FULL_URI: 'https://creds.example/x' } }));
  });

  it('reports an HTTP error without the authorization token, and retries 5xx', async () => {
    const pool = agent.get('http://127.0.0.1:51679');
    pool.intercept({ path: '/creds', method: 'GET' }).reply(500, 'boom').times(3);
    const clock = fakeClock();
    const provider = fromContainerCredentials({
      env: { AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://127.0.0.1:51679/creds', AWS_CONTAINER_AUTHORIZATION_TOKEN: AUTH },
      dispatcher: agent,
      clock,
    });
    await assert.rejects(provider!(), (err: Error) => {
      assert.match(err.message, /answered HTTP 500/);
      assert.doesNotMatch(err.message, new RegExp(AUTH));
      return true;
    });
    assert.equal(clock.sleeps.length, 2, 'three attempts in all');
  });
});

describe('refreshing credentials', () => {
  it('caches until five minutes before expiry, then refreshes', async () => {
    const clock = fakeClock(Date.parse('2026-01-02T03:00:00Z'));
    let calls = 0;
    const provider = refreshing(
      async (): Promise<AwsCredentials> => {
        calls++;
        return { accessKeyId: `K${calls}`, secretAccessKey: SECRET, sessionToken: SESSION, expiration: new Date(clock.now() + 3600_000) };
      },
      { clock },
    );
    assert.equal((await provider()).accessKeyId, 'K1');
    clock.advance(50 * 60_000);
    assert.equal((await provider()).accessKeyId, 'K1');
    clock.advance(6 * 60_000); // 4 minutes left
    assert.equal((await provider()).accessKeyId, 'K2');
    assert.equal(calls, 2);
  });

  it('keeps still-valid credentials when a refresh fails, and fails clearly once they expired', async () => {
    const clock = fakeClock(Date.parse('2026-01-02T03:00:00Z'));
    let fail = false;
    const provider = refreshing(
      async () => {
        if (fail) throw new Error('credentials endpoint answered HTTP 500');
        return { accessKeyId: 'K', secretAccessKey: SECRET, sessionToken: SESSION, expiration: new Date(clock.now() + 600_000) };
      },
      { clock },
    );
    await provider();
    fail = true;
    clock.advance(8 * 60_000); // in the refresh window, not expired
    assert.equal((await provider()).accessKeyId, 'K');
    clock.advance(3 * 60_000); // expired
    await assert.rejects(provider(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'aws-credentials-expired');
      assert.match(err.message, /expired at 2026-01-02T03:10:00\.000Z and could not be refreshed: credentials endpoint answered HTTP 500/);
      assert.doesNotMatch(err.message, new RegExp(`${SECRET}|${SESSION}`));
      return true;
    });
  });

  it('refuses credentials that are already expired when handed out', async () => {
    const clock = fakeClock(Date.parse('2026-01-02T03:00:00Z'));
    const provider = refreshing(async () => ({ accessKeyId: 'K', secretAccessKey: SECRET, expiration: new Date(clock.now() - 1000) }), { clock });
    await assert.rejects(provider(), /expired at 2026-01-02T02:59:59\.000Z/);
  });
});

describe('default credential chain', () => {
  it('prefers explicit keys, then environment keys, then the container endpoint', async () => {
    const env = { AWS_ACCESS_KEY_ID: 'ENVKEY', AWS_SECRET_ACCESS_KEY: SECRET, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/x' };
    assert.equal((await defaultCredentialProvider({ env, accessKeyId: 'EXPLICIT', secretAccessKey: SECRET })()).accessKeyId, 'EXPLICIT');
    assert.equal((await defaultCredentialProvider({ env })()).accessKeyId, 'ENVKEY');
  });

  it('says where credentials can come from when there are none', () => {
    assert.throws(() => defaultCredentialProvider({ env: {} }), /no AWS credentials found: run in an ECS task with a task role/);
  });
});
