// Network namespaces standing in for awsvpc ECS tasks: each task gets a namespace
// of its own with one interface (eth0) on a bridge in the host namespace, on a
// private /24 no route or address of this machine uses. The host end of the
// bridge (.1) is where peers the tasks must reach listen (Consul, moto, the ECS
// agent simulators). Traffic stays on the bridge: no NAT, no route out, and no
// iptables rule in the host namespace. dispose() (or, failing that, the process's
// exit) removes the namespaces, their processes, the veths and the bridge.
// Needs root and iproute2. TaskNetwork.loopback() is the stand-in without root:
// no namespaces, every "namespace" the host's own network, whose tasks share
// loopback (and so need ports of their own).
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { execa, type Options, type Result, type ResultPromise } from 'execa';

/** The tools the task network and the tests that use it need on PATH. */
export const TASK_NETWORK_TOOLS = ['ip', 'iptables', 'iptables-save', 'setpriv'] as const;
const TOOL_PACKAGES: Record<(typeof TASK_NETWORK_TOOLS)[number], string> = {
  ip: 'iproute2',
  iptables: 'iptables',
  'iptables-save': 'iptables',
  setpriv: 'util-linux',
};

/**
 * What is missing to build task networks here: tools not on PATH, or not being
 * root. Empty when all is there. A test asserts it is empty (it never skips).
 */
export async function taskNetworkPrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  for (const tool of TASK_NETWORK_TOOLS) {
    const r = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
    if (r.exitCode !== 0) missing.push(`${tool} (apt-get install -y ${TOOL_PACKAGES[tool]})`);
  }
  if (process.getuid?.() !== 0) missing.push('root (network namespaces, veths and a bridge are made with CAP_NET_ADMIN)');
  return missing;
}

export interface TaskNetworkOptions {
  /**
   * The /24 to use, as `a.b.c.0/24`. Default: a random one in 10.200.0.0/13
   * that no route or address of the host namespace overlaps
   * (`CONSUL_ECS_TASK_SUBNET` overrides it).
   */
  subnet?: string;
}

/** A network namespace on the task network: one awsvpc task's network. */
export class TaskNamespace {
  /** Where `ip netns exec` mounts this namespace's resolv.conf over /etc/resolv.conf. */
  readonly resolvConfPath: string;

  constructor(
    /** The namespace's name (`ip netns`). */
    readonly name: string,
    /** Its address on the bridge (eth0), the task's private IP. */
    readonly address: string,
    readonly network: TaskNetwork,
  ) {
    this.resolvConfPath = `/etc/netns/${name}/resolv.conf`;
  }

  /** False on a {@link TaskNetwork.loopback} network: the task shares the host's network. */
  get isolated(): boolean {
    return !this.network.loopback;
  }

  /** `argv` run inside the namespace: `ip netns exec <name> …argv` (`argv` itself on a loopback network). */
  command(argv: readonly string[]): string[] {
    return this.isolated ? ['ip', 'netns', 'exec', this.name, ...argv] : [...argv];
  }

  /** Runs a command inside the namespace and waits for it (never rejects on exit code). */
  async run(argv: readonly string[], opts: Options = {}): Promise<Result> {
    const [file, ...args] = this.command(argv);
    return (await execa(file!, args, { reject: false, ...opts })) as Result;
  }

  /** Starts a command inside the namespace; `ip netns exec` execs it, so the pid is the command's. */
  spawn(argv: readonly string[], opts: Options = {}): ResultPromise {
    const [file, ...args] = this.command(argv);
    return execa(file!, args, { reject: false, ...opts });
  }

  /** The namespace's nat table as `iptables-save -t nat` prints it. */
  async natTable(): Promise<string> {
    return String((await this.run(['iptables-save', '-t', 'nat'])).stdout);
  }

  /** The processes running in the namespace (none known on a loopback network). */
  async pids(): Promise<number[]> {
    if (!this.isolated) return [];
    const r = await execa('ip', ['netns', 'pids', this.name], { reject: false });
    return String(r.stdout).split('\n').filter(Boolean).map(Number);
  }
}

