// The token sink of loginWithAwsIam: the file is written while the new token is
// read back, and put in place only once it reads back. A token that never reads
// back, or a sink that cannot be written, leaves no file (and no temporary one)
// and is logged out. Consul's answers are recorded (undici MockAgent).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { ConsulHttpClient, fromStaticCredentials, loginWithAwsIam } from '@consul-ecs-ts/core';
import { fakeClock } from '../helpers/fake-clock.ts';

const ORIGIN = 'http://127.0.0.1:8500';
const TOKEN = { AccessorID: 'a1b2c3d4-0000-4000-8000-000000000001', SecretID: '5e3c1a9b-0000-4000-8000-000000000002' };
const JSON_HEADERS = { 'content-type': 'application/json' };

describe('loginWithAwsIam token sink', () => {
  let agent: MockAgent;
  let dir: string;
  let logouts: number;
  beforeEach(async () => {
    agent = new MockAgent();
    agent.disableNetConnect();
    dir = await mkdtemp(join(tmpdir(), 'token-sink-'));
    logouts = 0;
    const pool = agent.get(ORIGIN);
    pool.intercept({ path: '/v1/acl/login', method: 'POST' }).reply(200, TOKEN, { headers: JSON_HEADERS });
    pool
      .intercept({ path: '/v1/acl/logout', method: 'POST' })
      .reply(() => {
        logouts++;
        return { statusCode: 200, data: '' };
      })
      .persist();
  });
  afterEach(async () => {
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  });

  const login = (sink: string, clock = fakeClock()) =>
    loginWithAwsIam({
      client: new ConsulHttpClient({ address: '127.0.0.1:8500', dispatcher: agent, clock, retryDeadlineMs: 0 }),
      credentials: fromStaticCredentials({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }),
      region: 'us-east-1',
      includeEntity: false,
      tokenSinkFile: sink,
      waitForReplication: { attempts: 3 },
      clock,
    });

  it('puts the token in place, mode 0600, once it reads back; no temporary file is left', async () => {
    const sink = join(dir, 'token');
    const seenBeforeReadBack: boolean[] = [];
    const readBack = (statusCode: number, data: unknown) => () => {
      seenBeforeReadBack.push(existsSync(sink));
      return { statusCode, data: JSON.stringify(data), responseOptions: { headers: JSON_HEADERS } };
    };
    agent.get(ORIGIN).intercept({ path: '/v1/acl/token/self?stale=', method: 'GET' }).reply(readBack(403, 'ACL not found'));
    agent.get(ORIGIN).intercept({ path: '/v1/acl/token/self?stale=', method: 'GET' }).reply(readBack(200, TOKEN));
    await login(sink);
    assert.deepEqual(seenBeforeReadBack, [false, false], 'the sink appears only once the token reads back');
    assert.equal(await readFile(sink, 'utf8'), TOKEN.SecretID);
    assert.equal((await stat(sink)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['token']);
    assert.equal(logouts, 0);
  });

  it('a token that never reads back: no file, and the token is logged out', async () => {
    agent.get(ORIGIN).intercept({ path: '/v1/acl/token/self?stale=', method: 'GET' }).reply(403, 'ACL not found').persist();
    await assert.rejects(login(join(dir, 'token')));
    assert.deepEqual(await readdir(dir), []);
    assert.equal(logouts, 1);
  });

  it('a sink that cannot be written: an error naming the file and what to check, and the token is logged out', async () => {
    agent.get(ORIGIN).intercept({ path: '/v1/acl/token/self?stale=', method: 'GET' }).reply(200, TOKEN, { headers: JSON_HEADERS });
    const sink = join(dir, 'missing', 'token');
    await assert.rejects(login(sink), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'file-write-failed');
      assert.match(err.message, new RegExp(`cannot write ${sink}: .*ENOENT.*check that ${dirname(sink)} exists and that uid \\d+ can write to it`));
      assert.doesNotMatch(err.message, new RegExp(TOKEN.SecretID));
      return true;
    });
    assert.deepEqual(await readdir(dir), []);
    assert.equal(logouts, 1);
  });
});
