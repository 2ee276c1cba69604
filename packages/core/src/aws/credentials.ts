import { httpRequest, type HttpResponse } from '../http/request.js';
import { readFile as fsReadFile } from 'node:fs/promises';
import { systemClock } from '../util/clock.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { isIPv4 } from 'node:net';
import { retry } from '../util/retry.js';
import type { Env, IoOptions } from '../util/options.js';

/**
 * AWS credentials. Temporary ones carry a session token and an expiry. The AWS
 * SDK's `AwsCredentialIdentity` (`@smithy/types`) is one as it is.
 */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When the credentials stop working; absent for long-term keys. */
  expiration?: Date;
  /**
   * The IAM principal the credentials act as, when their source says so (the ECS
   * agent's credentials endpoint gives the task role's ARN). It spares the login
   * a `sts:GetCallerIdentity` round trip to learn which role to `iam:GetRole`.
   */
  principalArn?: string;
}

/**
 * Returns usable credentials, refreshing them when needed. The AWS SDK's
 * credential providers (`fromNodeProviderChain()`, `fromTemporaryCredentials()`…
 * of `@aws-sdk/credential-providers`, typed `AwsCredentialIdentityProvider`) are
 * ones, taken as they are; and each provider here can be an SDK client's
 * `credentials`.
 */
export type CredentialProvider = () => Promise<AwsCredentials>;

/** Fixed keys, e.g. `consulLogin.accessKeyId`/`secretAccessKey` from the config. */
export function fromStaticCredentials(creds: AwsCredentials): CredentialProvider {
  if (!creds.accessKeyId || !creds.secretAccessKey) {
    throw new ConsulEcsError('aws-credentials-invalid', 'AWS credentials need both an access key id and a secret access key; set both or neither');
  }
  return async () => creds;
}

/** `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`; undefined when unset. */
export function fromEnvCredentials(env: Env): CredentialProvider | undefined {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return undefined;
  const creds: AwsCredentials = { accessKeyId, secretAccessKey };
  if (env.AWS_SESSION_TOKEN) creds.sessionToken = env.AWS_SESSION_TOKEN;
  const expiry = env.AWS_CREDENTIAL_EXPIRATION;
  if (expiry) creds.expiration = new Date(expiry);
  return async () => creds;
}

/** The ECS agent's credentials endpoint, fixed by AWS for the relative URI form. */
export const ECS_CREDENTIALS_HOST = '169.254.170.2';

const ALLOWED_HTTP_HOSTS = new Set(['169.254.170.2', '169.254.170.23', 'fd00:ec2::23', 'localhost']);

export interface ContainerCredentialsOptions extends Pick<IoOptions, 'dispatcher' | 'clock'> {
  env: Env;
  readFile?: (path: string) => Promise<string>;
  /** Attempts per fetch on connection errors and 5xx. Default 3. */
  maxAttempts?: number;
  timeoutMs?: number;
}

/**
 * The ECS task role's credentials from the container credentials endpoint:
 * `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on 169.254.170.2) or
 * `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`
 * or `AWS_CONTAINER_AUTHORIZATION_TOKEN`. As in the AWS SDKs, a full URI over plain
 * HTTP must point at a loopback or ECS/EKS agent address. Undefined when neither URI is set.
 */
export function fromContainerCredentials(opts: ContainerCredentialsOptions): CredentialProvider | undefined {
  const { env } = opts;
  const url = containerCredentialsUrl(env);
  if (!url) return undefined;
  const readFile = opts.readFile ?? ((p: string) => fsReadFile(p, 'utf8'));
  const where = `${url.origin}${url.pathname}`;

  return async () => {
    const headers: Record<string, string> = { accept: 'application/json' };
    const tokenFile = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
    let authorization = env.AWS_CONTAINER_AUTHORIZATION_TOKEN;
    if (tokenFile) {
      try {
        authorization = (await readFile(tokenFile)).trim();
      } catch (err) {
        throw new ConsulEcsError(
          'aws-credentials-unavailable',
          `cannot read the container authorization token file ${tokenFile} (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE): ${describeError(err)}`,
          { cause: err },
        );
      }
    }
    if (authorization) {
      if (/[\r\n]/.test(authorization)) {
        throw new ConsulEcsError(
          'aws-credentials-unavailable',
          'the container authorization token contains a line break; check AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]',
        );
      }
      headers.authorization = authorization;
    }

    const body = await retry(
      async () => {
        let res: HttpResponse;
        try {
          res = await httpRequest(url, { headers, dispatcher: opts.dispatcher, timeoutMs: opts.timeoutMs ?? 5000 });
        } catch (err) {
          throw new ConsulEcsError('aws-credentials-unavailable', `cannot reach the container credentials endpoint ${where}: ${describeError(err)}`, {
            cause: err,
          });
        }
        if (res.statusCode !== 200) {
          const err = new ConsulEcsError(
            'aws-credentials-unavailable',
            `the container credentials endpoint ${where} answered HTTP ${res.statusCode}; ` + 'check the task role and AWS_CONTAINER_AUTHORIZATION_TOKEN',
          );
          (err as { status?: number }).status = res.statusCode;
          throw err;
        }
        return res.text;
      },
      {
        maxAttempts: opts.maxAttempts ?? 3,
        clock: opts.clock,
        initialDelayMs: 100,
        maxDelayMs: 1000,
        retryable: (err) => ((err as { status?: number }).status ?? 500) >= 500,
      },
    );

    let parsed: { AccessKeyId?: unknown; SecretAccessKey?: unknown; Token?: unknown; Expiration?: unknown; RoleArn?: unknown };
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new ConsulEcsError('aws-credentials-unavailable', `the container credentials endpoint ${where} returned a body that is not JSON`);
    }
    if (typeof parsed.AccessKeyId !== 'string' || typeof parsed.SecretAccessKey !== 'string') {
      throw new ConsulEcsError('aws-credentials-unavailable', `the container credentials endpoint ${where} returned no AccessKeyId/SecretAccessKey`);
    }
    const creds: AwsCredentials = { accessKeyId: parsed.AccessKeyId, secretAccessKey: parsed.SecretAccessKey };
    if (typeof parsed.Token === 'string' && parsed.Token) creds.sessionToken = parsed.Token;
    if (typeof parsed.RoleArn === 'string' && parsed.RoleArn.startsWith('arn:')) creds.principalArn = parsed.RoleArn;
    if (typeof parsed.Expiration === 'string') {
      const exp = new Date(parsed.Expiration);
      if (Number.isNaN(exp.getTime())) {
        throw new ConsulEcsError('aws-credentials-unavailable', `the container credentials endpoint ${where} returned an invalid Expiration`);
      }
      creds.expiration = exp;
    }
    return creds;
  };
}

