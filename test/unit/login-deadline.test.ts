// loginWithAwsIam at its deadline: the error says why, whether the deadline came while an
// attempt waited for Consul's answer or while the login waited to try again.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConsulHttpClient, fromStaticCredentials, loginWithAwsIam } from '@consul-ecs-ts/core';

const credentials = fromStaticCredentials({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' });

function login(address: string) {
  return loginWithAwsIam({
    client: new ConsulHttpClient({ address }),
    credentials,
    region: 'us-east-1',
    includeEntity: false,
    deadlineMs: 1000,
    waitForReplication: false,
  });
}

describe('the login at its deadline', () => {
  let silent: Server;
  let closedPort: number;
  const sockets: Socket[] = [];
  before(async () => {
    // Accepts connections and never answers.
    silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    // A port nothing listens on: every attempt is refused at once.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it('names the refused connections when every attempt was refused', async () => {
    await assert.rejects(login(`http://127.0.0.1:${closedPort}`), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'consul-login-timeout');
      assert.match(err.message, new RegExp(`could not log in to Consul at http://127\\.0\\.0\\.1:${closedPort} within 1s: .*could not connect`));
      return true;
    });
  });

  it('says there was no answer when the one attempt waited for Consul until the deadline', async () => {
    const { port } = silent.address() as { port: number };
    const started = Date.now();
    await assert.rejects(login(`http://127.0.0.1:${port}`), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'consul-login-timeout');
      assert.match(err.message, new RegExp(`within 1s: no answer from http://127\\.0\\.0\\.1:${port} before the deadline; check that`));
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'given up at the deadline');
  });
});
