// The quick start's main job, against an embedded local default: two simulated
// ECS tasks, `client` and `server`, join a local Consul mesh (ACLs on, default
// deny, the aws-iam auth method against moto) and talk through it. Each task runs
// what a terraform-aws-consul-ecs mesh task runs: `consul-ecs control-plane` (the
// self-contained executable), Envoy under `consul-ecs envoy-entrypoint` (from the
// envoy-bootstrap.json the control plane writes) and an app under
// `consul-ecs app-entrypoint`; the ECS agent's part (task metadata, credentials,
// container order, health checks, the task's stop) is simulated. It prints a
// timeline of what happens, with times from the start: each task logging in,
// registering and its Envoy getting ready; the client app's requests crossing
// the mesh over mTLS; an intention denying them and allowing them again; the
// client task's stop on SIGTERM. Then it stops everything and checks that
// nothing is left: no services or login tokens in Consul, no namespaces, bridge,
// processes or files. Exit code 0 when all went as expected, 1 otherwise.
//
// As root (with iproute2, iptables and setpriv) each task has a network namespace
// of its own on a bridge, as an awsvpc task has its own network (the integration
// tests' harness, scripts/lib), and Envoy runs as the dataplane's user. Without
// root both tasks share this machine's loopback, each with ports of its own, and
// the demo says what it left out.
//   node --import tsx scripts/demo.ts           run it once and clean up
//   node --import tsx scripts/demo.ts --serve   keep both tasks up until Ctrl-C, then stop them the same way
//
// The work runs in a child process of its own session, so that Ctrl-C reaches
// this process only: it asks the child to stop (--serve: the tasks' graceful
// stop and the checks; otherwise: clean up at once), rather than the terminal
// killing every process of the demo where it stands.
import { fork } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { freePort, peerBinary, PEERS_DIR } from './lib/local-stack.ts';
import { CONSUL_ECS_EXECUTABLE, CONTAINERS, descendants, MeshStack, MeshTask, type AppEvent, type ShutdownTimeline } from './lib/mesh-task-runner.ts';
import { TaskNetwork, taskNetworkPrerequisites, type TaskNamespace } from './lib/task-network.ts';

const serve = process.argv.includes('--serve');

if (!process.env.CONSUL_ECS_DEMO_CHILD) {
  // The parent: runs the demo in a child of its own session and passes Ctrl-C on as a request to stop.
  const child = fork(fileURLToPath(import.meta.url), process.argv.slice(2), {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, CONSUL_ECS_DEMO_CHILD: '1', CONSUL_ECS_DEMO_T0: String(Date.now()) },
  });
  let asked = 0;
  const forward = (signal: NodeJS.Signals) => {
    asked++;
    if (asked > 1) process.stderr.write(`\n(${signal} again: the demo is stopping what it started; it exits when that is done)\n`);
    if (child.connected) child.send('stop');
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await main();
}

