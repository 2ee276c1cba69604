// consulServers.hosts "exec=discover -q addrs provider=aws …" without go-discover,
// against moto's EC2 (which checks every SigV4 signature): the running instances
// with the tag, over several pages; and mesh-init finding its Consul server so.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { discoverAwsAddresses, resolveServerAddresses, type ServerAddressCommandRunner } from '@consul-ecs-ts/core';
import { MotoServer } from '../../scripts/lib/local-stack.ts';
import { LoginStack } from '../helpers/login-stack.ts';
import { meshConfig, meshEnv, registerClusterNode } from '../helpers/mesh-task.ts';
import { rejection } from '../helpers/rejection.ts';

const noExec: ServerAddressCommandRunner = () => assert.fail('no command may be run');

describe('exec=discover provider=aws against moto', () => {
  let moto: MotoServer;
  let servers: string[];
  let adminEnv: Record<string, string>;

  before(async () => {
    moto = await MotoServer.start();
    const { admin } = moto;
    adminEnv = { AWS_ACCESS_KEY_ID: admin.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: admin.credentials.secretAccessKey };
    const tagged = { consul: 'server', Name: 'consul-server' };
    // One reservation of three, one of two with one stopped, others tagged otherwise or not at all,
    // then single ones: nine reservations with a running server, two pages of five.
    const first = await admin.runInstances(3, tagged);
    const pair = await admin.runInstances(2, tagged);
    await admin.stopInstances([pair[0]!.id]);
    await admin.runInstances(1, { consul: 'client' });
    await admin.runInstances(1);
    const singles = [];
    for (let i = 0; i < 7; i++) singles.push(...(await admin.runInstances(1, tagged)));
    const stopped = await admin.runInstances(1, tagged);
    await admin.stopInstances([stopped[0]!.id]);
    servers = [...first, pair[1]!, ...singles].map((i) => i.privateIp);
    assert.equal(new Set(servers).size, 11);
  });
  after(async () => {
    await moto?.dispose();
  });

  it('moto pages DescribeInstances: more than one page of five for these instances', async () => {
    const page = await moto.admin.ec2('DescribeInstances', {
      'Filter.1.Name': 'tag:consul',
      'Filter.1.Value.1': 'server',
      'Filter.2.Name': 'instance-state-name',
      'Filter.2.Value.1': 'running',
      MaxResults: '5',
    });
    assert.ok(page.nextToken, 'a NextToken');
  });

  it('resolves to the private IPs of exactly the running tagged instances, in launch order, over every page', async () => {
    const hosts = `exec=discover -q addrs provider=aws region=us-east-1 tag_key=consul tag_value=server endpoint=${moto.url}`;
    assert.deepEqual(await resolveServerAddresses(hosts, { exec: noExec, env: adminEnv, pageSize: 5 }), servers);
    assert.deepEqual(await resolveServerAddresses(hosts, { exec: noExec, env: adminEnv }), servers);
  });

  it("takes the configuration's keys, the region and endpoint from the environment", async () => {
    const { accessKeyId, secretAccessKey } = moto.admin.credentials;
    const hosts = `exec=discover addrs provider=aws tag_key=consul tag_value="server" access_key_id=${accessKeyId} secret_access_key=${secretAccessKey}`;
    const env = { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_EC2: moto.url };
    assert.deepEqual(await resolveServerAddresses(hosts, { exec: noExec, env, pageSize: 5 }), servers);
    assert.deepEqual(
      await discoverAwsAddresses({ provider: 'aws', tag_key: 'Name', tag_value: 'consul-server', addr_type: 'private_v4' }, { env: { ...adminEnv, ...env } }),
      servers,
    );
  });

  it('fails when moto refuses the signature, naming the AWS error and never the secret', async () => {
    const hosts = `exec=discover -q addrs provider=aws region=us-east-1 tag_key=consul tag_value=server endpoint=${moto.url} access_key_id=${moto.admin.credentials.accessKeyId} secret_access_key=wrong-secret`;
    const err = await rejection(resolveServerAddresses(hosts, { exec: noExec, env: {} }));
    assert.equal(err.code, 'consul-servers-discover-failed');
    assert.match(err.message, /found no Consul servers: AWS DescribeInstances at http:\/\/127\.0\.0\.1:\d+ failed with HTTP 40\d \w+/);
    assert.match(err.message, /secret_access_key=\(redacted\)/);
    assert.ok(!err.message.includes('wrong-secret'));
  });

  it('fails when no running instance has the tag', async () => {
    const hosts = `exec=discover -q addrs provider=aws region=us-east-1 tag_key=consul tag_value=nobody endpoint=${moto.url}`;
    const err = await rejection(resolveServerAddresses(hosts, { exec: noExec, env: adminEnv }));
    assert.equal(err.code, 'consul-servers-discover-failed');
    assert.match(err.message, /no running EC2 instance in us-east-1 with the tag consul=nobody has a private_v4 address/);
  });

  it("another provider needs go-discover's discover on PATH, and says so when there is none", async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const err = await rejection(resolveServerAddresses('exec=discover -q addrs provider=gce project_name=p tag_value=consul-server'));
      assert.equal(err.code, 'consul-servers-discover-failed');
      assert.equal(
        err.message,
        `consulServers.hosts "exec=discover -q addrs provider=gce project_name=p tag_value=consul-server" needs go-discover's discover command for provider=gce, ` +
          "and there is none on PATH: put go-discover's discover on PATH, or use provider=aws (EC2 instances by tag), which consul-ecs resolves itself",
      );
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('mesh-init with consulServers.hosts exec=discover provider=aws', () => {
  let stack: LoginStack;
  let dir: string;

  before(async () => {
    stack = await LoginStack.start();
    dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
  });
  after(async () => {
    await stack?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('finds the Consul server among the running tagged EC2 instances with the task role, and initialises the task', async () => {
    const { admin } = stack.moto;
    await admin.runInstances(1, { consul: 'other' }, { privateIp: '127.0.0.3' });
    await admin.runInstances(1, { consul: 'server' }, { privateIp: '127.0.0.1' });
    const [stopped] = await admin.runInstances(1, { consul: 'server' }, { privateIp: '127.0.0.2' });
    await admin.stopInstances([stopped!.id]);
    const role = await stack.role('web-task', { service: 'web', allowActions: ['ec2:DescribeInstances'] });
    const sim = await stack.simulator(role.arn, { region: 'us-east-1' });
    await registerClusterNode(stack, sim.clusterArn);
    const config = meshConfig(stack, dir);
    const hosts = `exec=discover -q addrs provider=aws tag_key=consul tag_value=server endpoint=${stack.moto.url}`;
    const res = await stack.cli(
      ['mesh-init'],
      meshEnv(sim, { ...config, consulServers: { ...(config.consulServers as object), hosts } }, { PATH: '/nonexistent' }),
    );
    assert.equal(res.exitCode, 0, res.stderr);
    assert.match(res.stderr, /successfully initialized the task/);
    assert.doesNotMatch(res.stderr, /127\.0\.0\.[23]\b/, 'neither the stopped server nor the other instance');
    stack.assertNoSecretsPrinted();
  });
});
