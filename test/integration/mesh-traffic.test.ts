// Two simulated awsvpc tasks, `client` and `server`, each in a network namespace
// of its own on a bridge this file creates, each running the control plane (the
// self-contained executable), a dataplane (Envoy or consul-dataplane, under
// envoy-entrypoint) and an app (under app-entrypoint), against one Consul (ACLs
// on, default deny) and moto reachable from both namespaces. Real traffic between
// the apps, over the mesh. Needs root, iproute2, iptables and util-linux (setpriv),
// the peers (scripts/peers.sh install) and the built executable: a missing one
// fails the file. Everything it makes (namespaces, veths, bridge, processes,
// files, roles) is removed at the end, also on failure.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { peerBinary } from '../../scripts/lib/local-stack.ts';
import {
  CONSUL_ECS_EXECUTABLE,
  CONTAINERS,
  ECS_AGENT_ADDRESS,
  MeshStack,
  MeshTask,
  type ConsulObservation,
  type DataplaneKind,
  type MeshTaskOptions,
} from '../../scripts/lib/mesh-task-runner.ts';
import { TaskNetwork, taskNetworkPrerequisites } from '../../scripts/lib/task-network.ts';

const UPSTREAM_PORT = 1234;
const PUBLIC_LISTENER_PORT = 20000;

