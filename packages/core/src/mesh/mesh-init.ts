import { join } from 'node:path';
import { defaultCredentialProvider, type CredentialProvider } from '../aws/credentials.js';
import { CatalogClient } from '../catalog/client.js';
import type { TaskRegistrations } from '../catalog/registration.js';
import type { CatalogRegistration } from '../catalog/types.js';
import { consulDnsEnabled, transparentProxyEnabled } from '../config/resolve.js';
import type { ResolvedConfig } from '../config/types.js';
import { aclLogout, waitForTokenReplication } from '../consul/acl.js';
import { isUnknownToken } from '../consul/acl-admin.js';
import { FailoverConsulClient } from '../consul/failover-client.js';
import type { ConsulHttpClient } from '../consul/http-client.js';
import { DATAPLANE_DNS_BIND, dataplaneConfig, type DataplaneCredentials } from '../dataplane/config.js';
import { TaskMetadataClient, taskInfo, type TaskInfo } from '../ecs/task-metadata.js';
import { generateEnvoyBootstrap, renderEnvoyBootstrap, type EnvoyProxyService } from '../envoy/bootstrap.js';
import { writeFileAtomic } from '../io/atomic-file.js';
import { removeFile } from '../io/fs.js';
import { readTokenFile } from '../io/token-file.js';
import { applyTransparentProxy, type IptablesRunner } from '../tproxy/apply.js';
import { DEFAULT_HEALTH_SYNC_UID, transparentProxyRules } from '../tproxy/iptables.js';
import { ownTrafficCidrs } from '../tproxy/own-traffic.js';
import { assertTransparentProxySupported } from '../tproxy/supported.js';
import { systemClock, type Clock } from '../util/clock.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { retry } from '../util/retry.js';
import { BOOTSTRAP_FILES } from './bootstrap-files.js';
import { consulClientFor, taskServiceIdentity, type TaskServiceIdentity } from './consul-connection.js';
import { upsertPassiveHealthCheck } from './passive-health-check.js';
import { taskRegistrations } from './registrations.js';
import { loginAsTask, taskLoginMeta } from './task-login.js';
import type { Env, IoOptions } from '../util/options.js';

export interface MeshInitOptions extends IoOptions {
  config: ResolvedConfig;
  env: Env;
  /** Consul server addresses (resolved from consulServers.hosts), in order of preference. */
  addresses: string[];
  credentials?: CredentialProvider;
  /**
   * The consul-ecs executable on its way into the bootstrap dir, for the task's
   * other containers: meshInit installs it once the rest is done, or discards it if
   * it fails. None to skip.
   */
  executable?: BootstrapExecutable;
  /** Write envoy-bootstrap.json, for running Envoy without consul-dataplane. Default true. */
  envoyBootstrap?: boolean;
  /**
   * How the iptables rules run (default: the `iptables` executable) and where
   * resolv.conf is (default /etc/resolv.conf), when transparent proxy is on;
   * `exemptOwnTraffic` keeps the caller's own traffic to the Consul servers and
   * the ECS agent out of the redirection (their IPv4 addresses as /32 CIDRs), for a
   * caller that stays in the task's network namespace as root (control-plane).
   */
  transparentProxy?: { run?: IptablesRunner; resolvConfPath?: string; exemptOwnTraffic?: boolean };
  /** How long to keep retrying registration while Consul is unavailable. Default 2 minutes. */
  deadlineMs?: number;
}

/**
 * A file the task's other containers run from the bootstrap dir (the consul-ecs
 * executable), already being put there when meshInit starts.
 */
export interface BootstrapExecutable {
  /** Where it goes. */
  readonly path: string;
  /** Where it comes from, for the log. */
  readonly source?: string;
  /** Puts it in place (once whatever it was waiting for is done). */
  install(): Promise<void>;
  /** Removes whatever it wrote, installed or not. */
  discard(): Promise<void>;
}

export interface MeshInitResult {
  task: TaskInfo;
  client: ConsulHttpClient;
  /** The ACL token in use (from login or CONSUL_HTTP_TOKEN); undefined with ACLs off. */
  token?: string;
  /** True when the token came from login (so it is logged out at shutdown). */
  loggedIn: boolean;
  /** The file the login token was written to (`<bootstrapDir>/service-token`); none with a static token. */
  tokenFile?: string;
  registrations: TaskRegistrations;
  serviceName: string;
  /**
   * The Consul server addresses, in order of preference; `client` talks to one
   * of them at a time (its `baseUrl`), and to the next when that one fails.
   */
  addresses: string[];
}

