import type { Dispatcher } from 'undici';
import type { CredentialProvider } from '../aws/credentials.js';
import { isRetryableAwsError } from '../aws/query-client.js';
import { createLoginBearerToken } from '../aws/sigv4-login.js';
import { prepareFileAtomic } from '../io/atomic-file.js';
import { systemClock } from '../util/clock.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { silentLogger } from '../util/logger.js';
import { retry } from '../util/retry.js';
import { aclLogin, aclLogout, isLoginSetUpPending, waitForTokenReplication, type AclToken, type WaitForTokenOptions } from './acl.js';
import { isRetryableConsulError, type ConsulHttpClient } from './http-client.js';
import type { IoOptions } from '../util/options.js';

export const DEFAULT_AUTH_METHOD = 'iam-ecs-service-token';

export interface AwsIamLoginOptions extends Omit<IoOptions, 'dispatcher'> {
  client: ConsulHttpClient;
  credentials: CredentialProvider;
  /** Auth method name. Default `iam-ecs-service-token`. */
  authMethod?: string;
  /** STS region for signing. */
  region: string;
  stsEndpoint?: string;
  iamEndpoint?: string;
  /** Embed the signed iam:GetRole/GetUser request. Default true (consul-ecs default). */
  includeEntity?: boolean;
  serverIdHeaderValue?: string;
  /** Token meta: task id, cluster and `consulLogin.meta`. */
  meta?: Record<string, string>;
  namespace?: string;
  partition?: string;
  datacenter?: string;
  /** Write the token's SecretID here (atomically) once it has replicated. */
  tokenSinkFile?: string;
  /** Mode of the sink file. Default 0o600. */
  tokenSinkMode?: number;
  /**
   * How long to keep retrying while Consul is unreachable or answers 5xx (or
   * STS, when the login asks it who the caller is, is unreachable, answers 5xx or
   * throttles), in milliseconds. Each attempt signs a fresh request. An attempt
   * still waiting for its answer at the deadline is given up. Default 2 minutes.
   */
  deadlineMs?: number;
  /**
   * Given the bearer token of the login that succeeded. consul-ecs hands the same
   * token to consul-dataplane, which logs in with it in turn: AWS accepts the
   * signed request for 15 minutes after it was signed.
   */
  onBearerToken?: (bearerToken: string) => void;
  /**
   * Also retry, until the deadline, refusals saying the auth method or a binding
   * rule does not exist yet (the controller may be setting them up), as
   * consul-ecs's in-task logins do. Default false: a refusal fails at once.
   */
  retryUntilSetUp?: boolean;
  /** Options for the stale read-back of the new token; `false` skips it. */
  waitForReplication?: WaitForTokenOptions | false;
  /** Dispatcher for the AWS calls (STS GetCallerIdentity). */
  awsDispatcher?: Dispatcher;
}

/**
 * Logs in to Consul with the task's IAM identity: signs the bearer token, calls
 * `/v1/acl/login` (retrying while Consul is not up, within a deadline), waits until
 * the token has replicated, and writes it to the sink file. A token that fails to
 * replicate is logged out again so none is left behind.
 */
