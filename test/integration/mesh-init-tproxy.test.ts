// Transparent proxy and Consul DNS through mesh-init (awsvpc tasks on EC2 only):
// the rules are applied for real with iptables inside a network namespace this
// test creates; a task whose iptables cannot run, or that is not an awsvpc task
// on EC2, fails clearly and leaves nothing behind.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { consulClientFor, createLogger, meshInit, validateConfig, type IptablesRunner } from '@consul-ecs-ts/core';
import { LoginStack } from '../helpers/login-stack.ts';
import { meshConfig, meshEnv, readDataplaneConfig, registerClusterNode } from '../helpers/mesh-task.ts';

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
    const sim = await stack.simulator(role.arn, {
      launchType: 'EC2',
      networkMode: 'awsvpc',
      containers: [
        { name: 'app', hasHealthCheck: true },
        { name: 'consul-dataplane', hasHealthCheck: true },
      ],
    });
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
    const dp = await readDataplaneConfig(dir);
    assert.deepEqual(dp.dnsServer, { bindAddress: '127.0.0.1', bindPort: 8600 });

    // In transparent mode the proxy registers as such, with the virtual tagged address.
    const id = `web-${sim.taskId}`;
    const svcs = await consulClientFor('127.0.0.1', config, {}, {}).call<{
      Services: Array<{ ID: string; Proxy?: { Mode?: string }; TaggedAddresses?: Record<string, unknown> }>;
    }>({
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
    const sim = await stack.simulator(role.arn, {
      family: 'api',
      launchType: 'EC2',
      networkMode: 'awsvpc',
      containers: [{ name: 'app', hasHealthCheck: true }],
    });
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

  /**
   * A network namespace of the test's own and a PATH on which `iptables` runs the
   * real iptables in it (logging each call): the CLI runs on this machine's
   * loopback, where Consul and the ECS agent simulator are, while any rule it
   * applies lands in the namespace.
   */
  async function iptablesInOwnNamespace(name: string) {
    const netns = `${name}-${randomBytes(4).toString('hex')}`;
    await execa('ip', ['netns', 'add', netns]);
    namespaces.push(netns);
    const bin = await mkdtemp(join(tmpdir(), 'tproxy-bin-'));
    binDirs.push(bin);
    const calls = join(bin, 'calls.log');
    await writeFile(calls, '');
    const which = async (cmd: string) => String((await execa('sh', ['-c', `command -v ${cmd}`])).stdout).trim();
    const [ip, iptables] = [await which('ip'), await which('iptables')];
    await writeFile(
      join(bin, 'iptables'),
      `#!/bin/sh\necho "$*" >> '${calls}'\nPATH=/usr/sbin:/usr/bin:/sbin:/bin exec '${ip}' netns exec '${netns}' '${iptables}' "$@"\n`,
    );
    await chmod(join(bin, 'iptables'), 0o755);
    const nat = async () => String((await execa('ip', ['netns', 'exec', netns, 'iptables-save', '-t', 'nat'])).stdout);
    return { path: bin, calls: async () => (await readFile(calls, 'utf8')).split('\n').filter(Boolean), nat };
  }
  const namespaces: string[] = [];
  const binDirs: string[] = [];
  after(async () => {
    for (const n of namespaces) await execa('ip', ['netns', 'del', n], { reject: false });
    for (const d of binDirs) await rm(d, { recursive: true, force: true });
  });
  /** The nat table without iptables-save's comments and counters, which change between reads. */
  const natRules = (text: string) =>
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/, ''))
      .join('\n');

  it('refuses a Fargate task through the CLI: exit 1, nothing registered, logged in, applied or left', async () => {
    const role = await stack.role('fargate-task', { service: 'fargate' });
    const sim = await stack.simulator(role.arn, {
      family: 'fargate',
      launchType: 'FARGATE',
      networkMode: 'awsvpc',
      containers: [{ name: 'app', hasHealthCheck: true }],
    });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const iptables = await iptablesInOwnNamespace('cetf');
    const natBefore = natRules(await iptables.nat());
    const tokensBefore = (await stack.loginTokens()).length;
    const config = meshConfig(stack, dir, { service: { name: 'fargate', port: 8080 }, transparentProxy: { enabled: true } });
    const res = await stack.cli(['mesh-init'], { ...meshEnv(sim, config), PATH: iptables.path });
    assert.equal(res.exitCode, 1, res.stderr);
    assert.match(res.stderr, /transparent-proxy-unsupported/);
    assert.match(res.stderr, /launch type FARGATE and network mode awsvpc/);
    assert.match(
      res.stderr,
      /set transparentProxy\.enabled to false in CONSUL_ECS_CONFIG_JSON, or run the task on the EC2 launch type with network mode awsvpc/,
    );
    assert.ok(sim.hits.task >= 1, 'the task metadata was read');
    assert.deepEqual(await iptables.calls(), [], 'iptables never ran');
    assert.equal(natRules(await iptables.nat()), natBefore, "the namespace's nat table is untouched");
    assert.deepEqual(await readdir(dir), [], 'no files in the bootstrap dir');
    assert.deepEqual(
      (await stack.nodeServices(sim.clusterArn)).filter((s) => s.ID.startsWith('fargate-')).map((s) => s.ID),
      [],
      'nothing registered on the cluster node',
    );
    const tokens = await stack.loginTokens();
    assert.equal(tokens.filter((t) => t.Description?.includes(sim.taskId)).length, 0, 'no login token for the task');
    assert.equal(tokens.length, tokensBefore, 'no login token at all was made');
    stack.assertNoSecretsPrinted();
    await rm(dir, { recursive: true, force: true });
  });

  it('applies the rules through the CLI for an awsvpc task on EC2', async () => {
    const role = await stack.role('ec2-task', { service: 'ectwo' });
    const sim = await stack.simulator(role.arn, {
      family: 'ectwo',
      launchType: 'EC2',
      networkMode: 'awsvpc',
      containers: [{ name: 'app', hasHealthCheck: true }],
    });
    await registerClusterNode(stack, sim.clusterArn);
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-'));
    const iptables = await iptablesInOwnNamespace('cete');
    // Consul DNS stays off: it would rewrite this machine's /etc/resolv.conf.
    const config = meshConfig(stack, dir, { service: { name: 'ectwo', port: 8080 }, transparentProxy: { enabled: true, consulDNS: { enabled: false } } });
    const res = await stack.cli(['mesh-init'], { ...meshEnv(sim, config), PATH: iptables.path });
    assert.equal(res.exitCode, 0, res.stderr);
    assert.match(res.stderr + res.stdout, /successfully applied traffic redirection rules/);
    assert.ok((await iptables.calls()).length > 0, 'iptables ran');
    assert.match(await iptables.nat(), /-A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-ports 15001/);
    assert.ok((await readdir(dir)).includes('consul-dataplane.json'));
    assert.equal((await stack.nodeServices(sim.clusterArn)).filter((s) => s.ID.startsWith('ectwo-')).length, 2, 'service and proxy registered');
    stack.secrets.add(await readFile(join(dir, 'service-token'), 'utf8').then((t) => t.trim()));
    stack.assertNoSecretsPrinted();
    await rm(dir, { recursive: true, force: true });
  });
});
