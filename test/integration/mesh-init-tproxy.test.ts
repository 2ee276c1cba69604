// Transparent proxy and Consul DNS through mesh-init (EC2 only): the rules are
// applied for real with iptables inside a network namespace this test creates,
// and a task whose iptables cannot run fails clearly and leaves nothing behind.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { consulClientFor, createLogger, meshInit, validateConfig, type IptablesRunner } from '@consul-ecs-ts/core';
import { LoginStack } from '../helpers/login-stack.ts';
import { meshConfig, meshEnv, registerClusterNode } from '../helpers/mesh-task.ts';

describe('mesh-init with transparent proxy', () => {
  const ns = `cetm-${randomBytes(4).toString('hex')}`;
  let stack: LoginStack;
  before(async () => {
    await execa('ip', ['netns', 'add', ns]);
    await execa('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    stack = await LoginStack.start();
  });
  after(async () => {
    await stack?.dispose();
    await execa('ip', ['netns', 'del', ns], { reject: false });
  });

  it('applies the iptables rules and Consul DNS, and tells the dataplane to serve DNS', async () => {
    const role = await stack.role('web-task');
    const sim = await stack.simulator(role.arn, { containers: [{ name: 'app', hasHealthCheck: true }, { name: 'consul-dataplane', hasHealthCheck: true }] });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const resolvConf = join(dir, 'resolv.conf');
    await writeFile(resolvConf, 'nameserver 10.0.0.2\nsearch ec2.internal\n');
    const config = await validateConfig(
      meshConfig(stack, dir, {
        transparentProxy: { enabled: true, excludeInboundPorts: [9901], excludeOutboundCIDRs: ['10.10.0.0/16'], consulDNS: { enabled: true } },
      }),
    );
    const env = meshEnv(sim, {}, {});
    const inNamespace: IptablesRunner = async (command, args) => {
      const r = await execa('ip', ['netns', 'exec', ns, command, ...args], { reject: false });
      return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) };
    };
    const result = await meshInit({
      config,
      env,
      addresses: ['127.0.0.1'],
      envoyBootstrap: false,
      transparentProxy: { run: inNamespace, resolvConfPath: resolvConf },
      logger: createLogger({ level: 'warn', write: () => {} }),
    });
    await result.client.close();
    stack.secrets.add(result.token!);

    const nat = String((await execa('ip', ['netns', 'exec', ns, 'iptables-save', '-t', 'nat'])).stdout);
    assert.match(nat, /-A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-ports 20000/);
    assert.match(nat, /-A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-ports 15001/);
    assert.match(nat, /-A CONSUL_PROXY_INBOUND -p tcp -m tcp --dport 22000 -j RETURN/);
    assert.match(nat, /-A CONSUL_PROXY_INBOUND -p tcp -m tcp --dport 9901 -j RETURN/);
    assert.match(nat, /-A CONSUL_PROXY_OUTPUT -d 10\.10\.0\.0\/16 -j RETURN/);
    assert.match(nat, /-A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5995 -j RETURN/);
    assert.match(nat, /-A CONSUL_DNS_REDIRECT -d 127\.0\.0\.1\/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127\.0\.0\.1:8600/);
    assert.equal(await readFile(resolvConf, 'utf8'), 'nameserver 127.0.0.1\nnameserver 10.0.0.2\nsearch ec2.internal\n');
    const dp = JSON.parse(await readFile(join(dir, 'consul-dataplane.json'), 'utf8'));
    assert.deepEqual(dp.dnsServer, { bindAddress: '127.0.0.1', bindPort: 8600 });

    // In transparent mode the proxy registers as such, with the virtual tagged address.
    const id = `web-${sim.taskId}`;
    const svcs = await consulClientFor('127.0.0.1', config, {}, {}).call<{ Services: Array<{ ID: string; Proxy?: { Mode?: string }; TaggedAddresses?: Record<string, unknown> }> }>({
      path: `/v1/catalog/node-services/${encodeURIComponent(sim.clusterArn)}`,
      token: stack.consul.managementToken,
    });
    const proxy = svcs.Services.find((s) => s.ID === `${id}-sidecar-proxy`)!;
    assert.equal(proxy.Proxy?.Mode, 'transparent');
    assert.ok(proxy.TaggedAddresses?.virtual);
    await rm(dir, { recursive: true, force: true });
  });

  it('fails clearly when iptables cannot run, and undoes everything', async () => {
    const role = await stack.role('api-task', { service: 'api' });
    const sim = await stack.simulator(role.arn, { family: 'api', containers: [{ name: 'app', hasHealthCheck: true }] });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const config = meshConfig(stack, dir, { service: { name: 'api', port: 8080 }, transparentProxy: { enabled: true } });
    // No iptables on PATH, as in a container image without it.
    const res = await stack.cli(['mesh-init'], { ...meshEnv(sim, config), PATH: '/nonexistent' });
    assert.equal(res.exitCode, 1);
    assert.match(res.stderr, /tproxy-not-permitted/);
    assert.match(res.stderr, /transparent proxy is not supported on Fargate|NET_ADMIN/);
    assert.deepEqual(await readdir(dir), [], 'no files left');
    assert.equal((await stack.nodeServices(sim.clusterArn)).filter((s) => s.ID.startsWith('api-')).length, 0, 'nothing registered');
    assert.equal((await stack.loginTokens()).filter((t) => t.Description?.includes(sim.taskId)).length, 0, 'the token was logged out');
    stack.assertNoSecretsPrinted();
    await rm(dir, { recursive: true, force: true });
  });
});
