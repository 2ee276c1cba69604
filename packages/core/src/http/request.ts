import { getGlobalDispatcher, type Dispatcher } from 'undici';

export interface HttpRequestOptions {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  body?: string;
  /** Where to send it; undici's global dispatcher by default. */
  dispatcher?: Dispatcher;
  signal?: AbortSignal;
  /** Timeout for the response headers and for the body, in milliseconds. */
  timeoutMs?: number;
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
 * connection) rejects.
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
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled) c.abort(signal?.reason ?? new Error('request aborted'));
      },
      onResponseStart(_c, status, responseHeaders) {
        statusCode = status;
        headers = responseHeaders;
      },
      onResponseData(_c, chunk) {
        chunks.push(chunk);
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
