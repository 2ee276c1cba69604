import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  applyTransparentProxy,
  ConsulEcsError,
  formatIptablesRule,
  TransparentProxyError,
  transparentProxyRules,
  type IptablesRunner,
  type IptablesRule,
} from '@consul-ecs-ts/core';
import { consulDnsResolvConf, resolvConfNameservers } from '../../packages/core/src/tproxy/dns.ts';
import { iptablesArgv } from '../../packages/core/src/tproxy/iptables.ts';

const lines = (rules: IptablesRule[]) => rules.map((r) => formatIptablesRule(r));

const CHAINS = [
  'iptables -t nat -N CONSUL_PROXY_INBOUND',
  'iptables -t nat -N CONSUL_PROXY_IN_REDIRECT',
  'iptables -t nat -N CONSUL_PROXY_OUTPUT',
  'iptables -t nat -N CONSUL_PROXY_REDIRECT',
  'iptables -t nat -N CONSUL_DNS_REDIRECT',
];

describe('transparentProxyRules', () => {
  it('builds the rules of Consul sdk/iptables plus consul-ecs additions, by default', () => {
    const rules = transparentProxyRules();
    assert.ok(rules.every((r) => r.table === 'nat'));
    assert.deepEqual(lines(rules), [
      ...CHAINS,
      'iptables -t nat -A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-port 15001',
      'iptables -t nat -A OUTPUT -p tcp -j CONSUL_PROXY_OUTPUT',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5995 -j RETURN',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -d 127.0.0.1/32 -j RETURN',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -j CONSUL_PROXY_REDIRECT',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -m owner --uid-owner 5996 -j RETURN',
      'iptables -t nat -A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 20000',
      'iptables -t nat -A PREROUTING -p tcp -j CONSUL_PROXY_INBOUND',
      'iptables -t nat -A CONSUL_PROXY_INBOUND -p tcp -j CONSUL_PROXY_IN_REDIRECT',
      'iptables -t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 22000 -j RETURN',
      'iptables -t nat --policy POSTROUTING ACCEPT',
    ]);
    assert.deepEqual(iptablesArgv(rules[0]!), ['-t', 'nat', '-N', 'CONSUL_PROXY_INBOUND']);
  });

  it('inserts every exclusion at the head of its chain, in consul-ecs order, without duplicates', () => {
    const rules = transparentProxyRules({
      proxyUid: 1337,
      healthCheckPort: 22001,
      excludeInboundPorts: [8080, 22001],
      excludeOutboundPorts: [443, 5432],
      excludeOutboundCIDRs: ['169.254.170.2/32', '10.0.0.0/16', '192.168.1.7'],
      excludeUIDs: ['1000', 2000, '3000-3999'],
      proxyService: {
        Port: 21000,
        Proxy: {
          Config: { bind_port: '21001', envoy_prometheus_bind_addr: '0.0.0.0:9102', envoy_stats_bind_addr: '[::]:9103' },
          Expose: { Paths: [{ ListenerPort: 21500 }, {}] },
          TransparentProxy: { OutboundListenerPort: 15002 },
        },
      },
    });
    assert.deepEqual(lines(rules), [
      ...CHAINS,
      'iptables -t nat -A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-port 15002',
      'iptables -t nat -A OUTPUT -p tcp -j CONSUL_PROXY_OUTPUT',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -d 127.0.0.1/32 -j RETURN',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -j CONSUL_PROXY_REDIRECT',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -p tcp --dport 443 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -p tcp --dport 5432 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -d 169.254.170.2/32 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -d 10.0.0.0/16 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -d 192.168.1.7 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -m owner --uid-owner 1000 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -m owner --uid-owner 2000 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -m owner --uid-owner 3000-3999 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -m owner --uid-owner 5996 -j RETURN',
      // bind_port wins over the registration's port.
      'iptables -t nat -A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 21001',
      'iptables -t nat -A PREROUTING -p tcp -j CONSUL_PROXY_INBOUND',
      'iptables -t nat -A CONSUL_PROXY_INBOUND -p tcp -j CONSUL_PROXY_IN_REDIRECT',
      'iptables -t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 8080 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 22001 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 9102 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 9103 -j RETURN',
      'iptables -t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 21500 -j RETURN',
      'iptables -t nat --policy POSTROUTING ACCEPT',
    ]);
  });

  it('uses the registration port when there is no bind_port, explicit ports over both, and can leave out the health-sync user', () => {
    const fromSvc = lines(transparentProxyRules({ proxyService: { Port: 21000, Proxy: {} }, healthSyncUid: null }));
    assert.ok(fromSvc.includes('iptables -t nat -A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 21000'));
    assert.ok(!fromSvc.some((l) => l.includes('5996')));
    const explicit = lines(
      transparentProxyRules({
        proxyInboundPort: 20001,
        proxyOutboundPort: 15009,
        proxyService: { Port: 21000, Proxy: { Config: { bind_port: 21001 }, TransparentProxy: { OutboundListenerPort: 15002 } } },
      }),
    );
    assert.ok(explicit.includes('iptables -t nat -A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 20001'));
    assert.ok(explicit.includes('iptables -t nat -A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-port 15009'));
  });

  it('sends DNS to the dataplane DNS proxy before the catch-all TCP jump when Consul DNS is on', () => {
    const expected = [
      ...CHAINS,
      'iptables -t nat -A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-port 15001',
      'iptables -t nat -A CONSUL_DNS_REDIRECT -p udp -d 127.0.0.1 --dport 53 -j DNAT --to-destination 127.0.0.1:8600',
      'iptables -t nat -A CONSUL_DNS_REDIRECT -p tcp -d 127.0.0.1 --dport 53 -j DNAT --to-destination 127.0.0.1:8600',
      'iptables -t nat -A OUTPUT -p udp -d 127.0.0.1 --dport 53 -j CONSUL_DNS_REDIRECT',
      'iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 --dport 53 -j CONSUL_DNS_REDIRECT',
      'iptables -t nat -A OUTPUT -p tcp -j CONSUL_PROXY_OUTPUT',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5995 -j RETURN',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -d 127.0.0.1/32 -j RETURN',
      'iptables -t nat -A CONSUL_PROXY_OUTPUT -j CONSUL_PROXY_REDIRECT',
      'iptables -t nat -I CONSUL_PROXY_OUTPUT -m owner --uid-owner 5996 -j RETURN',
      'iptables -t nat -A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-port 20000',
      'iptables -t nat -A PREROUTING -p tcp -j CONSUL_PROXY_INBOUND',
      'iptables -t nat -A CONSUL_PROXY_INBOUND -p tcp -j CONSUL_PROXY_IN_REDIRECT',
      'iptables -t nat -I CONSUL_PROXY_INBOUND -p tcp --dport 22000 -j RETURN',
      'iptables -t nat --policy POSTROUTING ACCEPT',
    ];
    assert.deepEqual(lines(transparentProxyRules({ consulDns: true })), expected);
    assert.deepEqual(lines(transparentProxyRules({ consulDns: { address: '127.0.0.1', port: 8600 } })), expected);
    const custom = lines(transparentProxyRules({ consulDns: { address: '127.0.0.2', port: 5353 } }));
    assert.ok(custom.includes('iptables -t nat -A CONSUL_DNS_REDIRECT -p udp -d 127.0.0.2 --dport 53 -j DNAT --to-destination 127.0.0.2:5353'));
    assert.deepEqual(lines(transparentProxyRules({ consulDns: false })), lines(transparentProxyRules()));
  });

  it('rejects bad input with one error naming every bad value', () => {
    const err = catchError(() =>
      transparentProxyRules({
        proxyInboundPort: 70000,
        proxyOutboundPort: 0,
        proxyUid: '5995-6000',
        healthCheckPort: 1.5,
        excludeInboundPorts: [-1],
        excludeOutboundPorts: [65536],
        excludeOutboundCIDRs: ['10.0.0/8', '10.0.0.0/33', 'fd00::/8', 'example.com', '010.0.0.1'],
        excludeUIDs: ['root', '12a', '9-3'],
        consulDns: { address: 'localhost', port: 99999 },
        proxyService: { Proxy: { Config: { envoy_prometheus_bind_addr: '9102' } } },
      }),
    );
    assert.ok(err instanceof ConsulEcsError);
    assert.equal(err.code, 'tproxy-invalid-config');
    for (const text of [
      'proxyInboundPort: 70000 is not a port number (an integer from 1 to 65535)',
      'proxyOutboundPort: 0 is not a port number',
      'proxyUid: "5995-6000" is not a numeric user ID (0-4294967294)',
      'healthCheckPort: 1.5 is not a port number',
      'excludeInboundPorts[0]: -1 is not a port number',
      'excludeOutboundPorts[0]: 65536 is not a port number',
      'excludeOutboundCIDRs[0]: "10.0.0/8" is not an IPv4 address or CIDR',
      'excludeOutboundCIDRs[1]: "10.0.0.0/33" is not an IPv4 address or CIDR',
      'excludeOutboundCIDRs[2]: "fd00::/8" is IPv6; transparent proxy rules are IPv4 (iptables) only',
      'excludeOutboundCIDRs[3]: "example.com" is not an IPv4 address or CIDR',
      'excludeOutboundCIDRs[4]: "010.0.0.1" is not an IPv4 address or CIDR',
      'excludeUIDs[0]: "root" is not a numeric user ID (0-4294967294) or a range like 1000-1999',
      'excludeUIDs[1]: "12a" is not a numeric user ID',
      'excludeUIDs[2]: "9-3" is not a numeric user ID',
      'consulDns.address: "localhost" is not an IPv4 address',
      'consulDns.port: 99999 is not a port number',
      'proxy config envoy_prometheus_bind_addr: "9102" is not a host:port address',
    ]) {
      assert.ok(err.message.includes(text), `missing ${JSON.stringify(text)} in: ${err.message}`);
    }
    assert.match(err.message, /transparentProxy section of CONSUL_ECS_CONFIG_JSON/);
    // A bad bind_port in the registration is reported as such.
    const bind = catchError(() => transparentProxyRules({ proxyService: { Port: 21000, Proxy: { Config: { bind_port: 'x' } } } }));
    assert.match(bind.message, /proxy config bind_port: "x" is not a port number/);
  });
});

