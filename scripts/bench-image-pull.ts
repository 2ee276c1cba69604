// Benchmark: the compressed bytes an ECS task pulls for its sidecar images, ours
// against the anchor's (hashicorp/consul-ecs v0.10.0 with go-discover's `discover`,
// and hashicorp/consul-dataplane 2.0.1, each made the way ours are: on the same
// distroless-style base, from the binaries scripts/peers.sh builds). Layers a task's
// images share are pulled once. Not a test: it prints figures.
//   npm run images -- --arch=amd64 && node --import tsx scripts/bench-image-pull.ts
import { existsSync, cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { PEERS_DIR } from './lib/local-stack.ts';
import { megabytes, pulledBytes, readOciArchive, type OciImageSummary } from './lib/oci.ts';
import { podman, PODMAN_DIR } from './lib/podman.ts';
import { anchorBinary, ratio } from './lib/bench.ts';
import { archiveImage, buildConsulDataplaneImage, buildImage, CONSUL_DATAPLANE_VERSION, HOST_ARCH, IMAGE_NAMES, IMAGES_DIR } from './images.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const GO_DISCOVER_VERSION = 'v1.3.0';
const ANCHOR_VERSION = '0.10.0';

/** go-discover's `discover`, as the anchor's Dockerfile builds it (CGO off), stripped; built once into the peers cache. */
async function goDiscover(): Promise<string> {
  const dir = join(PEERS_DIR, 'discover');
  const bin = join(dir, 'discover');
  if (existsSync(bin)) return bin;
  process.stderr.write(`[bench] building go-discover ${GO_DISCOVER_VERSION}'s discover (a few minutes)\n`);
  await execa('go', ['install', '-trimpath', '-ldflags=-s -w', `github.com/hashicorp/go-discover/cmd/discover@${GO_DISCOVER_VERSION}`], {
    env: { ...process.env, GOBIN: dir, CGO_ENABLED: '0' },
    stdio: 'inherit',
  });
  return bin;
}

async function anchorImage(): Promise<string> {
  // The image is the comparison: --no-anchor does not apply.
  const anchor = await anchorBinary(process.argv.filter((a) => a !== '--no-anchor'));
  const context = join(PODMAN_DIR, 'contexts', `anchor-${ANCHOR_VERSION}`);
  mkdirSync(join(context, 'consul'), { recursive: true });
  cpSync(anchor, join(context, 'consul-ecs'));
  cpSync(await goDiscover(), join(context, 'discover'));
  const tag = `localhost/consul-ecs-ts/consul-ecs-anchor:${ANCHOR_VERSION}`;
  await buildImage({
    dockerfile: join(ROOT, 'scripts/images/consul-ecs-anchor.Dockerfile'),
    arch: HOST_ARCH,
    tags: [tag],
    contexts: { anchor: context },
    buildArgs: { BASE: `${IMAGE_NAMES.baseIptables}:dev-${HOST_ARCH}` },
  });
  return tag;
}

async function unpackedBytes(image: string): Promise<number> {
  return Number((await podman(['image', 'inspect', '--format', '{{.Size}}', image])).stdout.trim());
}

async function summary(image: string, archiveName: string): Promise<OciImageSummary & { image: string; unpacked: number }> {
  const file = join(IMAGES_DIR, 'reference', `${archiveName}.oci.tar`);
  mkdirSync(join(IMAGES_DIR, 'reference'), { recursive: true });
  await archiveImage(image, file, archiveName);
  return { ...(await readOciArchive(file)), image, unpacked: await unpackedBytes(image) };
}

for (const name of ['control-plane', 'dataplane']) {
  if (!existsSync(join(IMAGES_DIR, `${name}-${HOST_ARCH}.oci.tar`)))
    throw new Error(`dist/images/${name}-${HOST_ARCH}.oci.tar is missing: run npm run images first`);
}
const ours = {
  controlPlane: await summary(`${IMAGE_NAMES.controlPlane}:dev-${HOST_ARCH}`, 'ours-control-plane'),
  dataplane: await summary(`${IMAGE_NAMES.dataplane}:dev-${HOST_ARCH}`, 'ours-dataplane'),
};
const anchor = {
  consulEcs: await summary(await anchorImage(), `consul-ecs-${ANCHOR_VERSION}`),
  consulDataplane: await summary(await buildConsulDataplaneImage(), `consul-dataplane-${CONSUL_DATAPLANE_VERSION}`),
};

const rows: Array<[string, OciImageSummary & { unpacked: number }]> = [
  [`ours: control-plane (${HOST_ARCH})`, ours.controlPlane],
  [`ours: dataplane (Envoy ${HOST_ARCH})`, ours.dataplane],
  [`anchor: consul-ecs ${ANCHOR_VERSION} + discover`, anchor.consulEcs],
  [`anchor: consul-dataplane ${CONSUL_DATAPLANE_VERSION}`, anchor.consulDataplane],
];
const out: string[] = [`images (${new Date().toISOString().slice(0, 10)}, ${HOST_ARCH}; MB = 10^6 bytes)`, ''];
out.push(`${'image'.padEnd(40)} ${'layers'.padStart(6)} ${'compressed MB'.padStart(14)} ${'unpacked MB'.padStart(12)}`);
for (const [label, s] of rows) {
  out.push(`${label.padEnd(40)} ${String(s.layers.length).padStart(6)} ${megabytes(s.compressedBytes).padStart(14)} ${megabytes(s.unpacked).padStart(12)}`);
}
const task = {
  ours: pulledBytes([ours.controlPlane, ours.dataplane]),
  oursWithConsulDataplane: pulledBytes([ours.controlPlane, anchor.consulDataplane]),
  anchor: pulledBytes([anchor.consulEcs, anchor.consulDataplane]),
};
out.push('', 'a task pulls (compressed, each distinct layer once)');
out.push(`${'ours: control-plane + dataplane (Envoy)'.padEnd(48)} ${megabytes(task.ours).padStart(8)} MB  ratio ${ratio(task.ours, task.anchor)}`);
out.push(
  `${'ours: control-plane + consul-dataplane'.padEnd(48)} ${megabytes(task.oursWithConsulDataplane).padStart(8)} MB  ratio ${ratio(task.oursWithConsulDataplane, task.anchor)}`,
);
out.push(`${'anchor: consul-ecs + consul-dataplane'.padEnd(48)} ${megabytes(task.anchor).padStart(8)} MB`);
process.stdout.write(out.join('\n') + '\n');
