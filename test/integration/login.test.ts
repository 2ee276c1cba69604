// The login chain against the real peers: Consul's aws-iam auth method, moto
// checking SigV4, and the ECS agent simulator handing out the task role.
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { aclLogin, ConsulApiError, ConsulHttpClient, createLoginBearerToken, decodeLoginBearerToken, type AclToken } from '@consul-ecs-ts/core';
import { execa } from 'execa';
import { LoginStack, SERVER_ID } from '../helpers/login-stack.ts';
import { SEA } from '../helpers/mesh-task.ts';

describe('consul-ecs login against Consul and moto', () => {
  let stack: LoginStack;
  beforeEach(async () => {
    stack = await LoginStack.start();
  });
  afterEach(async () => {
    await stack.dispose();
  });

  it('the self-contained executable logs in and out', async () => {
    const role = await stack.role('web-task', { service: 'web' });
    const sim = await stack.simulator(role.arn, { cluster: 'prod', region: 'us-east-1' });
    const env = { ...sim.containerEnv(), PATH: '/nonexistent' };
    await stack.assertLogsInAndOut((args) => execa(SEA, args, { env, extendEnv: false, reject: false }));
  });

  it('logs in with the task role: service identity from the role tag, task meta on the token; logout destroys it', async () => {
    const role = await stack.role('web-task', { service: 'web' });
    const sim = await stack.simulator(role.arn, { cluster: 'prod', region: 'us-east-1' });
    const sink = join(stack.dir, 'service-token');

    const login = await stack.cli(['login', ...stack.loginFlags(sink), '-meta', 'team=payments'], sim.containerEnv());
    assert.equal(login.exitCode, 0, login.stderr);
    assert.equal((await stat(sink)).mode & 0o777, 0o600);
    const token = await stack.readToken(sink);
    assert.match(token, /^[0-9a-f-]{36}$/);

    const self = await stack.consul.client().call<AclToken>({ path: '/v1/acl/token/self', token });
    assert.equal(self.AuthMethod, 'iam-ecs-service-token');
    assert.deepEqual(
      self.ServiceIdentities?.map((s) => s.ServiceName),
      ['web'],
    );
    const meta = JSON.parse(self.Description!.replace(/^token created via login: /, '')) as Record<string, string>;
    assert.deepEqual(meta, {
      'consul.hashicorp.com/task-id': sim.taskId,
      'consul.hashicorp.com/cluster': `arn:aws:ecs:us-east-1:123456789012:cluster/prod`,
      team: 'payments',
    });
    assert.ok(sim.hits.credentials >= 1, 'credentials came from the simulated ECS agent');

    const logout = await stack.cli(['logout', '-http-addr', stack.consul.httpAddr, '-token-file', sink]);
    assert.equal(logout.exitCode, 0, logout.stderr);
    await assert.rejects(stack.consul.client().call({ path: '/v1/acl/token/self', token }), (err: ConsulApiError) => {
      assert.equal(err.status, 403);
      assert.match(err.message, /ACL not found/);
      return true;
    });

    const again = await stack.cli(['logout', '-http-addr', stack.consul.httpAddr, '-token-file', sink]);
    assert.equal(again.exitCode, 1);
    assert.match(again.stderr, /could not log out the token in .*service-token: .*HTTP 403: ACL not found/);
    stack.assertNoSecretsPrinted();
  });

  it('reads no task metadata when the flags already give the task id, cluster and region', async () => {
    const role = await stack.role('web-task', { service: 'web' });
    const sim = await stack.simulator(role.arn, { cluster: 'prod', region: 'us-east-1' });
    const sink = join(stack.dir, 'service-token');
    const flags = ['-aws-region', 'us-east-1', '-meta', `consul.hashicorp.com/task-id=${sim.taskId}`, '-meta', 'consul.hashicorp.com/cluster=prod'];

    const login = await stack.cli(['login', ...stack.loginFlags(sink), ...flags], sim.containerEnv());
    assert.equal(login.exitCode, 0, login.stderr);
    assert.equal(sim.hits.task, 0, 'the task metadata endpoint was not asked');
    const token = await stack.readToken(sink);
    const self = await stack.consul.client().call<AclToken>({ path: '/v1/acl/token/self', token });
    const meta = JSON.parse(self.Description!.replace(/^token created via login: /, '')) as Record<string, string>;
    assert.deepEqual(meta, { 'consul.hashicorp.com/task-id': sim.taskId, 'consul.hashicorp.com/cluster': 'prod' });

    // With no region in the flags or the environment, it comes from the task's metadata.
    const { AWS_REGION: _region, AWS_DEFAULT_REGION: _defaultRegion, ...envWithoutRegion } = sim.containerEnv();
    const again = await stack.cli(['login', ...stack.loginFlags(sink), ...flags.slice(2)], envWithoutRegion);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal(sim.hits.task, 1);
    stack.assertNoSecretsPrinted();
  });

  const refusals: Array<{ name: string; role: Parameters<LoginStack['role']>[1]; flags?: string[]; expect: RegExp }> = [
    {
      name: 'a role outside the bound path',
      role: { path: '/other/' },
      expect:
        /IAM principal arn:aws:iam::123456789012:role\/other\/task-role is not trusted\. Likely cause: the IAM role is not under a path the auth method trusts/,
    },
    {
      name: 'a role without the service-name tag',
      role: { service: null },
      expect: /invalid bind name.*Likely cause: the IAM role has no consul\.hashicorp\.com\.service-name tag/,
    },
    {
      name: 'a wrong server ID header value',
      role: {},
      flags: ['-aws-server-id-header-value', 'some.other.server'],
      expect: /expected \\"consul\.test\.local\\" but got \\"some\.other\.server\\"\. Likely cause: the server ID header value does not match/,
    },
    {
      name: 'a role that may not read itself (AWS refuses iam:GetRole)',
      role: { allowGetRole: false },
      expect: /Likely cause: AWS refused the signed request/,
    },
  ];
  for (const r of refusals) {
    it(`is refused for ${r.name}, exit 1 with the cause`, async () => {
      const role = await stack.role('task-role', r.role);
      const sim = await stack.simulator(role.arn);
      const sink = join(stack.dir, 'service-token');
      const res = await stack.cli(['login', ...stack.loginFlags(sink), ...(r.flags ?? [])], sim.containerEnv());
      assert.equal(res.exitCode, 1, res.stderr);
      assert.match(res.stderr, /\[ERROR\] login failed: error="Consul refused the login to auth method \\"iam-ecs-service-token\\" \(HTTP 500\)/);
      assert.match(res.stderr, r.expect);
      assert.ok(res.durationMs < 15_000, `a refusal is not retried until the deadline (${res.durationMs} ms)`);
      await assert.rejects(stat(sink), /ENOENT/, 'no token file is written');
      assert.equal((await stack.loginTokens()).length, 0, 'no login token exists');
      stack.assertNoSecretsPrinted();
    });
  }

  it('is refused when the signed request is tampered with: moto rejects the signature', async () => {
    const role = await stack.role('web-task');
    const creds = await stack.moto.admin.assumeRole(role.arn);
    stack.secrets.add(creds.secretAccessKey).add(creds.sessionToken);
    const client = new ConsulHttpClient({ address: stack.consul.httpAddr, retryDeadlineMs: 0 });
    const make = () =>
      createLoginBearerToken({
        credentials: creds,
        region: 'us-east-1',
        stsEndpoint: stack.moto.url,
        iamEndpoint: stack.moto.url,
        includeEntity: true,
        serverIdHeaderValue: SERVER_ID,
      });
    const reencode = (t: ReturnType<typeof decodeLoginBearerToken>) =>
      JSON.stringify({
        iam_http_request_method: t.method,
        iam_request_url: Buffer.from(t.url).toString('base64'),
        iam_request_headers: Buffer.from(JSON.stringify(t.headers)).toString('base64'),
        iam_request_body: Buffer.from(t.body).toString('base64'),
      });
    // moto colours its log's status codes: an escape sequence may follow the request line.
    // eslint-disable-next-line no-control-regex
    const motoRefusals = async () => ((await readFile(stack.moto.logFile, 'utf8')).match(/POST \/ HTTP\/1\.1(\u001b\[0m)?" 403/g) ?? []).length;

    // Control: the untampered token is accepted.
    const good = await aclLogin(client, { authMethod: 'iam-ecs-service-token', bearerToken: await make() });
    await client.send({ method: 'POST', path: '/v1/acl/logout', token: good.SecretID });

    const tampers: Array<[string, (t: ReturnType<typeof decodeLoginBearerToken>) => void]> = [
      ['body', (t) => void (t.body = t.body.replace('Version=2011-06-15', 'Version=2011-06-16'))],
      [
        'signature',
        (t) => void (t.headers.Authorization = [t.headers.Authorization![0]!.replace(/Signature=(.)/, (_, c: string) => `Signature=${c === '0' ? '1' : '0'}`)]),
      ],
      [
        'embedded GetRole body',
        (t) => void (t.headers['X-Consul-Iam-Getentity-Body'] = [t.headers['X-Consul-Iam-Getentity-Body']![0]!.replace('RoleName=web-task', 'RoleName=admin')]),
      ],
    ];
    for (const [what, tamper] of tampers) {
      const before = await motoRefusals();
      const decoded = decodeLoginBearerToken(await make());
      tamper(decoded);
      await assert.rejects(
        aclLogin(client, { authMethod: 'iam-ecs-service-token', bearerToken: reencode(decoded) }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'consul-login-refused', `${what}: ${err.message}`);
          return true;
        },
        `tampered ${what} is refused`,
      );
      if (what !== 'embedded GetRole body') assert.ok((await motoRefusals()) > before, `moto refused the tampered ${what} (403)`);
    }
    assert.equal((await stack.loginTokens()).length, 0, 'no login token exists');
  });

  it('fails clearly on expired credentials that cannot be refreshed', async () => {
    const role = await stack.role('web-task');
    const sim = await stack.simulator(role.arn);
    const creds = await stack.moto.admin.assumeRole(role.arn);
    stack.secrets.add(creds.secretAccessKey).add(creds.sessionToken);
    sim.overrideCredentials({
      AccessKeyId: creds.accessKeyId,
      SecretAccessKey: creds.secretAccessKey,
      Token: creds.sessionToken,
      Expiration: '2020-01-01T00:00:00Z',
    });
    const sink = join(stack.dir, 'service-token');
    const res = await stack.cli(['login', ...stack.loginFlags(sink)], sim.containerEnv());
    assert.equal(res.exitCode, 1);
    assert.match(res.stderr, /the AWS credentials provided expired at 2020-01-01T00:00:00\.000Z and no fresh ones could be had/);

    sim.overrideCredentials(undefined);
    sim.failCredentials(500);
    const res2 = await stack.cli(['login', ...stack.loginFlags(sink)], sim.containerEnv());
    assert.equal(res2.exitCode, 1);
    assert.match(res2.stderr, /the container credentials endpoint http:\/\/127\.0\.0\.1:\d+\/v2\/credentials\/[0-9a-f-]+ answered HTTP 500/);
    await assert.rejects(stat(sink), /ENOENT/);
    stack.assertNoSecretsPrinted();
  });
});

describe('consul-ecs login while Consul is not up', () => {
  it('retries until Consul starts, then logs in', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dataDir = await mkdtemp(join(tmpdir(), 'consul-data-'));
    const stack = await LoginStack.start({ dataDir });
    try {
      const role = await stack.role('web-task');
      const sim = await stack.simulator(role.arn);
      await stack.consul.stop();
      const sink = join(stack.dir, 'service-token');
      const pending = stack.cli(['login', ...stack.loginFlags(sink), '-timeout', '90'], sim.containerEnv(), { timeoutMs: 120_000 });
      await new Promise((r) => setTimeout(r, 1500));
      await stack.consul.restart();
      const res = await pending;
      assert.equal(res.exitCode, 0, res.stderr);
      assert.match(res.stderr, /\[WARN\] {2}login failed; retrying: .*could not connect/);
      const token = await stack.readToken(sink);
      const self = await stack.consul.client().call<AclToken>({ path: '/v1/acl/token/self', token });
      assert.deepEqual(
        self.ServiceIdentities?.map((s) => s.ServiceName),
        ['web'],
      );
      stack.assertNoSecretsPrinted();
    } finally {
      await stack.dispose();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('gives up at the deadline with a clear error', async () => {
    const stack = await LoginStack.start();
    try {
      const role = await stack.role('web-task');
      const sim = await stack.simulator(role.arn);
      const sink = join(stack.dir, 'service-token');
      const flags = stack.loginFlags(sink);
      flags[1] = 'http://127.0.0.1:1';
      const res = await stack.cli(['login', ...flags, '-timeout', '2'], sim.containerEnv());
      assert.equal(res.exitCode, 1);
      assert.match(
        res.stderr,
        /could not log in to Consul at http:\/\/127\.0\.0\.1:1 within 2s: .*could not connect.*check that the Consul servers are reachable/,
      );
      assert.ok(res.durationMs < 10_000, `bounded (${res.durationMs} ms)`);
      await assert.rejects(stat(sink), /ENOENT/);
      stack.assertNoSecretsPrinted();
    } finally {
      await stack.dispose();
    }
  });
});
