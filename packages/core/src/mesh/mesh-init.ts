import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { defaultCredentialProvider, type CredentialProvider } from '../aws/credentials.js';
import { CatalogClient } from '../catalog/client.js';
import { gatewayRegistration, serviceRegistrations, type TaskRegistrations } from '../catalog/registration.js';
import type { CatalogRegistration } from '../catalog/types.js';
import type { ResolvedConfig } from '../config/types.js';
import { consulDnsEnabled, transparentProxyEnabled } from '../config/resolve.js';
import { aclLogout, waitForTokenReplication } from '../consul/acl.js';
import { isUnknownToken } from '../consul/acl-admin.js';
import type { ConsulHttpClient } from '../consul/http-client.js';
import { DATAPLANE_DNS_BIND, dataplaneConfig, type DataplaneCredentials } from '../dataplane/config.js';
import { applyTransparentProxy, type IptablesRunner } from '../tproxy/apply.js';
import { assertTransparentProxySupported } from '../tproxy/supported.js';
import { DEFAULT_HEALTH_SYNC_UID, transparentProxyRules } from '../tproxy/iptables.js';
import { generateEnvoyBootstrap, renderEnvoyBootstrap } from '../envoy/bootstrap.js';
import { TaskMetadataClient, taskInfo, type TaskInfo } from '../ecs/task-metadata.js';
import { writeFileAtomic } from '../io/atomic-file.js';
import { removeFile } from '../io/fs.js';
import { readTokenFile } from '../io/token-file.js';
import { systemClock, type Clock } from '../util/clock.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { retry } from '../util/retry.js';
import { BOOTSTRAP_FILES } from './bootstrap-files.js';
import { consulClientFor, taskServiceIdentity } from './consul-connection.js';
import { loginAsTask, taskLoginMeta } from './task-login.js';

type Env = Record<string, string | undefined>;

export interface MeshInitOptions {
  config: ResolvedConfig;
  env: Env;
  /** Consul server addresses (resolved from consulServers.hosts), in order of preference. */
  addresses: string[];
  dispatcher?: Dispatcher;
  clock?: Clock;
  logger?: Logger;
  signal?: AbortSignal;
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
   * resolv.conf is (default /etc/resolv.conf), when transparent proxy is on.
   */
  transparentProxy?: { run?: IptablesRunner; resolvConfPath?: string };
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
  /** The Consul server addresses, in order of preference; `client` talks to one of them. */
  addresses: string[];
}

/**
 * mesh-init: log in, register the service and its sidecar (or the gateway) in
 * the catalog, and write the bootstrap files for the dataplane container. If it
 * fails or is interrupted, it undoes what it did (token, registrations, files),
 * so a task never keeps half an initialisation.
 */
