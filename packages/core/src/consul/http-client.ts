import { readFileSync } from 'node:fs';
import { Agent, type Dispatcher } from 'undici';
import { DEFAULT_MAX_RESPONSE_BYTES, formatBytes, httpRequest, quoteBody, type HttpResponse } from '../http/request.js';
import { systemClock, type Clock } from '../util/clock.js';
import { ConsulEcsError, describeError, type ConsulEcsErrorCode } from '../util/errors.js';
import { retry, type BackoffOptions } from '../util/retry.js';
import type { IoOptions } from '../util/options.js';

export interface ConsulTlsOptions {
  /** CA certificate(s) in PEM form (e.g. `CONSUL_HTTPS_CACERT_PEM`). Wins over `caFile`. */
  caPem?: string;
  /** Path of a PEM CA file (`-ca-file`, `consulServers.http.tls.caCertFile`). */
  caFile?: string;
  /** Name to verify the server certificate against (SNI), when it differs from the host. */
  serverName?: string;
  /** Skip certificate verification. For testing only. */
  insecureSkipVerify?: boolean;
}

export interface ConsulClientOptions extends Pick<IoOptions, 'dispatcher' | 'clock'> {
  /** `https://host:8501`, `http://host:8500` or `host:port` (plain HTTP, as the consul CLI assumes). */
  address: string;
  tls?: ConsulTlsOptions;
  /** An undici dispatcher to send through (tests pass a MockAgent). Overrides `tls`. */
  dispatcher?: Dispatcher;
  /** Query defaults, sent with every call. */
  datacenter?: string;
  partition?: string;
  namespace?: string;
  /**
   * How long one call keeps retrying connection errors, 5xx and 429 before it
   * gives up, in milliseconds. Default 30 s; 0 disables retries.
   */
  retryDeadlineMs?: number;
  backoff?: BackoffOptions;
  /** Timeout of one attempt, in milliseconds. Default 30 s. */
  timeoutMs?: number;
  /**
   * The largest answer read, in bytes; a longer one fails `response-too-large`
   * without a retry. Default 4 MiB (`DEFAULT_MAX_RESPONSE_BYTES`).
   */
  maxResponseBytes?: number;
  /** Called before each retry; the error message is free of tokens. */
  onRetry?: (err: ConsulApiError | ConsulEcsError, attempt: number, delayMs: number) => void;
}

export interface ConsulRequest {
  method?: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  query?: Record<string, string | boolean | undefined>;
  body?: unknown;
  /** ACL token for `X-Consul-Token`. */
  token?: string;
  signal?: AbortSignal;
  /** Override the client's retry deadline for this call. */
  retryDeadlineMs?: number;
  /** Override the client's timeout of one attempt for this call, in milliseconds. */
  timeoutMs?: number;
  /** Override the client's largest answer for this call (lists of tokens or services can be long). */
  maxResponseBytes?: number;
}

/** The largest answer read from the calls that list tokens or services: 64 MiB. */
export const LIST_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** A Consul API call answered with an HTTP error status. */
export class ConsulApiError extends ConsulEcsError {
  readonly status: number;
  /** The whole answer (the message quotes its first 512 bytes). */
  readonly body: string;

  constructor(what: string, status: number, body: string) {
    super(consulErrorCode(status), `${what} failed with HTTP ${status}: ${quoteBody(body) || '(empty body)'}`);
    this.status = status;
    this.body = body;
  }
}

function consulErrorCode(status: number): ConsulEcsErrorCode {
  if (status === 401 || status === 403) return 'consul-permission-denied';
  if (status === 404) return 'consul-not-found';
  return 'consul-api-error';
}

/** Certificate problems: retrying cannot fix them. */
const TLS_ERROR_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

function tlsErrorCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && TLS_ERROR_CODES.has(e.code)) return e.code;
  }
  return undefined;
}

/** Whether a Consul call may succeed when retried: connection errors, 5xx and 429. */
export function isRetryableConsulError(err: unknown): boolean {
  if (err instanceof ConsulApiError) return err.status >= 500 || err.status === 429;
  return err instanceof ConsulEcsError && err.code === 'consul-unreachable';
}

/** Parses `host:port` or a URL into a base URL, plain HTTP unless the scheme says otherwise. */
export function consulBaseUrl(address: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `http://${address}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConsulEcsError('consul-address-invalid', `Consul address "${address}" is not host:port or a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConsulEcsError('consul-address-invalid', `Consul address "${address}" must use http or https`);
  }
  return url;
}

/**
 * A small client of the Consul HTTP API on undici. Retries connection errors,
 * 5xx and 429 with capped exponential backoff and jitter; other 4xx fail at once.
 * Error messages name the call but never the token.
 */
export class ConsulHttpClient {
  readonly #baseUrl: URL;
  readonly #opts: ConsulClientOptions;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #ownsDispatcher: boolean;
  readonly #clock: Clock;

