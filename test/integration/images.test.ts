// The images `npm run images` builds (npm test runs it first): what their OCI archives
// say, and what the built images do when run with podman, as root with runc. The arm64
// images are read from their archives and their programs run under qemu-user against
// the image's own root file system. A whole mesh task run from these images is
// test/integration/mesh-task-containers.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { readOciArchive, type OciImageSummary } from '../../scripts/lib/oci.ts';
import { podman, podmanEnvironment } from '../../scripts/lib/podman.ts';
import { HOST_ARCH, IMAGE_NAMES, IMAGES_DIR } from '../../scripts/images.ts';

const ARCHES = ['amd64', 'arm64'] as const;
const CONTROL_PLANE_LIMIT_BYTES = 50e6;
const controlPlane = `${IMAGE_NAMES.controlPlane}:dev-${HOST_ARCH}`;
const dataplane = `${IMAGE_NAMES.dataplane}:dev-${HOST_ARCH}`;

function archivePath(name: string, arch: string): string {
  const file = join(IMAGES_DIR, `${name}-${arch}.oci.tar`);
  assert.ok(existsSync(file), `${file} is missing: run npm run images (npm test does)`);
  return file;
}

describe('the images: OCI archives for amd64 and arm64', () => {
  const archives = new Map<string, OciImageSummary>();
  before(async () => {
    for (const arch of ARCHES) {
      for (const name of ['control-plane', 'dataplane']) archives.set(`${name}-${arch}`, await readOciArchive(archivePath(name, arch)));
    }
  });

  for (const arch of ARCHES) {
    it(`control-plane (${arch}): at most 50 MB compressed, user 5996, /consul a volume, consul-ecs the entrypoint`, () => {
      const image = archives.get(`control-plane-${arch}`)!;
      assert.equal(image.config.architecture, arch);
      assert.ok(image.compressedBytes <= CONTROL_PLANE_LIMIT_BYTES, `${(image.compressedBytes / 1e6).toFixed(1)} MB compressed`);
      assert.equal(image.config.user, '5996');
      assert.deepEqual(image.config.volumes, ['/consul']);
      assert.deepEqual(image.config.entrypoint, ['/bin/consul-ecs']);
      assert.deepEqual(image.config.cmd, ['control-plane']);
    });

    it(`dataplane (${arch}): user 5995, terraform's dataplane command, the base layer shared with control-plane`, () => {
      const image = archives.get(`dataplane-${arch}`)!;
      assert.equal(image.config.architecture, arch);
      assert.equal(image.config.user, '5995');
      assert.deepEqual(image.config.entrypoint, ['/consul/consul-ecs', 'envoy-entrypoint']);
      assert.deepEqual(image.config.cmd, ['consul-dataplane', '-config-file', '/consul/consul-dataplane.json']);
      assert.equal(image.layers[0]!.digest, archives.get(`control-plane-${arch}`)!.layers[0]!.digest, 'a task pulls the base once');
    });
  }
});