export async function meshInit(opts: MeshInitOptions): Promise<MeshInitResult> {
  const { config, env, signal } = opts;
  const log = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const undo: Array<() => Promise<void>> = [];
  const dir = config.bootstrapDir;
  const file = (f: keyof typeof BOOTSTRAP_FILES) => join(dir, BOOTSTRAP_FILES[f].name);
  // The files are written while the requests after them are on the wire; each is
  // awaited before the task counts as initialised, and before anything is undone.
  const writing: Array<Promise<void>> = [];
  const write = (f: keyof typeof BOOTSTRAP_FILES, data: string, written?: () => void) => {
    const done = (async () => {
      signal?.throwIfAborted();
      await writeFileAtomic(file(f), data, { mode: BOOTSTRAP_FILES[f].mode, owner: f === 'serviceToken' ? serviceTokenOwner() : undefined });
      undo.push(() => removeFile(file(f)));
      written?.();
    })();
    done.catch(() => {});
    writing.push(done);
  };

  const executable = opts.executable;
  if (executable) undo.push(() => executable.discard());

  let opened: ConsulHttpClient | undefined;
  try {
    const metadataUri = env.ECS_CONTAINER_METADATA_URI_V4 ?? '';
    let token = env.CONSUL_HTTP_TOKEN || undefined;
    const loggingIn = !token && config.consulLogin.enabled;
    // The credentials are fetched while the task metadata is (they do not depend
    // on it); the login asks the provider again and gets them, or its error.
    const credentials = loggingIn ? (opts.credentials ?? defaultCredentialProvider({ env, dispatcher: opts.dispatcher, clock })) : undefined;
    credentials?.().catch(() => {});
    // A re-run replaces the token of the run before (read now, logged out after the login).
    const previousToken = credentials ? readTokenFile(file('serviceToken')).catch(() => '') : undefined;
    const task = taskInfo(await new TaskMetadataClient({ baseUrl: metadataUri, dispatcher: opts.dispatcher, clock }).task());
    // Before anything is sent to Consul: a task whose rules could reach beyond
    // its own network namespace is refused with nothing done.
    if (transparentProxyEnabled(config)) assertTransparentProxySupported(task);
    const { gateway, name, scope } = taskServiceIdentity(config, task);
    const addresses = opts.addresses;
    if (!addresses.length) throw new ConsulEcsError('consul-servers-missing', `consulServers.hosts "${config.consulServers.hosts}" resolved to no address`);
    const client = await firstAnsweringServer(addresses, (a) => consulClientFor(a, config, env, { dispatcher: opts.dispatcher, clock }), log);
    opened = client;

    let dataplaneBearerToken: string | undefined;
    // Settles once the login token reads back with stale consistency (it has
    // replicated). The registrations do not wait for it: one that a server refuses
    // because it does not know the token yet is sent again once it does.
    let replicated: Promise<void> = Promise.resolve();
    const loginMeta = taskLoginMeta(config, task);
    if (credentials) {
      const acl = await loginAsTask({
        config,
        env,
        task,
        client,
        credentials,
        deadlineMs: opts.deadlineMs,
        dispatcher: opts.dispatcher,
        clock,
        logger: log,
        signal,
        // consul-dataplane logs in with the bearer token this login used, as the
        // anchor's dataplane config does: signing another costs the critical path.
        onBearerToken: (t) => (dataplaneBearerToken = t),
        waitForReplication: false,
      });
      token = acl.SecretID;
      undo.push(() => aclLogout(client, acl.SecretID, { retryDeadlineMs: 5000 }));
      replicated = waitForTokenReplication(client, token, { clock, signal }).then(() => log.debug('the token reads back with stale consistency'));
      replicated.catch(() => {});
      write('serviceToken', token);
      const previous = await previousToken;
      if (previous && previous !== token) {
        await aclLogout(client, previous, { retryDeadlineMs: 0 }).catch(() => {});
      }
    }
    log.addSecret(token);

    const catalog = new CatalogClient(client, () => token);
    const ctx = {
      task,
      region: env.AWS_REGION || undefined,
      healthSyncContainers: config.healthSyncContainers,
      transparentProxy: transparentProxyEnabled(config),
    };
    const registrations = gateway
      ? gatewayRegistration(
          {
            kind: config.gateway!.kind,
            name,
            tags: config.gateway!.tags,
            meta: config.gateway!.meta,
            namespace: scope.namespace,
            partition: scope.partition,
            lanAddress: config.gateway!.lanAddress,
            wanAddress: config.gateway!.wanAddress,
            proxyConfig: config.gateway!.proxy.config,
          },
          ctx,
        )
      : serviceRegistrations(
          {
            name,
            port: config.service.port,
            tags: config.service.tags,
            meta: config.service.meta,
            weights: config.service.weights ? { Passing: config.service.weights.passing, Warning: config.service.weights.warning } : undefined,
            enableTagOverride: config.service.enableTagOverride || undefined,
            namespace: scope.namespace,
            partition: scope.partition,
          },
          proxySpec(config),
          ctx,
        );

    // The service and its proxy are registered at once (neither needs the other
    // in the catalog first); whichever succeeded is undone if the other failed.
    const registerOnceKnown = (reg: CatalogRegistration) =>
      catalog.register(reg, { signal, retryDeadlineMs: 0 }).catch(async (err: unknown) => {
        if (!isUnknownToken(err)) throw err;
        await replicated;
        return catalog.register(reg, { signal, retryDeadlineMs: 0 });
      });
    const regs = [registrations.service, registrations.proxy].flatMap((r) => (r?.Service ? [{ ...r, Service: r.Service }] : []));
    const registered = await Promise.allSettled(
      regs.map((reg) =>
        retry(() => registerOnceKnown(reg), {
          deadlineMs: opts.deadlineMs ?? 120_000,
          clock,
          signal,
          initialDelayMs: 250,
          maxDelayMs: 2000,
          // A refusal, or a token that never replicated, stays so.
          retryable: (err) => !(err instanceof ConsulEcsError && (err.code === 'consul-permission-denied' || err.code === 'consul-token-not-replicated')),
          onRetry: (err) => log.warn('registration failed; retrying', { id: reg.Service.ID, error: describeError(err) }),
        }),
      ),
    );
    regs.forEach((reg, i) => {
      if (registered[i]!.status !== 'fulfilled') return;
      const svc = reg.Service;
      undo.push(() => catalog.deregisterService(reg.Node, svc.ID, scope, { retryDeadlineMs: 5000 }));
      log.info(`${svc.Kind ? 'proxy' : 'service'} registered successfully`, { name: svc.Service, id: svc.ID, kind: svc.Kind || undefined });
    });
    const refused = registered.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (refused) throw refused.reason;
    await replicated;

    if (!gateway && config.service.networkResilienceConfig?.enabled) {
      await upsertPassiveHealthCheck(client, token, name, scope, config.service.networkResilienceConfig.outlierDetection, log);
    }

    // The proxy as Consul resolves it (proxy-defaults merged), as consul-dataplane
    // reads it; asked for now, while the files before the bootstrap are written.
    const proxyReg = registrations.proxy;
    const resolvedProxy = catalog.nodeServices(proxyReg.Node, `ID == "${proxyReg.Service!.ID}"`, scope, { mergeCentralConfig: true });
    resolvedProxy.catch(() => {});

    const grpc = config.consulServers.grpc;
    let grpcCaFile = grpc.tls ? grpc.caCertFile : undefined;
    if (grpc.tls && env.CONSUL_GRPC_CACERT_PEM) {
      write('grpcCaCert', env.CONSUL_GRPC_CACERT_PEM);
      grpcCaFile = file('grpcCaCert');
    }

    const readyPort = gateway ? config.gateway!.healthCheckPort : config.proxy.healthCheckPort;
    const dns = consulDnsEnabled(config);
    // consul-dataplane logs in with the bearer token of this task's login, or,
    // with CONSUL_HTTP_TOKEN, uses that token as it is.
    const dataplaneCredentials: DataplaneCredentials | undefined = dataplaneBearerToken
      ? {
          type: 'login',
          login: {
            authMethod: config.consulLogin.method,
            ...(scope.partition ? { partition: scope.partition } : {}),
            datacenter: config.consulLogin.datacenter ?? '',
            bearerToken: dataplaneBearerToken,
            meta: loginMeta,
          },
        }
      : token
        ? { type: 'static', static: { token } }
        : undefined;
    const dp = dataplaneConfig({
      hosts: config.consulServers.hosts,
      grpcPort: grpc.port,
      skipServerWatch: config.consulServers.skipServerWatch,
      grpcTls: { enabled: grpc.tls, caCertFile: grpcCaFile, tlsServerName: grpc.tlsServerName },
      node: proxyReg.Node,
      proxyId: proxyReg.Service!.ID,
      namespace: scope.namespace,
      partition: scope.partition,
      readyPort,
      logLevel: config.logLevel,
      consulDns: dns,
      credentials: dataplaneCredentials,
    });
    write('dataplaneConfig', JSON.stringify(dp), () => log.info('wrote dataplane config', { file: file('dataplaneConfig') }));

    const [merged] = await resolvedProxy;
    const proxyService = merged ?? proxyReg.Service!;
    if (opts.envoyBootstrap ?? true) {
      const bootstrap = generateEnvoyBootstrap({
        proxy: proxyService,
        nodeName: proxyReg.Node,
        servers: {
          addresses,
          grpcPort: grpc.port,
          ...(grpc.tls ? { tls: { caFile: grpcCaFile, serverName: grpc.tlsServerName } } : {}),
        },
        token,
        ready: { port: readyPort },
        env,
        onWarning: (message) => log.warn(message),
      });
      write('envoyBootstrap', renderEnvoyBootstrap(bootstrap), () => log.info('wrote Envoy bootstrap', { file: file('envoyBootstrap') }));
    }
    // The copy has had the network work to finish in; it goes in place while the files above are written.
    if (executable) {
      signal?.throwIfAborted();
      const installing = executable.install().then(() => log.info('copied binary', { source: executable.source, destination: executable.path }));
      installing.catch(() => {});
      writing.push(installing);
    }
    await Promise.all(writing);

    if (transparentProxyEnabled(config)) {
      signal?.throwIfAborted();
      const tp = config.transparentProxy;
      const rules = transparentProxyRules({
        proxyService,
        healthCheckPort: readyPort,
        excludeInboundPorts: tp.excludeInboundPorts,
        excludeOutboundPorts: tp.excludeOutboundPorts,
        excludeOutboundCIDRs: tp.excludeOutboundCIDRs,
        excludeUIDs: tp.excludeUIDs,
        consulDns: dns,
      });
      await applyTransparentProxy(rules, {
        run: opts.transparentProxy?.run,
        resolvConfPath: opts.transparentProxy?.resolvConfPath,
        ...(dns ? { dnsNameserver: DATAPLANE_DNS_BIND.bindAddress } : {}),
        logger: log,
      });
      log.info('successfully applied traffic redirection rules', { rules: rules.length, 'consul-dns': dns });
    }

    signal?.throwIfAborted();
    log.info('successfully initialized the task to operate as part of the mesh', { service: name, 'task-id': task.taskId });
    // With credentials it logged in: a login that fails throws before this.
    return { task, client, token, loggedIn: credentials !== undefined, tokenFile: credentials && file('serviceToken'), registrations, serviceName: name, addresses };
  } catch (err) {
    log.warn(signal?.aborted ? 'interrupted; undoing the partial initialisation' : 'mesh-init failed; undoing the partial initialisation');
    await Promise.allSettled(writing);
    for (const step of undo.reverse()) await step().catch((e) => log.warn('cleanup step failed', { error: describeError(e) }));
    await opened?.close();
    throw err;
  }
}

