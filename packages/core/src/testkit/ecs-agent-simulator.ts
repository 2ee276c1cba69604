import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ContainerHealthStatus, EcsContainerMetadata, EcsTaskMetadata } from '../ecs/task-metadata.js';
import { LoopbackServer } from './loopback-server.js';

/** The body the ECS agent's credentials endpoint answers with. */
export interface ContainerCredentialsDocument {
  AccessKeyId: string;
  SecretAccessKey: string;
  Token?: string;
  /** ISO 8601. */
  Expiration?: string;
  RoleArn?: string;
}

export type CredentialsSource = () => Promise<ContainerCredentialsDocument>;

export interface SimulatedContainer {
  name: string;
  /** Default HEALTHY when the container has a health check, else no Health field. */
  health?: ContainerHealthStatus;
  hasHealthCheck?: boolean;
  desiredStatus?: string;
  knownStatus?: string;
  type?: string;
  ipv4?: string;
}

export interface EcsAgentSimulatorOptions {
  /** Listen address, loopback by default. */
  host?: string;
  port?: number;
  region?: string;
  account?: string;
  cluster?: string;
  family?: string;
  taskId?: string;
  availabilityZone?: string;
  /** `Cluster` as the metadata reports it: the ARN (Fargate) or the bare name (EC2). Default ARN. */
  clusterField?: 'arn' | 'name';
  /** `LaunchType` of the task document: 'FARGATE' (default), 'EC2', 'EXTERNAL'…; null: no LaunchType field. */
  launchType?: string | null;
  /** `NetworkMode` of every container's network: 'awsvpc' (default), 'bridge', 'host'…; null: no NetworkMode field. */
  networkMode?: string | null;
  containers?: SimulatedContainer[];
  /** Where the credentials endpoint gets credentials (e.g. {@link assumeRoleCredentials}). */
  credentials?: CredentialsSource;
  /** The authorization token the credentials endpoint requires. Default random. */
  authorizationToken?: string;
  /**
   * Serve the credentials the source last gave until they are within this many
   * milliseconds of expiring, as the ECS agent does (it holds the task role's
   * credentials and rotates them well before they expire). 0 asks the source on
   * every request. Default 15 minutes.
   */
  credentialsRefreshBeforeExpiryMs?: number;
}

/**
 * A stand-in for the ECS container agent on loopback: task metadata v4
 * (`${ECS_CONTAINER_METADATA_URI_V4}/task`, whose containers tests can change
 * while it runs) and the container credentials endpoint
 * (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN`).
 */
export class EcsAgentSimulator {
  readonly region: string;
  readonly account: string;
  readonly cluster: string;
  readonly family: string;
  readonly taskId: string;
  readonly authorizationToken: string;
  /** Requests served, by path kind, for assertions. */
  readonly hits = { task: 0, credentials: 0, credentialsRefused: 0 };

  #opts: EcsAgentSimulatorOptions;
  readonly #server: LoopbackServer;
  #containers = new Map<string, EcsContainerMetadata>();
  #credentialsFailure: number | undefined;
  #metadataFailure: number | undefined;
  #credentialsOverride: ContainerCredentialsDocument | undefined;
  #credentialsHeld: Promise<ContainerCredentialsDocument> | undefined;
  readonly #containerId = randomBytes(16).toString('hex');
  readonly #credentialsId = randomUUID();

  constructor(opts: EcsAgentSimulatorOptions = {}) {
    this.#opts = opts;
    this.#server = new LoopbackServer(opts.host, opts.port);
    this.region = opts.region ?? 'us-east-1';
    this.account = opts.account ?? '123456789012';
    this.cluster = opts.cluster ?? 'test-cluster';
    this.family = opts.family ?? 'test-service';
    this.taskId = opts.taskId ?? randomBytes(16).toString('hex');
    this.authorizationToken = opts.authorizationToken ?? randomBytes(24).toString('base64url');
    for (const c of opts.containers ?? [{ name: 'app', hasHealthCheck: true }]) this.setContainer(c);
  }

  get taskArn(): string {
    return `arn:aws:ecs:${this.region}:${this.account}:task/${this.cluster}/${this.taskId}`;
  }

  get clusterArn(): string {
    return `arn:aws:ecs:${this.region}:${this.account}:cluster/${this.cluster}`;
  }

  /** `ECS_CONTAINER_METADATA_URI_V4` for a container of the task. */
  get metadataUri(): string {
    return `${this.#server.origin}/v4/${this.#containerId}`;
  }

  /** `AWS_CONTAINER_CREDENTIALS_FULL_URI`. */
  get credentialsUri(): string {
    return `${this.#server.origin}/v2/credentials/${this.#credentialsId}`;
  }

  /** The environment the ECS agent gives a container of the task. */
  containerEnv(): Record<string, string> {
    return {
      ECS_CONTAINER_METADATA_URI_V4: this.metadataUri,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: this.credentialsUri,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: this.authorizationToken,
      AWS_REGION: this.region,
      AWS_DEFAULT_REGION: this.region,
    };
  }

