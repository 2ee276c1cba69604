// Starting a real Envoy from the envoy-bootstrap.json mesh-init writes, on a
// machine shared with other Envoys: the admin listener (port 19000 in a task)
// moves to a free port, and so does the ready listener's route to it.
import { readFile, writeFile } from 'node:fs/promises';
import { execa, type ResultPromise } from 'execa';
import { freePort, peerBinary } from './local-stack.ts';

export interface RunningEnvoy {
  proc: ResultPromise;
  adminPort: number;
  /** Envoy's `/listeners` from its admin API. */
  listeners(): Promise<string>;
  stop(): Promise<void>;
}

export async function startEnvoyFromBootstrap(bootstrapFile: string, opts: { logLevel?: string } = {}): Promise<RunningEnvoy> {
  const bootstrap = JSON.parse(await readFile(bootstrapFile, 'utf8'));
  const adminPort = await freePort();
  bootstrap.admin.address.socket_address.port_value = adminPort;
  for (const c of bootstrap.static_resources.clusters) {
    if (c.name === 'self_admin') c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = adminPort;
  }
  const file = `${bootstrapFile.replace(/\.json$/, '')}.local.json`;
  await writeFile(file, JSON.stringify(bootstrap), { mode: 0o600 });
  const proc = execa(peerBinary('envoy'), ['-c', file, '--disable-hot-restart', '-l', opts.logLevel ?? 'warning'], { reject: false, timeout: 300_000 });
  return {
    proc,
    adminPort,
    listeners: async () => (await fetch(`http://127.0.0.1:${adminPort}/listeners`)).text(),
    stop: async () => {
      proc.kill('SIGTERM');
      await proc;
    },
  };
}
