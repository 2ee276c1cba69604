// Transparent proxy rules applied for real, with iptables, in network
// namespaces this test creates (and deletes): the rules must read back from
// iptables-save and redirect real connections the way Envoy expects; without
// root/NET_ADMIN the error must say what to do. Every packet stays inside the
// test's namespaces. Needs root, iproute2, iptables, util-linux and bash: a
// missing tool fails the test rather than skipping it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { applyTransparentProxy, ConsulEcsError, TransparentProxyError, transparentProxyRules, type IptablesRunner } from '@consul-ecs-ts/core';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const TOOLS = ['ip', 'iptables', 'iptables-save', 'setpriv', 'unshare', 'mount', 'bash', 'timeout', 'dd'];

// 10.255.0.0/24 exists only on the veth pair between the test's namespaces.
const APP_IP = '10.255.0.1';
const APP_IP_EXCLUDED = '10.255.0.9';
const PEER_IP = '10.255.0.2';

const namespaces: string[] = [];
let dir: string;

async function newNamespace(): Promise<string> {
  const ns = `cetp-${randomBytes(5).toString('hex')}`;
  await execa('ip', ['netns', 'add', ns]);
  namespaces.push(ns);
  await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

/** Runs iptables inside the namespace, optionally with a command prefix (dropping privileges). */
function nsRunner(ns: string, prefix: string[] = []): IptablesRunner {
  return async (command, args) => {
    const r = await execa('ip', ['netns', 'exec', ns, ...prefix, command, ...args], { reject: false });
    return { exitCode: r.exitCode ?? null, stdout: r.stdout, stderr: r.stderr };
  };
}

async function natTable(ns: string): Promise<string[]> {
  const r = await execa('ip', ['netns', 'exec', ns, 'iptables-save', '-t', 'nat']);
  return r.stdout.split('\n').filter((l) => l.startsWith(':') || l.startsWith('-A'));
}

const chainsOf = (lines: string[]) => lines.filter((l) => l.startsWith(':')).map((l) => l.split(' ').slice(0, 2).join(' '));
const rulesOf = (lines: string[]) => lines.filter((l) => l.startsWith('-A'));

describe('applyTransparentProxy with real iptables in a network namespace', () => {
  before(async () => {
    const missing: string[] = [];
    for (const tool of TOOLS) {
      const r = await execa('bash', ['-c', `command -v ${tool}`], { reject: false });
      if (r.exitCode !== 0) missing.push(tool);
    }
    assert.deepEqual(missing, [], `missing tools for the transparent proxy test: ${missing.join(' ')} (apt-get install -y iproute2 iptables util-linux)`);
    assert.equal(process.getuid?.(), 0, 'the transparent proxy test must run as root: it creates network namespaces');
    dir = await mkdtemp(join(tmpdir(), 'tproxy-it-'));
    await chmod(dir, 0o755);
  });

  after(async () => {
    for (const ns of namespaces) await execa('ip', ['netns', 'del', ns], { reject: false });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates the chains and rules, and redirects real inbound, outbound and DNS traffic', async (t) => {
    const hostBefore = (await execa('iptables-save', ['-t', 'nat'], { reject: false })).stdout;
    const app = await newNamespace();
    const peer = await newNamespace();
    await execa('ip', ['-n', app, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', peer]);
    await execa('ip', ['-n', app, 'addr', 'add', `${APP_IP}/24`, 'dev', 'va']);
    await execa('ip', ['-n', app, 'addr', 'add', `${APP_IP_EXCLUDED}/24`, 'dev', 'va']);
    await execa('ip', ['-n', peer, 'addr', 'add', `${PEER_IP}/24`, 'dev', 'vb']);
    await execa('ip', ['-n', app, 'link', 'set', 'va', 'up']);
    await execa('ip', ['-n', peer, 'link', 'set', 'vb', 'up']);

    const rules = transparentProxyRules({
      excludeInboundPorts: [9999],
      excludeOutboundPorts: [5432],
      excludeOutboundCIDRs: [`${APP_IP_EXCLUDED}/32`],
      excludeUIDs: ['7000-7001'],
      consulDns: true,
    });
    const resolvConf = join(dir, 'resolv.conf');
    await writeFile(resolvConf, 'search ec2.internal\nnameserver 10.255.0.53\noptions timeout:2\n');
    const result = await applyTransparentProxy(rules, { run: nsRunner(app), dnsNameserver: '127.0.0.1', resolvConfPath: resolvConf });
    assert.equal(result.applied.length, rules.length);
    assert.equal(await readFile(resolvConf, 'utf8'), 'search ec2.internal\nnameserver 127.0.0.1\nnameserver 10.255.0.53\noptions timeout:2\n');

    const nat = await natTable(app);
    assert.deepEqual(chainsOf(nat).sort(), [
      ':CONSUL_DNS_REDIRECT -',
      ':CONSUL_PROXY_INBOUND -',
      ':CONSUL_PROXY_IN_REDIRECT -',
      ':CONSUL_PROXY_OUTPUT -',
      ':CONSUL_PROXY_REDIRECT -',
      ':INPUT ACCEPT',
      ':OUTPUT ACCEPT',
      ':POSTROUTING ACCEPT',
      ':PREROUTING ACCEPT',
    ]);
    // The same rules, in the order iptables keeps them (each -I went to the head of its chain).
    assert.deepEqual(rulesOf(nat).sort(byChain), [
      '-A CONSUL_DNS_REDIRECT -d 127.0.0.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.1:8600',
      '-A CONSUL_DNS_REDIRECT -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.1:8600',
      '-A CONSUL_PROXY_INBOUND -p tcp -m tcp --dport 22000 -j RETURN',
      '-A CONSUL_PROXY_INBOUND -p tcp -m tcp --dport 9999 -j RETURN',
      '-A CONSUL_PROXY_INBOUND -p tcp -j CONSUL_PROXY_IN_REDIRECT',
      '-A CONSUL_PROXY_IN_REDIRECT -p tcp -j REDIRECT --to-ports 20000',
      '-A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5996 -j RETURN',
      '-A CONSUL_PROXY_OUTPUT -m owner --uid-owner 7000-7001 -j RETURN',
      `-A CONSUL_PROXY_OUTPUT -d ${APP_IP_EXCLUDED}/32 -j RETURN`,
      '-A CONSUL_PROXY_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN',
      '-A CONSUL_PROXY_OUTPUT -m owner --uid-owner 5995 -j RETURN',
      '-A CONSUL_PROXY_OUTPUT -d 127.0.0.1/32 -j RETURN',
      '-A CONSUL_PROXY_OUTPUT -j CONSUL_PROXY_REDIRECT',
      '-A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
      '-A OUTPUT -d 127.0.0.1/32 -p udp -m udp --dport 53 -j CONSUL_DNS_REDIRECT',
      '-A OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -j CONSUL_DNS_REDIRECT',
      '-A OUTPUT -p tcp -j CONSUL_PROXY_OUTPUT',
      '-A PREROUTING -p tcp -j CONSUL_PROXY_INBOUND',
    ]);
    const hostAfter = (await execa('iptables-save', ['-t', 'nat'], { reject: false })).stdout;
    assert.equal(stripComments(hostAfter), stripComments(hostBefore), "the host's own nat table is untouched");

    // Listeners as in a task: Envoy's public (20000) and outbound (127.0.0.1:15001) listeners and
    // readiness port (22000), the dataplane DNS proxy (127.0.0.1:8600), and "real" destinations.
    // Each answers with its own port, so a client sees where its connection landed.
    const server = await startEchoServer(app, [
      'tcp:0.0.0.0:20000',
      'tcp:127.0.0.1:15001',
      'tcp:0.0.0.0:22000',
      'tcp:0.0.0.0:9999',
      'tcp:0.0.0.0:8080',
      'tcp:0.0.0.0:9000',
      'tcp:0.0.0.0:5432',
      'tcp:127.0.0.1:8600',
      'udp:127.0.0.1:8600',
    ]);
    t.after(() => server.kill());

    const cases: Array<[string, string, string[], string]> = [
      // [what, namespace, client prefix, "proto host port"] → answered by
      ['inbound to the app port goes to the public listener', peer, [], `tcp ${APP_IP} 8080`],
      ['inbound to the readiness port is not redirected', peer, [], `tcp ${APP_IP} 22000`],
      ['inbound to an excluded port is not redirected', peer, [], `tcp ${APP_IP} 9999`],
      ['outbound from the app goes to the outbound listener', app, [], `tcp ${APP_IP} 9000`],
      ['outbound to the peer goes to the outbound listener', app, [], `tcp ${PEER_IP} 9000`],
      ['outbound from the proxy user is not redirected', app, asUser(5995), `tcp ${APP_IP} 9000`],
      ['outbound from the health-sync user is not redirected', app, asUser(5996), `tcp ${APP_IP} 9000`],
      ['outbound from an excluded user range is not redirected', app, asUser(7001), `tcp ${APP_IP} 9000`],
      ['outbound to an excluded CIDR is not redirected', app, [], `tcp ${APP_IP_EXCLUDED} 9000`],
      ['outbound to an excluded port is not redirected', app, [], `tcp ${APP_IP} 5432`],
      ['outbound to localhost is not redirected', app, [], 'tcp 127.0.0.1 9000'],
      ['DNS over UDP to 127.0.0.1:53 reaches the DNS proxy', app, [], 'udp 127.0.0.1 53'],
      ['DNS over TCP to 127.0.0.1:53 reaches the DNS proxy', app, [], 'tcp 127.0.0.1 53'],
    ];
    const expected = ['20000', '22000', '9999', '15001', '15001', '9000', '9000', '9000', '9000', '5432', '9000', '8600', '8600'];
    const answers: string[] = [];
    for (const [, ns, prefix, target] of cases) answers.push(await probe(ns, prefix, target));
    assert.deepEqual(
      cases.map(([what], i) => `${what}: ${answers[i]}`),
      cases.map(([what], i) => `${what}: ${expected[i]}`),
    );

    // Applying twice in one namespace is reported as such, and nothing more is applied.
    const again = await applyTransparentProxy(rules, { run: nsRunner(app) }).then(
      () => assert.fail('expected a failure'),
      (err: unknown) => err,
    );
    assert.ok(again instanceof TransparentProxyError);
    assert.equal(again.code, 'tproxy-already-applied');
    assert.deepEqual(again.applied, []);
    assert.match(
      again.message,
      /rule 1 of 24 \(iptables -t nat -N CONSUL_PROXY_INBOUND\) in the nat table: iptables exited 1: .*Chain already exists\. No rule was applied before it\./,
    );
    assert.equal(rules.length, 24);
    assert.deepEqual(rulesOf(await natTable(app)).sort(byChain), rulesOf(nat).sort(byChain));
  });

  for (const [name, prefix] of [
    ['an unprivileged user', ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']],
    ['root without NET_ADMIN (as on Fargate)', ['setpriv', '--inh-caps=-all', '--bounding-set=-all']],
  ] as const) {
    it(`fails clearly, applying nothing, as ${name}`, async () => {
      const ns = await newNamespace();
      const resolvConf = join(dir, `resolv-${ns}.conf`);
      await writeFile(resolvConf, 'nameserver 10.255.0.53\n');
      const rules = transparentProxyRules({ consulDns: true });
      const err = await applyTransparentProxy(rules, { run: nsRunner(ns, [...prefix]), dnsNameserver: '127.0.0.1', resolvConfPath: resolvConf }).then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TransparentProxyError && err instanceof ConsulEcsError, String(err));
      assert.equal(err.code, 'tproxy-not-permitted');
      assert.deepEqual(err.applied, []);
      assert.deepEqual(err.failedRule, rules[0]);
      assert.match(
        err.message,
        /^cannot apply transparent proxy rule 1 of 20 \(iptables -t nat -N CONSUL_PROXY_INBOUND\) in the nat table: iptables exited \d+, not permitted: /,
      );
      assert.match(err.message, /Permission denied \(you must be root\)|can't initialize iptables table `nat'/);
      assert.match(err.message, /No rule was applied before it\. To fix: .*as root \(container user "0"\) with the NET_ADMIN Linux capability/);
      assert.match(err.message, /transparent proxy is not supported on Fargate/);
      assert.deepEqual(rulesOf(await natTable(ns)), [], 'nothing was applied');
      assert.equal(await readFile(resolvConf, 'utf8'), 'nameserver 10.255.0.53\n');
    });
  }

  it('reports a missing iptables executable', async () => {
    const err = await applyTransparentProxy(transparentProxyRules(), { iptablesCommand: 'consul-ecs-ts-no-such-iptables' }).then(
      () => assert.fail('expected a failure'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TransparentProxyError);
    assert.equal(err.code, 'tproxy-not-permitted');
    assert.match(err.message, /consul-ecs-ts-no-such-iptables was not found on PATH\. No rule was applied before it\. To fix: install iptables/);
  });

  it('with the default runner, inside the namespace, rewrites a bind-mounted resolv.conf in place', async () => {
    // As in an ECS task: the runtime bind-mounts resolv.conf, which cannot be renamed over.
    const ns = await newNamespace();
    const source = join(dir, 'task-resolv.conf');
    const mountPoint = join(dir, 'container-resolv.conf');
    await writeFile(source, 'nameserver 10.255.0.53\nsearch ec2.internal\n');
    await writeFile(mountPoint, 'not mounted\n');
    const script = join(dir, 'apply-in-namespace.mts');
    const core = join(repoRoot, 'packages/core/src/index.ts');
    await writeFile(
      script,
      `import { applyTransparentProxy, transparentProxyRules } from ${JSON.stringify(core)};
const res = await applyTransparentProxy(transparentProxyRules({ consulDns: true }), { dnsNameserver: '127.0.0.1', resolvConfPath: process.argv[2] })
  .then((r) => ({ ok: true, applied: r.applied.length, resolvConf: r.resolvConf }), (e) => ({ ok: false, code: e.code, message: e.message }));
console.log(JSON.stringify(res));
`,
    );
    const r = await execa(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$1" "$2" && exec "$3" --import tsx "$4" "$2"',
        'sh',
        source,
        mountPoint,
        process.execPath,
        script,
      ],
      { cwd: repoRoot, reject: false },
    );
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      ok: true,
      applied: 20,
      resolvConf: { path: mountPoint, changed: true, nameservers: ['127.0.0.1', '10.255.0.53'] },
    });
    assert.equal(await readFile(source, 'utf8'), 'nameserver 127.0.0.1\nnameserver 10.255.0.53\nsearch ec2.internal\n');
    assert.equal(await readFile(mountPoint, 'utf8'), 'not mounted\n', 'the bind mount stayed in its own mount namespace');
    const nat = rulesOf(await natTable(ns));
    assert.equal(nat.length, 14, nat.join('\n')); // 20 commands: 5 create chains, 1 sets a policy
    assert.ok(nat.includes('-A CONSUL_DNS_REDIRECT -d 127.0.0.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.1:8600'));
  });
});

function byChain(a: string, b: string): number {
  const ca = a.split(' ')[1]!;
  const cb = b.split(' ')[1]!;
  return ca < cb ? -1 : ca > cb ? 1 : 0;
}

function stripComments(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, ''))
    .join('\n');
}

