// What an OCI image archive holds, read with tar: its manifest's layers and their
// compressed sizes (the bytes a registry receives, and a task pulls).
import { execa } from 'execa';

export interface OciLayer {
  digest: string;
  /** Compressed size in bytes. */
  size: number;
}

export interface OciImageSummary {
  archive: string;
  config: { architecture: string; os: string; user: string; entrypoint: string[]; cmd: string[]; volumes: string[] };
  layers: OciLayer[];
  /** The layers' compressed sizes, summed. */
  compressedBytes: number;
}

async function readMember(archive: string, member: string): Promise<string> {
  return (await execa('tar', ['-xOf', archive, member])).stdout;
}

function blobPath(digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return `blobs/${algorithm}/${hex}`;
}

/** The manifest, configuration and layers of the single image in an OCI archive. */
export async function readOciArchive(archive: string): Promise<OciImageSummary> {
  const index = JSON.parse(await readMember(archive, 'index.json')) as { manifests: Array<{ digest: string }> };
  if (index.manifests.length !== 1) throw new Error(`${archive}: expected one image manifest, found ${index.manifests.length}`);
  const manifest = JSON.parse(await readMember(archive, blobPath(index.manifests[0]!.digest))) as {
    config: { digest: string };
    layers: OciLayer[];
  };
  const config = JSON.parse(await readMember(archive, blobPath(manifest.config.digest))) as {
    architecture: string;
    os: string;
    config?: { User?: string; Entrypoint?: string[]; Cmd?: string[]; Volumes?: Record<string, unknown> };
  };
  const layers = manifest.layers.map((l) => ({ digest: l.digest, size: l.size }));
  return {
    archive,
    config: {
      architecture: config.architecture,
      os: config.os,
      user: config.config?.User ?? '',
      entrypoint: config.config?.Entrypoint ?? [],
      cmd: config.config?.Cmd ?? [],
      volumes: Object.keys(config.config?.Volumes ?? {}),
    },
    layers,
    compressedBytes: layers.reduce((sum, l) => sum + l.size, 0),
  };
}

/** The compressed bytes a task pulls for these images: each distinct layer once. */
export function pulledBytes(images: readonly OciImageSummary[]): number {
  const layers = new Map<string, number>();
  for (const image of images) for (const l of image.layers) layers.set(l.digest, l.size);
  return [...layers.values()].reduce((sum, size) => sum + size, 0);
}

export function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}