function containerCredentialsUrl(env: Env): URL | undefined {
  const relative = env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
  if (relative) {
    return new URL(`http://${ECS_CREDENTIALS_HOST}${relative.startsWith('/') ? '' : '/'}${relative}`);
  }
  const full = env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
  if (!full) return undefined;
  let url: URL;
  try {
    url = new URL(full);
  } catch {
    throw new ConsulEcsError('aws-credentials-invalid', 'AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL; set it to http(s)://host[:port]/path');
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol !== 'http:') {
    throw new ConsulEcsError('aws-credentials-invalid', `AWS_CONTAINER_CREDENTIALS_FULL_URI has unsupported scheme ${url.protocol}; use http or https`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!isLoopback(host) && !ALLOWED_HTTP_HOSTS.has(host)) {
    throw new ConsulEcsError(
      'aws-credentials-invalid',
      `AWS_CONTAINER_CREDENTIALS_FULL_URI host ${host} is not allowed over plain HTTP; ` + 'use https or a loopback/ECS agent address',
    );
  }
  return url;
}

function isLoopback(host: string): boolean {
  if (host === '::1') return true;
  return isIPv4(host) && host.startsWith('127.');
}

/** First provider that is configured, in the order given. */
export function firstConfigured(...providers: Array<CredentialProvider | undefined>): CredentialProvider | undefined {
  return providers.find((p): p is CredentialProvider => p !== undefined);
}

export interface RefreshingOptions extends Pick<IoOptions, 'clock'> {
  /** Refresh this long before expiry. Default 5 minutes (as the AWS SDKs do). */
  refreshWindowMs?: number;
}

/**
 * Caches temporary credentials and refreshes them before they expire. When a
 * refresh fails, still-valid cached credentials are used; once they have expired
 * the refresh error is reported, naming the expiry.
 */
export function refreshing(provider: CredentialProvider, opts: RefreshingOptions = {}): CredentialProvider {
  const clock = opts.clock ?? systemClock;
  const window = opts.refreshWindowMs ?? 5 * 60_000;
  let cached: AwsCredentials | undefined;
  let inflight: Promise<AwsCredentials> | undefined;

  const fresh = (c: AwsCredentials, margin: number) => !c.expiration || c.expiration.getTime() - margin > clock.now();

  const load = async (): Promise<AwsCredentials> => {
    let next: AwsCredentials;
    try {
      next = await provider();
    } catch (err) {
      if (cached && fresh(cached, 0)) return cached;
      if (cached?.expiration) {
        throw new ConsulEcsError(
          'aws-credentials-expired',
          `AWS credentials expired at ${cached.expiration.toISOString()} and could not be refreshed: ${describeError(err)}`,
          { cause: err },
        );
      }
      throw err;
    }
    if (!fresh(next, 0)) {
      throw new ConsulEcsError(
        'aws-credentials-expired',
        `the AWS credentials provided expired at ${next.expiration!.toISOString()} and no fresh ones could be had; ` +
          'check the credentials source (task role, environment keys)',
      );
    }
    cached = next;
    return next;
  };

  return async () => {
    if (cached && fresh(cached, window)) return cached;
    inflight ??= load().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };
}

export interface DefaultCredentialsOptions extends Pick<IoOptions, 'dispatcher' | 'clock'> {
  env: Env;
  /** Explicit keys (config `consulLogin.accessKeyId`/`secretAccessKey`) win over everything. */
  accessKeyId?: string;
  secretAccessKey?: string;
  readFile?: (path: string) => Promise<string>;
}

/**
 * The credential chain consul-ecs uses: explicit keys, then environment keys,
 * then the ECS container credentials endpoint, cached and refreshed.
 */
export function defaultCredentialProvider(opts: DefaultCredentialsOptions): CredentialProvider {
  const explicit =
    opts.accessKeyId || opts.secretAccessKey
      ? fromStaticCredentials({ accessKeyId: opts.accessKeyId ?? '', secretAccessKey: opts.secretAccessKey ?? '' })
      : undefined;
  const chosen = firstConfigured(
    explicit,
    fromEnvCredentials(opts.env),
    fromContainerCredentials({
      env: opts.env,
      dispatcher: opts.dispatcher,
      clock: opts.clock,
      readFile: opts.readFile,
    }),
  );
  if (!chosen) {
    throw new ConsulEcsError(
      'aws-credentials-missing',
      'no AWS credentials found: run in an ECS task with a task role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or ' +
        '_FULL_URI), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or consulLogin.accessKeyId/secretAccessKey',
    );
  }
  return refreshing(chosen, { clock: opts.clock });
}