describe('consulDnsResolvConf', () => {
  it('puts Consul DNS first and keeps everything else in order', () => {
    const existing = [
      '# Generated by the ECS agent',
      'search ec2.internal example.com',
      'options ndots:5 timeout:2 rotate',
      'nameserver 10.0.0.2',
      'nameserver 10.0.0.3',
      'domain example.com',
      '',
    ].join('\n');
    const out = consulDnsResolvConf(existing, '127.0.0.1');
    assert.equal(
      out,
      [
        '# Generated by the ECS agent',
        'search ec2.internal example.com',
        'options ndots:5 timeout:2 rotate',
        'nameserver 127.0.0.1',
        'nameserver 10.0.0.2',
        'nameserver 10.0.0.3',
        'domain example.com',
        '',
      ].join('\n'),
    );
    assert.deepEqual(resolvConfNameservers(out), ['127.0.0.1', '10.0.0.2', '10.0.0.3']);
  });

  it('is idempotent, and moves an existing Consul DNS line to the front', () => {
    const once = consulDnsResolvConf('nameserver 10.0.0.2\nsearch a.b', '127.0.0.1');
    assert.equal(once, 'nameserver 127.0.0.1\nnameserver 10.0.0.2\nsearch a.b\n');
    assert.equal(consulDnsResolvConf(once, '127.0.0.1'), once);
    assert.equal(consulDnsResolvConf('nameserver 10.0.0.2\nnameserver 127.0.0.1\n', '127.0.0.1'), 'nameserver 127.0.0.1\nnameserver 10.0.0.2\n');
  });

  it('handles an empty or nameserver-less file and defaults to the dataplane DNS address', () => {
    assert.equal(consulDnsResolvConf(''), 'nameserver 127.0.0.1\n');
    assert.equal(consulDnsResolvConf('search x.y\r\noptions edns0'), 'search x.y\noptions edns0\nnameserver 127.0.0.1\n');
  });

  it('rejects an address that is not an IP', () => {
    const err = catchError(() => consulDnsResolvConf('', 'consul.service'));
    assert.ok(err instanceof ConsulEcsError);
    assert.equal(err.code, 'tproxy-invalid-config');
    assert.match(err.message, /"consul.service" is not an IP address/);
  });
});

