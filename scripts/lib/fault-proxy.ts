// A TCP proxy on loopback in front of a real peer (Consul's HTTP port, moto),
// whose behaviour a test switches while it runs: pass through, added latency,
// connections reset part-way through a request or a response, an HTTP error
// status (500, 503, 429 with Retry-After) or an endless-looking huge body in
// place of the peer's answer, or a connection accepted and never answered. It
// reads the HTTP/1.1 requests that cross it (request line, headers, a
// Content-Length body) so that a fault can pick requests by method, path,
// header or body on a keep-alive connection, and it counts what it saw.
import { createServer, connect, type Server, type Socket } from 'node:net';

/** What the proxy does with a request (or, for `delay` per connection, with a connection). */
export type Fault =
  | { kind: 'pass' }
  /** Waits `ms` before forwarding: before each request, or once before a connection's first. */
  | { kind: 'delay'; ms: number; per: 'request' | 'connection' }
  /** Forwards this many bytes of the request, then resets both connections. */
  | { kind: 'reset-request'; afterBytes: number }
  /** Forwards the request, passes back this many bytes of the answer, then resets both connections. */
  | { kind: 'reset-response'; afterBytes: number }
  /** Answers this status itself (the peer never sees the request), then closes the connection. */
  | { kind: 'status'; status: 429 | 500 | 502 | 503; retryAfterSeconds?: number; body?: string; contentType?: string }
  /** Answers 200 with a body of `bytes` bytes, streamed with backpressure, then closes the connection. */
  | { kind: 'huge-body'; bytes: number; contentType?: string }
  /** Keeps the connection open and never answers. */
  | { kind: 'hang' };

/** A request as the proxy read it. */
export interface SeenRequest {
  method: string;
  path: string;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
  /** What the proxy did with it. */
  fault: Fault['kind'];
}

export interface FaultRule {
  /** Which requests the fault applies to; every request when absent. */
  when?: (req: Omit<SeenRequest, 'fault'>) => boolean;
  /** Applies it to this many matching requests, then passes the rest through. */
  times?: number;
}

export interface FaultProxyOptions {
  /** The peer: its host and port. */
  target: { host: string; port: number };
  /** Where the proxy listens; default 127.0.0.1 on a free port. */
  host?: string;
  port?: number;
}

const PASS: Fault = { kind: 'pass' };
const REASONS: Record<number, string> = { 200: 'OK', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };
/** Larger request heads are not HTTP the proxy understands: it passes the rest of that connection through. */
const MAX_HEAD_BYTES = 64 * 1024;

