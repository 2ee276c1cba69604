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

/**
 * One HTTP request through an undici dispatcher. Every HTTP call of the library
 * goes through here, so a caller's dispatcher (a TLS agent, a proxy, a MockAgent
 * replaying fixtures) sees all of them.
 */
export function httpRequest(url: string | URL, opts: HttpRequestOptions = {}): Promise<Dispatcher.ResponseData> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const dispatcher = opts.dispatcher ?? getGlobalDispatcher();
  return dispatcher.request({
    origin: u.origin,
    path: `${u.pathname}${u.search}`,
    method: opts.method ?? 'GET',
    headers: opts.headers,
    body: opts.body,
    signal: opts.signal,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
  });
}
