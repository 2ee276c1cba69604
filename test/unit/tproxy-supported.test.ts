// Transparent proxy rewrites the nat table of whatever network namespace
// mesh-init runs in: it is applied only in awsvpc tasks on the EC2 launch type,
// and anywhere else mesh-init refuses before it sends anything to Consul.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  assertTransparentProxySupported,
  ConsulEcsError,
  fromStaticCredentials,
  meshInit,
  resolveConfig,
  taskInfo,
  type ConsulEcsConfig,
  type IptablesRunner,
} from '@consul-ecs-ts/core';
import { EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';

const TASK_ARN = 'arn:aws:ecs:us-west-2:123456789012:task/c/0123456789abcdef0123456789abcdef';

/** The refusal, checked for what it says: the launch type and network mode seen, and both ways out. */
function refusal(launchType: string, networkMode: string) {
  return (err: unknown) => {
    assert.ok(err instanceof ConsulEcsError, String(err));
    assert.equal(err.code, 'transparent-proxy-unsupported');
    assert.ok(err.message.includes(`launch type ${launchType} and network mode ${networkMode}`), err.message);
    assert.match(err.message, /set transparentProxy\.enabled to false in CONSUL_ECS_CONFIG_JSON/);
    assert.match(err.message, /run the task on the EC2 launch type with network mode awsvpc/);
    return true;
  };
}

const REFUSED: Array<{ what: string; launchType: string | null; networkMode: string | null; saw: [string, string] }> = [
  { what: 'Fargate', launchType: 'FARGATE', networkMode: 'awsvpc', saw: ['FARGATE', 'awsvpc'] },
  { what: 'EC2 with bridge networking', launchType: 'EC2', networkMode: 'bridge', saw: ['EC2', 'bridge'] },
  { what: 'EC2 with host networking', launchType: 'EC2', networkMode: 'host', saw: ['EC2', 'host'] },
  { what: 'EC2 with no network mode reported', launchType: 'EC2', networkMode: null, saw: ['EC2', '(none reported)'] },
  { what: 'no launch type reported', launchType: null, networkMode: 'awsvpc', saw: ['(none reported)', 'awsvpc'] },
  { what: 'ECS Anywhere (EXTERNAL)', launchType: 'EXTERNAL', networkMode: 'bridge', saw: ['EXTERNAL', 'bridge'] },
];

describe('transparent proxy: where it may be applied', () => {
  it('taskInfo reports the launch type and the network mode of the task document', () => {
    const info = taskInfo({
      Cluster: 'c',
      TaskARN: TASK_ARN,
      Family: 'web',
      LaunchType: 'EC2',
      Containers: [{ Name: 'app', DesiredStatus: 'RUNNING', KnownStatus: 'RUNNING', Networks: [{ NetworkMode: 'awsvpc', IPv4Addresses: ['10.0.1.7'] }] }],
    });
    assert.equal(info.launchType, 'EC2');
    assert.equal(info.networkMode, 'awsvpc');
    const bare = taskInfo({
      Cluster: 'c',
      TaskARN: TASK_ARN,
      Family: 'web',
      Containers: [{ Name: 'app', DesiredStatus: 'RUNNING', KnownStatus: 'RUNNING', Networks: [{}] }],
    });
    assert.equal('launchType' in bare, false);
    assert.equal('networkMode' in bare, false);
  });

  it('accepts only an awsvpc task on EC2', () => {
    assert.doesNotThrow(() => assertTransparentProxySupported({ taskArn: TASK_ARN, launchType: 'EC2', networkMode: 'awsvpc' }));
    for (const c of REFUSED) {
      const task = { taskArn: TASK_ARN, ...(c.launchType ? { launchType: c.launchType } : {}), ...(c.networkMode ? { networkMode: c.networkMode } : {}) };
      assert.throws(() => assertTransparentProxySupported(task), refusal(...c.saw), c.what);
    }
  });

  describe('meshInit', () => {
    /** A stand-in Consul that refuses everything and counts what reached it. */
    let consul: Server;
    let consulPort: number;
    let consulRequests: string[];
    let dir: string;
    before(async () => {
      consulRequests = [];
      consul = createServer((req, res) => {
        consulRequests.push(`${req.method} ${req.url}`);
        res.writeHead(403, { 'content-type': 'text/plain' }).end('Permission denied');
      });
      await new Promise<void>((resolve) => consul.listen(0, '127.0.0.1', resolve));
      consulPort = (consul.address() as AddressInfo).port;
    });
    after(async () => {
      consul.closeAllConnections();
      await new Promise((resolve) => consul.close(resolve));
    });

    async function run(sim: EcsAgentSimulator, over: Partial<ConsulEcsConfig>, login: boolean) {
      dir = await mkdtemp(join(tmpdir(), 'tproxy-supported-'));
      consulRequests = [];
      const iptables: string[][] = [];
      const run: IptablesRunner = async (command, args) => {
        iptables.push([command, ...args]);
        throw new Error('this test applies no iptables rules');
      };
      const result = meshInit({
        config: resolveConfig({
          bootstrapDir: dir,
          consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: consulPort } },
          consulLogin: { enabled: login, includeEntity: false },
          service: { name: 'web', port: 8080 },
          transparentProxy: { enabled: true },
          ...over,
        }),
        env: sim.containerEnv(),
        addresses: ['127.0.0.1'],
        credentials: fromStaticCredentials({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }),
        transparentProxy: { run, resolvConfPath: join(dir, 'resolv.conf') },
        deadlineMs: 0,
      });
      const settled = await result.then(
        () => assert.fail('meshInit succeeded against a Consul that refuses everything'),
        (err: unknown) => err,
      );
      const left = await readdir(dir);
      await rm(dir, { recursive: true, force: true });
      return { err: settled, iptables, left };
    }

    for (const c of REFUSED) {
      it(`refuses ${c.what} before anything reaches Consul, leaving nothing`, async () => {
        const sim = await new EcsAgentSimulator({ launchType: c.launchType, networkMode: c.networkMode }).start();
        try {
          const { err, iptables, left } = await run(sim, {}, true);
          assert.ok(refusal(...c.saw)(err));
          assert.ok(sim.hits.task >= 1, 'the task metadata was read');
          assert.deepEqual(consulRequests, [], 'nothing was sent to Consul (no login, no registration)');
          assert.deepEqual(iptables, [], 'no iptables rule ran');
          assert.deepEqual(left, [], 'no files left in the bootstrap dir');
        } finally {
          await sim.stop();
        }
      });
    }

    it('goes on to Consul for an awsvpc task on EC2', async () => {
      const sim = await new EcsAgentSimulator({ launchType: 'EC2', networkMode: 'awsvpc' }).start();
      try {
        const { err, iptables, left } = await run(sim, {}, false);
        // Past the check: the registration reached Consul, which refused it.
        assert.equal((err as ConsulEcsError).code, 'consul-permission-denied', String(err));
        assert.ok(
          consulRequests.some((r) => r.startsWith('PUT /v1/catalog/register')),
          consulRequests.join('\n'),
        );
        assert.deepEqual(iptables, []);
        assert.deepEqual(left, []);
      } finally {
        await sim.stop();
      }
    });

    it('does not refuse a gateway on Fargate with transparent proxy configured (gateways never apply it)', async () => {
      const sim = await new EcsAgentSimulator({ launchType: 'FARGATE', networkMode: 'awsvpc' }).start();
      try {
        const gateway = { kind: 'mesh-gateway' as const, name: 'mgw', lanAddress: { address: '127.0.0.1', port: 9443 } };
        const { err, iptables } = await run(sim, { gateway }, false);
        assert.equal((err as ConsulEcsError).code, 'consul-permission-denied', String(err));
        assert.ok(
          consulRequests.some((r) => r.startsWith('PUT /v1/catalog/register')),
          consulRequests.join('\n'),
        );
        assert.deepEqual(iptables, []);
      } finally {
        await sim.stop();
      }
    });
  });
});
