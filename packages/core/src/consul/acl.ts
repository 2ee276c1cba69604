import { quoteBody } from '../http/request.js';
import { ConsulApiError, isRetryableConsulError, type ConsulHttpClient } from './http-client.js';
import { systemClock, type Clock } from '../util/clock.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { backoffDelay } from '../util/retry.js';

/** Meta keys consul-ecs puts on every login token (the controller reaps tokens by them). */
export const TOKEN_META_TASK_ID = 'consul.hashicorp.com/task-id';
export const TOKEN_META_CLUSTER = 'consul.hashicorp.com/cluster';

/** The fields of Consul's `structs.ACLToken` that callers use. */
export interface AclToken {
  AccessorID: string;
  SecretID: string;
  Description?: string;
  AuthMethod?: string;
  Local?: boolean;
  Namespace?: string;
  Partition?: string;
  ServiceIdentities?: Array<{ ServiceName: string; Datacenters?: string[] }>;
  NodeIdentities?: Array<{ NodeName: string; Datacenter: string }>;
  Roles?: Array<{ ID: string; Name: string }>;
  Policies?: Array<{ ID: string; Name: string }>;
  CreateTime?: string;
  ExpirationTime?: string;
}

export interface LoginInput {
  authMethod: string;
  bearerToken: string;
  meta?: Record<string, string>;
  /** Enterprise: namespace and partition of the auth method; datacenter to log in to. */
  namespace?: string;
  partition?: string;
  datacenter?: string;
  signal?: AbortSignal;
  retryDeadlineMs?: number;
}

/**
 * Consul answers most verdicts of an auth method with HTTP 500 (the RPC error is
 * passed through), so a 500 is only worth another try when its text says the
 * cluster or AWS was briefly unavailable: among them a follower's call to a
 * leader that stopped under it (`rpc error making call: stream closed`).
 */
const TRANSIENT_LOGIN_FAILURE =
  /no cluster leader|leadership lost|rpc error (making call|getting client): (EOF|stream closed|session shutdown|.*connection refused|.*connection reset|.*broken pipe|.*i\/o timeout)|context deadline exceeded|error making request|not ready to serve|raft/i;

/** Hints for the verdicts of the aws-iam auth method, by the text Consul returns. */
const LOGIN_REFUSAL_HINTS: Array<[RegExp, string]> = [
  [/is not trusted/, "the IAM role is not under a path the auth method trusts (BoundIAMPrincipalARNs, the controller's iamRolePath)"],
  [/invalid bind name|entity_tags/, 'the IAM role has no consul.hashicorp.com.service-name tag, so no service identity can be bound'],
  [
    /X-Consul-IAM-ServerID|expected ".*" but got/i,
    "the server ID header value does not match the auth method's ServerIDHeaderValue (consulLogin.serverIdHeaderValue)",
  ],
  [/GetEntity/, 'the auth method reads IAM entity details: log in with includeEntity enabled'],
  [
    /response body is invalid|received error code 4\d\d|unique id mismatch/,
    "AWS refused the signed request: the signature, the credentials (expired?) or the role's iam:GetRole permission on itself",
  ],
  [/auth method .*not found/i, 'no auth method of that name exists in Consul (consulLogin.method)'],
];

/** Whether a failed login answer is a refusal (final) rather than a passing fault. */
export function isLoginRefusal(status: number, body: string): boolean {
  if (status === 429) return false;
  if (status < 500) return true;
  return status === 500 && !TRANSIENT_LOGIN_FAILURE.test(body);
}

/**
 * Whether a login refusal says the auth method, or a binding rule for the
 * identity, does not exist yet: what a task that starts while the controller is
 * setting up Consul (a fresh deployment) gets. Consul answers a login that no
 * binding rule matches with a bare "Permission denied"; other refusals (an
 * untrusted principal, a missing tag) say why, and are final.
 */
export function isLoginSetUpPending(err: unknown): boolean {
  if (!(err instanceof ConsulEcsError) || err.code !== 'consul-login-refused') return false;
  const answer = err.cause;
  return answer instanceof ConsulApiError && answer.status === 403 && /auth method .*not found|^\s*Permission denied\s*$/i.test(answer.body);
}

/**
 * `POST /v1/acl/login`. A refusal by the auth method becomes a
 * `consul-login-refused` error carrying Consul's reason and what to check.
 */
