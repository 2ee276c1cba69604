import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '@consul-ecs-ts/cli';
import { captureOutput } from '../helpers/capture.ts';

async function run(...argv: string[]) {
  const out = captureOutput();
  const code = await runCli(argv, { env: {}, stdout: out.stdout, stderr: out.stderr, signal: new AbortController().signal });
  return { code, out: out.out(), err: out.err() };
}

describe('consul-ecs CLI', () => {
  it('prints usage on stderr and exits 1 without a command or with an unknown one', async () => {
    const none = await run();
    assert.equal(none.code, 1);
    assert.match(none.err, /^Usage: consul-ecs <command> \[flags\]/);
    for (const name of [
      'version',
      'login',
      'logout',
      'mesh-init',
      'health-sync',
      'control-plane',
      'controller',
      'envoy-entrypoint',
      'app-entrypoint',
      'net-dial',
    ]) {
      assert.match(none.err, new RegExp(`\\n  ${name} `), `${name} is listed`);
    }
    const unknown = await run('frobnicate');
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /^unknown command: frobnicate\n\nUsage:/);
    assert.equal(unknown.out, '');
  });

  it('answers -help per command on stdout, and bad flags with the command usage on stderr, exit 1', async () => {
    const help = await run('login', '-help');
    assert.equal(help.code, 0);
    assert.match(help.out, /^Usage: consul-ecs login \[flags\][\s\S]*-aws-server-id-header-value <string>/);
    const bad = await run('login', '-nope');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^flag provided but not defined: -nope\n\nUsage: consul-ecs login/);
    const missing = await run('login', '-aws-region', 'us-east-1');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /-token-sink-file is required/);
    const logout = await run('logout');
    assert.equal(logout.code, 1);
    assert.match(logout.err, /-token-file is required/);
    const extra = await run('mesh-init', 'surplus');
    assert.equal(extra.code, 1);
    assert.match(extra.err, /unexpected argument: surplus/);
  });

  it('prints its version', async () => {
    const v = await run('version');
    assert.equal(v.code, 0);
    assert.match(v.out, /^consul-ecs v\d+\.\d+\.\d+/);
  });

  it('net-dial: 0 when the port takes a connection (an empty host is this machine), 2 when not or the address is not one, 1 on bad usage', async () => {
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      assert.equal((await run('net-dial', `127.0.0.1:${port}`)).code, 0);
      assert.equal((await run('net-dial', `:${port}`)).code, 0);
      assert.equal((await run('net-dial', `[::ffff:127.0.0.1]:${port}`)).code, 0);
    } finally {
      server.close();
    }
    assert.equal((await run('net-dial', `127.0.0.1:${port}`)).code, 2);
    const bad = await run('net-dial', '127.0.0.1');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /^cannot dial "127\.0\.0\.1": expected <host>:<port>/);
    assert.equal((await run('net-dial', 'host:70000')).code, 2);
    const usage = await run('net-dial');
    assert.equal(usage.code, 1);
    assert.match(usage.err, /^expected one argument\n\nUsage: consul-ecs net-dial <host>:<port>/);
    assert.equal((await run('net-dial', 'a:1', 'b:2')).code, 1);
  });

  it('mesh-init without CONSUL_ECS_CONFIG_JSON says what to set', async () => {
    const r = await run('mesh-init');
    assert.equal(r.code, 1);
    assert.match(r.err, /CONSUL_ECS_CONFIG_JSON/);
  });
});

describe('consul-ecs CLI bundle: what a command loads', () => {
  const CLI = fileURLToPath(new URL('../../packages/cli/bin/consul-ecs.cjs', import.meta.url));
  /** Node.js built-ins the CLI keeps out: undici loads them eagerly, the CLI never needs them (HTTP/2, TLS to an http:// address, a failing assertion). */
  const KEPT_OUT = /^NativeModule (http2|assert|tls|https)$/;

  /**
   * Runs the bundled CLI with a preloaded probe that prints, at exit, the kept-out
   * built-ins it loaded and "undici" if undici loaded (it sets its global dispatcher).
   */
  async function loadedBy(dir: string, ...args: string[]): Promise<{ code: number | null; loaded: string; stderr: string }> {
    const probe = join(dir, 'probe.cjs');
    writeFileSync(
      probe,
      `process.on('exit', () => process.stderr.write('loaded: ' + [...process.moduleLoadList.filter((m) => ${KEPT_OUT}.test(m)), ...(globalThis[Symbol.for('undici.globalDispatcher.1')] ? ['undici'] : [])].join(',') + '\\n'));`,
    );
    const child = spawn(process.execPath, ['--require', probe, CLI, ...args], { env: { PATH: '/nonexistent' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    const line = /^loaded: (.*)$/m.exec(stderr);
    assert.ok(line, `consul-ecs ${args.join(' ')}: no probe line in ${JSON.stringify(stderr)}`);
    return { code, loaded: line[1]!, stderr };
  }

  it('a command that makes requests leaves node:http2, node:assert and TLS unloaded', async (t) => {
    assert.ok(existsSync(CLI), `${CLI} is missing: run npm run build`);
    const dir = mkdtempSync(join(tmpdir(), 'consul-ecs-cli-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // A Consul that accepts a logout.
    const requests: string[] = [];
    const consul = createHttpServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.end());
    });
    consul.listen(0, '127.0.0.1');
    await once(consul, 'listening');
    t.after(() => consul.close());
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, '00000000-0000-4000-8000-000000000001');
    const { port } = consul.address() as AddressInfo;
    const logout = await loadedBy(dir, 'logout', '-http-addr', `http://127.0.0.1:${port}`, '-token-file', tokenFile);
    assert.equal(logout.code, 0, logout.stderr);
    assert.deepEqual(requests, ['POST /v1/acl/logout'], 'the request was made');
    assert.equal(logout.loaded, 'undici', 'undici only: the probe sees what the request loaded');
  });

  it("the bundle's slim undici entry gives a working Agent and request API from undici's own files", async (t) => {
    // It reaches into undici's lib/ (src/undici-slim.cjs): an undici that moves those files fails here.
    const slim = createRequire(import.meta.url)('../../packages/cli/src/undici-slim.cjs') as typeof import('undici');
    const server = createHttpServer((req, res) => res.end(`${req.method} ${req.url}`));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const agent = new slim.Agent();
    t.after(() => agent.close());
    const res = await agent.request({ origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, path: '/v1/status/leader', method: 'GET' });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'GET /v1/status/leader');
    assert.equal(typeof slim.setGlobalDispatcher, 'function');
  });
});
