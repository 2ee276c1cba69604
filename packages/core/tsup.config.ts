import { defineConfig } from 'tsup';

export default defineConfig({
  // errors, logger, clock and container-status are entries of their own for code that
  // needs only them and not the HTTP client the index loads: the CLI's shared command
  // code, the commands that make no HTTP request (net-dial, app-entrypoint) and
  // envoy-entrypoint until its first task metadata request.
  entry: {
    index: 'src/index.ts',
    errors: 'src/util/errors.ts',
    logger: 'src/util/logger.ts',
    clock: 'src/util/clock.ts',
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
