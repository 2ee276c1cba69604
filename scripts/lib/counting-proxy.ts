// A counting HTTP proxy for the benchmarks and the scale tests: put in front of
// Consul or moto, it records every request a contender makes (operation, start,
// end, status) and forwards it unchanged (the Host header too, so that SigV4
// signatures still check out at moto).
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
  status: number;
  /** Milliseconds on `performance.now()`'s clock. */
  startMs: number;
  endMs: number;
}

export interface EcsFidelity {
  /** The ARNs of a cluster's tasks whose desired status is RUNNING (asked of moto by the proxy itself, not counted). */
  runningTaskArns: (cluster: string) => Promise<string[]>;
}

export interface CountingProxyOptions {
  /** Where requests go, e.g. `http://127.0.0.1:8500`. */
  target: string;
  /** Answer ListTasks and DescribeTasks as ECS does (see the file's header). */
  ecs?: EcsFidelity;
}

export class CountingProxy {
  readonly calls: ProxiedCall[] = [];
  readonly #server: Server;
  readonly #target: URL;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 64 });
  readonly #ecs: EcsFidelity | undefined;

  private constructor(opts: CountingProxyOptions) {
    this.#target = new URL(opts.target);
    this.#ecs = opts.ecs;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`counting proxy: forwarding ${req.method} ${req.url} to ${this.#target.origin} failed: ${String(err)}`);
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

  /** The calls recorded since `fromMs` (performance.now()), or all. */
  since(fromMs = 0): ProxiedCall[] {
    return this.calls.filter((c) => c.startMs >= fromMs);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#agent.destroy();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startMs = performance.now();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const target = req.headers['x-amz-target'];
    const operation = typeof target === 'string' ? target.slice(target.lastIndexOf('.') + 1) : `${req.method} ${operationPath(req.url ?? '/')}`;
    let reply: Upstream;
    if (this.#ecs && operation === 'DescribeTasks' && describedCount(body) > ECS_PAGE_SIZE) {
      reply = jsonReply(400, { __type: 'InvalidParameterException', message: `Tasks cannot be more than ${ECS_PAGE_SIZE}` });
    } else {
      reply = await this.#forward(req, body);
      if (this.#ecs && operation === 'ListTasks' && reply.status === 200) reply = await this.#pageListTasks(body, reply);
    }
    const headers = { ...reply.headers };
    delete headers['transfer-encoding'];
    headers['content-length'] = String(reply.body.length);
    res.writeHead(reply.status, headers);
    res.end(reply.body);
    this.calls.push({ operation, method: req.method ?? 'GET', url: req.url ?? '/', status: reply.status, startMs, endMs: performance.now() });
  }

  #forward(req: IncomingMessage, body: Buffer): Promise<Upstream> {
    return new Promise((resolve, reject) => {
      const up = httpRequest(
        { host: this.#target.hostname, port: this.#target.port, method: req.method, path: req.url, headers: req.headers, agent: this.#agent },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve({ status: r.statusCode ?? 502, headers: { ...r.headers }, body: Buffer.concat(chunks) }));
          r.on('error', reject);
        },
      );
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
