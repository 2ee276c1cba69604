import type { Dispatcher } from 'undici';
import { defaultCredentialProvider, type CredentialProvider } from '../aws/credentials.js';
import type { ResolvedConfig } from '../config/types.js';
import { TOKEN_META_CLUSTER, TOKEN_META_TASK_ID, type AclToken, type WaitForTokenOptions } from '../consul/acl.js';
import type { ConsulHttpClient } from '../consul/http-client.js';
import { loginWithAwsIam } from '../consul/login.js';
import type { TaskInfo } from '../ecs/task-metadata.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { taskServiceIdentity } from './consul-connection.js';

export interface TaskLoginOptions {
  config: ResolvedConfig;
  env: Record<string, string | undefined>;
  task: TaskInfo;
  client: ConsulHttpClient;
  /** The task role's credentials. Default: the ECS container credentials, else the environment's keys. */
  credentials?: CredentialProvider;
  dispatcher?: Dispatcher;
  clock?: Clock;
  logger?: Logger;
  signal?: AbortSignal;
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
