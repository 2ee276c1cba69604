// podman as this project's build and test engine for its images: rootful, with
// runc, and with configuration and storage of its own, so nothing in /etc changes
// and nothing of the machine's own containers is touched.
//
// crun (podman's default runtime on Debian) refuses machines with a mixed cgroup
// v1/v2 layout, and podman's default ulimits can exceed a machine's hard limits;
// the private containers.conf sets runc, cgroupfs and ulimits this machine allows.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { execa, type Options } from 'execa';

/** Where podman keeps this project's images, containers and volumes; CONSUL_ECS_PODMAN_DIR overrides it. */
export const PODMAN_DIR = process.env.CONSUL_ECS_PODMAN_DIR || join(homedir(), '.cache/consul-ecs-ts/podman');

/** The tools `npm run images` and the container tests need, with the Debian packages that carry them. */
export const CONTAINER_TOOLS: Record<string, string> = {
  podman: 'podman',
  runc: 'runc',
  mmdebstrap: 'mmdebstrap',
  skopeo: 'skopeo',
  // Envoy for the other architecture comes out of its wheel.
  unzip: 'unzip',
};

/** Tools missing from PATH, as `<tool> (apt-get install -y <package>)`. Empty when all are there. */
export function missingContainerTools(): string[] {
  return Object.entries(CONTAINER_TOOLS)
    .filter(([tool]) => {
      try {
        execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
        return false;
      } catch {
        return true;
      }
    })
    .map(([tool, pkg]) => `${tool} (apt-get install -y ${pkg})`);
}

/** The hard limit on open files of this process (`ulimit -Hn`), which containers may not exceed. */
function hardOpenFilesLimit(): number {
  const out = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  return out === 'unlimited' ? 1_048_576 : Number(out);
}

/** Writes `file` only when its content differs, by rename: a podman starting meanwhile reads the old file or the new one. */
function writeIfChanged(file: string, content: string): void {
  try {
    if (readFileSync(file, 'utf8') === content) return;
  } catch {
    // not there yet
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

/**
 * The environment podman runs with: CONTAINERS_CONF and CONTAINERS_STORAGE_CONF
 * pointing at files under {@link PODMAN_DIR}, written on first use.
 */
export function podmanEnvironment(dir = PODMAN_DIR): Record<string, string> {
  const conf = join(dir, 'containers.conf');
  const storageConf = join(dir, 'storage.conf');
  mkdirSync(dir, { recursive: true });
  const nofile = Math.min(hardOpenFilesLimit(), 65_536);
  writeIfChanged(
    conf,
    [
      '[containers]',
      `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]`,
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(dir, 'events.log')}"`,
      '',
    ].join('\n'),
  );
  writeIfChanged(storageConf, ['[storage]', 'driver = "overlay"', `graphroot = "${join(dir, 'storage')}"`, `runroot = "${join(dir, 'run')}"`, ''].join('\n'));
  return { CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storageConf };
}

/** What a podman command printed, and its exit code. */
export interface PodmanResult {
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
}

/** Runs podman with the project's configuration; rejects with podman's output on a non-zero exit (unless `reject: false`). */
export async function podman(args: readonly string[], opts: Pick<Options, 'reject' | 'env' | 'timeout' | 'stdout' | 'input'> = {}): Promise<PodmanResult> {
  const env = { ...process.env, ...podmanEnvironment(), ...(opts.env ?? {}) };
  const r = await execa('podman', args, { ...opts, env, encoding: 'utf8' });
  return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode };
}

/** Whether an image of this name is in the project's podman storage. */
export async function imageExists(name: string): Promise<boolean> {
  return (await podman(['image', 'exists', name], { reject: false })).exitCode === 0;
}