async function main(): Promise<void> {
  const t0 = Number(process.env.CONSUL_ECS_DEMO_T0) || Date.now();
  let failing = false;
  // Once the demo fails or is interrupted, what its work still prints is noise.
  const out = (s: string) => void (failing || process.stdout.write(`${s}\n`));
  /** A 32-hex-digit task id shortened to its first 8 digits. */
  const short = (s: string) => s.replace(/\b([0-9a-f]{8})[0-9a-f]{24}\b/g, '$1…');
  const at = (ms = Date.now()) => `+${((ms - t0) / 1000).toFixed(2)}s`.padStart(8);
  const step = (s: string) => out(`\n==> ${s}`);
  const event = (s: string, when?: number) => out(`${at(when)}  ${short(s)}`);
  const note = (s: string) => out(`${' '.repeat(10)}${short(s)}`);

  // A request to stop: from the parent (Ctrl-C), or the parent gone.
  let stopRequested: () => void = () => {};
  const stopRequest = new Promise<void>((resolve) => (stopRequested = resolve));
  let stopping = false;
  process.on('message', () => stopRequested());
  process.on('disconnect', () => stopRequested());
  // Until --serve waits for it, a request to stop means: clean up now.
  void stopRequest.then(() => {
    if (!stopping) void fail(undefined, 130);
  });

  let network: TaskNetwork | undefined;
  let stack: MeshStack | undefined;
  const tasks: MeshTask[] = [];
  /** What is being set up (the network, the stack, the tasks), for the clean-up to wait for when interrupted. */
  const starting: Array<Promise<unknown>> = [];
  const track = <T>(p: Promise<T>): Promise<T> => {
    starting.push(p);
    return p;
  };
  /** Once the demo fails or is interrupted, its work starts nothing more. */
  const carryOn = () => {
    if (failing) throw new Error('stopped');
  };
  const seenPids = new Set<number>();
  let cleaned: Promise<string[]> | undefined;

  /** Stops and removes everything; returns what was left behind (empty when nothing was). */
  const cleanUp = (): Promise<string[]> =>
    (cleaned ??= (async () => {
      const left: string[] = [];
      // What is still being set up (interrupted meanwhile) is disposed of once it is; that does not take long.
      await Promise.race([Promise.allSettled(starting), new Promise((r) => setTimeout(r, 15_000))]);
      const namespaces = network?.namespaces.slice() ?? [];
      for (const t of tasks) await t.dispose().catch((err: unknown) => left.push(`${t.service}: ${String(err)}`));
      for (const ns of namespaces) {
        const pids = await ns.pids();
        if (pids.length) left.push(`processes in namespace ${ns.name}: ${pids.join(' ')}`);
      }
      const dirs = stack ? [stack.dir, dirname(stack.consul.logFile), dirname(stack.moto.logFile)] : [];
      await stack?.dispose().catch((err: unknown) => left.push(`the stack: ${String(err)}`));
      await network?.dispose();
      for (const d of dirs) if (existsSync(d)) left.push(`directory ${d}`);
      // Killed processes take a moment to go.
      const gone = Date.now() + 3000;
      let running = [...seenPids, ...descendants(process.pid)].filter(alive);
      while (running.length && Date.now() < gone) {
        await new Promise((r) => setTimeout(r, 100));
        running = running.filter(alive);
      }
      for (const pid of running) left.push(`process ${pid} (${comm(pid)})`);
      if (network && !network.loopback) {
        const netns = String((await execa('ip', ['netns', 'list'], { reject: false })).stdout);
        for (const ns of namespaces) {
          if (netns.split('\n').some((l) => l.split(' ')[0] === ns.name)) left.push(`network namespace ${ns.name}`);
          if (existsSync(`/etc/netns/${ns.name}`)) left.push(`/etc/netns/${ns.name}`);
        }
        if ((await execa('ip', ['link', 'show', network.bridge], { reject: false })).exitCode === 0) left.push(`bridge ${network.bridge}`);
      }
      return left;
    })());

  async function fail(err: unknown, code = 1): Promise<void> {
    // Once: what breaks while it cleans up is a consequence, not news.
    if (failing) return;
    failing = true;
    stopping = true;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(code === 130 ? '\ninterrupted: ' : `\ndemo FAILED: ${message}\n`);
    process.stderr.write('stopping and removing what the demo started…\n');
    const left = await cleanUp().catch((e: unknown) => [String(e)]);
    process.stderr.write(left.length ? `left behind:\n  ${left.join('\n  ')}\n` : 'nothing left behind\n');
    process.exit(code);
  }

  try {
    await run();
  } catch (err) {
    await fail(err);
  }

  async function run(): Promise<void> {
    const missingPeers = [CONSUL_ECS_EXECUTABLE, peerBinary('consul'), peerBinary('envoy'), peerBinary('moto_server')].filter((f) => !existsSync(f));
    if (missingPeers.length) {
      throw new Error(
        `missing: ${missingPeers.join(', ')}\nrun \`bash scripts/peers.sh install && npm run build\` first (peers are looked for in ${PEERS_DIR}; CONSUL_ECS_PEERS_DIR moves it)`,
      );
    }
    const missing = await taskNetworkPrerequisites();
    const isolated = missing.length === 0;

    step(`the mesh: Consul (ACLs on, default deny) and moto (AWS STS and IAM, SigV4 checked)${isolated ? ", on a task network's bridge" : ', on loopback'}`);
    if (!isolated) {
      note('no network namespaces here: they need');
      for (const m of missing) note(`  - ${m}`);
      note("so both tasks share this machine's loopback, each with ports of its own (app, public listener, Envoy's ready");
      note("and admin ports, upstream). Left out, as they need root: a network namespace per task (an awsvpc task's own");
      note("network and address, the ECS agent at 169.254.170.2), Envoy running as the dataplane's user (5995), and");
      note('transparent proxy, which needs that namespace for its iptables rules (test/integration/mesh-traffic.test.ts');
      note('runs it as root). Run the demo as root for the namespaces.');
    }
    network = isolated ? await track(TaskNetwork.create()) : TaskNetwork.loopback();
    carryOn();
    stack = await track(MeshStack.start(network));
    carryOn();
    const { consul } = stack;
    event(`Consul http://${stack.address}:${consul.ports.http}, moto ${stack.moto.url}${isolated ? ` (bridge ${network.bridge}, ${network.subnet})` : ''}`);
    // HTTP between the two: the server's sidecar then tells its app who called (x-forwarded-client-cert).
    for (const name of ['client', 'server']) await consul.api('PUT', '/v1/config', { Kind: 'service-defaults', Name: name, Protocol: 'http' });
    await stack.setIntentions('server', { client: 'allow' });
    event("the aws-iam auth method and its binding rule (the controller's once-per-cluster work); intention server ← client: allow");
    note("service-defaults: protocol http for both, so the server's sidecar passes on who called (x-forwarded-client-cert)");

    const upstreamPort = isolated ? 1234 : await freePort();
    const callUrl = `http://127.0.0.1:${upstreamPort}/hello`;
    const shutdownDelay = 2;
    step(
      isolated
        ? 'two simulated ECS tasks, client and server, each in a network namespace of its own: consul-ecs control-plane, Envoy, the app'
        : 'two simulated ECS tasks, client and server, on loopback: consul-ecs control-plane, Envoy, the app',
    );
    // Tasks whose progress is not printed (the server's stop, summed up instead).
    const quiet = new Set<string>();
    const onProgress = (m: string) => {
      if (!failing && ![...quiet].some((service) => m.startsWith(`[${service}]`))) event(m);
    };
    const start = async (label: string, opts: Omit<Parameters<typeof MeshTask.start>[0], 'stack' | 'namespace'>) => {
      const namespace: TaskNamespace = await network!.addNamespace(label);
      carryOn();
      const task = await MeshTask.start({ stack: stack!, namespace, onProgress, stepTimeoutMs: 30_000, ...opts });
      tasks.push(task);
      return task;
    };
    const pending = [
      start('server', { service: 'server', dataplane: 'envoy' }),
      start('client', {
        service: 'client',
        dataplane: 'envoy',
        upstreams: [{ destinationName: 'server', localBindPort: upstreamPort }],
        appCallUrl: callUrl,
        appCallIntervalMs: 250,
        shutdownDelay: `${shutdownDelay}s`,
      }),
    ];
    pending.forEach(track);
    const started = await Promise.allSettled(pending);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const server = tasks.find((t) => t.service === 'server')!;
    const client = tasks.find((t) => t.service === 'client')!;
    for (const t of [server, client]) {
      for (const c of t.containers.values()) for (const pid of [c.proc.pid!, ...descendants(c.proc.pid!)]) seenPids.add(pid);
      note(
        `${t.service}: task ${t.taskId}, ${isolated ? `namespace ${t.namespace.name}, address ${t.address}` : `app port ${t.appPort}, public listener ${t.ports.publicListener}, Envoy ready ${t.ports.ready} and admin ${t.ports.admin}`}`,
      );
    }

    step(`the client app calls ${callUrl} every 250 ms: its upstream → the client's Envoy → mTLS → the server's Envoy → the server app`);
    const fromServer = (e: AppEvent) => e.ok === true && answer(e).task === server.taskId;
    const first = await client.waitForCall('a call answered by the server app', client.containers.get(CONTAINERS.app)!.startedAt, fromServer);
    const reply = answer(first);
    event(`first request through the mesh: HTTP ${first.status} from the server app`, first.at);
    note(`its answer: ${JSON.stringify({ service: reply.service, task: reply.task, path: reply.path })}`);
    const xfcc = String(reply.xfcc ?? '');
    const caller = /URI=([^;,]+)/.exec(xfcc)?.[1];
    const by = /By=([^;,]+)/.exec(xfcc)?.[1];
    if (!caller?.endsWith('/svc/client'))
      throw new Error(`the server's sidecar did not name the client's certificate: x-forwarded-client-cert ${JSON.stringify(xfcc)}`);
    note(`it came over mTLS: the server's sidecar (${by ?? '?'})`);
    note(`saw the client's certificate, SPIFFE ID ${caller}`);

    step('intention server ← client: deny');
    await stack.setIntentions('server', { client: 'deny' });
    const denyAt = Date.now();
    event('wrote the service-intentions config entry for server', denyAt);
    const refused = await client.waitForCall('a call refused once the intention denies client → server', denyAt, (e) => e.ok === false);
    if (refused.status !== 403) throw new Error(`expected the server's sidecar to refuse with HTTP 403: ${JSON.stringify(refused)}`);
    event(
      `refused: HTTP ${refused.status} "${(refused.body ?? '').trim()}" from the server's sidecar (${refused.at - denyAt} ms after the change)`,
      refused.at,
    );
    const deniedSince = Date.now();
    await client.waitForCall('three more calls', deniedSince, () => client.callsSince(deniedSince).length >= 3);
    const through = client.callsSince(deniedSince).filter((e) => e.ok);
    if (through.length) throw new Error(`a call got through while the intention denied it: ${JSON.stringify(through[0])}`);
    event(`the next ${client.callsSince(deniedSince).length} calls refused too`);

    step('intention server ← client: allow');
    await stack.setIntentions('server', { client: 'allow' });
    const allowAt = Date.now();
    event('wrote the service-intentions config entry for server', allowAt);
    const again = await client.waitForCall('a call answered again once the intention allows it', allowAt, fromServer);
    event(`through again: HTTP ${again.status} from the server app (${again.at - allowAt} ms after the change)`, again.at);

    if (serve) {
      stopping = true;
      const tokenFile = join(stack.dir, 'management-token');
      await writeFile(tokenFile, `${consul.managementToken}\n`, { mode: 0o600 });
      step('both tasks are up; Ctrl-C stops them as ECS would, then cleans up');
      note(`Consul http://${stack.address}:${consul.ports.http} (its management token is in ${tokenFile})`);
      note(
        isolated
          ? `through the mesh from the client task: ip netns exec ${client.namespace.name} curl -s ${callUrl}`
          : `through the mesh, as the client app calls: curl -s ${callUrl}`,
      );
      await stopRequest;
    }
    stopping = true;

    step(`ECS stops the client task: SIGTERM to every container at once (app-entrypoint holds the app's for its ${shutdownDelay} s shutdown delay)`);
    const timeline = await client.stop(15_000);
    checkClientStop(client, timeline, fromServer);
    const draining = client.callsSince(timeline.sigtermAt).filter((e) => e.at < timeline.exits.app!.at);
    note(`the app's calls between the SIGTERM and its exit: ${draining.length}, all answered by the server through the client's Envoy`);

    step('ECS stops the server task the same way');
    quiet.add('server');
    const serverStop = await server.stop(15_000);
    if (serverStop.killed.length) throw new Error(`the server task needed SIGKILL for ${serverStop.killed.join(', ')}\n${server.describe()}`);
    if (!serverStop.deregistered || !serverStop.loggedOut) throw new Error(`the server task was not deregistered and logged out\n${server.describe()}`);
    const exits = Object.entries(serverStop.exits).map(([name, e]) => `${name} ${e.code ?? e.signal}`);
    if (Object.values(serverStop.exits).some((e) => e.code !== 0))
      throw new Error(`the server task's containers did not all exit 0: ${exits.join(', ')}\n${server.describe()}`);
    event(`[server] stopped: deregistered, logged out; exits: ${exits.join(', ')}`);

    step('what is left');
    const services = Object.keys(await consul.api<Record<string, string[]>>('GET', '/v1/catalog/services')).filter((s) => s !== 'consul');
    const tokens = await consul.loginTokens();
    event(`Consul: services other than consul: ${services.length ? services.join(', ') : 'none'}; login tokens: ${tokens.length}`);
    if (services.length || tokens.length)
      throw new Error(`left in Consul: ${[...services, ...tokens.map((t) => `token ${t.Description ?? t.AccessorID}`)].join(', ')}`);
    const left = await cleanUp();
    if (left.length) {
      failing = true;
      process.stderr.write(`\ndemo FAILED: it left behind:\n  ${left.join('\n  ')}\n`);
      process.exit(1);
    }
    event(
      isolated
        ? `stopped Consul and moto; removed the namespaces, the bridge ${network.bridge}, the task roles and the temporary files; no process left`
        : 'stopped Consul and moto; removed the task roles and the temporary files; no process left',
    );
    step(
      `done in ${((Date.now() - t0) / 1000).toFixed(1)} s: both tasks logged in with their task roles, registered, got Envoy ready, talked over mTLS as intentions allowed, and stopped cleanly`,
    );
    process.exit(0);
  }
}