/** A loopback TCP proxy whose fault a test sets with {@link FaultProxy.set}. */
export class FaultProxy {
  /** Connections accepted. */
  connections = 0;
  /** Every request read, in order, with what was done with it. */
  readonly requests: SeenRequest[] = [];
  #fault: Fault | Fault[] = PASS;
  #rule: FaultRule = {};
  #applied = 0;
  readonly #sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer();
    const host = opts.host ?? '127.0.0.1';
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => resolve((server.address() as { port: number }).port));
    });
    const proxy = new FaultProxy(server, host, port, opts.target);
    server.on('connection', (socket) => proxy.#accept(socket));
    return proxy;
  }

  /** `http://host:port` of the proxy. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /**
   * Sets the fault for the requests (and connections) from now on; `pass` lets
   * everything through. A list applies its faults in turn, one per matching
   * request, then passes the rest.
   */
  set(fault: Fault | Fault[], rule: FaultRule = {}): void {
    this.#fault = fault;
    this.#rule = rule;
    this.#applied = 0;
  }

  /** The requests seen whose method and path match. */
  seen(method: string, path: string | RegExp): SeenRequest[] {
    return this.requests.filter((r) => r.method === method && (typeof path === 'string' ? r.path.split('?')[0] === path : path.test(r.path)));
  }

  /** Stops listening and destroys every connection through it, hung ones included. */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
  }

  /** The fault for one request: the current one when its rule matches, else pass. */
  #faultFor(req: Omit<SeenRequest, 'fault'>): Fault {
    const list = Array.isArray(this.#fault) ? this.#fault : undefined;
    const fault = list ? list[this.#applied] : (this.#fault as Fault);
    if (!fault || fault.kind === 'pass') return PASS;
    if (fault.kind === 'delay' && fault.per === 'connection') return PASS;
    if (this.#rule.when && !this.#rule.when(req)) return PASS;
    if (this.#rule.times !== undefined && this.#applied >= this.#rule.times) return PASS;
    this.#applied++;
    return fault;
  }

  #accept(client: Socket): void {
    this.connections++;
    this.#track(client);
    const current = Array.isArray(this.#fault) ? undefined : this.#fault;
    const connectionDelay = current?.kind === 'delay' && current.per === 'connection' ? current.ms : 0;
    let upstream: Socket | undefined;
    let upstreamReady: Promise<Socket> | undefined;
    let buffered = Buffer.alloc(0);
    let passThrough = false;
    let busy = false;
    let done = false;
    /** Answer bytes still allowed through before a reset-response fault resets the connection; Infinity when none. */
    let responseBudget = Number.POSITIVE_INFINITY;

    const finish = (how: 'end' | 'reset') => {
      done = true;
      if (how === 'reset') {
        client.resetAndDestroy();
        upstream?.resetAndDestroy();
      } else {
        client.end();
        upstream?.destroy();
      }
    };
    const openUpstream = (): Promise<Socket> => {
      upstreamReady ??= (async () => {
        if (connectionDelay) await sleep(connectionDelay);
        const socket = connect(this.target.port, this.target.host);
        this.#track(socket);
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', reject);
        });
        upstream = socket;
        socket.on('data', (chunk: Buffer) => {
          if (done) return;
          if (chunk.length > responseBudget) {
            client.write(chunk.subarray(0, responseBudget));
            finish('reset');
            return;
          }
          responseBudget -= chunk.length;
          if (!client.write(chunk)) {
            socket.pause();
            client.once('drain', () => socket.resume());
          }
        });
        socket.once('end', () => !done && client.end());
        socket.once('close', () => !done && client.destroy());
        return socket;
      })();
      return upstreamReady;
    };
    const forward = async (bytes: Buffer) => {
      const socket = await openUpstream();
      if (!done) socket.write(bytes);
    };

    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        while (!done) {
          if (passThrough) {
            if (buffered.length) {
              const bytes = buffered;
              buffered = Buffer.alloc(0);
              await forward(bytes);
            }
            return;
          }
          const request = readRequest(buffered);
          if (request === 'incomplete') return;
          if (request === 'not-http') {
            passThrough = true;
            continue;
          }
          buffered = buffered.subarray(request.raw.length);
          const fault = this.#faultFor(request.seen);
          this.requests.push({ ...request.seen, fault: fault.kind });
          await this.#apply(fault, request.raw, client, { forward, finish, limitResponse: (n) => (responseBudget = n) });
        }
      } catch {
        if (!done) finish('reset');
      } finally {
        busy = false;
      }
    };

    client.on('data', (chunk: Buffer) => {
      if (done) return;
      buffered = Buffer.concat([buffered, chunk]);
      void pump();
    });
    client.once('end', () => {
      if (!done) upstream?.end();
    });
    client.once('close', () => {
      done = true;
      upstream?.destroy();
    });
  }

  async #apply(
    fault: Fault,
    raw: Buffer,
    client: Socket,
    io: { forward: (bytes: Buffer) => Promise<void>; finish: (how: 'end' | 'reset') => void; limitResponse: (bytes: number) => void },
  ): Promise<void> {
    switch (fault.kind) {
      case 'pass':
        return io.forward(raw);
      case 'delay':
        await sleep(fault.ms);
        return io.forward(raw);
      case 'reset-request':
        if (fault.afterBytes > 0) await io.forward(raw.subarray(0, Math.min(fault.afterBytes, raw.length)));
        // Let the bytes leave before the reset.
        await sleep(20);
        return io.finish('reset');
      case 'reset-response':
        io.limitResponse(fault.afterBytes);
        return io.forward(raw);
      case 'status': {
        const body = fault.body ?? `fault proxy: HTTP ${fault.status}\n`;
        const head = [
          `HTTP/1.1 ${fault.status} ${REASONS[fault.status] ?? 'Error'}`,
          `Content-Type: ${fault.contentType ?? 'text/plain'}`,
          `Content-Length: ${Buffer.byteLength(body)}`,
          ...(fault.retryAfterSeconds !== undefined ? [`Retry-After: ${fault.retryAfterSeconds}`] : []),
          'Connection: close',
        ];
        client.write(`${head.join('\r\n')}\r\n\r\n${body}`);
        return io.finish('end');
      }
      case 'huge-body':
        await streamBody(client, fault.bytes, fault.contentType ?? 'application/json');
        return io.finish('end');
      case 'hang':
        return new Promise<void>((resolve) => client.once('close', () => resolve()));
    }
  }
}

/** One whole request at the start of `buf`, or what stops it being read. */
function readRequest(buf: Buffer): 'incomplete' | 'not-http' | { raw: Buffer; seen: Omit<SeenRequest, 'fault'> } {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return buf.length > MAX_HEAD_BYTES ? 'not-http' : 'incomplete';
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const [method, path] = lines[0]!.split(' ');
  if (!method || !path) return 'not-http';
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  // Chunked request bodies are not read: the rest of the connection passes through.
  if (headers['transfer-encoding']) return 'not-http';
  const length = Number(headers['content-length'] ?? 0);
  if (!Number.isInteger(length) || length < 0) return 'not-http';
  const total = end + 4 + length;
  if (buf.length < total) return 'incomplete';
  return { raw: buf.subarray(0, total), seen: { method, path, headers, body: buf.subarray(end + 4, total).toString('utf8') } };
}

/** Writes a 200 answer with a chunked body of `bytes` bytes (`"aaa…`), waiting for the reader. */
async function streamBody(socket: Socket, bytes: number, contentType: string): Promise<void> {
  socket.write(`HTTP/1.1 200 OK\r\nContent-Type: ${contentType}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n`);
  // Buffers are queued, not copied: each chunk is written whole, from buffers never changed.
  const filler = Buffer.alloc(64 * 1024, 'a');
  const first = Buffer.concat([Buffer.from('"'), filler.subarray(1)]);
  for (let sent = 0; sent < bytes && !socket.destroyed;) {
    const part = (sent === 0 ? first : filler).subarray(0, Math.min(filler.length, bytes - sent));
    sent += part.length;
    socket.write(`${part.length.toString(16)}\r\n`);
    socket.write(part);
    if (!socket.write('\r\n')) {
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    }
  }
  if (!socket.destroyed) socket.write('0\r\n\r\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