export async function loginWithAwsIam(opts: AwsIamLoginOptions): Promise<AclToken> {
  const logger = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const authMethod = opts.authMethod ?? DEFAULT_AUTH_METHOD;
  const deadlineMs = opts.deadlineMs ?? 120_000;

  // An attempt still waiting at the deadline (a server that accepted the
  // connection and never answers) is given up then, not after its own timeout.
  const deadline = Number.isFinite(deadlineMs) && deadlineMs > 0 ? AbortSignal.timeout(deadlineMs) : undefined;
  const attemptSignal = deadline && opts.signal ? AbortSignal.any([opts.signal, deadline]) : (deadline ?? opts.signal);

  let token: AclToken;
  let used = '';
  // What the last attempt failed with, and whether one is waiting for Consul's answer.
  let lastError: unknown;
  let attemptInFlight = false;
  try {
    token = await retry(
      async () => {
        const bearerToken = await createLoginBearerToken({
          credentials: opts.credentials,
          region: opts.region,
          stsEndpoint: opts.stsEndpoint,
          iamEndpoint: opts.iamEndpoint,
          includeEntity: opts.includeEntity ?? true,
          serverIdHeaderValue: opts.serverIdHeaderValue,
          dispatcher: opts.awsDispatcher,
          clock,
        });
        logger.debug('signed the login request', { 'include-entity': opts.includeEntity ?? true });
        used = bearerToken;
        attemptInFlight = true;
        return aclLogin(opts.client, {
          authMethod,
          bearerToken,
          meta: opts.meta,
          namespace: opts.namespace,
          partition: opts.partition,
          datacenter: opts.datacenter,
          signal: attemptSignal,
          retryDeadlineMs: 0,
        }).finally(() => (attemptInFlight = false));
      },
      {
        deadlineMs,
        clock,
        signal: opts.signal,
        initialDelayMs: 250,
        maxDelayMs: 5000,
        // aclLogin has already turned the auth method's verdicts into refusals.
        retryable: (err) => isRetryableConsulError(err) || isRetryableAwsError(err) || (opts.retryUntilSetUp === true && isLoginSetUpPending(err)),
        onRetry: (err, attempt, delay) => {
          lastError = err;
          logger.warn('login failed; retrying', { attempt: attempt + 1, 'retry-in-ms': delay, error: describeError(err) });
        },
      },
    );
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    // The deadline ended the login: during an attempt still waiting for Consul's answer, or
    // during the wait before the next one (then the last attempt's error says why).
    const stoppedByDeadline = deadline?.aborted === true && err === deadline.reason;
    if (isRetryableConsulError(err) || stoppedByDeadline) {
      const noAnswer = `no answer from ${opts.client.baseUrl.origin} before the deadline`;
      const lastFailure = lastError === undefined ? '' : describeError(lastError);
      const why = !stoppedByDeadline
        ? describeError(err)
        : attemptInFlight || !lastFailure
          ? `${noAnswer}${lastFailure ? `; the attempt before: ${lastFailure}` : ''}`
          : lastFailure;
      throw new ConsulEcsError(
        'consul-login-timeout',
        `could not log in to Consul at ${opts.client.baseUrl.origin} within ${Math.round(deadlineMs / 1000)}s: ` +
          `${why}; check that the Consul servers are reachable from the task`,
        { cause: err },
      );
    }
    throw err;
  }
  logger.addSecret(token.SecretID);
  logger.info('logged in to Consul', { method: authMethod, 'accessor-id': token.AccessorID });
  opts.onBearerToken?.(used);

  // The sink's file is written while the token is read back, and put in place once
  // it reads back: whoever reads the file gets a token the servers know.
  const sink = opts.tokenSinkFile ? prepareFileAtomic(opts.tokenSinkFile, token.SecretID, { mode: opts.tokenSinkMode ?? 0o600 }) : undefined;
  sink?.catch(() => {}); // awaited below, or abandoned
  try {
    if (opts.waitForReplication !== false) {
      await waitForTokenReplication(opts.client, token.SecretID, {
        clock,
        signal: opts.signal,
        ...opts.waitForReplication,
      });
      logger.debug('the token reads back with stale consistency');
    }
    if (sink) {
      await (await sink).commit();
      logger.info('wrote ACL token', { file: opts.tokenSinkFile });
    }
  } catch (err) {
    await sink?.then(
      (file) => file.abandon(),
      () => {},
    );
    await aclLogout(opts.client, token.SecretID, { retryDeadlineMs: 5000 }).catch((e) =>
      logger.warn('could not log out the unused token', { 'accessor-id': token.AccessorID, error: describeError(e) }),
    );
    throw err;
  }
  return token;
}