/** The client task stopped in the order of a mesh task's graceful stop; throws what did not. */
function checkClientStop(client: MeshTask, t: ShutdownTimeline, fromServer: (e: AppEvent) => boolean): void {
  const problem = (what: string) => new Error(`the client task's stop: ${what}\n${client.describe()}`);
  if (t.killed.length) throw problem(`${t.killed.join(', ')} needed SIGKILL`);
  for (const name of [CONTAINERS.app, CONTAINERS.dataplane, CONTAINERS.controlPlane]) {
    if (t.exits[name]?.code !== 0) throw problem(`${name} exited ${t.exits[name]?.code ?? t.exits[name]?.signal}`);
  }
  const appExit = t.exits.app!.at;
  const dataplaneExit = t.exits[CONTAINERS.dataplane]!.at;
  if (!t.unhealthy || t.unhealthy.seenAt > appExit) throw problem('its checks were not critical in Consul before the app exited');
  if (dataplaneExit < appExit) throw problem('Envoy exited before the app');
  if (!t.deregistered || !t.loggedOut) throw problem('not deregistered and logged out');
  const draining = client.callsSince(t.sigtermAt).filter((e) => e.at < appExit);
  if (!draining.length) throw problem('the app made no call while draining');
  const lost = draining.filter((e) => !fromServer(e));
  if (lost.length) throw problem(`a call while draining did not reach the server: ${JSON.stringify(lost[0])}`);
}

/** The server app's answer: a JSON body naming the server task. */
function answer(e: { body?: string }): Record<string, unknown> {
  try {
    return JSON.parse(e.body ?? '') as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** True while the process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}
