import { defineConfig } from 'tsup';

export default defineConfig({
  // errors, logger and clock are entries of their own for code that needs only them
  // and not the HTTP client the index loads: the CLI's shared command code and the
  // commands that make no HTTP request (net-dial, app-entrypoint).
  entry: {
    index: 'src/index.ts',
    errors: 'src/util/errors.ts',
    logger: 'src/util/logger.ts',
    clock: 'src/util/clock.ts',
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
