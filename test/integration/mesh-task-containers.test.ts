// A whole mesh task as containers: the task definition terraform-aws-consul-ecs's
// mesh-task module renders (test/fixtures/terraform-mesh-task), run from the
// built images with podman as the ECS agent would run it (scripts/lib/ecs-task-runner.ts):
// a task network namespace, the shared /consul volume, the containers in
// dependsOn order, their health checks, the ECS agent simulator in step with
// them. Against a real Consul (ACLs on, default deny), moto, and a second task,
// `backend` (the non-container MeshTask harness, in a namespace of its own): the
// task joins, turns healthy, a request crosses the mesh both ways, deny intentions
// stop them and allowing again lets them through; then the task is stopped as ECS
// does and nothing of it is left: no registration, no token, no container, volume
// or namespace. Five runs: mesh-init + health-sync (v0.10) and control-plane
// (v0.7's shape), each with consul-dataplane 2.0.1's image and with ours; and
// v0.10 on EC2 with transparent proxy (mesh-init as root with NET_ADMIN).
// Each also runs the executable's copy from the task's volume in an image with
// no files at all.
// Needs root, podman and runc, the images (`npm run images`), the peers and the
// built executable: a missing one fails the file.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import {
  containerRuntimePrerequisites,
  EcsTask,
  emptyImage,
  leftoverContainersAndVolumes,
  loadTemplate,
  meshAppImage,
  type TaskDefinition,
} from '../../scripts/lib/ecs-task-runner.ts';
import { peerBinary } from '../../scripts/lib/local-stack.ts';
import { CONSUL_ECS_EXECUTABLE, MeshStack, MeshTask, until } from '../../scripts/lib/mesh-task-runner.ts';
import { imageExists } from '../../scripts/lib/podman.ts';
import { TaskNetwork, taskNetworkPrerequisites } from '../../scripts/lib/task-network.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/terraform-mesh-task/', import.meta.url));
const IMAGES = {
  consulEcs: 'localhost/consul-ecs-ts/control-plane:dev',
  ourDataplane: 'localhost/consul-ecs-ts/dataplane:dev',
  consulDataplane: 'localhost/consul-ecs-ts/consul-dataplane:2.0.1',
} as const;
/** The upstream's local port in both tasks (the fixture's `proxy.upstreams`). */
const UPSTREAM_PORT = 1234;

interface Shape {
  name: string;
  file: string;
  /** The containers of the consul-ecs image. */
  consulEcs: string[];
  transparentProxy: boolean;
}
const TWO_CONTAINERS: Shape = {
  name: 'mesh-init + health-sync (v0.10, Fargate)',
  file: 'mesh-task.json',
  consulEcs: ['consul-ecs-mesh-init', 'consul-ecs-health-sync'],
  transparentProxy: false,
};
const CONTROL_PLANE: Shape = {
  name: 'control-plane (v0.7, Fargate)',
  file: 'mesh-task-control-plane.json',
  consulEcs: ['consul-ecs-control-plane'],
  transparentProxy: false,
};
const EC2_TRANSPARENT_PROXY: Shape = {
  name: "mesh-init as root + health-sync, EC2 with transparent proxy (v0.10's default)",
  file: 'mesh-task-ec2.json',
  consulEcs: ['consul-ecs-mesh-init', 'consul-ecs-health-sync'],
  transparentProxy: true,
};
interface Dataplane {
  name: string;
  image: string;
  /** consul-dataplane logs in with the bearer token itself: a login token of its own. */
  logsIn: boolean;
}
const CONSUL_DATAPLANE: Dataplane = { name: "consul-dataplane 2.0.1's image", image: IMAGES.consulDataplane, logsIn: true };
const OUR_DATAPLANE: Dataplane = { name: 'our dataplane image (Envoy, no consul-dataplane)', image: IMAGES.ourDataplane, logsIn: false };
const RUNS: Array<[Shape, Dataplane]> = [
  [TWO_CONTAINERS, CONSUL_DATAPLANE],
  [TWO_CONTAINERS, OUR_DATAPLANE],
  [CONTROL_PLANE, CONSUL_DATAPLANE],
  [CONTROL_PLANE, OUR_DATAPLANE],
  [EC2_TRANSPARENT_PROXY, CONSUL_DATAPLANE],
];