/** Live networks, for the exit handler's last-resort cleanup. */
const live = new Set<TaskNetwork>();
let exitHandlerInstalled = false;

/** A bridge on a private /24 and the task namespaces attached to it. */
export class TaskNetwork {
  readonly namespaces: TaskNamespace[] = [];
  readonly #id = randomBytes(3).toString('hex');
  #next = 2;
  #disposed = false;

  private constructor(
    /** `a.b.c.0/24`. */
    readonly subnet: string,
    /** See {@link TaskNetwork.loopback}. */
    readonly loopback = false,
  ) {}

  /** The bridge's name in the host namespace. */
  get bridge(): string {
    return `cebr${this.#id}`;
  }

  /** The bridge's address (`.1`): peers the tasks reach listen here, in the host namespace. */
  get hostAddress(): string {
    return this.loopback ? '127.0.0.1' : `${this.#prefix}.1`;
  }

  get #prefix(): string {
    return this.subnet.split('.').slice(0, 3).join('.');
  }

  /**
   * The stand-in for a task network where none can be made (not root): no
   * bridge, and each "namespace" is the host's own network, its address
   * 127.0.0.1. Tasks on it share loopback, so each needs ports of its own, and
   * nothing that needs a namespace of its own (transparent proxy) can run.
   * Creates nothing, so dispose() has nothing to remove.
   */
  static loopback(): TaskNetwork {
    return new TaskNetwork('127.0.0.0/8', true);
  }

  static async create(opts: TaskNetworkOptions = {}): Promise<TaskNetwork> {
    const subnet = opts.subnet ?? process.env.CONSUL_ECS_TASK_SUBNET ?? (await unusedSubnet());
    if (!/^\d+\.\d+\.\d+\.0\/24$/.test(subnet)) throw new Error(`task network subnet ${subnet}: expected a.b.c.0/24`);
    const inUse = overlapping(subnet, await hostPrefixes());
    if (inUse.length) throw new Error(`task network subnet ${subnet} overlaps ${inUse.join(', ')} on this machine`);
    const net = new TaskNetwork(subnet);
    live.add(net);
    installExitHandler();
    try {
      await execa('ip', ['link', 'add', 'name', net.bridge, 'type', 'bridge']);
      await execa('ip', ['addr', 'add', `${net.hostAddress}/24`, 'dev', net.bridge]);
      await execa('ip', ['link', 'set', net.bridge, 'up']);
    } catch (err) {
      await net.dispose();
      throw err;
    }
    return net;
  }

  /**
   * A new namespace with loopback up, eth0 on the bridge at the next address,
   * a default route via the bridge (so that addresses off the subnet, such as
   * Consul's virtual IPs, route to eth0, where transparent proxy rules catch
   * them), and a resolv.conf of its own for `ip netns exec` to mount.
   */
  async addNamespace(label: string): Promise<TaskNamespace> {
    if (this.loopback) return new TaskNamespace(`loopback-${label}`, '127.0.0.1', this);
    if (this.#next > 254) throw new Error(`task network ${this.subnet} is full`);
    const index = this.#next++;
    const ns = new TaskNamespace(`ce-${this.#id}-${index}-${label}`.slice(0, 48), `${this.#prefix}.${index}`, this);
    this.namespaces.push(ns);
    const hostVeth = `cev${this.#id}${index.toString(16)}`;
    mkdirSync(`/etc/netns/${ns.name}`, { recursive: true });
    // No nameserver of the host's: the namespace cannot reach it. Consul DNS puts its own first.
    writeFileSync(ns.resolvConfPath, `# resolv.conf of the task network namespace ${ns.name}\noptions timeout:1 attempts:1\n`);
    await execa('ip', ['netns', 'add', ns.name]);
    await execa('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
    await execa('ip', ['link', 'set', hostVeth, 'master', this.bridge]);
    await execa('ip', ['link', 'set', hostVeth, 'up']);
    await execa('ip', ['-n', ns.name, 'link', 'set', 'lo', 'up']);
    await execa('ip', ['-n', ns.name, 'addr', 'add', `${ns.address}/24`, 'dev', 'eth0']);
    await execa('ip', ['-n', ns.name, 'link', 'set', 'eth0', 'up']);
    await execa('ip', ['-n', ns.name, 'route', 'add', 'default', 'via', this.hostAddress]);
    return ns;
  }

  /** The host namespace's nat table (`iptables-save -t nat`), with its comment lines (dates, counters) left out. */
  static async hostNatTable(): Promise<string> {
    const r = await execa('iptables-save', ['-t', 'nat'], { reject: false });
    return String(r.stdout)
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]$/, ''))
      .join('\n');
  }

  /** Kills every process in the namespaces, deletes them (their veths go too) and the bridge. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    live.delete(this);
    if (this.loopback) return;
    for (const ns of this.namespaces) {
      for (const pid of await ns.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await execa('ip', ['netns', 'del', ns.name], { reject: false });
      rmSync(`/etc/netns/${ns.name}`, { recursive: true, force: true });
    }
    await execa('ip', ['link', 'del', this.bridge], { reject: false });
    removeEmptyNetnsDir();
  }

  /** dispose() without awaiting, for the process's exit. */
  disposeSync(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    live.delete(this);
    if (this.loopback) return;
    const quiet = { stdio: 'ignore' as const };
    for (const ns of this.namespaces) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).split('\n').filter(Boolean);
        for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // no such namespace, or processes gone
      }
      try {
        execFileSync('ip', ['netns', 'del', ns.name], quiet);
      } catch {
        // already gone
      }
      rmSync(`/etc/netns/${ns.name}`, { recursive: true, force: true });
    }
    try {
      execFileSync('ip', ['link', 'del', this.bridge], quiet);
    } catch {
      // already gone
    }
    removeEmptyNetnsDir();
  }
}

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.once('exit', () => {
    for (const net of [...live]) net.disposeSync();
  });
}

