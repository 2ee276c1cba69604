import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Options } from 'tsup';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

/**
 * The CLI bundle's undici: the slim entry (src/undici-slim.cjs: the Agent and the
 * request API, not fetch, WebSocket, caches and mocks, half of every command's
 * start-up), and lazy stand-ins for the two built-ins undici loads eagerly and the
 * CLI never needs: node:http2 (with tls and crypto, ~20 ms and ~7 MB a process;
 * the CLI never speaks HTTP/2) and node:assert (~9 ms and ~3 MB; undici only calls
 * it to check its invariants). Each loads the real module at its first real use.
 * test/unit/cli.test.ts checks that a request leaves both unloaded.
 */
const LAZY_BUILTINS: Array<[string, string]> = [
  ['node:http2', fileURLToPath(new URL('./src/http2-lazy.cjs', import.meta.url))],
  ['node:assert', fileURLToPath(new URL('./src/assert-lazy.cjs', import.meta.url))],
];

const slimUndici: NonNullable<Options['esbuildPlugins']>[number] = {
  name: 'slim-undici',
  setup(build) {
    const slimEntry = fileURLToPath(new URL('./src/undici-slim.cjs', import.meta.url));
    build.onResolve({ filter: /^undici$/ }, () => ({ path: slimEntry }));
    // tsup marks built-ins external before any plugin resolves them, so undici's
    // require() calls of them are pointed at the stand-ins where they are written.
    build.onLoad({ filter: /[\\/]undici[\\/]lib[\\/].*\.js$/ }, async (args) => {
      let contents = await readFile(args.path, 'utf8');
      for (const [builtin, standIn] of LAZY_BUILTINS) contents = contents.replaceAll(`require('${builtin}')`, `require(${JSON.stringify(standIn)})`);
      return { contents, loader: 'js' };
    });
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
