// A counting HTTP proxy for the benchmarks and the scale tests: put in front of
// Consul or moto, it records every request a contender makes (operation, start,
// end, status) and forwards it unchanged (the Host header too, so that SigV4
// signatures still check out at moto). In front of several Consul servers it hands
// the requests to each in turn, as DNS hands tasks one of the servers' addresses.
//
// In front of moto's ECS it can also answer as ECS does where moto does not
// (moto 5.2.5): ListTasks in pages (at most 100 ARNs, `maxResults`, an opaque
// `nextToken`), with ECS's default filter `desiredStatus: RUNNING` when the
// request gives none (moto then lists stopped tasks too), and DescribeTasks of
// more than 100 tasks refused, as ECS refuses it. Without that a contender's
// calls against moto would not be the calls it makes against ECS.
import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** ECS's largest ListTasks page and DescribeTasks batch. */
export const ECS_PAGE_SIZE = 100;

export interface ProxiedCall {
  /** `ListTasks` for the AWS JSON APIs (their X-Amz-Target), else `METHOD /path` with IDs as `:id`. */
  operation: string;
  method: string;
  /** The path with its query string. */
  url: string;
  /** The answer's status; {@link PROXY_ERROR} when the proxy could not forward the request. */
  status: number;
  /** Milliseconds on `performance.now()`'s clock. */
  startMs: number;
  endMs: number;
}

export interface EcsFidelity {
  /** The ARNs of a cluster's tasks whose desired status is RUNNING (asked of moto by the proxy itself, not counted). */
  runningTaskArns: (cluster: string) => Promise<string[]>;
}

/** The status a call is recorded with when the proxy could not forward it (no connection, a reset). */
export const PROXY_ERROR = 0;

export interface CountingProxyOptions {
  /** Where requests go, e.g. `http://127.0.0.1:8500`; several: each in turn. */
  target: string | readonly string[];
  /** Answer ListTasks and DescribeTasks as ECS does (see the file's header). */
  ecs?: EcsFidelity;
  /** Connections kept open to each target at most. Default 64. */
  maxSockets?: number;
}

export class CountingProxy {
  readonly calls: ProxiedCall[] = [];
  readonly #server: Server;
  readonly #targets: URL[];
  #next = 0;
  readonly #agent: Agent;
  readonly #ecs: EcsFidelity | undefined;

  private constructor(opts: CountingProxyOptions) {
    this.#targets = (typeof opts.target === 'string' ? [opts.target] : opts.target).map((t) => new URL(t));
    if (!this.#targets.length) throw new Error('CountingProxy needs a target');
    this.#ecs = opts.ecs;
    this.#agent = new Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64 });
    this.#server = createServer((req, res) => {
      const startMs = performance.now();
      const target = this.#targets[this.#next++ % this.#targets.length]!;
      this.#handle(req, res, target, startMs).catch((err: unknown) => {
        this.calls.push({
          operation: operationOf(req),
          method: req.method ?? 'GET',
          url: req.url ?? '/',
          status: PROXY_ERROR,
          startMs,
          endMs: performance.now(),
        });
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`counting proxy: forwarding ${req.method} ${req.url} to ${target.origin} failed: ${String(err)}`);
      });
    });
  }

  static async start(opts: CountingProxyOptions): Promise<CountingProxy> {
    const proxy = new CountingProxy(opts);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Forgets the calls recorded so far. */
  reset(): void {
    this.calls.length = 0;
  }

  /** The calls recorded since `fromMs` (performance.now()), or all. */
  since(fromMs = 0): ProxiedCall[] {
    return this.calls.filter((c) => c.startMs >= fromMs);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#agent.destroy();
  }

  async #handle(req: IncomingMessage, res: ServerResponse, target: URL, startMs: number): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const operation = operationOf(req);
    let reply: Upstream;
    if (this.#ecs && operation === 'DescribeTasks' && describedCount(body) > ECS_PAGE_SIZE) {
      reply = jsonReply(400, { __type: 'InvalidParameterException', message: `Tasks cannot be more than ${ECS_PAGE_SIZE}` });
    } else {
      reply = await this.#forward(req, body, target);
      if (this.#ecs && operation === 'ListTasks' && reply.status === 200) reply = await this.#pageListTasks(body, reply);
    }
    const headers = { ...reply.headers };
    delete headers['transfer-encoding'];
    headers['content-length'] = String(reply.body.length);
    res.writeHead(reply.status, headers);
    res.end(reply.body);
    this.calls.push({ operation, method: req.method ?? 'GET', url: req.url ?? '/', status: reply.status, startMs, endMs: performance.now() });
  }

  #forward(req: IncomingMessage, body: Buffer, target: URL): Promise<Upstream> {
    return new Promise((resolve, reject) => {
      const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent: this.#agent }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 502, headers: { ...r.headers }, body: Buffer.concat(chunks) }));
        r.on('error', reject);
      });
      up.on('error', reject);
      up.end(body);
    });
  }

  /** moto's whole listing, cut to ECS's page and filtered as ECS filters by default. */
  async #pageListTasks(requestBody: Buffer, reply: Upstream): Promise<Upstream> {
    const input = JSON.parse(requestBody.toString('utf8') || '{}') as { cluster?: string; desiredStatus?: string; nextToken?: string; maxResults?: number };
    let arns = (JSON.parse(reply.body.toString('utf8')) as { taskArns?: string[] }).taskArns ?? [];
    if (!input.desiredStatus) {
      const running = new Set(await this.#ecs!.runningTaskArns(input.cluster ?? 'default'));
      arns = arns.filter((a) => running.has(a));
    }
    const offset = input.nextToken ? Number(Buffer.from(input.nextToken, 'base64url').toString('utf8')) : 0;
    if (!Number.isInteger(offset) || offset < 0) return jsonReply(400, { __type: 'InvalidParameterException', message: 'Invalid nextToken' });
    const size = Math.min(input.maxResults ?? ECS_PAGE_SIZE, ECS_PAGE_SIZE);
    const page = arns.slice(offset, offset + size);
    const next = offset + size < arns.length ? Buffer.from(String(offset + size)).toString('base64url') : undefined;
    return { ...reply, body: Buffer.from(JSON.stringify({ taskArns: page, ...(next ? { nextToken: next } : {}) })) };
  }
}