describe('mesh traffic between two tasks in network namespaces', () => {
  let network: TaskNetwork | undefined;
  let stack: MeshStack;
  let hostNatBefore: string;
  const tasks: MeshTask[] = [];

  before(async () => {
    assert.deepEqual(await taskNetworkPrerequisites(), [], 'what this file needs is missing');
    const missing = [CONSUL_ECS_EXECUTABLE, peerBinary('consul'), peerBinary('envoy'), peerBinary('moto_server'), peerBinary('consul-dataplane')].filter(
      (f) => !existsSync(f),
    );
    assert.deepEqual(missing, [], 'run `bash scripts/peers.sh install && npm run build` first');
    hostNatBefore = await TaskNetwork.hostNatTable();
    network = await TaskNetwork.create();
    stack = await MeshStack.start(network);
    // Every request of these tests is HTTP: the server's sidecar then tells its app who called (XFCC).
    for (const name of ['client', 'server']) await stack.consul.api('PUT', '/v1/config', { Kind: 'service-defaults', Name: name, Protocol: 'http' });
  });

  // A test's tasks go with it, stopped or not, so that a failure leaves no instance behind for the next test's traffic.
  afterEach(async () => {
    for (const t of tasks.splice(0)) await t.dispose().catch(() => {});
  });

  after(async () => {
    for (const t of tasks.splice(0)) await t.dispose().catch(() => {});
    await stack?.dispose();
    await network?.dispose();
    if (hostNatBefore !== undefined) assert.equal(await TaskNetwork.hostNatTable(), hostNatBefore, "the host namespace's nat table is as it was");
  });

  /** Starts a task in a new namespace; it is disposed of at the end of the test whatever happens. */
  async function startTask(label: string, opts: Omit<MeshTaskOptions, 'stack' | 'namespace'>): Promise<MeshTask> {
    const namespace = await network!.addNamespace(label);
    const task = await MeshTask.start({ stack, namespace, ...opts });
    tasks.push(task);
    return task;
  }

  /** The server task, then the client task whose app calls it through its upstream every 200 ms. */
  async function startPair(dataplane: DataplaneKind, client: Partial<MeshTaskOptions> = {}): Promise<{ server: MeshTask; client: MeshTask }> {
    const server = await startTask(`server-${dataplane === 'envoy' ? 'e' : 'd'}`, { service: 'server', dataplane });
    const c = await startTask(`client-${dataplane === 'envoy' ? 'e' : 'd'}`, {
      service: 'client',
      dataplane,
      upstreams: [{ destinationName: 'server', localBindPort: UPSTREAM_PORT }],
      appCallUrl: `http://127.0.0.1:${UPSTREAM_PORT}/hello`,
      appCallIntervalMs: 200,
      ...client,
    });
    return { server, client: c };
  }

  /** The server app's answer: a JSON body naming the server task. */
  const answer = (e: { body?: string }): Record<string, unknown> => {
    try {
      return JSON.parse(e.body ?? '');
    } catch {
      return {};
    }
  };
  const fromServer = (server: MeshTask) => (e: { ok?: boolean; body?: string }) => e.ok === true && answer(e).task === server.taskId;

  /** No secret any of these tasks or the stack handled appears in what their processes printed. */
  function assertNoSecretsPrinted(...ts: MeshTask[]): void {
    const all = ts.map((t) => t.allOutput()).join('\n');
    for (const s of [...stack.secrets(), ...ts.flatMap((t) => t.secrets())]) {
      if (s.length >= 8) assert.ok(!all.includes(s), `a secret (${s.slice(0, 4)}…) appears in a container's output`);
    }
  }

  for (const dataplane of ['envoy', 'consul-dataplane'] as const) {
    it(`${dataplane}: the client app reaches the server app over mTLS; a deny intention stops it, allow lets it through; plaintext to the public listener gets no answer`, async () => {
      await stack.setIntentions('server', { client: 'allow' });
      const { server, client } = await startPair(dataplane);

      const first = await client.waitForCall('a call answered by the server app', client.containers.get(CONTAINERS.app)!.startedAt, fromServer(server));
      const reply = answer(first);
      assert.equal(reply.path, '/hello');
      // The server's sidecar terminated mTLS and names the client's certificate (its SPIFFE ID).
      assert.match(String(reply.xfcc), /URI=spiffe:\/\/[^;,]+\/ns\/default\/dc\/dc1\/svc\/client/);

      await stack.setIntentions('server', { client: 'deny' });
      const denied = await client.waitForCall('a call refused once the intention denies client → server', Date.now(), (e) => e.ok === false);
      assert.equal(denied.status, 403, `the server's sidecar refuses the request: ${JSON.stringify(denied)}`);
      // Refused from then on, not once.
      const since = Date.now();
      await client.waitForCall('three more calls', since, () => client.callsSince(since).length >= 3);
      assert.deepEqual(
        client.callsSince(since).filter((e) => e.ok),
        [],
        'no call gets through while the intention denies it',
      );

      await stack.setIntentions('server', { client: 'allow' });
      await client.waitForCall('a call answered again once the intention allows it', Date.now(), fromServer(server));

      // Straight to the server's public listener from the client's namespace, in plaintext: the
      // listener is there (the connection opens) and answers nothing but the end of the connection.
      const plain = await client.request({
        tcp: { host: server.address, port: PUBLIC_LISTENER_PORT, send: `GET /hello HTTP/1.1\r\nHost: ${server.address}\r\n\r\n` },
      });
      assert.equal(plain.connected, true, `the public listener accepts connections: ${JSON.stringify(plain)}`);
      assert.doesNotMatch(plain.received ?? '', /HTTP\/|server/, `no HTTP answer: ${JSON.stringify(plain)}`);
      assert.equal(plain.timedOut, undefined, `the listener closes the connection: ${JSON.stringify(plain)}`);
      // And the server app itself is on the server's loopback only.
      const direct = await client.request({ fetch: `http://${server.address}:${server.appPort}/hello` });
      assert.equal(direct.ok, false, JSON.stringify(direct));

      for (const t of [client, server]) {
        const timeline = await t.stop();
        assert.deepEqual(timeline.killed, [], `${t.service}: every container stopped on SIGTERM\n${t.describe()}`);
      }
      assertNoSecretsPrinted(client, server);
    });
  }

  it("the client task's shutdown in the order of seed 003: its checks critical first, its app calling out through Envoy until it exits, Envoy after the app, then deregistration and logout", async () => {
    await stack.setIntentions('server', { client: 'allow' });
    const { server, client } = await startPair('consul-dataplane', { shutdownDelay: '3s' });
    const answered = fromServer(server);
    await client.waitForCall('a call answered by the server app', client.containers.get(CONTAINERS.app)!.startedAt, answered);

    // T0: ECS sends SIGTERM to every container of the client task; this stands in for the
    // ECS agent (containers marked STOPPED as their processes exit) and watches Consul.
    const t = await client.stop();
    const ms = (at: number | undefined) => (at === undefined ? '?' : `+${at - t.sigtermAt} ms`);
    const seen = (o: ConsulObservation | undefined) => (o ? `after ${ms(o.notYetAt)}, by ${ms(o.seenAt)}` : 'never seen');
    const story = [
      `checks critical (Consul: neither the client nor its sidecar passing) ${seen(t.unhealthy)}`,
      `app exited ${ms(t.exits.app?.at)}`,
      `dataplane exited ${ms(t.exits[CONTAINERS.dataplane]?.at)}`,
      `deregistered ${seen(t.deregistered)}`,
      `logged out ${seen(t.loggedOut)}`,
      `control plane exited ${ms(t.exits[CONTAINERS.controlPlane]?.at)}`,
    ].join('\n');
    assert.deepEqual(t.killed, [], `nothing needed SIGKILL\n${story}\n${client.describe()}`);
    for (const name of [CONTAINERS.app, CONTAINERS.dataplane, CONTAINERS.controlPlane])
      assert.equal(t.exits[name]?.code, 0, `${name} exits 0\n${client.describe()}`);
    const appExit = t.exits.app!.at;
    const dataplaneExit = t.exits[CONTAINERS.dataplane]!.at;

    // T0 → T1: the checks turn critical at once, while the app and Envoy still run: the
    // rest of the mesh stops sending the client traffic before anything goes away.
    assert.ok(t.unhealthy && t.unhealthy.seenAt < appExit, `the client was unhealthy in Consul before its app exited\n${story}`);
    // The app keeps calling out through its Envoy until it exits: app-entrypoint holds
    // SIGTERM for the shutdown delay (3 s) and Envoy keeps running meanwhile.
    const appSigterm = client.appEvents.find((e) => e.event === 'sigterm');
    assert.ok(appSigterm && appSigterm.at - t.sigtermAt >= 2500, `the app got SIGTERM after the shutdown delay\n${story}`);
    const whileDraining = client.callsSince(t.unhealthy.seenAt).filter((e) => e.at < appExit);
    assert.ok(whileDraining.length >= 5, `the app called out while draining: ${whileDraining.length} calls\n${story}`);
    assert.deepEqual(
      whileDraining.filter((e) => !answered(e)),
      [],
      'every call the app made between T0 and its exit reached the server',
    );
    // T1: envoy-entrypoint stops Envoy only once the app container has stopped.
    assert.ok(dataplaneExit > appExit, `the dataplane exited after the app\n${story}`);
    // Then health-sync deregisters and logs out, and the control plane exits.
    assert.ok((t.deregistered?.notYetAt ?? 0) > dataplaneExit, `deregistered after the dataplane stopped\n${story}`);
    assert.ok((t.loggedOut?.notYetAt ?? 0) > dataplaneExit, `logged out after the dataplane stopped\n${story}`);
    // Deregistration and logout come milliseconds apart: their order is the control plane's log's.
    const cpLog = client.containers.get(CONTAINERS.controlPlane)!.output();
    const steps = ['set all Consul health checks to critical', 'dataplane has stopped', 'deregistered', 'logged out of Consul'].map((m) => cpLog.indexOf(m));
    assert.ok(
      steps.every((at, n) => at >= 0 && (n === 0 || at > steps[n - 1]!)),
      `the control plane's steps in order: ${steps}\n${cpLog}`,
    );
    // Nothing of the client is left in Consul: neither registration nor any login token
    // (the control plane's, and the one consul-dataplane logged in with).
    assert.deepEqual(await client.registeredIds(), []);
    assert.deepEqual(await stack.taskTokens(client.taskId), []);

    // The server stops the same way; then the cluster's node holds no service and Consul no login token.
    const s = await server.stop();
    assert.deepEqual(s.killed, [], server.describe());
    assert.deepEqual(await stack.consul.nodeServices(server.node), [], server.describe());
    assert.deepEqual(await stack.consul.loginTokens(), [], `no login token is left\n${server.describe()}`);
    assertNoSecretsPrinted(client, server);
  });

  it('transparent proxy (EC2 awsvpc): the client app reaches the server by its virtual IP and by its Consul DNS name, with no upstream; the host nat table is untouched', async () => {
    await stack.setIntentions('server', { client: 'allow' });
    // The server as terraform-aws-consul-ecs v0.10 runs it (mesh-init as root, health-sync as 5996,
    // whose traffic the rules leave alone); the client with one control-plane container, as root,
    // whose own traffic to Consul and the ECS agent the rules must leave alone too: else, once
    // Envoy has exited, it can neither see the dataplane stop nor deregister and log out.
    const hostResolvConf = await readFile('/etc/resolv.conf', 'utf8');
    const server = await startTask('server-t', {
      service: 'server',
      dataplane: 'consul-dataplane',
      controlPlane: 'mesh-init+health-sync',
      transparentProxy: { consulDns: true },
    });
    const client = await startTask('client-t', { service: 'client', dataplane: 'consul-dataplane', transparentProxy: { consulDns: true } });
    for (const t of [client, server])
      assert.match(
        await t.namespace.natTable(),
        /-A CONSUL_PROXY_REDIRECT -p tcp -j REDIRECT --to-ports 15001/,
        `${t.service}: the rules are in its namespace`,
      );
    const exempt = (nat: string) =>
      [`${stack.address}/32`, `${ECS_AGENT_ADDRESS}/32`].filter((cidr) => nat.includes(`-A CONSUL_PROXY_OUTPUT -d ${cidr} -j RETURN`));
    assert.deepEqual(
      exempt(await client.namespace.natTable()),
      [`${stack.address}/32`, `${ECS_AGENT_ADDRESS}/32`],
      "the control plane's own traffic is not redirected",
    );
    assert.deepEqual(exempt(await server.namespace.natTable()), [], "mesh-init's rules exempt health-sync's user, not these addresses");

    const vip = await stack.virtualIp('server');
    assert.ok(vip?.startsWith('240.'), `Consul gave the server a virtual IP: ${vip}`);
    const callerOf = (reply: { body?: string }) => String(answer(reply).xfcc);
    const byVip = await client.request({ fetch: `http://${vip}/by-virtual-ip` });
    assert.ok(fromServer(server)(byVip), `by the virtual IP: ${JSON.stringify(byVip)}`);
    assert.match(callerOf(byVip), /URI=spiffe:\/\/[^;,]+\/svc\/client/, 'over mTLS, as the client');

    // consul-dataplane's DNS proxy answers the app's resolver (Consul DNS first in its resolv.conf).
    const resolved = await client.request({ lookup: 'server.virtual.consul' });
    assert.deepEqual(resolved.addresses, [vip], JSON.stringify(resolved));
    const byName = await client.request({ fetch: 'http://server.virtual.consul/by-name' });
    assert.ok(fromServer(server)(byName), `by the Consul DNS name: ${JSON.stringify(byName)}`);
    assert.match(callerOf(byName), /URI=spiffe:\/\/[^;,]+\/svc\/client/);
    // Even the server task's own address leads through the mesh, not to its app in plaintext.
    const byAddress = await client.request({ fetch: `http://${server.address}:${server.appPort}/by-address` });
    assert.ok(fromServer(server)(byAddress), `by the server task's address: ${JSON.stringify(byAddress)}`);
    assert.match(callerOf(byAddress), /URI=spiffe:\/\/[^;,]+\/svc\/client/);

    for (const t of [client, server]) {
      const timeline = await t.stop();
      assert.deepEqual(timeline.killed, [], `${t.service} stops cleanly\n${t.describe()}`);
      assert.ok(timeline.deregistered && timeline.loggedOut, `${t.service}: deregistered and logged out\n${t.describe()}`);
    }
    assert.equal(await TaskNetwork.hostNatTable(), hostNatBefore, "the host namespace's nat table is as it was");
    assert.equal(await readFile('/etc/resolv.conf', 'utf8'), hostResolvConf, "Consul DNS went into the namespaces' resolv.conf, not the host's");
    assertNoSecretsPrinted(client, server);
  });
});
