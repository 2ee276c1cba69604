// mesh-init against recorded answers: the registrations go out while the new
// login token replicates, and one that a server refuses because it does not know
// the token yet is sent again once the token reads back.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MockAgent } from 'undici';
import { createLogger, fromStaticCredentials, meshInit, resolveConfig, type EcsTaskMetadata } from '@consul-ecs-ts/core';
import { fakeClock } from '../helpers/fake-clock.ts';

const CONSUL = 'http://127.0.0.1:8500';
const METADATA = 'http://metadata.test';
const TASK_ID = '0123456789abcdef0123456789abcdef';
const task: EcsTaskMetadata = {
  Cluster: 'arn:aws:ecs:us-west-2:123456789012:cluster/c',
  TaskARN: `arn:aws:ecs:us-west-2:123456789012:task/c/${TASK_ID}`,
  Family: 'web',
  Containers: [{ Name: 'app', Type: 'NORMAL', DesiredStatus: 'RUNNING', KnownStatus: 'RUNNING' }],
};
const SECRET = '6a1d0c52-0a2e-4cf0-9a3b-5d7e2f1c9b01';
const token = { AccessorID: 'a1b2c3d4-0000-4000-8000-000000000001', SecretID: SECRET, ServiceIdentities: [{ ServiceName: 'web' }] };
const ACL_NOT_FOUND = 'ACL not found';

describe('mesh-init while the login token replicates', () => {
  let agent: MockAgent;
  let dir: string;
  /** Consul calls in the order they were answered: "METHOD path status". */
  let calls: string[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-init-replication-'));
    calls = [];
    agent = new MockAgent();
    agent.disableNetConnect();
    agent.get(METADATA).intercept({ path: '/v4/c/task' }).reply(200, task).persist();
  });
  afterEach(async () => {
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Answers `status` with `body` and records the call. */
  const answer = (status: number, body: unknown) => (opts: { method: string; path: string }) => {
    calls.push(`${opts.method} ${opts.path.split('?')[0]} ${status}`);
    return { statusCode: status, data: typeof body === 'string' ? body : JSON.stringify(body) };
  };

  /**
   * A server that knows the new token only after `unknownFor` stale reads of it,
   * and refuses the first registration with "ACL not found" meanwhile.
   */
  function consul(unknownFor: number, opts: { busyUndo?: number } = {}) {
    const pool = agent.get(CONSUL);
    // Consul's request rate limits refusing the undo's writes for a while.
    if (opts.busyUndo) {
      for (const path of ['/v1/catalog/deregister', '/v1/acl/logout']) {
        pool
          .intercept({ path, method: path.endsWith('logout') ? 'POST' : 'PUT' })
          .reply(answer(429, 'rate limit exceeded'))
          .times(opts.busyUndo);
      }
    }
    pool.intercept({ path: '/v1/acl/login', method: 'POST' }).reply(answer(200, token));
    const self = (p: string) => p.startsWith('/v1/acl/token/self');
    // Each refused read takes a while, so the registrations go out before the token is known.
    if (unknownFor > 0) pool.intercept({ path: self }).reply(answer(403, ACL_NOT_FOUND)).delay(20).times(unknownFor);
    pool.intercept({ path: self }).reply(answer(200, token)).persist();
    pool.intercept({ path: '/v1/catalog/register', method: 'PUT' }).reply(answer(403, ACL_NOT_FOUND));
    pool.intercept({ path: '/v1/catalog/register', method: 'PUT' }).reply(answer(200, 'true')).persist();
    pool
      .intercept({ path: (p) => p.startsWith('/v1/catalog/node-services/') })
      .reply(answer(200, { Services: [] }))
      .persist();
    pool.intercept({ path: '/v1/catalog/deregister', method: 'PUT' }).reply(answer(200, 'true')).persist();
    pool.intercept({ path: '/v1/acl/logout', method: 'POST' }).reply(answer(200, '')).persist();
  }

  function run() {
    let log = '';
    const result = meshInit({
      config: resolveConfig({
        bootstrapDir: dir,
        consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: 8500 } },
        consulLogin: { enabled: true, includeEntity: false },
        service: { name: 'web', port: 8080 },
        transparentProxy: { enabled: false },
      }),
      env: { ECS_CONTAINER_METADATA_URI_V4: `${METADATA}/v4/c` },
      addresses: ['127.0.0.1'],
      credentials: fromStaticCredentials({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }),
      // Never this machine's iptables.
      transparentProxy: {
        run: () => {
          throw new Error('transparent proxy must stay off in this test');
        },
      },
      dispatcher: agent,
      clock: fakeClock(),
      logger: createLogger({ level: 'debug', write: (line) => (log += line) }),
    });
    return { result, log: () => log };
  }

  it('sends a registration refused with "ACL not found" again once the token reads back', async () => {
    consul(2);
    const { result, log } = run();
    const init = await result;
    await init.client.close();
    assert.equal(init.token, SECRET);
    const registers = calls.filter((c) => c.startsWith('PUT /v1/catalog/register'));
    assert.deepEqual(registers, ['PUT /v1/catalog/register 403', 'PUT /v1/catalog/register 200', 'PUT /v1/catalog/register 200']);
    // The refused one went out again only after the token read back.
    const readBack = calls.indexOf('GET /v1/acl/token/self 200');
    assert.ok(readBack > calls.indexOf('PUT /v1/catalog/register 403'), calls.join('\n'));
    assert.equal(calls.lastIndexOf('PUT /v1/catalog/register 200') > readBack, true, calls.join('\n'));
    assert.match(log(), /the token reads back with stale consistency/);
    assert.ok((await readdir(dir)).includes('service-token'));
    assert.doesNotMatch(log(), new RegExp(SECRET));
  });

  it('fails, logs the token out and leaves nothing when the token never reads back', async () => {
    consul(20);
    const { result, log } = run();
    await assert.rejects(result, (err: Error & { code?: string }) => {
      assert.equal(err.code, 'consul-token-not-replicated');
      assert.doesNotMatch(err.message, new RegExp(SECRET));
      return true;
    });
    assert.ok(calls.includes('POST /v1/acl/logout 200'), calls.join('\n'));
    // The registration that succeeded is undone; the refused one was not sent again.
    assert.equal(calls.filter((c) => c === 'PUT /v1/catalog/register 200').length, 1, calls.join('\n'));
    assert.equal(calls.filter((c) => c === 'PUT /v1/catalog/deregister 200').length, 1, calls.join('\n'));
    assert.deepEqual(await readdir(dir), []);
    assert.doesNotMatch(log(), new RegExp(SECRET));
  });

  it("undoes a failed run through Consul's request rate limits (429) that last longer than a few seconds", async () => {
    consul(20, { busyUndo: 8 });
    const { result, log } = run();
    await assert.rejects(result, { code: 'consul-token-not-replicated' });
    assert.equal(calls.filter((c) => c === 'PUT /v1/catalog/deregister 429').length, 8, calls.join('\n'));
    assert.ok(calls.includes('PUT /v1/catalog/deregister 200'), calls.join('\n'));
    assert.equal(calls.filter((c) => c === 'POST /v1/acl/logout 429').length, 8, calls.join('\n'));
    assert.ok(calls.includes('POST /v1/acl/logout 200'), calls.join('\n'));
    assert.doesNotMatch(log(), /cleanup step failed/);
    assert.deepEqual(await readdir(dir), []);
  });
});
