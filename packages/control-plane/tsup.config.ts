import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

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
    minify: false,
    sourcemap: false,
    clean: false,
    define: { __CONSUL_ECS_VERSION__: JSON.stringify(version) },
  },
]);
