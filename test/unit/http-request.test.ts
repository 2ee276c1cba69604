import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { Agent, MockAgent } from 'undici';
import { httpRequest } from '../../packages/core/src/http/request.ts';

/** A local HTTP server answering with `handle`, and an agent of its own; both closed after the test. */
async function serve(t: TestContext, handle: (req: IncomingMessage, res: ServerResponse) => void, agentOpts?: Agent.Options) {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dispatcher = new Agent(agentOpts);
  t.after(async () => {
    await dispatcher.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, dispatcher };
}

describe('httpRequest', () => {
  it('returns the status, the headers by lower-case name and the whole body, sent in pieces', async (t) => {
    const { url, dispatcher } = await serve(t, (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d));
      req.on('end', () => {
        res.writeHead(201, { 'X-Amzn-ErrorType': 'Thing', 'Content-Type': 'application/json' });
        res.write(`{"method":"${req.method}","got":${JSON.stringify(body)},`);
        setTimeout(() => res.end('"snow":"❄"}'), 5);
      });
    });
    const res = await httpRequest(`${url}/x?y=1`, { method: 'POST', body: 'a=b', dispatcher });
    assert.equal(res.statusCode, 201);
    assert.equal(res.headers['x-amzn-errortype'], 'Thing');
    assert.deepEqual(JSON.parse(res.text), { method: 'POST', got: 'a=b', snow: '❄' });
  });

  it('sends a request made as soon as another returns over the same connection', async (t) => {
    const { url, dispatcher } = await serve(t, (req, res) => res.end(req.url));
    let connections = 0;
    dispatcher.on('connect', () => connections++);
    for (const path of ['/a', '/b', '/c']) assert.equal((await httpRequest(`${url}${path}`, { dispatcher })).text, path);
    assert.equal(connections, 1);
  });

  it('rejects a response cut off in its body', async (t) => {
    const { url, dispatcher } = await serve(t, (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('0123456789');
      setTimeout(() => res.socket?.destroy(), 5);
    });
    await assert.rejects(httpRequest(url, { dispatcher }), (err: Error) => /other side closed|socket|closed/i.test(err.message));
  });

  it('rejects at once with the signal’s reason when aborted while waiting for a connection', async (t) => {
    let release = () => {};
    const { url, dispatcher } = await serve(
      t,
      (_req, res) => {
        release = () => res.end('late');
      },
      { connections: 1 },
    );
    const first = httpRequest(url, { dispatcher });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const controller = new AbortController();
    const queued = httpRequest(url, { dispatcher, signal: controller.signal });
    const reason = new Error('stopping');
    controller.abort(reason);
    await assert.rejects(queued, (err) => err === reason);
    release();
    assert.equal((await first).text, 'late');
  });

  it('sends nothing when the signal is already aborted', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const reason = new Error('stopped before');
    await assert.rejects(httpRequest('http://127.0.0.1:1/none', { dispatcher: agent, signal: AbortSignal.abort(reason) }), (err) => err === reason);
    await agent.close();
  });

  it('replays through a MockAgent', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    agent
      .get('http://127.0.0.1:8500')
      .intercept({ path: '/v1/status/leader', method: 'GET' })
      .reply(200, '"127.0.0.1:8300"', { headers: { 'X-Consul-Index': '7' } });
    const res = await httpRequest('http://127.0.0.1:8500/v1/status/leader', { dispatcher: agent });
    assert.deepEqual([res.statusCode, res.headers['x-consul-index'], res.text], [200, '7', '"127.0.0.1:8300"']);
    await agent.close();
  });
});
