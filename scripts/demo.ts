// The quick start's main job, against an embedded local default: a simulated
// ECS task (the project's ECS agent simulator) whose IAM role lives in moto runs
// `consul-ecs control-plane` against a local Consul (ACLs on, aws-iam auth
// method), then a real Envoy takes its config from Consul with the bootstrap
// control-plane wrote; ECS health flows into Consul; SIGTERM shuts it all down.
//   node --import tsx scripts/demo.ts           run it once and clean up
//   node --import tsx scripts/demo.ts --serve   keep the task up until Ctrl-C
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import type { HealthCheck } from '@consul-ecs-ts/core';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './lib/aws-admin.ts';
import { startEnvoyFromBootstrap, type RunningEnvoy } from './lib/envoy.ts';
import { configureIamAuthMethod, freePorts, startConsulAndMoto } from './lib/local-stack.ts';

const SEA = fileURLToPath(new URL('../packages/control-plane/dist/sea/consul-ecs', import.meta.url));
const SERVER_ID = 'consul.demo.local';
const serve = process.argv.includes('--serve');
const step = (s: string) => process.stdout.write(`\n==> ${s}\n`);
const say = (s: string) => process.stdout.write(`    ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}
if (!existsSync(SEA)) throw new Error(`${SEA} is missing: run npm run build`);

step('starting Consul (ACLs on, default deny) and moto (AWS STS/IAM, SigV4 checked) on loopback');
const [consul, moto] = await startConsulAndMoto();
const dir = await mkdtemp(join(tmpdir(), 'consul-ecs-demo-'));
let sim: EcsAgentSimulator | undefined;
let cp: ResultPromise | undefined;
let envoy: RunningEnvoy | undefined;
try {
  say(`Consul ${consul.httpAddr} (gRPC ${consul.ports.grpc}), moto ${moto.url}`);
  step('what the consul-ecs controller does once per cluster: the aws-iam auth method, its binding rule');
  await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID });
  const role = await moto.admin.createRole({ name: 'demo-web-task', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } });
  say(`task role ${role.arn}, tagged ${SERVICE_NAME_TAG}=web`);

  step('starting the simulated ECS task: task metadata v4 and the container credentials endpoint');
  sim = await new EcsAgentSimulator({
    family: 'web',
    cluster: 'demo',
    credentials: assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: role.arn }),
    containers: [
      { name: 'web', hasHealthCheck: true, health: 'UNHEALTHY' },
      { name: 'consul-dataplane', hasHealthCheck: true, health: 'UNHEALTHY' },
      { name: 'consul-ecs-control-plane' },
    ],
  }).start();
  await consul.api('PUT', '/v1/catalog/register', { Node: sim.clusterArn, Address: '127.0.0.1', NodeMeta: { 'synthetic-node': 'true' } });
  say(`task ${sim.taskArn}`);

  const [readyPort, publicPort] = await freePorts(2);
  const config = {
    bootstrapDir: dir,
    consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: consul.ports.http }, grpc: { port: consul.ports.grpc } },
    consulLogin: { enabled: true, stsEndpoint: moto.url, serverIdHeaderValue: SERVER_ID },
    service: { name: 'web', port: 8080 },
    proxy: { publicListenerPort: publicPort, healthCheckPort: readyPort, upstreams: [{ destinationName: 'backend', localBindPort: 9191 }] },
    healthSyncContainers: ['web'],
    transparentProxy: { enabled: false },
  };
  step('consul-ecs control-plane  (the self-contained executable; CONSUL_ECS_CONFIG_JSON as a mesh task gets it)');
  cp = execa(SEA, ['control-plane'], {
    env: { ...sim.containerEnv(), CONSUL_ECS_CONFIG_JSON: JSON.stringify(config), PATH: process.env.PATH ?? '' },
    extendEnv: false,
    stdout: 'inherit',
    stderr: 'inherit',
    reject: false,
  });
  const bootstrapFile = join(dir, 'envoy-bootstrap.json');
  await until('the task initialised', 30_000, async () => (existsSync(bootstrapFile) && existsSync(join(dir, 'consul-ecs')) ? true : undefined));

  step('starting a real Envoy from the envoy-bootstrap.json control-plane wrote (ADS straight to Consul)');
  envoy = await startEnvoyFromBootstrap(bootstrapFile, { logLevel: 'error' });
  await until('Envoy ready', 20_000, async () => ((await fetch(`http://127.0.0.1:${readyPort}/ready`)).status === 200 ? true : undefined));
  const listeners = (await envoy.listeners()).trim().split('\n');
  say(`Envoy is ready; listeners from Consul: ${listeners.map((l) => l.split('::')[0]).join(', ')}`);

  // What ECS does next: the dataplane's health check (net-dial on the ready port) passes, then the app's.
  const dial = await execa(join(dir, 'consul-ecs'), ['net-dial', `127.0.0.1:${readyPort}`], { env: { PATH: '/nonexistent' }, extendEnv: false, reject: false });
  say(`/consul/consul-ecs net-dial 127.0.0.1:${readyPort} (no Node.js needed) → exit ${dial.exitCode}`);
  sim.setHealth('consul-dataplane', 'HEALTHY');
  sim.setHealth('web', 'HEALTHY');
  const checks = async () => (await consul.api<HealthCheck[]>('GET', `/v1/health/node/${encodeURIComponent(sim!.clusterArn)}`)).filter((c) => c.ServiceID);
  await until('checks passing', 5000, async () => ((await checks()).every((c) => c.Status === 'passing') ? true : undefined));
  step('ECS reports the containers HEALTHY; Consul now has:');
  for (const c of await checks()) say(`${c.CheckID.replace(sim.taskId, '<task>')}: ${c.Status}`);

  if (serve) {
    step(`the task is up. Envoy admin http://127.0.0.1:${envoy.adminPort}, Consul ${consul.httpAddr} (management token in ${join(dir, 'management-token')}). Ctrl-C stops it.`);
    await writeFile(join(dir, 'management-token'), consul.managementToken, { mode: 0o600 });
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  }

  step('ECS stops the task: SIGTERM to control-plane');
  cp.kill('SIGTERM');
  await until('checks critical', 5000, async () => ((await checks()).every((c) => c.Status === 'critical') ? true : undefined));
  say('every check is critical: traffic drains away from this instance');
  await envoy.stop();
  sim.stopContainer('consul-dataplane');
  say('the dataplane container has stopped');
  const result = await cp;
  const left = await consul.nodeServices(sim.clusterArn);
  const tokens = await consul.loginTokens();
  step(`control-plane exited ${result.exitCode}; services left in Consul: ${left.length}; login tokens left: ${tokens.length}`);
  if (result.exitCode !== 0 || left.length || tokens.length) throw new Error('the task did not shut down cleanly');
  step('done: logged in with the task role, registered web and its sidecar, Envoy got its config from Consul, health synced, and it all shut down cleanly');
} finally {
  cp?.kill('SIGKILL');
  envoy?.proc.kill('SIGKILL');
  await sim?.stop();
  await Promise.all([consul.dispose(), moto.dispose()]);
  await rm(dir, { recursive: true, force: true });
}
