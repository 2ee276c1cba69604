import { connect } from 'node:net';

/** Exit codes of `consul-ecs net-dial`, as consul-ecs defines them. */
export const NET_DIAL_OK = 0;
export const NET_DIAL_USAGE = 1;
export const NET_DIAL_FAILED = 2;

/** Opens a TCP connection to host:port and closes it; true when it opened within the timeout. */
export function dial(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Splits `host:port` (or `[v6]:port`); undefined when it is not of that form.
 * An empty host (`:22000`) is this machine, as in Go's net.Dial.
 */
export function parseHostPort(addr: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) || 'localhost', port };
}