/** What a request from inside the app container got: an HTTP status and body, or an error. */
interface Fetched {
  status?: number;
  body?: string;
  error?: string;
}
// Run by the app container's Node.js: one GET, its outcome as one JSON line.
const FETCH_SCRIPT = `fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then(
  async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })),
  (e) => console.log(JSON.stringify({ error: String(e?.cause?.code ?? e?.message ?? e) })),
);`;

describe('a terraform-aws-consul-ecs mesh task run as containers', () => {
  let network: TaskNetwork | undefined;
  let stack: MeshStack | undefined;
  let backend: MeshTask | undefined;
  let appImage: string;

  before(async () => {
    assert.deepEqual([...(await taskNetworkPrerequisites()), ...containerRuntimePrerequisites()], [], 'what this file needs is missing');
    const missingFiles = [CONSUL_ECS_EXECUTABLE, peerBinary('consul'), peerBinary('envoy'), peerBinary('moto_server')].filter((f) => !existsSync(f));
    assert.deepEqual(missingFiles, [], 'run `bash scripts/peers.sh install && npm run build` first');
    const missingImages: string[] = [];
    for (const image of Object.values(IMAGES)) if (!(await imageExists(image))) missingImages.push(image);
    assert.deepEqual(missingImages, [], 'run `npm run images` first');
    appImage = await meshAppImage();
    network = await TaskNetwork.create();
    stack = await MeshStack.start(network);
    // HTTP, so that an intention's deny is a 403 and the callee's sidecar names its caller (XFCC).
    for (const name of ['web', 'backend']) await stack.consul.api('PUT', '/v1/config', { Kind: 'service-defaults', Name: name, Protocol: 'http' });
    await stack.setIntentions('backend', { web: 'allow' });
    await stack.setIntentions('web', { backend: 'allow' });
    backend = await MeshTask.start({
      stack,
      namespace: await network.addNamespace('backend'),
      service: 'backend',
      dataplane: 'envoy',
      upstreams: [{ destinationName: 'web', localBindPort: UPSTREAM_PORT }],
    });
  });

  after(async () => {
    await backend?.dispose();
    await stack?.dispose();
    const names = network?.namespaces.map((ns) => ns.name) ?? [];
    await network?.dispose();
    const left = String((await execa('ip', ['netns', 'list'], { reject: false })).stdout);
    assert.deepEqual(
      names.filter((n) => left.includes(n)),
      [],
      'no task network namespace is left',
    );
    assert.deepEqual(await leftoverContainersAndVolumes(), [], 'no container or volume of a task is left');
  });

  /** The fixture's task definition for `web`, filled in for this stack, the images and a task role. */
  function webTaskDefinition(shape: Shape, dataplane: Dataplane, taskRoleArn: string): TaskDefinition {
    const s = stack!;
    const config = loadTemplate(`${FIXTURES}consul-ecs-config.json`, {
      service_name: 'web',
      upstream_service: 'backend',
      consul_server_hosts: s.address,
      consul_http_port: s.consul.ports.http,
      consul_grpc_port: s.consul.ports.grpc,
      sts_endpoint: s.moto.url,
      server_id_header_value: s.serverIdHeaderValue,
      enable_transparent_proxy: shape.transparentProxy,
    });
    return loadTemplate<TaskDefinition>(`${FIXTURES}${shape.file}`, {
      family: 'web',
      service_name: 'web',
      task_role_arn: taskRoleArn,
      execution_role_arn: 'arn:aws:iam::123456789012:role/web-execution',
      app_image: appImage,
      consul_ecs_image: IMAGES.consulEcs,
      consul_dataplane_image: dataplane.image,
      consul_ecs_config_json: JSON.stringify(config),
    });
  }

  /** A GET from inside web's app container. */
  async function fetchFromWeb(task: EcsTask, url: string): Promise<Fetched> {
    const r = await task.exec('app', ['node', '-e', FETCH_SCRIPT, url]);
    if (r.exitCode !== 0) return { error: `node exited ${r.exitCode}: ${r.stderr}` };
    return JSON.parse(r.stdout) as Fetched;
  }

  /** A GET from backend's app, through its upstream to web. */
  async function fetchFromBackend(url: string): Promise<Fetched> {
    const e = await backend!.request({ fetch: url });
    return { status: e.status, body: e.body, error: e.error };
  }

  const answeredBy = (service: string, caller: string) => (f: Fetched) => {
    if (f.status !== 200) return undefined;
    const body = JSON.parse(f.body ?? '{}') as { service?: string; xfcc?: string | null };
    // The callee's sidecar terminated mTLS and names the caller's certificate (its SPIFFE ID).
    return body.service === service && new RegExp(`URI=spiffe://[^;,]+/svc/${caller}(;|,|$)`).test(body.xfcc ?? '') ? true : undefined;
  };
  /** Polls `request` until `accept` takes its answer; fails with the last answer. */
  async function eventuallyFetched(what: string, request: () => Promise<Fetched>, accept: (f: Fetched) => true | undefined): Promise<void> {
    let last: Fetched | undefined;
    await until(
      what,
      20_000,
      async () => {
        last = await request();
        return accept(last);
      },
      () => `the last answer: ${JSON.stringify(last)}`,
    );
  }

  for (const [shape, dataplane] of RUNS) {
    it(`${shape.name}, ${dataplane.name}: joins, turns healthy, talks both ways, obeys intentions, stops as ECS stops it and leaves nothing`, async () => {
      const s = stack!;
      const roleName = `web-task-${Math.random().toString(36).slice(2, 8)}`;
      const taskRoleArn = await s.role(roleName, 'web');
      const namespace = await network!.addNamespace('web');
      let task: EcsTask | undefined;
      try {
        task = await EcsTask.start({
          stack: s,
          namespace,
          taskDefinition: webTaskDefinition(shape, dataplane, taskRoleArn),
          // CONSUL_ECS_TEST_PROGRESS=1 prints each step of the task's start and stop.
          onProgress: process.env.CONSUL_ECS_TEST_PROGRESS ? (m) => process.stderr.write(`${m}\n`) : undefined,
        });
        const t = task;
        const serviceId = `web-${t.taskId}`;
        const proxyId = `${serviceId}-sidecar-proxy`;

        // The shared volume was filled from the first image to mount it: consul-ecs's, whose /consul is its user's.
        assert.equal((await t.volumeFileStat('consul_data')).uid, 5996, "/consul is the control-plane image's user's, so mesh-init could write it");
        if (shape.consulEcs.length === 2) {
          assert.equal(t.container('consul-ecs-mesh-init').exitCode, 0, 'mesh-init exited 0 (SUCCESS)');
          assert.equal(t.sim.task().Containers.find((c) => c.Name === 'consul-ecs-mesh-init')?.KnownStatus, 'STOPPED');
        }
        for (const name of ['consul-dataplane', 'app']) assert.equal(t.sim.task().Containers.find((c) => c.Name === name)?.Health?.status, 'HEALTHY', name);

        // Joined: the service and its sidecar on the cluster's node, both passing once health-sync has synced the app's health.
        const registered = (await s.consul.nodeServices(t.node)).filter((svc) => svc.Meta?.['task-id'] === t.taskId).map((svc) => svc.ID);
        assert.deepEqual(registered.sort(), [serviceId, proxyId].sort());
        await until('web and its sidecar passing in Consul', 15_000, async () => {
          const passing = new Set<string>();
          for (const name of ['web', 'web-sidecar-proxy']) {
            const entries = await s.consul.api<Array<{ Service: { ID: string } }>>('GET', `/v1/health/service/${name}?passing=true`);
            for (const e of entries) passing.add(e.Service.ID);
          }
          return passing.has(serviceId) && passing.has(proxyId) ? true : undefined;
        });

        // health-sync took over mesh-init's token (no login of its own); consul-dataplane logs in with the bearer token.
        assert.equal((await s.taskTokens(t.taskId)).length, dataplane.logsIn ? 2 : 1, "the task's login tokens");
        if (shape.consulEcs.includes('consul-ecs-health-sync')) {
          assert.doesNotMatch(await t.logs('consul-ecs-health-sync'), /logging in with the task role instead/);
          // mesh-init as root gives the token to health-sync's user; as 5996 it is that user's already.
          assert.deepEqual(await t.volumeFileStat('consul_data', 'service-token'), { uid: 5996, gid: 5996, mode: '600' });
        }
        if (shape.transparentProxy) {
          const nat = await namespace.natTable();
          for (const chain of ['CONSUL_PROXY_INBOUND', 'CONSUL_PROXY_OUTPUT', 'CONSUL_PROXY_REDIRECT'])
            assert.match(nat, new RegExp(`^:${chain} `, 'm'), chain);
        }
        // The executable's copy runs with nothing but the volume: an image with no files at all, no shell, no PATH
        // (app-entrypoint starting the copy again, which dials Consul).
        const bare = await t.runBeside(
          await emptyImage(),
          ['/consul/consul-ecs', 'app-entrypoint', '-shutdown-delay', '0s', '/consul/consul-ecs', 'net-dial', `${s.address}:${s.consul.ports.http}`],
          { consul_data: '/consul' },
        );
        assert.equal(bare.exitCode, 0, `in an empty image: ${bare.stderr}`);

        // Both ways across the mesh.
        const toBackend = () => fetchFromWeb(t, `http://127.0.0.1:${UPSTREAM_PORT}/from-web`);
        const toWeb = () => fetchFromBackend(`http://127.0.0.1:${UPSTREAM_PORT}/from-backend`);
        await eventuallyFetched('web → backend answered by backend', toBackend, answeredBy('backend', 'web'));
        await eventuallyFetched('backend → web answered by web', toWeb, answeredBy('web', 'backend'));

        // Deny intentions stop both; allowing again lets both through.
        await s.setIntentions('backend', { web: 'deny' });
        await s.setIntentions('web', { backend: 'deny' });
        const refused = (f: Fetched) => (f.status === 403 ? true : undefined);
        await eventuallyFetched('web → backend refused (403) once denied', toBackend, refused);
        await eventuallyFetched('backend → web refused (403) once denied', toWeb, refused);
        await s.setIntentions('backend', { web: 'allow' });
        await s.setIntentions('web', { backend: 'allow' });
        await eventuallyFetched('web → backend answered again once allowed', toBackend, answeredBy('backend', 'web'));
        await eventuallyFetched('backend → web answered again once allowed', toWeb, answeredBy('web', 'backend'));

        const secrets = [...s.secrets(), ...t.secrets(), (await t.readVolumeFile('consul_data', 'service-token')).trim()];
        const bearer = (
          JSON.parse(await t.readVolumeFile('consul_data', 'consul-dataplane.json')) as { consul?: { credentials?: { login?: { bearerToken?: string } } } }
        ).consul?.credentials?.login?.bearerToken;
        if (bearer) secrets.push(bearer);

        // Stopped as ECS stops it: SIGTERM to every container, SIGKILL after the stop timeout (none needed).
        const report = await t.stop();
        if (process.env.CONSUL_ECS_TEST_PROGRESS) process.stderr.write(`${JSON.stringify(report)}\n`);
        assert.deepEqual(report.killed, [], `every container stopped on SIGTERM within its stop timeout:\n${await t.describe()}`);
        for (const name of [...shape.consulEcs.filter((n) => n !== 'consul-ecs-mesh-init'), 'app']) {
          assert.equal(report.exits[name]?.code, 0, `${name} exited 0 after SIGTERM:\n${await t.describe()}`);
        }
        assert.deepEqual(
          Object.keys(report.exits).sort(),
          [...shape.consulEcs.filter((n) => n !== 'consul-ecs-mesh-init'), 'app', 'consul-dataplane'].sort(),
          'the containers running at the stop',
        );
        assert.ok(
          report.exits['consul-dataplane']!.afterMs >= report.exits.app!.afterMs,
          `the dataplane outlived the app (envoy-entrypoint held SIGTERM): ${JSON.stringify(report.exits)}`,
        );
        assert.deepEqual(
          (await s.consul.nodeServices(t.node)).filter((svc) => svc.Meta?.['task-id'] === t.taskId).map((svc) => svc.ID),
          [],
          'nothing of the task is registered',
        );
        // consul-dataplane's own login token goes at its logout, which may land just after its exit is seen.
        await until('no login token of the task left', 5000, async () => ((await s.taskTokens(t.taskId)).length === 0 ? true : undefined));
        const labelled = (await leftoverContainersAndVolumes()).filter((l) => l.includes(t.label.slice(-12)));
        assert.deepEqual(labelled, [], 'no container or volume of the task is left');

        const printed = [...t.containers.values()].map((c) => c.logs).join('\n');
        for (const secret of secrets) {
          if (secret.length >= 8) assert.ok(!printed.includes(secret), `a secret (${secret.slice(0, 4)}…) appears in a container's output`);
        }
      } finally {
        await task?.dispose();
        await s.deleteRole(roleName);
      }
    });
  }
});