interface Upstream {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function jsonReply(status: number, doc: unknown): Upstream {
  return { status, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: Buffer.from(JSON.stringify(doc)) };
}

function describedCount(body: Buffer): number {
  try {
    return ((JSON.parse(body.toString('utf8')) as { tasks?: unknown[] }).tasks ?? []).length;
  } catch {
    return 0;
  }
}

/** What a request does: `ListTasks` for the AWS JSON APIs (their X-Amz-Target), else `METHOD /path` with IDs as `:id`. */
function operationOf(req: IncomingMessage): string {
  const target = req.headers['x-amz-target'];
  return typeof target === 'string' ? target.slice(target.lastIndexOf('.') + 1) : `${req.method} ${operationPath(req.url ?? '/')}`;
}

/** A request's path without its query, with IDs (UUIDs, ARNs, task IDs) as `:id`, so that calls group by what they do. */
export function operationPath(url: string): string {
  const path = url.split('?')[0]!;
  // A node's name is the cluster's ARN, which has a '/' that not every client escapes.
  const node = /^(\/v1\/catalog\/(?:node-services|node)\/)./.exec(path);
  if (node) return `${node[1]}:node`;
  return path
    .split('/')
    .map((seg) => {
      const s = decodeURIComponent(seg);
      return /^[0-9a-f]{8}-[0-9a-f]{4}-|^arn:|^[0-9a-f]{32}$/i.test(s) ? ':id' : seg;
    })
    .join('/');
}

/** How many calls of each operation, e.g. `{ ListTasks: 10, 'DELETE /v1/acl/token/:id': 500 }`. */
export function countByOperation(calls: readonly ProxiedCall[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of calls) out[c.operation] = (out[c.operation] ?? 0) + 1;
  return out;
}

/** A call's status as text: `200`, `429`…, or `proxy-error` when it could not be forwarded. */
function statusText(status: number): string {
  return status === PROXY_ERROR ? 'proxy-error' : String(status);
}

/** How many answers of each status, e.g. `{ 200: 500, 429: 3 }`. */
export function countByStatus(calls: readonly ProxiedCall[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of calls) out.set(statusText(c.status), (out.get(statusText(c.status)) ?? 0) + 1);
  return out;
}

/** How many answers of each operation and status, e.g. `{ 'PUT /v1/catalog/register 429': 3 }`. */
export function countByOperationAndStatus(calls: readonly ProxiedCall[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of calls) {
    const key = `${c.operation} ${statusText(c.status)}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}
