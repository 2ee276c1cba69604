import { callJsonApi } from '../aws/json-client.js';
import type { CredentialProvider } from '../aws/credentials.js';
import { ConsulEcsError } from '../util/errors.js';
import type { Env, IoOptions } from '../util/options.js';

const TARGET_PREFIX = 'AmazonEC2ContainerServiceV20141113';
/** DescribeTasks takes at most this many tasks per call. */
const DESCRIBE_TASKS_MAX = 100;

/** An ECS resource tag (`{key, value}`, as the ECS API spells it). */
export interface EcsTag {
  key?: string;
  value?: string;
}

/** The fields of ECS's `Task` (DescribeTasks) that callers use. */
export interface EcsTask {
  taskArn?: string;
  clusterArn?: string;
  taskDefinitionArn?: string;
  group?: string;
  lastStatus?: string;
  desiredStatus?: string;
  launchType?: string;
  tags?: EcsTag[];
}

interface ListTasksOutput {
  taskArns?: string[];
  nextToken?: string;
}

interface DescribeTasksOutput {
  tasks?: EcsTask[];
  failures?: Array<{ arn?: string; reason?: string; detail?: string }>;
}

/**
 * The ECS API endpoint, as the AWS SDKs choose it: `AWS_ENDPOINT_URL_ECS`, then
 * `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), else the
 * regional endpoint.
 */
export function ecsEndpoint(env: Env, region: string): URL {
  const ignore = env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true';
  const configured = ignore ? undefined : env.AWS_ENDPOINT_URL_ECS || env.AWS_ENDPOINT_URL;
  const raw = configured ?? `https://ecs.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
  try {
    return new URL(raw);
  } catch {
    throw new ConsulEcsError('aws-endpoint-invalid', `the ECS endpoint "${raw}" (AWS_ENDPOINT_URL_ECS / AWS_ENDPOINT_URL) is not a URL`);
  }
}

export interface EcsApiClientOptions extends Pick<IoOptions, 'dispatcher'> {
  region: string;
  endpoint: URL;
  credentials: CredentialProvider;
}

/** The ECS API calls consul-ecs makes (the controller lists the tasks of its cluster). */
export class EcsApiClient {
  constructor(readonly opts: EcsApiClientOptions) {}

  async #call<T>(operation: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
    return callJsonApi<T>({
      endpoint: this.opts.endpoint,
      region: this.opts.region,
      service: 'ecs',
      target: `${TARGET_PREFIX}.${operation}`,
      body,
      credentials: await this.opts.credentials(),
      dispatcher: this.opts.dispatcher,
      signal,
    });
  }

  /**
   * The ARNs of the cluster's tasks whose desired status is RUNNING (ECS's
   * default filter, given explicitly), every page.
   */
  async listRunningTaskArns(cluster: string, signal?: AbortSignal): Promise<string[]> {
    const arns: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.#call<ListTasksOutput>('ListTasks', { cluster, desiredStatus: 'RUNNING', ...(nextToken ? { nextToken } : {}) }, signal);
      arns.push(...(page.taskArns ?? []));
      nextToken = page.nextToken || undefined;
    } while (nextToken);
    return arns;
  }

  /** DescribeTasks with their tags, in batches of 100. */
  async describeTasks(cluster: string, taskArns: string[], signal?: AbortSignal): Promise<EcsTask[]> {
    const tasks: EcsTask[] = [];
    for (let i = 0; i < taskArns.length; i += DESCRIBE_TASKS_MAX) {
      const out = await this.#call<DescribeTasksOutput>(
        'DescribeTasks',
        { cluster, tasks: taskArns.slice(i, i + DESCRIBE_TASKS_MAX), include: ['TAGS'] },
        signal,
      );
      tasks.push(...(out.tasks ?? []));
    }
    return tasks;
  }

  /** The cluster's running tasks, described with their tags. */
  async runningTasks(cluster: string, signal?: AbortSignal): Promise<EcsTask[]> {
    return this.describeTasks(cluster, await this.listRunningTaskArns(cluster, signal), signal);
  }
}

/** The value of a tag of an ECS task, or undefined. */
export function ecsTagValue(task: Pick<EcsTask, 'tags'>, key: string): string | undefined {
  return task.tags?.find((t) => t.key === key)?.value;
}
