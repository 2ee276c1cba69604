// A small application container for simulated mesh tasks (scripts/lib/mesh-task-runner.ts).
// It serves HTTP on 127.0.0.1:APP_PORT, answering every request with who it is
// ({"service","task"} from APP_SERVICE and APP_TASK_ID), the path, and the
// x-forwarded-client-cert header its sidecar added, if any; optionally calls
// APP_CALL_URL every APP_CALL_INTERVAL_MS; and takes requests on stdin, one JSON
// object a line:
//   {"id":1,"fetch":"http://…"}                         an HTTP GET
//   {"id":2,"lookup":"name"}                            a DNS lookup (getaddrinfo, as applications resolve)
//   {"id":3,"tcp":{"host":"…","port":1,"send":"…"}}     a raw TCP exchange: what came back before the peer closed
// Everything it does goes to stdout as one JSON object a line, with `at` (ms since the epoch):
//   {"event":"listening"}, {"event":"call",ok,status?,body?,error?}, {"event":"reply",id,…},
//   {"event":"sigterm"}, {"event":"exit"}.
// SIGTERM ends it at once: under `consul-ecs app-entrypoint -shutdown-delay`, that
// SIGTERM comes once the delay has passed.
import { lookup } from 'node:dns/promises';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const service = process.env.APP_SERVICE ?? 'app';
const taskId = process.env.APP_TASK_ID ?? '';
const port = Number(process.env.APP_PORT ?? 8080);
const callUrl = process.env.APP_CALL_URL;
const callInterval = Number(process.env.APP_CALL_INTERVAL_MS ?? 250);
const timeoutMs = Number(process.env.APP_REQUEST_TIMEOUT_MS ?? 2000);

const emit = (event, fields = {}) => process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);
const describe = (err) => {
  const cause = err?.cause;
  return [err?.message, cause?.code ?? cause?.message].filter(Boolean).join(': ');
};

async function get(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    return { ok: res.status === 200, status: res.status, body };
  } catch (err) {
    return { ok: false, error: describe(err) };
  }
}

function tcpExchange({ host, port: p, send }) {
  return new Promise((resolve) => {
    const chunks = [];
    const sock = connect({ host, port: p });
    const done = (fields) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ connected, received: Buffer.concat(chunks).toString('latin1'), ...fields });
    };
    let connected = false;
    const timer = setTimeout(() => done({ closed: false, timedOut: true }), timeoutMs);
    sock.on('connect', () => {
      connected = true;
      sock.write(send ?? '');
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => done({ closed: true }));
    sock.on('error', (err) => done({ closed: true, error: err.code ?? err.message }));
  });
}

const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ service, task: taskId, path: req.url, xfcc: req.headers['x-forwarded-client-cert'] ?? null }));
});
server.listen(port, '127.0.0.1', () => emit('listening', { port }));

if (callUrl) {
  const loop = async () => {
    const result = await get(callUrl);
    emit('call', { url: callUrl, ...result });
    setTimeout(loop, callInterval);
  };
  setTimeout(loop, 0);
}

createInterface({ input: process.stdin }).on('line', async (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    return emit('reply', { error: 'not JSON' });
  }
  const { id } = req;
  if (req.fetch) return emit('reply', { id, ...(await get(req.fetch)) });
  if (req.lookup) {
    try {
      const addrs = await lookup(req.lookup, { all: true, family: 4 });
      return emit('reply', { id, ok: true, addresses: addrs.map((a) => a.address) });
    } catch (err) {
      return emit('reply', { id, ok: false, error: err.code ?? err.message });
    }
  }
  if (req.tcp) return emit('reply', { id, ...(await tcpExchange(req.tcp)) });
  emit('reply', { id, error: 'unknown request' });
});

process.on('SIGTERM', () => {
  emit('sigterm');
  server.close();
  emit('exit');
  process.exit(0);
});
