import { defineConfig } from 'tsup';

export default defineConfig([
  // The executable's copy into the bootstrap dir, for the CLI; and the build, run
  // by the root `npm run build` once the CLI bundle exists.
  {
    entry: { index: 'src/index.ts', build: 'src/build.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    dts: { entry: { index: 'src/index.ts' } },
    sourcemap: true,
    clean: true,
    // Read by the build at run time, once the CLI is built (it is built after this package).
    external: ['@consul-ecs-ts/cli'],
  },
  // The executable's entry script (a single executable application runs one
  // CommonJS script) and its twin for training the code caches: no imports at
  // run time but Node.js's own modules.
  {
    entry: { loader: 'src/loader.ts', 'train-loader': 'src/train-loader.ts' },
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
    target: 'node20',
    platform: 'node',
    sourcemap: false,
    clean: false,
  },
]);
