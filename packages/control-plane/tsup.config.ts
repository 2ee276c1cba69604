import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Options } from 'tsup';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

/** Resolves `undici` (exactly, not its subpaths) to the slim entry for the CLI bundle. */
const slimUndici: NonNullable<Options['esbuildPlugins']>[number] = {
  name: 'slim-undici',
  setup(build) {
    const shim = fileURLToPath(new URL('./src/undici-slim.cjs', import.meta.url));
    build.onResolve({ filter: /^undici$/ }, () => ({ path: shim }));
  },
};

export default defineConfig([
  // The library surface (commands as functions), ESM with types, core left external.
  {
    entry: { index: 'src/index.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    dts: true,
    sourcemap: true,
    clean: true,
    define: { __CONSUL_ECS_VERSION__: JSON.stringify(version) },
  },
  // The CLI: everything in one CommonJS file, for fast start and for the
  // single executable application, which embeds one CommonJS script.
  {
    entry: { 'consul-ecs': 'src/main.ts' },
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
    target: 'node20',
    platform: 'node',
    noExternal: [/.*/],
    esbuildPlugins: [slimUndici],
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: false,
    clean: false,
    define: { __CONSUL_ECS_VERSION__: JSON.stringify(version) },
  },
]);