/**
 * The client of the first server that answers (`/v1/status/leader`, one quick
 * try each); the first one when none does, for the login retries to wait on.
 */
async function firstAnsweringServer(addresses: string[], make: (address: string) => ConsulHttpClient, log: Logger): Promise<ConsulHttpClient> {
  if (addresses.length === 1) return make(addresses[0]!);
  for (const address of addresses) {
    const client = make(address);
    try {
      await client.send({ path: '/v1/status/leader', retryDeadlineMs: 0 });
      return client;
    } catch (err) {
      log.warn('Consul server not answering; trying the next', { address, error: describeError(err) });
      await client.close();
    }
  }
  return make(addresses[0]!);
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

function proxySpec(config: ResolvedConfig) {
  const p = config.proxy;
  return {
    publicListenerPort: p.publicListenerPort,
    localServiceAddress: p.localServiceAddress,
    config: p.config,
    upstreams: p.upstreams.map((u) =>
      stripUndefined({
        DestinationType: u.destinationType,
        DestinationNamespace: u.destinationNamespace,
        DestinationPartition: u.destinationPartition,
        DestinationPeer: u.destinationPeer,
        DestinationName: u.destinationName,
        Datacenter: u.datacenter,
        LocalBindAddress: u.localBindAddress,
        LocalBindPort: u.localBindPort,
        Config: u.config,
        MeshGateway: u.meshGateway ? { Mode: u.meshGateway.mode } : undefined,
      }),
    ),
    meshGateway: p.meshGateway ? { Mode: p.meshGateway.mode } : undefined,
    expose: p.expose
      ? {
          Checks: p.expose.checks,
          Paths: p.expose.paths.map((e) =>
            stripUndefined({ ListenerPort: e.listenerPort, Path: e.path, LocalPathPort: e.localPathPort, Protocol: e.protocol }),
          ),
        }
      : undefined,
  };
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Adds outlier detection to the service's service-defaults unless it already has a passive health check. */
async function upsertPassiveHealthCheck(
  client: ConsulHttpClient,
  token: string | undefined,
  service: string,
  scope: { namespace?: string; partition?: string },
  od: NonNullable<ResolvedConfig['service']['networkResilienceConfig']>['outlierDetection'],
  log: Logger,
): Promise<void> {
  const query = { ns: scope.namespace, partition: scope.partition };
  let entry: Record<string, unknown> = { Kind: 'service-defaults', Name: service, Namespace: scope.namespace, Partition: scope.partition };
  try {
    entry = await client.call<Record<string, unknown>>({ path: `/v1/config/service-defaults/${encodeURIComponent(service)}`, query, token });
  } catch (err) {
    if ((err as { status?: number }).status !== 404) throw err;
  }
  const upstream = ((entry.UpstreamConfig ??= {}) as Record<string, unknown>);
  const defaults = ((upstream.Defaults ??= {}) as Record<string, unknown>);
  if (defaults.PassiveHealthCheck) {
    log.debug('passive health check already in service-defaults; leaving it', { service });
    return;
  }
  defaults.PassiveHealthCheck = stripUndefined({
    Interval: od.interval,
    MaxFailures: od.maxFailures,
    EnforcingConsecutive5xx: od.enforcingConsecutive5xx,
    Consecutive5xx: od.consecutive5xx,
    EnforcingConsecutiveGatewayFailure: od.enforcingConsecutiveGatewayFailure,
    ConsecutiveGatewayFailure: od.consecutiveGatewayFailure,
    MaxEjectionPercent: od.maxEjectionPercent,
  });
  const phc = defaults.PassiveHealthCheck as Record<string, unknown>;
  try {
    await client.send({ method: 'PUT', path: '/v1/config', query, body: entry, token });
  } catch (err) {
    // Older Consul servers know fewer outlier detection settings: drop the ones
    // this server rejects, say which, and write the rest.
    const rejected = [...String((err as { body?: unknown }).body ?? '').matchAll(/invalid config key "UpstreamConfig\.Defaults\.PassiveHealthCheck\.(\w+)"/g)].map((m) => m[1]!).sort();
    if (!rejected.length) throw err;
    for (const key of rejected) delete phc[key];
    log.warn('this Consul server does not support some outlier detection settings; they are left out', { service, settings: rejected.join(',') });
    await client.send({ method: 'PUT', path: '/v1/config', query, body: entry, token });
  }
  log.info('added a passive health check to service-defaults', { service });
}
