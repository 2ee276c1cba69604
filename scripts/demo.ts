// The quick start's main job, against an embedded local default: a simulated
// ECS task (the project's ECS agent simulator) whose IAM role lives in moto logs
// in to a local Consul with the aws-iam auth method, using the consul-ecs CLI.
//   node --import tsx scripts/demo.ts           run it once and clean up
//   node --import tsx scripts/demo.ts --serve   keep the stack up and print its env
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { writeFileAtomic, type AclToken } from '@consul-ecs-ts/core';
import { assumeRoleCredentials, EcsAgentSimulator } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG } from './lib/aws-admin.ts';
import { ConsulServer, configureIamAuthMethod, MotoServer } from './lib/local-stack.ts';

const CLI = fileURLToPath(new URL('../packages/control-plane/bin/consul-ecs.cjs', import.meta.url));
const SERVER_ID = 'consul.demo.local';
const serve = process.argv.includes('--serve');
const step = (s: string) => process.stdout.write(`\n==> ${s}\n`);

step('starting Consul (ACLs on, default deny) and moto (AWS STS/IAM, SigV4 checked) on loopback');
const [consul, moto] = await Promise.all([ConsulServer.start(), MotoServer.start()]);
const dir = await mkdtemp(join(tmpdir(), 'consul-ecs-demo-'));
let sim: EcsAgentSimulator | undefined;
const cleanup = async () => {
  await sim?.stop();
  await Promise.all([consul.dispose(), moto.dispose()]);
  await rm(dir, { recursive: true, force: true });
};
try {
  process.stdout.write(`    Consul ${consul.httpAddr}, moto ${moto.url}\n`);
  step('configuring the iam-ecs-service-token auth method and its binding rule (as the ACL controller does)');
  await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID });
  const role = await moto.admin.createRole({ name: 'demo-web-task', path: '/consul-ecs/', tags: { [SERVICE_NAME_TAG]: 'web' } });
  process.stdout.write(`    task role ${role.arn} tagged ${SERVICE_NAME_TAG}=web\n`);

  step('starting the simulated ECS task (task metadata v4 + container credentials endpoint)');
  sim = await new EcsAgentSimulator({
    family: 'web',
    cluster: 'demo',
    credentials: assumeRoleCredentials({ stsEndpoint: moto.url, credentials: moto.admin.credentials, roleArn: role.arn }),
    containers: [{ name: 'web', hasHealthCheck: true }, { name: 'consul-dataplane', hasHealthCheck: true }],
  }).start();
  process.stdout.write(`    task ${sim.taskArn}\n`);

  const sink = join(dir, 'service-token');
  const loginArgs = [
    'login',
    '-http-addr', consul.httpAddr,
    '-aws-sts-endpoint', moto.url,
    '-aws-iam-endpoint', moto.url,
    '-aws-server-id-header-value', SERVER_ID,
    '-token-sink-file', sink,
  ];
  if (serve) {
    step('the stack is up; in another shell:');
    const env = { ...sim.containerEnv() };
    for (const [k, v] of Object.entries(env)) process.stdout.write(`export ${k}='${v}'\n`);
    const tokenFile = join(dir, 'management-token');
    await writeFileAtomic(tokenFile, consul.managementToken, { mode: 0o600 });
    process.stdout.write(`npx consul-ecs ${loginArgs.join(' ')}\n\nConsul's management token is in ${tokenFile}.\nPress Ctrl-C to stop.\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } else {
    step(`consul-ecs ${loginArgs.join(' ')}`);
    const login = await execa(process.execPath, [CLI, ...loginArgs], { env: sim.containerEnv(), stdio: ['ignore', 'inherit', 'inherit'], reject: false });
    if (login.exitCode !== 0) throw new Error(`login exited ${login.exitCode}`);
    const token = (await readFile(sink, 'utf8')).trim();
    const self = await consul.client().call<AclToken>({ path: '/v1/acl/token/self', token });
    step('the token Consul issued');
    process.stdout.write(
      `    accessor ${self.AccessorID}\n    auth method ${self.AuthMethod}\n    service identities ${self.ServiceIdentities?.map((s) => s.ServiceName).join(', ')}\n    ${self.Description}\n`,
    );
    step(`consul-ecs logout -token-file ${sink}`);
    const logout = await execa(process.execPath, [CLI, 'logout', '-http-addr', consul.httpAddr, '-token-file', sink], { stdio: ['ignore', 'inherit', 'inherit'], reject: false });
    if (logout.exitCode !== 0) throw new Error(`logout exited ${logout.exitCode}`);
    step('done: the task logged in with its IAM role, got a service token for "web", and logged out');
  }
} finally {
  await cleanup();
}