/**
 * mesh-init: log in, register the service and its sidecar (or the gateway) in
 * the catalog, and write the bootstrap files for the dataplane container. If it
 * fails or is interrupted, it undoes what it did (token, registrations, files),
 * so a task never keeps half an initialisation.
 */
export async function meshInit(opts: MeshInitOptions): Promise<MeshInitResult> {
  const run = new MeshInitRun(opts);
  if (opts.executable) run.undoing(() => opts.executable!.discard());
  try {
    const task = await readTask(run);
    const identity = taskServiceIdentity(opts.config, task);
    const client = await connect(run);
    const acl = await logIn(run, client, task);
    const registrations = await register(run, client, acl, task, identity);
    if (!identity.gateway && opts.config.service.networkResilienceConfig?.enabled) {
      await upsertPassiveHealthCheck(client, acl.token, identity.name, identity.scope, opts.config.service.networkResilienceConfig.outlierDetection, run.log);
    }
    const proxy = await proxyAsConsulResolvesIt(run, client, acl, registrations, identity);
    await writeBootstrapFiles(run, { acl, task, identity, registrations, proxy });
    await installExecutable(run);
    await applyTrafficRedirection(run, proxy);
    run.signal?.throwIfAborted();
    run.log.info('successfully initialized the task to operate as part of the mesh', { service: identity.name, 'task-id': task.taskId });
    return {
      task,
      client,
      token: acl.token,
      loggedIn: acl.loggedIn,
      tokenFile: acl.loggedIn ? run.file('serviceToken') : undefined,
      registrations,
      serviceName: identity.name,
      addresses: opts.addresses,
    };
  } catch (err) {
    await run.undo();
    throw err;
  }
}

/** One run of mesh-init: its options, and what to undo if it does not finish. */
class MeshInitRun {
  readonly log: Logger;
  readonly clock: Clock;
  readonly signal: AbortSignal | undefined;
  readonly #undo: Array<() => Promise<void>> = [];
  #client: ConsulHttpClient | undefined;

  constructor(readonly opts: MeshInitOptions) {
    this.log = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? systemClock;
    this.signal = opts.signal;
  }

  get config(): ResolvedConfig {
    return this.opts.config;
  }

  /** A file of the bootstrap dir. */
  file(f: keyof typeof BOOTSTRAP_FILES): string {
    return join(this.config.bootstrapDir, BOOTSTRAP_FILES[f].name);
  }

  /** Remembers how to undo a step that succeeded. */
  undoing(step: () => Promise<void>): void {
    this.#undo.push(step);
  }

  /** The client to close when the run fails. */
  opened(client: ConsulHttpClient): void {
    this.#client = client;
  }

  /** Writes a bootstrap file atomically with its documented mode; it is removed if the run fails. */
  async write(f: keyof typeof BOOTSTRAP_FILES, data: string): Promise<void> {
    this.signal?.throwIfAborted();
    await writeFileAtomic(this.file(f), data, { mode: BOOTSTRAP_FILES[f].mode, owner: f === 'serviceToken' ? serviceTokenOwner() : undefined });
    this.undoing(() => removeFile(this.file(f)));
  }