describe('applyTransparentProxy (fake runner)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tproxy-unit-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const rules = transparentProxyRules({ consulDns: true });
  const recording = (fail?: { at: number; result?: { exitCode: number; stderr: string }; error?: NodeJS.ErrnoException }) => {
    const calls: string[][] = [];
    const run: IptablesRunner = async (command, args) => {
      calls.push([command, ...args]);
      if (fail && calls.length === fail.at) {
        if (fail.error) throw fail.error;
        return { stdout: '', ...fail.result! };
      }
      return { exitCode: 0, stdout: '', stderr: '' };
    };
    return { calls, run };
  };

  it('runs every rule in order, then rewrites resolv.conf keeping its mode, and only once', async () => {
    const path = join(dir, 'resolv.conf');
    await writeFile(path, 'nameserver 10.0.0.2\n', { mode: 0o640 });
    const { calls, run } = recording();
    const res = await applyTransparentProxy(rules, { run, dnsNameserver: '127.0.0.1', resolvConfPath: path });
    assert.deepEqual(
      calls,
      rules.map((r) => ['iptables', ...iptablesArgv(r)]),
    );
    assert.equal(res.applied.length, rules.length);
    assert.deepEqual(res.resolvConf, { path, changed: true, nameservers: ['127.0.0.1', '10.0.0.2'] });
    assert.equal(await readFile(path, 'utf8'), 'nameserver 127.0.0.1\nnameserver 10.0.0.2\n');
    assert.equal((await stat(path)).mode & 0o777, 0o640);
    const again = await applyTransparentProxy([], { run, dnsNameserver: '127.0.0.1', resolvConfPath: path });
    assert.equal(again.resolvConf?.changed, false);
  });

  it('leaves resolv.conf alone without dnsNameserver', async () => {
    const path = join(dir, 'untouched.conf');
    await writeFile(path, 'nameserver 10.0.0.2\n');
    const res = await applyTransparentProxy(rules, { run: recording().run, resolvConfPath: path });
    assert.equal(res.resolvConf, undefined);
    assert.equal(await readFile(path, 'utf8'), 'nameserver 10.0.0.2\n');
  });

  it('reports a permission failure with the rule, the applied rules and what to do', async () => {
    const path = join(dir, 'not-written.conf');
    await writeFile(path, 'nameserver 10.0.0.2\n');
    const { calls, run } = recording({
      at: 3,
      result: { exitCode: 3, stderr: "iptables v1.8.7 (legacy): can't initialize iptables table `nat': Permission denied (you must be root)\n" },
    });
    const err = await rejection(applyTransparentProxy(rules, { run, dnsNameserver: '127.0.0.1', resolvConfPath: path }));
    assert.equal(calls.length, 3);
    assert.ok(err instanceof TransparentProxyError && err instanceof ConsulEcsError);
    assert.equal(err.code, 'tproxy-not-permitted');
    assert.deepEqual(err.applied, rules.slice(0, 2));
    assert.deepEqual(err.failedRule, rules[2]);
    assert.match(err.message, /rule 3 of 20 \(iptables -t nat -N CONSUL_PROXY_OUTPUT\) in the nat table/);
    assert.match(err.message, /exited 3, not permitted: iptables v1\.8\.7 \(legacy\): can't initialize iptables table `nat': Permission denied/);
    assert.match(
      err.message,
      /2 rule\(s\) were applied before it and remain in place: iptables -t nat -N CONSUL_PROXY_INBOUND; iptables -t nat -N CONSUL_PROXY_IN_REDIRECT\./,
    );
    assert.match(err.message, /as root \(container user "0"\) with the NET_ADMIN Linux capability/);
    assert.match(err.message, /not supported on Fargate/);
    assert.equal(await readFile(path, 'utf8'), 'nameserver 10.0.0.2\n', 'resolv.conf must not change when the rules failed');
  });

  it('checks the DNS nameserver before running any rule', async () => {
    const { calls, run } = recording();
    const err = await rejection(applyTransparentProxy(rules, { run, dnsNameserver: 'localhost', resolvConfPath: join(dir, 'x.conf') }));
    assert.equal(err.code, 'tproxy-invalid-config');
    assert.deepEqual(calls, []);
  });

  it('treats a missing iptables as not permitted, and says so', async () => {
    const enoent = Object.assign(new Error('spawn iptables ENOENT'), { code: 'ENOENT' });
    const err = await rejection(applyTransparentProxy(rules, { run: recording({ at: 1, error: enoent }).run }));
    assert.ok(err instanceof TransparentProxyError);
    assert.equal(err.code, 'tproxy-not-permitted');
    assert.match(err.message, /iptables was not found on PATH\. No rule was applied before it\. To fix: install iptables/);
  });

  it('recognizes rules applied twice and other iptables failures', async () => {
    const twice = await rejection(
      applyTransparentProxy(rules, { run: recording({ at: 1, result: { exitCode: 1, stderr: 'iptables: Chain already exists.\n' } }).run }),
    );
    assert.ok(twice instanceof ConsulEcsError);
    assert.equal(twice.code, 'tproxy-already-applied');
    assert.match(twice.message, /mesh-init ran before in this task/);

    const other = await rejection(
      applyTransparentProxy(rules, {
        run: recording({ at: 8, result: { exitCode: 2, stderr: "iptables v1.8.9: Couldn't load match `owner':No such file or directory\n" } }).run,
      }),
    );
    assert.ok(other instanceof TransparentProxyError);
    assert.equal(other.code, 'tproxy-rule-failed');
    assert.equal(other.applied.length, 7);
    assert.match(other.message, /exited 2: iptables v1\.8\.9: Couldn't load match `owner'/);
  });
});

function catchError(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  assert.fail('expected an error');
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  assert.fail('expected a rejection');
}
