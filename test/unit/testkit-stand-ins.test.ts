// The testkit's Consul and AWS stand-ins with the library on loopback: mesh-init,
// the health sync and the login's refusals, with the ACL checks and signatures a
// real Consul and AWS would apply (test/integration/consul-stand-in-shape.test.ts
// holds their answers to the real servers').
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  ConsulHttpClient,
  createLoginBearerToken,
  fromStaticCredentials,
  loginWithAwsIam,
  meshInit,
  runHealthSync,
  validateConfig,
  type AwsCredentials,
} from '@consul-ecs-ts/core';
import { AwsIamStandIn, ConsulStandIn, EcsAgentSimulator, getRoleXml, type StandInAuthMethod } from '@consul-ecs-ts/core/testkit';

const SERVICE_NAME_TAG = 'consul.hashicorp.com.service-name';
const recordedToken = JSON.parse(await readFile(new URL('../fixtures/login-bearer-token.json', import.meta.url), 'utf8')) as {
  inputs: { credentials: Required<Omit<AwsCredentials, 'expiration' | 'principalArn'>>; clock: string; serverIdHeaderValue: string };
  token: string;
};

describe('testkit: ConsulStandIn and AwsIamStandIn', () => {
  let aws: AwsIamStandIn;
  let consul: ConsulStandIn;
  let dir: string;
  const stopping: Array<{ stop(): Promise<void> }> = [];

  async function startConsul(authMethod: StandInAuthMethod = {}): Promise<ConsulStandIn> {
    consul = await new ConsulStandIn({ authMethod: { stsEndpoint: aws.url, ...authMethod } }).start();
    stopping.push(consul);
    return consul;
  }

  beforeEach(async () => {
    aws = await new AwsIamStandIn({
      roles: [
        { name: 'web', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } },
        { name: 'stray', path: '/elsewhere/', tags: { [SERVICE_NAME_TAG]: 'web' } },
      ],
    }).start();
    stopping.push(aws);
    dir = await mkdtemp(join(tmpdir(), 'testkit-stand-ins-'));
  });
  afterEach(async () => {
    while (stopping.length) await stopping.pop()!.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('mesh-init logs in, registers and writes its files; the health sync syncs, deregisters and logs out', async () => {
    await startConsul({ boundIamPrincipalArns: [`arn:aws:iam::${aws.account}:role/consul-ecs/*`] });
    const sim = await new EcsAgentSimulator({
      family: 'web',
      containers: [
        { name: 'app', health: 'UNHEALTHY' },
        { name: 'consul-dataplane', health: 'HEALTHY' },
      ],
      credentials: aws.credentialsFor('web'),
    }).start();
    stopping.push(sim);
    consul.registerNode(sim.clusterArn);
    const config = await validateConfig({
      bootstrapDir: dir,
      consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: consul.port } },
      consulLogin: { enabled: true },
      service: { name: 'web', port: 8080 },
      proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
      healthSyncContainers: ['app'],
      transparentProxy: { enabled: false },
    });
    const env = sim.containerEnv();

    const result = await meshInit({ config, env, addresses: ['127.0.0.1'] });
    await result.client.close();
    assert.equal(result.loggedIn, true);
    const [token] = consul.tokens;
    assert.equal(token?.serviceName, 'web');
    assert.equal(token.meta['consul.hashicorp.com/task-id'], sim.taskId);
    assert.equal((await readFile(join(dir, 'service-token'), 'utf8')).trim(), token.secretId);
    const serviceId = `web-${sim.taskId}`;
    assert.deepEqual(
      consul.services(sim.clusterArn).map((s) => s.ID),
      [serviceId, `${serviceId}-sidecar-proxy`],
    );
    // The login's requests reached AWS as Consul replays them: to the auth method's endpoint, signed for AWS's hosts.
    assert.deepEqual(
      aws.requests.map((r) => [r.action, r.host, r.status]),
      [
        ['GetCallerIdentity', 'sts.us-east-1.amazonaws.com', 200],
        ['GetRole', 'iam.amazonaws.com', 200],
      ],
    );

    const stop = new AbortController();
    const clients = [new ConsulHttpClient({ address: consul.address })];
    const syncing = runHealthSync({
      config,
      env,
      clients,
      token: result.token,
      logoutOnShutdown: true,
      tokenFile: result.tokenFile,
      signal: stop.signal,
      intervalMs: 20,
    });
    const statuses = async () => Object.fromEntries(consul.checks(serviceId).map((c) => [c.CheckID.slice(serviceId.length + 1), c.Status]));
    await until(async () => (await statuses()).app === 'critical' && (await statuses())['consul-dataplane'] === 'critical');
    sim.setHealth('app', 'HEALTHY');
    await until(async () => (await statuses()).app === 'passing' && (await statuses())['consul-dataplane'] === 'passing');
    sim.stopContainer('consul-dataplane');
    stop.abort(new Error('received SIGTERM'));
    await syncing;
    assert.deepEqual(consul.services(sim.clusterArn), []);
    assert.deepEqual(consul.tokens, []);
  });

  it('refuses logins as Consul does: another auth method, an untrusted role, another server ID', async () => {
    await startConsul({ serverIdHeaderValue: 'consul.test', boundIamPrincipalArns: [`arn:aws:iam::${aws.account}:role/consul-ecs/*`] });
    const client = new ConsulHttpClient({ address: consul.address, retryDeadlineMs: 0 });
    const login = (role: string, opts: { authMethod?: string; serverIdHeaderValue?: string } = {}) => {
      const doc = aws.issueCredentials(role);
      return loginWithAwsIam({
        client,
        credentials: fromStaticCredentials({
          accessKeyId: doc.AccessKeyId,
          secretAccessKey: doc.SecretAccessKey,
          sessionToken: doc.Token,
          principalArn: doc.RoleArn,
        }),
        region: 'us-east-1',
        serverIdHeaderValue: opts.serverIdHeaderValue ?? 'consul.test',
        authMethod: opts.authMethod,
        deadlineMs: 0,
      });
    };
    await assert.rejects(login('web', { authMethod: 'nope' }), /HTTP 403\): ACL not found: auth method "nope" not found/);
    await assert.rejects(login('stray'), /IAM principal arn:aws:iam::123456789012:role\/elsewhere\/stray is not trusted/);
    await assert.rejects(login('web', { serverIdHeaderValue: 'other' }), /expected "consul.test" but got "other"/);
    const token = await login('web');
    assert.deepEqual(token.ServiceIdentities, [{ ServiceName: 'web' }]);
    assert.match(token.Description ?? '', /^token created via login$/);
  });

  it('the recorded bearer token (signed as botocore signs) passes the AWS stand-in’s signature check; a changed one does not', async () => {
    const { inputs } = recordedToken;
    const signedAt = Date.parse(inputs.clock);
    const clocked = await new AwsIamStandIn({
      now: () => signedAt + 1000,
      roles: [{ name: 'web-task', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } }],
    }).start();
    stopping.push(clocked);
    clocked.trustCredentials(inputs.credentials, 'web-task');
    aws = clocked;
    await startConsul({ serverIdHeaderValue: inputs.serverIdHeaderValue });
    const client = new ConsulHttpClient({ address: consul.address, retryDeadlineMs: 0 });
    const login = (bearerToken: string) =>
      client.call<{ ServiceIdentities: unknown }>({ method: 'POST', path: '/v1/acl/login', body: { AuthMethod: consul.authMethod, BearerToken: bearerToken } });

    assert.deepEqual((await login(recordedToken.token)).ServiceIdentities, [{ ServiceName: 'web' }]);
    const tampered = JSON.parse(recordedToken.token) as Record<string, string>;
    tampered.iam_request_body = Buffer.from('Action=GetCallerIdentity&Version=2011-06-16').toString('base64');
    await assert.rejects(login(JSON.stringify(tampered)), /HTTP 500: body of GetCallerIdentity is invalid/);
    assert.deepEqual(clocked.requests.at(-1), {
      action: 'GetCallerIdentity',
      accessKeyId: inputs.credentials.accessKeyId,
      host: 'sts.us-west-2.amazonaws.com',
      status: 403,
      error: 'SignatureDoesNotMatch',
    });
  });

  it('without an STS endpoint, checks the token’s form and logs in as the role it names', async () => {
    consul = await new ConsulStandIn().start();
    stopping.push(consul);
    const client = new ConsulHttpClient({ address: consul.address, retryDeadlineMs: 0 });
    const credentials = { accessKeyId: 'AKIDOFFLINE', secretAccessKey: 'secret', principalArn: 'arn:aws:iam::123456789012:role/api' };
    const bearerToken = await createLoginBearerToken({ credentials, region: 'us-east-1', includeEntity: true });
    const token = await client.call<{ ServiceIdentities: unknown }>({
      method: 'POST',
      path: '/v1/acl/login',
      body: { AuthMethod: consul.authMethod, BearerToken: bearerToken },
    });
    assert.deepEqual(token.ServiceIdentities, [{ ServiceName: 'api' }]);

    const unsigned = JSON.parse(bearerToken) as Record<string, string>;
    const headers = JSON.parse(Buffer.from(unsigned.iam_request_headers!, 'base64').toString()) as Record<string, string[]>;
    headers.Authorization = ['AWS4-HMAC-SHA256 garbage'];
    unsigned.iam_request_headers = Buffer.from(JSON.stringify(headers)).toString('base64');
    await assert.rejects(
      client.call({ method: 'POST', path: '/v1/acl/login', body: { AuthMethod: consul.authMethod, BearerToken: JSON.stringify(unsigned) } }),
      /HTTP 500: received error code 403 from STS: .*<Code>IncompleteSignature<\/Code>/s,
    );
    assert.equal(aws.requests.length, 0);
  });

  it('checks tokens on the catalog as a default-deny Consul, and fails a route on demand', async () => {
    await startConsul();
    const client = new ConsulHttpClient({ address: consul.address, retryDeadlineMs: 0 });
    const doc = aws.issueCredentials('web');
    const token = await loginWithAwsIam({
      client,
      credentials: fromStaticCredentials({ accessKeyId: doc.AccessKeyId, secretAccessKey: doc.SecretAccessKey, sessionToken: doc.Token }),
      region: 'us-east-1',
      stsEndpoint: aws.url,
      deadlineMs: 0,
    });
    // Without RoleArn the task asks STS who it is first.
    assert.equal(aws.hits.getCallerIdentity, 2);
    const register = (service: string, as?: string) =>
      client.send({
        method: 'PUT',
        path: '/v1/catalog/register',
        token: as,
        body: { Node: 'n1', SkipNodeUpdate: true, Service: { ID: `${service}-1`, Service: service, Port: 1 } },
      });
    await assert.rejects(register('web', token.SecretID), new RegExp(`lacks permission 'node:write' on "n1"`));
    consul.registerNode('n1');
    await register('web', token.SecretID);
    await assert.rejects(register('api', token.SecretID), /lacks permission 'service:write' on "api"/);
    await assert.rejects(register('web'), /anonymous token lacks permission 'service:write' on "web"/);
    await assert.rejects(register('web', 'not-a-token'), /HTTP 403: ACL not found/);
    const read = (as?: string) => client.call<{ Services: Array<{ ID: string }> | null }>({ path: '/v1/catalog/node-services/n1', token: as });
    assert.deepEqual(
      (await read(token.SecretID)).Services?.map((s) => s.ID),
      ['web-1'],
    );
    assert.equal((await read()).Services, null);

    consul.failRoute('node-services', 500);
    await assert.rejects(read(token.SecretID), /HTTP 500: No cluster leader/);
    consul.failRoute('node-services', undefined);
    assert.equal(consul.hits['node-services'], 3);
    assert.ok(getRoleXml({ account: '1', roleName: 'r', roleId: 'AROAX', tags: { a: '<b>' } }).includes('<Key>a</Key><Value>&lt;b&gt;</Value>'));
  });
});

async function until(probe: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