export async function aclLogin(client: ConsulHttpClient, input: LoginInput): Promise<AclToken> {
  try {
    const answer = await client.call<unknown>({
      method: 'POST',
      path: '/v1/acl/login',
      query: { ns: input.namespace, partition: input.partition, dc: input.datacenter },
      body: { AuthMethod: input.authMethod, BearerToken: input.bearerToken, Meta: input.meta ?? {} },
      signal: input.signal,
      retryDeadlineMs: input.retryDeadlineMs,
    });
    return checkToken(answer, 'POST /v1/acl/login');
  } catch (err) {
    if (err instanceof ConsulApiError && isLoginRefusal(err.status, err.body)) {
      const reason = quoteBody(err.body) || '(no reason given)';
      const hint =
        LOGIN_REFUSAL_HINTS.find(([re]) => re.test(err.body))?.[1] ??
        "check the task role's path and consul.hashicorp.com.service-name tag, and the server ID header value";
      throw new ConsulEcsError(
        'consul-login-refused',
        `Consul refused the login to auth method "${input.authMethod}" (HTTP ${err.status}): ${reason}. Likely cause: ${hint}`,
        { cause: err },
      );
    }
    throw err;
  }
}

/** `POST /v1/acl/logout`: destroys a token made by login. */
export async function aclLogout(client: ConsulHttpClient, token: string, opts: { signal?: AbortSignal; retryDeadlineMs?: number } = {}): Promise<void> {
  await client.send({ method: 'POST', path: '/v1/acl/logout', token, ...opts });
}

/** `GET /v1/acl/token/self`, optionally with stale consistency. */
export async function aclTokenSelf(
  client: ConsulHttpClient,
  token: string,
  opts: { stale?: boolean; signal?: AbortSignal; retryDeadlineMs?: number } = {},
): Promise<AclToken> {
  const answer = await client.call<unknown>({
    path: '/v1/acl/token/self',
    query: { stale: opts.stale },
    token,
    signal: opts.signal,
    retryDeadlineMs: opts.retryDeadlineMs,
  });
  return checkToken(answer, 'GET /v1/acl/token/self');
}

/** An ACL token answer: an object with string AccessorID and SecretID, else consul-bad-response. */
function checkToken(answer: unknown, call: string): AclToken {
  const token = answer as Partial<AclToken> | null | undefined;
  if (typeof token !== 'object' || token === null || Array.isArray(token) || typeof token.AccessorID !== 'string' || typeof token.SecretID !== 'string') {
    throw new ConsulEcsError('consul-bad-response', `Consul ${call} answered with no ACL token (an object with string AccessorID and SecretID)`);
  }
  return token as AclToken;
}

export interface WaitForTokenOptions {
  /** Attempts that find the token unknown, in all. Default 20 (as consul-ecs does). */
  attempts?: number;
  /** Pause between attempts that find the token unknown, in milliseconds. Default 100. */
  intervalMs?: number;
  /**
   * How long to keep trying, with capped exponential backoff, while the servers
   * answer 429 or 5xx (request rate limits, an election) or cannot be reached, in
   * milliseconds. These answers say nothing of the token and do not count as
   * attempts. Default 60 s.
   */
  busyDeadlineMs?: number;
  clock?: Clock;
  signal?: AbortSignal;
}

/**
 * Waits until a fresh login token can be read with stale consistency, so that
 * every server it may reach knows it (Raft replication), as consul-ecs does
 * before using a token. Fails after a bounded number of attempts that find the
 * token unknown, or once the servers have been busy or unreachable for
 * `busyDeadlineMs`: a server that rate-limits the read (429, 503) is asked
 * again after a backoff, as many tasks logging in at once make it do.
 */
export async function waitForTokenReplication(client: ConsulHttpClient, token: string, opts: WaitForTokenOptions = {}): Promise<AclToken> {
  const attempts = opts.attempts ?? 20;
  const busyDeadlineMs = opts.busyDeadlineMs ?? 60_000;
  const clock = opts.clock ?? systemClock;
  const started = clock.now();
  let last: unknown;
  let unknown = 0;
  let busy = 0;
  for (;;) {
    try {
      return await aclTokenSelf(client, token, { stale: true, signal: opts.signal, retryDeadlineMs: 0 });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      last = err;
    }
    if (isRetryableConsulError(last)) {
      const left = started + busyDeadlineMs - clock.now();
      if (left <= 0) break;
      await clock.sleep(Math.min(backoffDelay(busy++, { initialDelayMs: 250, maxDelayMs: 5000 }), left), opts.signal);
      continue;
    }
    if (++unknown >= attempts) break;
    await clock.sleep(opts.intervalMs ?? 100, opts.signal);
  }
  const why = isRetryableConsulError(last) ? `the servers were busy or unreachable for ${Math.round(busyDeadlineMs / 1000)}s` : `after ${unknown} attempts`;
  throw new ConsulEcsError(
    'consul-token-not-replicated',
    `the new ACL token could not be read back with stale consistency ${why} ` +
      `(last error: ${describeError(last)}); check that the Consul server cluster is healthy`,
    { cause: last },
  );
}
