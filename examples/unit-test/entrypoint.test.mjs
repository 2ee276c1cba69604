// Unit tests of entrypoint.mjs, with node:test and @consul-ecs-ts/core/testkit:
// the ECS agent (task metadata, the task role's credentials), Consul and AWS
// STS/IAM are stand-ins on loopback. The login goes the whole way, as in ECS:
// the entrypoint signs it with the role's credentials, Consul's aws-iam auth
// method sends the signed requests on to AWS, which checks their signatures.
// Nothing leaves 127.0.0.1.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLogger } from '@consul-ecs-ts/core';
import { AwsIamStandIn, ConsulStandIn, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { main } from './entrypoint.mjs';

const SERVICE_NAME_TAG = 'consul.hashicorp.com.service-name';

describe('the mesh-init entrypoint', () => {
  /** @type {AwsIamStandIn} */ let aws;
  /** @type {ConsulStandIn} */ let consul;
  /** @type {EcsAgentSimulator} */ let agent;
  /** @type {string} */ let bootstrapDir;
  let log = '';
  const logger = createLogger({ level: 'debug', write: (line) => (log += line) });

  beforeEach(async () => {
    log = '';
    aws = await new AwsIamStandIn({
      roles: [
        { name: 'web-task', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } },
        { name: 'untagged-task', path: '/consul-ecs/' },
      ],
    }).start();
    // The auth method as consul-ecs's controller sets it up, sending the login's signed requests to the AWS stand-in.
    consul = await new ConsulStandIn({
      authMethod: { stsEndpoint: aws.url, boundIamPrincipalArns: [`arn:aws:iam::${aws.account}:role/consul-ecs/*`] },
    }).start();
    bootstrapDir = await mkdtemp(join(tmpdir(), 'entrypoint-test-'));
  });
  afterEach(async () => {
    await agent?.stop();
    await consul.stop();
    await aws.stop();
    await rm(bootstrapDir, { recursive: true, force: true });
  });

  /** The task's container environment, with the ECS agent handing out the role's credentials. */
  async function task(role) {
    agent = await new EcsAgentSimulator({ family: 'web', credentials: aws.credentialsFor(role) }).start();
    // As the consul-ecs controller does once per cluster: login tokens may not create nodes.
    consul.registerNode(agent.clusterArn);
    const config = {
      bootstrapDir,
      consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: consul.port } },
      consulLogin: { enabled: true },
      service: { name: 'web', port: 8080 },
      proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
      transparentProxy: { enabled: false },
    };
    return { ...agent.containerEnv(), CONSUL_ECS_CONFIG_JSON: JSON.stringify(config), BUILD_ID: '2024.06.1' };
  }

  it('logs in, registers the service with its build, and tells the app', async () => {
    const result = await main({ env: await task('web-task'), logger });

    const [token] = consul.tokens;
    assert.equal(token.serviceName, 'web');
    assert.equal(token.meta['consul.hashicorp.com/task-id'], agent.taskId);
    assert.equal(result.token, token.secretId);
    const [service, sidecar] = consul.services(agent.clusterArn);
    assert.equal(service.Meta.build, '2024.06.1');
    assert.equal(sidecar.Proxy.DestinationServiceID, service.ID);
    assert.equal(await readFile(join(bootstrapDir, 'mesh-ready'), 'utf8'), 'web\n');
    assert.equal(await readFile(join(bootstrapDir, 'service-token'), 'utf8'), token.secretId);
    // Consul asked AWS who signed the login, as for a task on ECS.
    assert.deepEqual(
      aws.requests.map((r) => `${r.action} ${r.status}`),
      ['GetCallerIdentity 200', 'GetRole 200'],
    );
    assert.ok(!log.includes(token.secretId), 'the token is never logged');
  });

  it('fails, leaving nothing behind, when the task role has no service-name tag', async () => {
    await assert.rejects(main({ env: await task('untagged-task'), logger }), /Consul refused the login .*invalid bind name/);
    assert.deepEqual(consul.tokens, []);
    assert.deepEqual(consul.services(), []);
  });

  it('waits out a Consul without a leader', async () => {
    consul.failRoute('login', 500);
    setTimeout(() => consul.failRoute('login', undefined), 300);
    await main({ env: await task('web-task'), logger });
    assert.ok(consul.hits.login >= 2, `${consul.hits.login} logins`);
    assert.match(log, /login failed; retrying/);
    assert.equal(consul.services(agent.clusterArn).length, 2);
  });
});