describe(`the built images, run with podman (${HOST_ARCH})`, () => {
  it('control-plane runs consul-ecs as user 5996 and has no shell', async () => {
    const version = await podman(['run', '--rm', '--network=none', controlPlane, 'version']);
    assert.match(version.stdout, /^consul-ecs v\d+\.\d+\.\d+ \(TypeScript, node 24\./);
    const user = await podman(['image', 'inspect', '--format', '{{.User}}', controlPlane]);
    assert.equal(user.stdout.trim(), '5996');
    for (const shell of ['/bin/sh', '/bin/bash', '/bin/busybox']) {
      const r = await podman(['run', '--rm', '--network=none', '--entrypoint', shell, controlPlane, '-c', 'true'], { reject: false });
      assert.notEqual(r.exitCode, 0, `${shell} ran`);
      assert.match(r.stderr, /no such file or directory/);
    }
  });

  it("a fresh volume mounted at /consul is the image user's, as ECS gives it to mesh-init", async () => {
    const volume = `images-test-${process.pid}`;
    await podman(['volume', 'create', volume]);
    try {
      // `net-dial` to a closed port: any command makes podman populate the volume from the image.
      await podman(['run', '--rm', '--network=none', '-v', `${volume}:/consul`, controlPlane, 'net-dial', '127.0.0.1:1'], { reject: false });
      const mountpoint = (await podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', volume])).stdout.trim();
      const st = statSync(mountpoint);
      assert.equal(st.uid, 5996);
      assert.equal(st.gid, 5996);
      assert.equal(st.mode & 0o777, 0o755);
    } finally {
      await podman(['volume', 'rm', '--force', volume], { reject: false });
    }
  });

  it('iptables applies rules as root with NET_ADMIN (transparent proxy), and is refused without it', async () => {
    const iptables = (caps: string[]) =>
      podman(
        ['run', '--rm', '--network=none', '--user=0', ...caps, '--entrypoint', '/usr/sbin/iptables', controlPlane, '-t', 'nat', '-N', 'CONSUL_PROXY_OUTPUT'],
        {
          reject: false,
        },
      );
    const withCap = await iptables(['--cap-add=NET_ADMIN']);
    assert.equal(withCap.exitCode, 0, withCap.stderr);
    const without = await iptables(['--cap-drop=NET_ADMIN']);
    assert.notEqual(without.exitCode, 0);
    assert.match(without.stderr, /Permission denied|not permitted/);
  });

  it('dataplane runs Envoy 1.36.4, and its consul-dataplane is the link to the task’s consul-ecs', async () => {
    const envoy = await podman(['run', '--rm', '--network=none', '--entrypoint', '/usr/local/bin/envoy', dataplane, '--version']);
    assert.match(envoy.stdout, /\/1\.36\.4\//);
    // The link dangles in the image (the task's /consul supplies its target): run it without /consul.
    const r = await podman(['run', '--rm', '--network=none', '--entrypoint', '/usr/local/bin/consul-dataplane', dataplane], { reject: false });
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /\/usr\/local\/bin\/consul-dataplane.*no such file or directory/);
  });
});

describe('the arm64 images, under qemu-user', () => {
  let rootfs: string;
  before(async () => {
    rootfs = mkdtempSync(join(tmpdir(), 'images-arm64-'));
    const container = (await podman(['create', '--platform=linux/arm64', `${IMAGE_NAMES.controlPlane}:dev-arm64`])).stdout.trim();
    try {
      await execa('sh', ['-c', 'podman export "$1" | tar -x -C "$2"', 'sh', container, rootfs], { env: { ...process.env, ...podmanEnvironment() } });
    } finally {
      await podman(['rm', '--volumes', container], { reject: false });
    }
  });
  after(() => rmSync(rootfs, { recursive: true, force: true }));

  it("control-plane's consul-ecs runs on the image's own arm64 libraries", async () => {
    const r = await execa('qemu-aarch64', ['-L', rootfs, join(rootfs, 'bin/consul-ecs'), 'version']);
    assert.match(r.stdout, /^consul-ecs v\d+\.\d+\.\d+ \(TypeScript, node 24\./);
  });

  it("control-plane's iptables finds all its arm64 libraries in the image, and runs", async () => {
    // The loader, asked to list what the nf_tables iptables loads, resolves each inside the image.
    const libs = await execa('qemu-aarch64', ['-E', 'LD_TRACE_LOADED_OBJECTS=1', '-L', rootfs, join(rootfs, 'usr/sbin/xtables-nft-multi')]);
    assert.match(libs.stdout, /libnftnl\.so\.11 => \/usr\/lib\/aarch64-linux-gnu\//);
    assert.doesNotMatch(libs.stdout, /not found/);
    // The nf_tables variant needs a netlink socket qemu-user does not translate; the legacy one, on the same libxtables, runs.
    const r = await execa('qemu-aarch64', ['-L', rootfs, join(rootfs, 'usr/sbin/xtables-legacy-multi'), 'iptables', '--version']);
    assert.match(r.stdout, /^iptables v1\.8\.\d+ \(legacy\)/);
  });
});
