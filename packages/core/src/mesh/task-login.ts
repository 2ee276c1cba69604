import { defaultCredentialProvider, type CredentialProvider } from '../aws/credentials.js';
import type { ResolvedConfig } from '../config/types.js';
import { TOKEN_META_CLUSTER, TOKEN_META_TASK_ID, type AclToken, type WaitForTokenOptions } from '../consul/acl.js';
import type { ConsulHttpClient } from '../consul/http-client.js';
import { loginWithAwsIam, type AwsIamLoginOptions } from '../consul/login.js';
import { TaskMetadataClient, taskInfo, type TaskInfo } from '../ecs/task-metadata.js';
import { ConsulEcsError } from '../util/errors.js';
import { taskServiceIdentity } from './consul-connection.js';
import type { IoOptions } from '../util/options.js';

export interface TaskLoginOptions extends IoOptions {
  config: ResolvedConfig;
  env: Record<string, string | undefined>;
  task: TaskInfo;
  client: ConsulHttpClient;
  /** The task role's credentials. Default: the ECS container credentials, else the environment's keys. */
  credentials?: CredentialProvider;
  /** How long to keep retrying while Consul is unavailable. Default 2 minutes. */
  deadlineMs?: number;
  /** Given the bearer token of the login that succeeded (consul-dataplane logs in with it too). */
  onBearerToken?: (bearerToken: string) => void;
  /** Options for the stale read-back of the new token; `false` leaves it to the caller. */
  waitForReplication?: WaitForTokenOptions | false;
}

/** The token meta every login of the task carries: task id and cluster, then `consulLogin.meta`. */
export function taskLoginMeta(config: ResolvedConfig, task: Pick<TaskInfo, 'taskId' | 'clusterArn'>): Record<string, string> {
  return { [TOKEN_META_TASK_ID]: task.taskId, [TOKEN_META_CLUSTER]: task.clusterArn, ...config.consulLogin.meta };
}

/**
 * Logs the task in to Consul with its IAM role, as `consulLogin` configures it:
 * the auth method, STS endpoint and region (default: the task's), the IAM entity,
 * the server ID header, the task's partition and the token meta consul-ecs sets.
 * It keeps retrying, within the deadline, while Consul is unavailable and while
 * the auth method or its binding rules do not exist yet.
 */
export function loginAsTask(opts: TaskLoginOptions): Promise<AclToken> {
  const { config, task, clock } = opts;
  const login = config.consulLogin;
  return loginWithAwsIam({
    client: opts.client,
    credentials: opts.credentials ?? defaultCredentialProvider({ env: opts.env, dispatcher: opts.dispatcher, clock }),
    authMethod: login.method,
    region: login.region ?? task.region,
    stsEndpoint: login.stsEndpoint,
    includeEntity: login.includeEntity,
    serverIdHeaderValue: login.serverIdHeaderValue,
    meta: taskLoginMeta(config, task),
    partition: taskServiceIdentity(config, task).scope.partition,
    datacenter: login.datacenter,
    deadlineMs: opts.deadlineMs,
    // A task may start before the controller has set up the auth method.
    retryUntilSetUp: true,
    awsDispatcher: opts.dispatcher,
    clock,
    logger: opts.logger,
    signal: opts.signal,
    onBearerToken: opts.onBearerToken,
    waitForReplication: opts.waitForReplication,
  });
}

export interface LoginInTaskOptions extends Omit<AwsIamLoginOptions, 'credentials' | 'region' | 'awsDispatcher'>, IoOptions {
  env: Record<string, string | undefined>;
  /** The STS region; else AWS_REGION, AWS_DEFAULT_REGION, then the task's region. */
  region?: string;
  /** Credentials to use instead of the task role's (or the environment's keys). */
  credentials?: CredentialProvider;
  /**
   * Read the task metadata (ECS_CONTAINER_METADATA_URI_V4) for what the caller left
   * out: the task-id and cluster token meta and the region. Default true.
   */
  readTaskMetadata?: boolean;
}

/**
 * `consul-ecs login`: a login with the task's IAM identity, as the consul-ecs docs'
 * startup script does it by hand with `consul login`, filling in the token meta and
 * region from the task metadata when run in an ECS task.
 */
export async function loginInTask(opts: LoginInTaskOptions): Promise<AclToken> {
  const { env, dispatcher, clock, logger } = opts;
  const credentials = opts.credentials ?? defaultCredentialProvider({ env, dispatcher, clock });
  const meta = { ...opts.meta };
  let region = opts.region || env.AWS_REGION || env.AWS_DEFAULT_REGION;
  const metadataUri = env.ECS_CONTAINER_METADATA_URI_V4;
  const missing = meta[TOKEN_META_TASK_ID] === undefined || meta[TOKEN_META_CLUSTER] === undefined || !region;
  if ((opts.readTaskMetadata ?? true) && metadataUri && missing) {
    const task = taskInfo(await new TaskMetadataClient({ baseUrl: metadataUri, dispatcher, clock }).task());
    meta[TOKEN_META_TASK_ID] ??= task.taskId;
    meta[TOKEN_META_CLUSTER] ??= task.clusterArn;
    region ||= task.region;
    logger?.debug('read ECS task metadata', { 'task-id': task.taskId });
  }
  if (!region) throw new ConsulEcsError('aws-region-missing', 'no AWS region: pass -aws-region, set AWS_REGION, or run in an ECS task');
  return loginWithAwsIam({ ...opts, credentials, region, meta, awsDispatcher: dispatcher });
}
