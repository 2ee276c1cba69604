import { defineConfig } from 'tsup';

export default defineConfig({
  // errors, logger, clock, retry, container-status, config and executable-copy are
  // entries of their own for code that needs only them and not the HTTP client the
  // index loads: the CLI's shared command code, the commands that make no HTTP
  // request (net-dial, app-entrypoint), envoy-entrypoint until its first task
  // metadata request, and mesh-init until its config is valid and its copy of the
  // executable under way.
  entry: {
    index: 'src/index.ts',
    errors: 'src/util/errors.ts',
    logger: 'src/util/logger.ts',
    clock: 'src/util/clock.ts',
    retry: 'src/util/retry.ts',
    config: 'src/config/index.ts',
    'executable-copy': 'src/mesh/executable-copy.ts',
    'container-status': 'src/ecs/container-status.ts',
    'testkit/index': 'src/testkit/index.ts',
  },
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: true,
});
