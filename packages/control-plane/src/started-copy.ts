import type { StartedCopy } from '@consul-ecs-ts/core';

// The executable's copy into the bootstrap dir, started by the executable's loader
// (scripts/lib/sea-code-cache.mjs) for mesh-init and control-plane before it reads
// the command's code: the copy (~110 MB) is the longest single step of mesh-init,
// and the loader starts it ~10 ms before this bundle could. The loader reads only
// `bootstrapDir` from CONSUL_ECS_CONFIG_JSON; the config is validated here, as
// always. Until a command takes the copy, the loader removes it when the process
// exits, so an invalid config leaves nothing in the bootstrap dir.

/** The registered symbol's key under which the loader leaves the copy it started (the loader is not part of the bundle). */
export const STARTED_COPY_KEY = 'consul-ecs.started-executable-copy';

/** What the loader leaves: the copy, where it goes, and whether a command took it. */
interface LoaderCopy extends StartedCopy {
  bootstrapDir: string;
  taken: boolean;
}

/**
 * The copy of `source` into `bootstrapDir` the loader started, if it started one
 * (and only that one): from then on the caller's ExecutableCopy owns its file.
 */
export function takeStartedCopy(source: string, bootstrapDir: string): StartedCopy | undefined {
  const started = (globalThis as Record<symbol, unknown>)[Symbol.for(STARTED_COPY_KEY)] as LoaderCopy | undefined;
  if (!started || started.taken || started.source !== source || started.bootstrapDir !== bootstrapDir) return undefined;
  started.taken = true;
  return { source: started.source, tmp: started.tmp, copied: started.copied };
}