  constructor(opts: ConsulClientOptions) {
    this.#baseUrl = consulBaseUrl(opts.address);
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    if (opts.dispatcher) {
      this.#dispatcher = opts.dispatcher;
      this.#ownsDispatcher = false;
    } else if (this.#baseUrl.protocol === 'https:' && opts.tls) {
      this.#dispatcher = new Agent({ connect: tlsConnectOptions(opts.tls) });
      this.#ownsDispatcher = true;
    } else {
      this.#dispatcher = undefined;
      this.#ownsDispatcher = false;
    }
  }

  /** The server's base URL (`http://host:port`). */
  get baseUrl(): URL {
    return this.#baseUrl;
  }

  /** Sends a call and returns the parsed JSON answer (undefined for an empty body). */
  async call<T = unknown>(req: ConsulRequest): Promise<T> {
    const { status, text } = await this.send(req);
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ConsulEcsError('consul-bad-response', `Consul ${req.method ?? 'GET'} ${req.path} answered HTTP ${status} with a body that is not JSON`);
    }
  }

  /** Sends a call and returns the status and raw body; throws {@link ConsulApiError} on non-2xx. */
  async send(req: ConsulRequest): Promise<{ status: number; text: string }> {
    const method = req.method ?? 'GET';
    const url = new URL(req.path.replace(/^\/*/, '/'), this.#baseUrl);
    const query: Record<string, string | boolean | undefined> = {
      dc: this.#opts.datacenter,
      partition: this.#opts.partition,
      ns: this.#opts.namespace,
      ...req.query,
    };
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === false || v === '') continue;
      url.searchParams.set(k, v === true ? '' : String(v));
    }
    const href = url.toString().replace(/=(?=&|$)/g, '');
    const what = `Consul ${method} ${url.pathname} at ${this.#baseUrl.origin}`;
    const headers: Record<string, string> = {};
    if (req.token) headers['x-consul-token'] = req.token;
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] = 'application/json';
    }
    const secrets = [req.token, ...collectSecrets(req.body)].filter((s): s is string => !!s && s.length >= 8);
    const scrub = (s: string) => secrets.reduce((acc, sec) => acc.split(sec).join('[redacted]'), s);

    const deadline = req.retryDeadlineMs ?? this.#opts.retryDeadlineMs ?? 30_000;
    const limit = req.maxResponseBytes ?? this.#opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    return retry(
      async () => {
        let res: HttpResponse;
        try {
          res = await httpRequest(href, {
            method,
            headers,
            body,
            dispatcher: this.#dispatcher,
            signal: req.signal,
            timeoutMs: req.timeoutMs ?? this.#opts.timeoutMs ?? 30_000,
            maxResponseBytes: limit,
          });
        } catch (err) {
          if (req.signal?.aborted) throw err;
          if (err instanceof ConsulEcsError && err.code === 'response-too-large') {
            throw new ConsulEcsError(
              'response-too-large',
              `${what} answered with a body larger than ${formatBytes(limit)}, the most this call reads; ` +
                "check that the address points at a Consul server's HTTP API",
              { cause: err },
            );
          }
          const tls = tlsErrorCode(err);
          if (tls) {
            throw new ConsulEcsError(
              'consul-tls-error',
              scrub(
                `${what}: the server's certificate was not accepted (${tls}); give the CA that signed it ` +
                  '(CONSUL_HTTPS_CACERT_PEM, a CA file) and the name in it (the TLS server name, e.g. server.<dc>.consul)',
              ),
              { cause: err },
            );
          }
          throw new ConsulEcsError('consul-unreachable', scrub(`${what} could not connect: ${describeError(err)}`), {
            cause: err,
          });
        }
        if (res.statusCode < 200 || res.statusCode >= 300) throw new ConsulApiError(what, res.statusCode, scrub(res.text));
        return { status: res.statusCode, text: res.text };
      },
      {
        ...this.#opts.backoff,
        deadlineMs: deadline,
        maxAttempts: deadline === 0 ? 1 : undefined,
        clock: this.#clock,
        signal: req.signal,
        retryable: isRetryableConsulError,
        onRetry: (err, attempt, delay) => this.#opts.onRetry?.(err as ConsulEcsError, attempt, delay),
      },
    );
  }

  /** Closes connections this client opened itself. */
  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher?.close();
  }
}

/** undici `connect` options for a CA and server name. */
export function tlsConnectOptions(tls: ConsulTlsOptions): { ca?: string; servername?: string; rejectUnauthorized?: boolean } {
  const out: { ca?: string; servername?: string; rejectUnauthorized?: boolean } = {};
  if (tls.caPem) out.ca = tls.caPem;
  else if (tls.caFile) {
    try {
      out.ca = readFileSync(tls.caFile, 'utf8');
    } catch (err) {
      throw new ConsulEcsError('consul-ca-unreadable', `cannot read the Consul CA file ${tls.caFile}: ${describeError(err)}`, {
        cause: err,
      });
    }
  }
  if (tls.serverName) out.servername = tls.serverName;
  if (tls.insecureSkipVerify) out.rejectUnauthorized = false;
  return out;
}

/** Values under keys that hold secrets in request bodies (`BearerToken`, `SecretID`). */
function collectSecrets(body: unknown): string[] {
  if (!body || typeof body !== 'object') return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (typeof v === 'string' && /token|secret/i.test(k)) out.push(v);
  }
  return out;
}
