// A fresh Consul + moto pair for one integration test, with the aws-iam auth
// method configured, task roles and ECS agent simulators made on demand, the CLI
// runner, and a check that no secret reached any output. Everything is torn
// down by dispose().
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { DEFAULT_AUTH_METHOD, type AclToken, type AclTokenListEntry, type AgentService } from '@consul-ecs-ts/core';
import { assumeRoleCredentials, EcsAgentSimulator, type EcsAgentSimulatorOptions, type SimulatedContainer } from '@consul-ecs-ts/core/testkit';
import { SERVICE_NAME_TAG, type Role, type RoleSpec } from '../../scripts/lib/aws-admin.ts';
import { configureIamAuthMethod, startConsulAndMoto, type ConsulServer, type ConsulServerOptions, type MotoServer } from '../../scripts/lib/local-stack.ts';
import { registerClusterNode } from './mesh-task.ts';

export const CLI = fileURLToPath(new URL('../../packages/cli/bin/consul-ecs.cjs', import.meta.url));
export const SERVER_ID = 'consul.test.local';

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export class LoginStack {
  readonly secrets = new Set<string>();
  readonly outputs: string[] = [];
  readonly #roles: string[] = [];
  readonly #sims: EcsAgentSimulator[] = [];

  private constructor(
    readonly consul: ConsulServer,
    readonly moto: MotoServer,
    readonly dir: string,
  ) {}

  static async start(consulOpts: ConsulServerOptions = {}): Promise<LoginStack> {
    const [consul, moto] = await startConsulAndMoto(consulOpts);
    try {
      await configureIamAuthMethod(consul, moto, { serverIdHeaderValue: SERVER_ID });
    } catch (err) {
      await Promise.all([consul.dispose(), moto.dispose()]);
      throw err;
    }
    const stack = new LoginStack(consul, moto, await mkdtemp(join(tmpdir(), 'login-test-')));
    stack.secrets.add(moto.admin.credentials.secretAccessKey);
    stack.secrets.add(consul.managementToken);
    return stack;
  }

  /** A task role in moto at /consul-ecs/ tagged for `service` unless told otherwise. */
  async role(name: string, spec: Partial<RoleSpec> & { service?: string | null } = {}): Promise<Role> {
    const tags = spec.tags ?? (spec.service === null ? {} : { [SERVICE_NAME_TAG]: spec.service ?? 'web' });
    const role = await this.moto.admin.createRole({
      name,
      path: spec.path ?? '/consul-ecs/',
      tags,
      allowGetRole: spec.allowGetRole,
      allowActions: spec.allowActions,
    });
    this.#roles.push(name);
    return role;
  }

  /** An ECS agent simulator whose credentials endpoint hands out the role's credentials. */
  async simulator(roleArn: string, opts: EcsAgentSimulatorOptions = {}): Promise<EcsAgentSimulator> {
    const source = assumeRoleCredentials({ stsEndpoint: this.moto.url, credentials: this.moto.admin.credentials, roleArn });
    const sim = new EcsAgentSimulator({
      family: 'web',
      ...opts,
      credentials: async () => {
        const doc = await source();
        this.secrets.add(doc.SecretAccessKey);
        if (doc.Token) this.secrets.add(doc.Token);
        return doc;
      },
    });
    await sim.start();
    this.secrets.add(sim.authorizationToken);
    this.#sims.push(sim);
    return sim;
  }

  /**
   * Binds a role to logins of the gateway `service` (by its role's service-name
   * tag), as the controller does for mesh gateways: a gateway needs more than a
   * service identity.
   */
  async bindMeshGatewayRole(service: string): Promise<void> {
    const name = `${service}-mesh-gateway`;
    await this.consul.api('PUT', '/v1/acl/policy', {
      Name: name,
      Rules: `mesh = "write"\npeering = "read"\nservice_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\nservice "${service}" { policy = "write" }`,
    });
    await this.consul.api('PUT', '/v1/acl/role', { Name: `${name}-role`, Policies: [{ Name: name }] });
    await this.consul.api('PUT', '/v1/acl/binding-rule', {
      AuthMethod: DEFAULT_AUTH_METHOD,
      BindType: 'role',
      BindName: `${name}-role`,
      Selector: `entity_tags["${SERVICE_NAME_TAG}"] == "${service}"`,
    });
  }

  /**
   * The `web` task the control-plane tests run: its role, an ECS agent simulator
   * whose app and dataplane containers are HEALTHY (plus `extra` containers), and
   * the cluster's node, registered as the controller does.
   */
  async webTask(extra: SimulatedContainer[] = []): Promise<EcsAgentSimulator> {
    const role = await this.role('web-task', { service: 'web' });
    const sim = await this.simulator(role.arn, {
      containers: [{ name: 'app', hasHealthCheck: true, health: 'HEALTHY' }, { name: 'consul-dataplane', hasHealthCheck: true, health: 'HEALTHY' }, ...extra],
    });
    await registerClusterNode(this, sim.clusterArn);
    return sim;
  }

  /**
   * `consul-ecs login` then `logout`, run by `run` (an executable, as a container
   * would run it): the token sunk has the `web` service identity, and is gone
   * after the logout.
   */
  async assertLogsInAndOut(run: (args: string[]) => Promise<{ exitCode?: number | null; stderr: unknown }>): Promise<void> {
    const sink = join(this.dir, 'service-token');
    const login = await run(['login', ...this.loginFlags(sink)]);
    this.outputs.push(String(login.stderr));
    assert.equal(login.exitCode, 0, String(login.stderr));
    const token = await this.readToken(sink);
    const self = await this.consul.client().call<AclToken>({ path: '/v1/acl/token/self', token });
    assert.deepEqual(
      self.ServiceIdentities?.map((s) => s.ServiceName),
      ['web'],
    );
    const logout = await run(['logout', '-http-addr', this.consul.httpAddr, '-token-file', sink]);
    assert.equal(logout.exitCode, 0, String(logout.stderr));
    await assert.rejects(this.consul.client().call({ path: '/v1/acl/token/self', token }), /ACL not found/);
    this.assertNoSecretsPrinted();
  }

  /** Flags every login in these tests needs to reach moto and match the auth method. */
  loginFlags(sinkFile: string): string[] {
    return [
      '-http-addr',
      this.consul.httpAddr,
      '-aws-sts-endpoint',
      this.moto.url,
      '-aws-iam-endpoint',
      this.moto.url,
      '-aws-server-id-header-value',
      SERVER_ID,
      '-token-sink-file',
      sinkFile,
      '-log-level',
      'trace',
    ];
  }

  /** Runs the bundled CLI on the runtime running the tests. */
  async cli(args: string[], env: Record<string, string> = {}, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
    return this.spawn(args, env, opts).result;
  }

  /** Starts the bundled CLI in the background; `result` settles when it exits. */
  spawn(
    args: string[],
    env: Record<string, string> = {},
    opts: { timeoutMs?: number } = {},
  ): { proc: ResultPromise; result: Promise<CliResult>; output: () => string } {
    const started = Date.now();
    const proc = execa(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      extendEnv: false,
      reject: false,
      timeout: opts.timeoutMs ?? 60_000,
      buffer: true,
    });
    let live = '';
    proc.stdout?.on('data', (d: Buffer) => (live += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (live += d.toString()));
    const result = proc.then((r) => {
      const res = { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), durationMs: Date.now() - started };
      this.outputs.push(res.stdout, res.stderr);
      return res;
    });
    return { proc, result, output: () => live };
  }

  /** The tokens made by a login to an auth method, as Consul lists them. */
  loginTokens(): Promise<AclTokenListEntry[]> {
    return this.consul.loginTokens();
  }

  /** The service instances registered on a node (a cluster's synthetic node). */
  nodeServices(node: string): Promise<AgentService[]> {
    return this.consul.nodeServices(node);
  }

  /** Reads a sink file and remembers the token as a secret that must never be printed. */
  async readToken(file: string): Promise<string> {
    const token = (await readFile(file, 'utf8')).trim();
    this.secrets.add(token);
    return token;
  }

  /** Fails when any secret seen in this test appears in any captured output. */
  assertNoSecretsPrinted(extra: string[] = []): void {
    const all = this.outputs.join('\n');
    for (const s of [...this.secrets, ...extra]) {
      if (s && s.length >= 8) assert.ok(!all.includes(s), `a secret (${s.slice(0, 4)}…) appears in the output`);
    }
    assert.doesNotMatch(all, /iam_request_headers|X-Amz-Signature=|Signature=[0-9a-f]{64}/, 'a bearer token or signature appears in the output');
  }

  async dispose(): Promise<void> {
    for (const sim of this.#sims) await sim.stop();
    for (const name of this.#roles) await this.moto.admin.deleteRole(name).catch(() => {});
    await Promise.all([this.consul.dispose(), this.moto.dispose()]);
    await rm(this.dir, { recursive: true, force: true });
  }
}
