import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Options } from 'tsup';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

/** Resolves `undici` (exactly, not its subpaths) to the slim entry for the CLI bundle. */
const LAZY_BUILTINS: Array<[string, string]> = [
  ['node:http2', fileURLToPath(new URL('./src/http2-lazy.cjs', import.meta.url))],
  ['node:assert', fileURLToPath(new URL('./src/assert-lazy.cjs', import.meta.url))],
];

const slimUndici: NonNullable<Options['esbuildPlugins']>[number] = {
  name: 'slim-undici',
  setup(build) {
    const shim = fileURLToPath(new URL('./src/undici-slim.cjs', import.meta.url));
    build.onResolve({ filter: /^undici$/ }, () => ({ path: shim }));
    // undici loads node:http2 (and with it tls and crypto) and node:assert when it
    // loads; the CLI never speaks HTTP/2 and undici's assertions only need the real
    // module when one fails, so both get lazy stand-ins. (tsup marks built-ins
    // external before any plugin of ours resolves, so undici's files are edited.)
    build.onLoad({ filter: /[\\/]undici[\\/]lib[\\/].*\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      let contents = source;
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