  /** Adds or replaces a container. */
  setContainer(c: SimulatedContainer): void {
    const prev = this.#containers.get(c.name);
    const hasCheck = c.hasHealthCheck ?? (c.health !== undefined || prev?.Health !== undefined);
    const meta: EcsContainerMetadata = {
      DockerId: prev?.DockerId ?? randomBytes(32).toString('hex'),
      Name: c.name,
      DockerName: `ecs-${this.family}-${c.name}`,
      Image: `${c.name}:latest`,
      Type: c.type ?? 'NORMAL',
      DesiredStatus: c.desiredStatus ?? 'RUNNING',
      KnownStatus: c.knownStatus ?? 'RUNNING',
      Networks: [this.#network(c.ipv4 ?? '127.0.0.1')],
    };
    if (hasCheck) meta.Health = { status: c.health ?? 'HEALTHY' };
    this.#containers.set(c.name, meta);
  }

  #network(ipv4: string): NonNullable<EcsContainerMetadata['Networks']>[number] {
    const mode = this.#opts.networkMode === undefined ? 'awsvpc' : this.#opts.networkMode;
    return mode === null ? { IPv4Addresses: [ipv4] } : { NetworkMode: mode, IPv4Addresses: [ipv4] };
  }

  setHealth(name: string, status: ContainerHealthStatus): void {
    const c = this.#mustGet(name);
    c.Health = { status, statusSince: new Date().toISOString() };
  }

  setStatus(name: string, desiredStatus: string, knownStatus: string = desiredStatus): void {
    const c = this.#mustGet(name);
    c.DesiredStatus = desiredStatus;
    c.KnownStatus = knownStatus;
  }

  /** Marks a container stopped, as the agent reports it once it has exited. */
  stopContainer(name: string): void {
    this.setStatus(name, 'STOPPED', 'STOPPED');
  }

  removeContainer(name: string): void {
    this.#containers.delete(name);
  }

  /** Makes the credentials endpoint answer with this HTTP status (undefined: serve normally). */
  failCredentials(status: number | undefined): void {
    this.#credentialsFailure = status;
  }

  /** Makes the metadata endpoint answer with this HTTP status (undefined: serve normally). */
  failMetadata(status: number | undefined): void {
    this.#metadataFailure = status;
  }

  /** Serves these credentials instead of asking the source (e.g. already expired ones). */
  overrideCredentials(doc: ContainerCredentialsDocument | undefined): void {
    this.#credentialsOverride = doc;
  }

  /** The task document as served now. */
  task(): EcsTaskMetadata {
    const launchType = this.#opts.launchType === undefined ? 'FARGATE' : this.#opts.launchType;
    return {
      Cluster: this.#opts.clusterField === 'name' ? this.cluster : this.clusterArn,
      TaskARN: this.taskArn,
      Family: this.family,
      Revision: '1',
      DesiredStatus: 'RUNNING',
      KnownStatus: 'RUNNING',
      AvailabilityZone: this.#opts.availabilityZone ?? `${this.region}a`,
      ...(launchType === null ? {} : { LaunchType: launchType }),
      Containers: [...this.#containers.values()].map((c) => structuredClone(c)),
    };
  }

  async start(): Promise<this> {
    await this.#server.start((req, res) => this.#handle(req, res));
    return this;
  }

  async stop(): Promise<void> {
    await this.#server.stop();
  }

  #mustGet(name: string): EcsContainerMetadata {
    const c = this.#containers.get(name);
    if (!c) throw new Error(`the simulated task has no container named ${name}`);
    return c;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === `/v4/${this.#containerId}/task`) {
      this.hits.task++;
      if (this.#metadataFailure) return json(this.#metadataFailure, { error: 'simulated failure' });
      return json(200, this.task());
    }
    if (path === `/v4/${this.#containerId}`) {
      return json(200, this.task().Containers[0] ?? {});
    }
    if (path === `/v2/credentials/${this.#credentialsId}`) {
      this.hits.credentials++;
      const given = Buffer.from(String(req.headers.authorization ?? ''));
      const want = Buffer.from(this.authorizationToken);
      if (given.length !== want.length || !timingSafeEqual(given, want)) {
        this.hits.credentialsRefused++;
        return json(401, { code: 'AccessDenied', message: 'Authorization header is missing or invalid' });
      }
      if (this.#credentialsFailure) return json(this.#credentialsFailure, { code: 'InternalError', message: 'simulated failure' });
      if (this.#credentialsOverride) return json(200, this.#credentialsOverride);
      if (!this.#opts.credentials) return json(404, { code: 'NoCredentials', message: 'the task has no task role' });
      return json(200, await this.#heldCredentials(this.#opts.credentials));
    }
    json(404, { error: `no such path ${path}` });
  }

  /** The source's credentials, asked again only when the held ones near expiry (or failed). */
  async #heldCredentials(source: CredentialsSource): Promise<ContainerCredentialsDocument> {
    const margin = this.#opts.credentialsRefreshBeforeExpiryMs ?? 15 * 60_000;
    if (this.#credentialsHeld && margin > 0) {
      const held = await this.#credentialsHeld.catch(() => undefined);
      const expires = held?.Expiration ? Date.parse(held.Expiration) : Number.POSITIVE_INFINITY;
      if (held && expires - Date.now() > margin) return held;
    }
    this.#credentialsHeld = source();
    return this.#credentialsHeld;
  }
}
