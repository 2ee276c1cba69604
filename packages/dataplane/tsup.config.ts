import { defineConfig } from 'tsup';

export default defineConfig({
  // net-dial and app-entrypoint are entries of their own, which load no HTTP client:
  // the CLI's commands of those names load only them.
  entry: { index: 'src/index.ts', 'net-dial': 'src/net-dial.ts', 'app-entrypoint': 'src/app-entrypoint.ts' },
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: true,
});
