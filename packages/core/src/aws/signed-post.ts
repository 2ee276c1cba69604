import type { Dispatcher } from 'undici';
import { httpRequest, type HttpResponse } from '../http/request.js';
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
}

/**
 * Sends a signed AWS API request. A connection failure becomes an
 * `aws-unreachable` error naming the service, endpoint and operation (never the
 * signature); an abort by `signal` is passed through as it is.
 */
export async function postSignedRequest(signed: SignedRequest, opts: SignedPostOptions): Promise<HttpResponse> {
  try {
    return await httpRequest(signed.url, {
      method: 'POST',
      headers: signed.headers,
      body: signed.body,
      dispatcher: opts.dispatcher,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? 10_000,
    });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new ConsulEcsError(
      'aws-unreachable',
      `cannot reach AWS ${opts.service.toUpperCase()} at ${new URL(signed.url).origin} for ${opts.operation}: ${describeError(err)}`,
      { cause: err },
    );
  }
}