function asUser(uid: number): string[] {
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
}

/** Connects with bash's /dev/tcp or /dev/udp and prints the first answer (or the error). */
async function probe(ns: string, prefix: string[], target: string): Promise<string> {
  const [proto, host, port] = target.split(' ') as [string, string, string];
  const script =
    proto === 'udp'
      ? `exec 3<>/dev/udp/${host}/${port} && printf 'q' >&3 && timeout 3 dd bs=512 count=1 <&3 2>/dev/null`
      : `exec 3<>/dev/tcp/${host}/${port} && timeout 3 cat <&3`;
  const r = await execa('ip', ['netns', 'exec', ns, ...prefix, 'timeout', '5', 'bash', '-c', script], { reject: false });
  return r.stdout.trim() || `(no answer: exit ${r.exitCode}, ${r.stderr.trim()})`;
}

/** Listens on each `proto:host:port` in the namespace and answers every connection or datagram with its port. */
async function startEchoServer(ns: string, listeners: string[]): Promise<{ kill: () => void }> {
  const code = `
const net = require('node:net'); const dgram = require('node:dgram');
const specs = process.argv.slice(1);
let pending = specs.length;
const ready = () => { if (--pending === 0) process.stdout.write('ready\\n'); };
for (const spec of specs) {
  const [proto, host, port] = spec.split(':');
  if (proto === 'udp') {
    const s = dgram.createSocket('udp4');
    s.on('message', (_m, rinfo) => s.send(port + '\\n', rinfo.port, rinfo.address));
    s.bind(Number(port), host, ready);
  } else {
    net.createServer((c) => c.end(port + '\\n')).listen(Number(port), host, ready);
  }
}`;
  const child = execa('ip', ['netns', 'exec', ns, process.execPath, '-e', code, ...listeners], { reject: false, buffer: false });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`echo server exited ${code} before listening`)));
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  });
  // Not the child itself: it is a promise, and returning it would wait for the server to exit.
  return { kill: () => void child.kill() };
}
