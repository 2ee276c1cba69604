import { getGlobalDispatcher, type Dispatcher } from 'undici';
import { ConsulEcsError } from '../util/errors.js';

/**
 * The largest response body read by default, in bytes: Consul's and AWS's JSON
 * and XML answers are a few kilobytes. A longer one fails `response-too-large`.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** How many bytes of a response body an error message quotes at most. */
export const QUOTED_BODY_BYTES = 512;

/** A response body for an error message: trimmed, at most {@link QUOTED_BODY_BYTES} bytes, marked when cut. */
export function quoteBody(text: string): string {
  const trimmed = text.trim();
  if (Buffer.byteLength(trimmed) <= QUOTED_BODY_BYTES) return trimmed;
  // Cut on a character boundary (a partial UTF-8 sequence decodes to U+FFFD, dropped).
  const cut = Buffer.from(trimmed)
    .subarray(0, QUOTED_BODY_BYTES)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
  return `${cut}… (${Buffer.byteLength(trimmed)} bytes in all)`;
}

/** A byte count for a message: `4 MiB`, `200 kiB`, `100 bytes`. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} kiB`;
  return `${n} bytes`;
}

export interface HttpRequestOptions {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  body?: string;
  /** Where to send it; undici's global dispatcher by default. */
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** Timeout for the response headers and for the body, in milliseconds. */
  timeoutMs?: number;
  /**
   * The largest body read, in bytes; a longer one (by its Content-Length, or as
   * it arrives) stops the request with a `response-too-large` error. Default
   * {@link DEFAULT_MAX_RESPONSE_BYTES}.
   */
  maxResponseBytes?: number;
}

/** A response, read whole. */
export interface HttpResponse {
  statusCode: number;
  /** Header names in lower case. */
  headers: Record<string, string | string[] | undefined>;
  /** The body, decoded as UTF-8. */
  text: string;
}

/**
 * One HTTP request through an undici dispatcher, its response read whole. Every
 * HTTP call of the library goes through here, so a caller's dispatcher (a TLS
 * agent, a proxy, a MockAgent replaying fixtures) sees all of them.
 *
 * It dispatches with a handler that collects the body, rather than through
 * undici's `request()`, which hands the body over as a stream: the library reads
 * every answer whole (they are small), and the stream costs each command ~1 ms of
 * start-up per request. A connection or body failure, a timeout, or an abort by
 * `signal` (with its reason, at once, even while the request waits for a
 * connection) rejects. A body longer than `maxResponseBytes` rejects with a
 * `response-too-large` error as soon as that is known, so that memory stays
 * bounded whatever the other side sends.
 *
 * It resolves in the event loop's turn after the one the response ended in: undici
 * puts the connection back in its pool from a setImmediate of its own, queued
 * after this handler's callback returns, and a request made before that would
 * open another connection (with HTTPS, another TLS handshake).
 */
export function httpRequest(url: string | URL, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const dispatcher = opts.dispatcher ?? getGlobalDispatcher();
  const { signal } = opts;
  return new Promise<HttpResponse>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    const settle = (err: unknown, res?: HttpResponse) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (res) resolve(res);
      else reject(err);
    };
    const onAbort = () => {
      controller?.abort(signal!.reason);
      settle(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    let statusCode = 0;
    let headers: HttpResponse['headers'] = {};
    const chunks: Buffer[] = [];
    let received = 0;
    const limit = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const tooLarge = (c: Dispatcher.DispatchController, detail: string) => {
      const err = new ConsulEcsError('response-too-large', `the answer's body is larger than the ${formatBytes(limit)} this call reads${detail}`);
      chunks.length = 0;
      settle(err);
      c.abort(err);
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled) c.abort(signal?.reason ?? new Error('request aborted'));
      },
      onResponseStart(c, status, responseHeaders) {
        statusCode = status;
        headers = responseHeaders;
        const declared = Number(responseHeaders['content-length']);
        if (declared > limit) tooLarge(c, ` (Content-Length: ${declared})`);
      },
      onResponseData(c, chunk) {
        if (settled) return;
        received += chunk.length;
        if (received > limit) tooLarge(c, '');
        else chunks.push(chunk);
      },
      onResponseEnd() {
        const res = { statusCode, headers, text: Buffer.concat(chunks).toString('utf8') };
        // The response is whole: an abort from now on changes nothing.
        signal?.removeEventListener('abort', onAbort);
        setImmediate(() => setImmediate(() => settle(undefined, res)));
      },
      onResponseError(_c, err) {
        settle(err);
      },
    };
    try {
      dispatcher.dispatch(
        {
          origin: u.origin,
          path: `${u.pathname}${u.search}`,
          method: opts.method ?? 'GET',
          headers: opts.headers,
          body: opts.body,
          headersTimeout: opts.timeoutMs,
          bodyTimeout: opts.timeoutMs,
        },
        handler,
      );
    } catch (err) {
      settle(err);
    }
  });
}
