import { httpRequest, type HttpResponse } from '../http/request.js';
import { parseTaskArn } from '../aws/arn.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { retry } from '../util/retry.js';
import type { IoOptions } from '../util/options.js';

/** ECS task metadata v4 `Containers[].Health.status`. */
export type ContainerHealthStatus = 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN';

/** One container of `GET ${ECS_CONTAINER_METADATA_URI_V4}/task` (fields this project reads). */
export interface EcsContainerMetadata {
  DockerId?: string;
  Name: string;
  DockerName?: string;
  Image?: string;
  /** `NORMAL` for task-definition containers. */
  Type?: string;
  DesiredStatus: string;
  KnownStatus: string;
  Health?: { status: ContainerHealthStatus; statusSince?: string; output?: string };
  Networks?: Array<{ NetworkMode?: string; IPv4Addresses?: string[]; IPv6Addresses?: string[] }>;
  Labels?: Record<string, string>;
  CreatedAt?: string;
  StartedAt?: string;
}

/** The task document of ECS task metadata endpoint v4. */
export interface EcsTaskMetadata {
  Cluster: string;
  TaskARN: string;
  Family: string;
  Revision?: string;
  DesiredStatus?: string;
  KnownStatus?: string;
  AvailabilityZone?: string;
  LaunchType?: string;
  Containers: EcsContainerMetadata[];
}

/** What mesh tasks need from the task document. */
export interface TaskInfo {
  taskArn: string;
  taskId: string;
  region: string;
  account: string;
  partition: string;
  clusterArn: string;
  family: string;
  availabilityZone?: string;
  /** First container's first network's first IPv4 address, else 127.0.0.1. */
  nodeIp: string;
  /** `LaunchType` (`EC2`, `FARGATE`, `EXTERNAL`…), when the metadata reports one. */
  launchType?: string;
  /** The task's network mode (`awsvpc`, `bridge`, `host`…): the first `Networks[].NetworkMode` reported. */
  networkMode?: string;
}

export interface TaskMetadataClientOptions extends Pick<IoOptions, 'dispatcher' | 'clock'> {
  /** `ECS_CONTAINER_METADATA_URI_V4`. */
  baseUrl: string;
  timeoutMs?: number;
  /** Attempts on connection errors and 5xx. Default 3. */
  maxAttempts?: number;
}

export class TaskMetadataClient {
  readonly #opts: TaskMetadataClientOptions;

  constructor(opts: TaskMetadataClientOptions) {
    if (!opts.baseUrl) {
      throw new ConsulEcsError(
        'ecs-metadata-missing',
        'ECS_CONTAINER_METADATA_URI_V4 is not set; run inside an ECS task (platform version 1.4.0+ or agent 1.39.0+)',
      );
    }
    this.#opts = opts;
  }

  /** `GET /task`. */
  async task(): Promise<EcsTaskMetadata> {
    const url = `${this.#opts.baseUrl.replace(/\/+$/, '')}/task`;
    const text = await retry(
      async () => {
        let res: HttpResponse;
        try {
          res = await httpRequest(url, { dispatcher: this.#opts.dispatcher, timeoutMs: this.#opts.timeoutMs ?? 5000 });
        } catch (err) {
          throw new ConsulEcsError('ecs-metadata-unreachable', `cannot reach ECS task metadata at ${url}: ${describeError(err)}`, {
            cause: err,
          });
        }
        if (res.statusCode !== 200) {
          const err = new ConsulEcsError('ecs-metadata-error', `ECS task metadata at ${url} answered HTTP ${res.statusCode}`);
          (err as { status?: number }).status = res.statusCode;
          throw err;
        }
        return res.text;
      },
      {
        maxAttempts: this.#opts.maxAttempts ?? 3,
        clock: this.#opts.clock,
        initialDelayMs: 100,
        maxDelayMs: 1000,
        retryable: (err) => ((err as { status?: number }).status ?? 500) >= 500,
      },
    );
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new ConsulEcsError('ecs-metadata-invalid', `ECS task metadata at ${url} is not JSON`);
    }
    if (!isObject(doc) || typeof doc.TaskARN !== 'string' || !Array.isArray(doc.Containers)) {
      throw new ConsulEcsError('ecs-metadata-invalid', `ECS task metadata at ${url} has no TaskARN or Containers`);
    }
    const bad = doc.Containers.findIndex((c) => !isObject(c));
    if (bad >= 0) throw new ConsulEcsError('ecs-metadata-invalid', `ECS task metadata at ${url}: Containers[${bad}] is not an object`);
    if (doc.Cluster !== undefined && typeof doc.Cluster !== 'string') {
      throw new ConsulEcsError('ecs-metadata-invalid', `ECS task metadata at ${url}: Cluster is not a string`);
    }
    return doc as unknown as EcsTaskMetadata;
  }
}

/** Region, account, task id, cluster ARN, node IP, launch type and network mode of a task document. */
export function taskInfo(meta: EcsTaskMetadata): TaskInfo {
  const arn = parseTaskArn(meta.TaskARN);
  const cluster = text(meta.Cluster);
  if (!cluster && !arn.cluster) {
    throw new ConsulEcsError('ecs-metadata-invalid', `the ECS task metadata of ${meta.TaskARN} names no cluster (no Cluster, and the task ARN has none)`);
  }
  const clusterArn = cluster?.startsWith('arn:') ? cluster : `arn:${arn.partition}:ecs:${arn.region}:${arn.account}:cluster/${arn.cluster ?? cluster}`;
  // Fields past TaskARN, Cluster and Containers are read only when of the type ECS gives them.
  const networks = (c: EcsContainerMetadata) => (Array.isArray(c.Networks) ? c.Networks.filter(isObject) : []);
  const firstIp = meta.Containers[0] ? networks(meta.Containers[0])[0]?.IPv4Addresses : undefined;
  const info: TaskInfo = {
    taskArn: meta.TaskARN,
    taskId: arn.taskId,
    region: arn.region,
    account: arn.account,
    partition: arn.partition,
    clusterArn,
    family: text(meta.Family) ?? '',
    nodeIp: (Array.isArray(firstIp) ? text(firstIp[0]) : undefined) ?? '127.0.0.1',
  };
  const availabilityZone = text(meta.AvailabilityZone);
  if (availabilityZone) info.availabilityZone = availabilityZone;
  const launchType = text(meta.LaunchType);
  if (launchType) info.launchType = launchType;
  const networkMode = meta.Containers.flatMap(networks)
    .map((n) => text(n.NetworkMode))
    .find((mode) => mode);
  if (networkMode) info.networkMode = networkMode;
  return info;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A non-empty string field, else undefined (whatever type the document gave it). */
function text(value: unknown): string | undefined {
  return typeof value === 'string' && value ? value : undefined;
}

export { containerStopped } from './container-status.js';