  /** Undoes what succeeded, last first. */
  async undo(): Promise<void> {
    this.log.warn(this.signal?.aborted ? 'interrupted; undoing the partial initialisation' : 'mesh-init failed; undoing the partial initialisation');
    for (const step of this.#undo.reverse()) await step().catch((e: unknown) => this.log.warn('cleanup step failed', { error: describeError(e) }));
    await this.#client?.close();
  }
}

/**
 * The task from its metadata. A task whose transparent proxy rules could reach
 * beyond its own network namespace is refused here, before anything is sent to Consul.
 */
async function readTask(run: MeshInitRun): Promise<TaskInfo> {
  const { env, dispatcher } = run.opts;
  const metadata = new TaskMetadataClient({ baseUrl: env.ECS_CONTAINER_METADATA_URI_V4 ?? '', dispatcher, clock: run.clock });
  const task = taskInfo(await metadata.task());
  if (transparentProxyEnabled(run.config)) assertTransparentProxySupported(task);
  return task;
}

/**
 * How long each undo step of a failed run (deregister, log out) retries: long enough to wait
 * out a cluster's request rate limits (429) or an election under a storm of starting tasks,
 * so that a run that fails leaves nothing behind.
 */
const UNDO_RETRY_DEADLINE_MS = 30_000;

/** How long mesh-init waits for one server's `/v1/status/leader` before it tries the next. */
const LEADER_PROBE_TIMEOUT_MS = 5000;

/**
 * A client of the Consul servers, starting with the first that answers
 * (`/v1/status/leader`), the first when none does, for the login's retries to
 * wait on. Whenever the server in use fails (no connection, HTTP 5xx), the
 * calls' next attempts go to the next server, round robin.
 */
async function connect(run: MeshInitRun): Promise<FailoverConsulClient> {
  const { addresses, config, env, dispatcher } = run.opts;
  if (!addresses.length) throw new ConsulEcsError('consul-servers-missing', `consulServers.hosts "${config.consulServers.hosts}" resolved to no address`);
  const clients = addresses.map((address) => consulClientFor(address, config, env, { dispatcher, clock: run.clock }));
  let first = 0;
  for (const [i, client] of (clients.length > 1 ? clients : []).entries()) {
    try {
      // A server that accepts connections and never answers is left after a few seconds.
      await client.send({ path: '/v1/status/leader', retryDeadlineMs: 0, timeoutMs: LEADER_PROBE_TIMEOUT_MS });
      first = i;
      break;
    } catch (err) {
      run.log.warn('Consul server not answering; trying the next', { address: addresses[i], error: describeError(err) });
    }
  }
  // The one that answered first, then the others in their order, the ones that did not answer last.
  const servers = [...clients.slice(first), ...clients.slice(0, first)];
  const client = new FailoverConsulClient(servers, { logger: run.log, clock: run.clock, closeGivenClients: true });
  run.opened(client);
  return client;
}

/** The ACL token the task uses, and how it got it. */
interface TaskAcl {
  token?: string;
  /** From the login (logged out at shutdown), not CONSUL_HTTP_TOKEN. */
  loggedIn: boolean;
  /** The login's bearer token, which consul-dataplane logs in with too. */
  bearerToken?: string;
  /** Settles once the login token reads back with stale consistency (it has replicated). */
  replicated: Promise<void>;
}

/**
 * Logs in with the task's IAM role and sinks the token (`service-token`), or uses
 * CONSUL_HTTP_TOKEN as it is. A re-run logs out the token of the run before.
 */
async function logIn(run: MeshInitRun, client: FailoverConsulClient, task: TaskInfo): Promise<TaskAcl> {
  const { config, env, dispatcher } = run.opts;
  const staticToken = env.CONSUL_HTTP_TOKEN || undefined;
  if (staticToken || !config.consulLogin.enabled) {
    run.log.addSecret(staticToken);
    return { token: staticToken, loggedIn: false, replicated: Promise.resolve() };
  }
  const previous = await readTokenFile(run.file('serviceToken')).catch(() => '');
  let bearerToken: string | undefined;
  const acl = await loginAsTask({
    config,
    env,
    task,
    client,
    credentials: run.opts.credentials ?? defaultCredentialProvider({ env, dispatcher, clock: run.clock }),
    deadlineMs: run.opts.deadlineMs,
    dispatcher,
    clock: run.clock,
    logger: run.log,
    signal: run.signal,
    onBearerToken: (t) => (bearerToken = t),
    // Registration goes on while the token replicates (see register).
    waitForReplication: false,
  });
  const token = acl.SecretID;
  run.log.addSecret(token);
  run.undoing(() => aclLogout(client, token, { retryDeadlineMs: UNDO_RETRY_DEADLINE_MS }));
  const replicated = readBack(run, client, token).then(() => run.log.debug('the token reads back with stale consistency'));
  replicated.catch(() => {});
  await run.write('serviceToken', token);
  if (previous && previous !== token) await aclLogout(client, previous, { retryDeadlineMs: 0 }).catch(() => {});
  return { token, loggedIn: true, bearerToken, replicated };
}

/**
 * Reads a new login token back with stale consistency until the server in use
 * knows it (waitForTokenReplication). Once a server has failed during the run,
 * a read-back that finds the token unknown starts again, until mesh-init's
 * deadline: a leader may have committed the login just before it stopped, and
 * the other servers apply it only once a new leader has been elected, answering
 * "ACL not found" meanwhile.
 */
async function readBack(run: MeshInitRun, client: FailoverConsulClient, token: string): Promise<void> {
  const started = run.clock.now();
  const deadlineMs = run.opts.deadlineMs ?? 120_000;
  for (;;) {
    try {
      await waitForTokenReplication(client, token, { clock: run.clock, signal: run.signal });
      return;
    } catch (err) {
      const again = (err as { code?: string }).code === 'consul-token-not-replicated' && client.moves > 0 && run.clock.now() - started < deadlineMs;
      if (!again) throw err;
      run.log.warn('the new token is not known yet since a Consul server failed; reading it back again', { error: describeError(err) });
    }
  }
}

/**
 * Registers the service and its proxy (or the gateway), both at once and while
 * the login token replicates: a registration that a server refuses because it
 * does not know the token yet is sent again once it does. Whichever succeeded is
 * undone if the other failed.
 */
async function register(
  run: MeshInitRun,
  client: FailoverConsulClient,
  acl: TaskAcl,
  task: TaskInfo,
  identity: TaskServiceIdentity,
): Promise<TaskRegistrations> {
  const registrations = taskRegistrations(run.config, identity, task, run.opts.env.AWS_REGION || undefined);
  const catalog = new CatalogClient(client, () => acl.token);
  const { signal, clock } = run;
  const registerOnceKnown = (reg: CatalogRegistration) =>
    catalog.register(reg, { signal, retryDeadlineMs: 0 }).catch(async (err: unknown) => {
      if (!isUnknownToken(err)) throw err;
      await acl.replicated;
      // The server in use may have changed since (a server failed): it may not know the token yet.
      if (acl.loggedIn) await readBack(run, client, acl.token!);
      return catalog.register(reg, { signal, retryDeadlineMs: 0 });
    });
  const regs = [registrations.service, registrations.proxy].flatMap((r) => (r?.Service ? [{ ...r, Service: r.Service }] : []));
  const registered = await Promise.allSettled(
    regs.map((reg) =>
      retry(() => registerOnceKnown(reg), {
        deadlineMs: run.opts.deadlineMs ?? 120_000,
        clock,
        signal,
        initialDelayMs: 250,
        maxDelayMs: 2000,
        // A refusal, or a token that never replicated, stays so.
        retryable: (err) => !(err instanceof ConsulEcsError && (err.code === 'consul-permission-denied' || err.code === 'consul-token-not-replicated')),
        onRetry: (err) => run.log.warn('registration failed; retrying', { id: reg.Service.ID, error: describeError(err) }),
      }),
    ),
  );
  regs.forEach((reg, i) => {
    if (registered[i]!.status !== 'fulfilled') return;
    const svc = reg.Service;
    run.undoing(() => catalog.deregisterService(reg.Node, svc.ID, identity.scope, { retryDeadlineMs: UNDO_RETRY_DEADLINE_MS }));
    run.log.info(`${svc.Kind ? 'proxy' : 'service'} registered successfully`, { name: svc.Service, id: svc.ID, kind: svc.Kind || undefined });
  });
  const refused = registered.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (refused) throw refused.reason;
  await acl.replicated;
  return registrations;
}

/** The proxy (or gateway) as Consul resolves it, proxy-defaults merged, as consul-dataplane reads it. */
async function proxyAsConsulResolvesIt(
  run: MeshInitRun,
  client: ConsulHttpClient,
  acl: TaskAcl,
  registrations: TaskRegistrations,
  identity: TaskServiceIdentity,
): Promise<EnvoyProxyService> {
  const reg = registrations.proxy;
  const catalog = new CatalogClient(client, () => acl.token);
  const [merged] = await catalog.nodeServices(reg.Node, `ID == "${reg.Service!.ID}"`, identity.scope, { mergeCentralConfig: true });
  return merged ?? reg.Service!;
}

/** consul-dataplane's config, the gRPC CA, and Envoy's own bootstrap. */
async function writeBootstrapFiles(
  run: MeshInitRun,
  p: { acl: TaskAcl; task: TaskInfo; identity: TaskServiceIdentity; registrations: TaskRegistrations; proxy: EnvoyProxyService },
): Promise<void> {
  const { config, env, addresses } = run.opts;
  const grpc = config.consulServers.grpc;
  let grpcCaFile = grpc.tls ? grpc.caCertFile : undefined;
  if (grpc.tls && env.CONSUL_GRPC_CACERT_PEM) {
    await run.write('grpcCaCert', env.CONSUL_GRPC_CACERT_PEM);
    grpcCaFile = run.file('grpcCaCert');
  }
  const readyPort = readyPortOf(config, p.identity);
  const proxyReg = p.registrations.proxy;
  const dataplane = dataplaneConfig({
    hosts: config.consulServers.hosts,
    grpcPort: grpc.port,
    skipServerWatch: config.consulServers.skipServerWatch,
    grpcTls: { enabled: grpc.tls, caCertFile: grpcCaFile, tlsServerName: grpc.tlsServerName },
    node: proxyReg.Node,
    proxyId: proxyReg.Service!.ID,
    namespace: p.identity.scope.namespace,
    partition: p.identity.scope.partition,
    readyPort,
    logLevel: config.logLevel,
    consulDns: consulDnsEnabled(config),
    credentials: dataplaneCredentials(config, p.acl, p.task, p.identity),
  });
  await run.write('dataplaneConfig', JSON.stringify(dataplane));
  run.log.info('wrote dataplane config', { file: run.file('dataplaneConfig') });
  if (run.opts.envoyBootstrap === false) return;
  const bootstrap = generateEnvoyBootstrap({
    proxy: p.proxy,
    nodeName: proxyReg.Node,
    servers: { addresses, grpcPort: grpc.port, ...(grpc.tls ? { tls: { caFile: grpcCaFile, serverName: grpc.tlsServerName } } : {}) },
    token: p.acl.token,
    ready: { port: readyPort },
    env,
    onWarning: (message) => run.log.warn(message),
  });
  await run.write('envoyBootstrap', renderEnvoyBootstrap(bootstrap));
  run.log.info('wrote Envoy bootstrap', { file: run.file('envoyBootstrap') });
}

/**
 * How consul-dataplane gets its token: it logs in with the bearer token of this
 * task's login, or, with CONSUL_HTTP_TOKEN, uses that token as it is.
 */
function dataplaneCredentials(config: ResolvedConfig, acl: TaskAcl, task: TaskInfo, identity: TaskServiceIdentity): DataplaneCredentials | undefined {
  if (acl.bearerToken) {
    return {
      type: 'login',
      login: {
        authMethod: config.consulLogin.method,
        ...(identity.scope.partition ? { partition: identity.scope.partition } : {}),
        datacenter: config.consulLogin.datacenter ?? '',
        bearerToken: acl.bearerToken,
        meta: taskLoginMeta(config, task),
      },
    };
  }
  return acl.token ? { type: 'static', static: { token: acl.token } } : undefined;
}

/** The dataplane's ready port: the proxy's health-check port, or the gateway's. */
function readyPortOf(config: ResolvedConfig, identity: TaskServiceIdentity): number {
  return identity.gateway ? config.gateway!.healthCheckPort : config.proxy.healthCheckPort;
}

/** Puts the executable's copy in place for the task's other containers. */
async function installExecutable(run: MeshInitRun): Promise<void> {
  const executable = run.opts.executable;
  if (!executable) return;
  run.signal?.throwIfAborted();
  await executable.install();
  run.log.info('copied binary', { source: executable.source, destination: executable.path });
}

/** Transparent proxy's iptables rules (and Consul DNS in resolv.conf), when enabled. */
async function applyTrafficRedirection(run: MeshInitRun, proxy: EnvoyProxyService): Promise<void> {
  const { config } = run;
  if (!transparentProxyEnabled(config)) return;
  run.signal?.throwIfAborted();
  const tp = config.transparentProxy;
  const dns = consulDnsEnabled(config);
  const own = run.opts.transparentProxy?.exemptOwnTraffic ? ownTrafficCidrs(run.opts.addresses, run.opts.env) : [];
  const configured = tp.excludeOutboundCIDRs ?? [];
  const ownOnly = own.filter((c) => !configured.includes(c));
  if (ownOnly.length) run.log.info("keeping this process's own traffic out of the redirection", { 'excluded-outbound-cidrs': ownOnly.join(',') });
  const rules = transparentProxyRules({
    proxyService: proxy,
    healthCheckPort: config.proxy.healthCheckPort,
    excludeInboundPorts: tp.excludeInboundPorts,
    excludeOutboundPorts: tp.excludeOutboundPorts,
    excludeOutboundCIDRs: [...configured, ...ownOnly],
    excludeUIDs: tp.excludeUIDs,
    consulDns: dns,
  });
  await applyTransparentProxy(rules, {
    run: run.opts.transparentProxy?.run,
    resolvConfPath: run.opts.transparentProxy?.resolvConfPath,
    ...(dns ? { dnsNameserver: DATAPLANE_DNS_BIND.bindAddress } : {}),
    logger: run.log,
  });
  run.log.info('successfully applied traffic redirection rules', { rules: rules.length, 'consul-dns': dns });
}

/**
 * Who gets the service token: mesh-init's own user, unless that is root. terraform's
 * mesh-task runs mesh-init as root only for transparent proxy, and health-sync,
 * which logs the token out at shutdown, as 5996 (the user transparent proxy exempts
 * for it): a root-owned 0600 file would make health-sync log in again, and leave
 * this token for the controller to remove.
 */
function serviceTokenOwner(): { uid: number; gid: number; ifPermitted: true } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(DEFAULT_HEALTH_SYNC_UID);
  return { uid, gid: uid, ifPermitted: true };
}