function removeEmptyNetnsDir(): void {
  try {
    // Only when nothing else is in it: rmdir fails on a directory that is not empty.
    execFileSync('rmdir', ['/etc/netns'], { stdio: 'ignore' });
  } catch {
    // not empty, or not there
  }
}

type Prefix = { net: number; bits: number; text: string };

function parsePrefix(text: string): Prefix | undefined {
  const [addr, len] = text.split('/');
  const parts = (addr ?? '').split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  const bits = len === undefined ? 32 : Number(len);
  const value = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { net: (value & mask) >>> 0, bits, text };
}

/** The host namespace's IPv4 routes (every table) and addresses, default routes left out. */
async function hostPrefixes(): Promise<Prefix[]> {
  const routes = JSON.parse(String((await execa('ip', ['-4', '-j', 'route', 'show', 'table', 'all'])).stdout) || '[]') as Array<{ dst: string }>;
  const addrs = JSON.parse(String((await execa('ip', ['-4', '-j', 'addr'])).stdout) || '[]') as Array<{
    addr_info?: Array<{ local: string; prefixlen: number }>;
  }>;
  const texts = [
    ...routes.map((r) => r.dst).filter((d) => d && d !== 'default'),
    ...addrs.flatMap((a) => (a.addr_info ?? []).map((i) => `${i.local}/${i.prefixlen}`)),
  ];
  return texts.map(parsePrefix).filter((p): p is Prefix => p !== undefined);
}

/** Which of `prefixes` share an address with `subnet`. */
function overlapping(subnet: string, prefixes: Prefix[]): string[] {
  const s = parsePrefix(subnet)!;
  return prefixes
    .filter((p) => {
      const bits = Math.min(p.bits, s.bits);
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      return (p.net & mask) >>> 0 === (s.net & mask) >>> 0;
    })
    .map((p) => p.text);
}

/** A random /24 in 10.200.0.0/13 that nothing on this machine uses. */
async function unusedSubnet(): Promise<string> {
  const prefixes = await hostPrefixes();
  for (let i = 0; i < 50; i++) {
    const subnet = `10.${200 + randomInt(8)}.${randomInt(256)}.0/24`;
    if (overlapping(subnet, prefixes).length === 0) return subnet;
  }
  throw new Error('no unused /24 in 10.200.0.0/13 for a task network; set CONSUL_ECS_TASK_SUBNET');
}
