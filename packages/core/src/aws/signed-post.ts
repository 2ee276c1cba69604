import type { Dispatcher } from 'undici';
import { DEFAULT_MAX_RESPONSE_BYTES, formatBytes, httpRequest, type HttpResponse } from '../http/request.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import type { SignedRequest } from './sigv4.js';

export interface SignedPostOptions {
  /** For the error message: the service (`sts`, `ecs`) and the operation. */
  service: string;
  operation: string;
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** Default 10 s. */
  timeoutMs?: number;
  /** The largest answer read, in bytes. Default 4 MiB. */
  maxResponseBytes?: number;
}

/**
 * Sends a signed AWS API request. A connection failure becomes an
 * `aws-unreachable` error naming the service, endpoint and operation (never the
 * signature); an answer longer than `maxResponseBytes` is `response-too-large`;
 * an abort by `signal` is passed through as it is.
 */
export async function postSignedRequest(signed: SignedRequest, opts: SignedPostOptions): Promise<HttpResponse> {
  const limit = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  try {
    return await httpRequest(signed.url, {
      method: 'POST',
      headers: signed.headers,
      body: signed.body,
      dispatcher: opts.dispatcher,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? 10_000,
      maxResponseBytes: limit,
    });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    if (err instanceof ConsulEcsError && err.code === 'response-too-large') {
      throw new ConsulEcsError(
        'response-too-large',
        `AWS ${opts.service.toUpperCase()} at ${new URL(signed.url).origin} answered ${opts.operation} with a body larger than ` +
          `${formatBytes(limit)}, the most this call reads; check that the endpoint points at AWS`,
        { cause: err },
      );
    }
    throw new ConsulEcsError(
      'aws-unreachable',
      `cannot reach AWS ${opts.service.toUpperCase()} at ${new URL(signed.url).origin} for ${opts.operation}: ${describeError(err)}`,
      { cause: err },
    );
  }
}
