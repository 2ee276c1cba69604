import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Options } from 'tsup';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

/** Resolves `undici` (exactly, not its subpaths) to the slim entry for the CLI bundle. */
const LAZY_BUILTINS: Array<[string, string]> = [
  ['node:http2', fileURLToPath(new URL('./src/http2-lazy.cjs', import.meta.url))],
  ['node:assert', fileURLToPath(new URL('./src/assert-lazy.cjs', import.meta.url))],
];

const CORE_SOURCE = fileURLToPath(new URL('../core/src/index.ts', import.meta.url));
const DATAPLANE_SOURCE = fileURLToPath(new URL('../dataplane/src/index.ts', import.meta.url));

const HTTP_STAND_IN = fileURLToPath(new URL('./src/http-lazy.cjs', import.meta.url));
const PRECOMPILED_LLHTTP = fileURLToPath(new URL('./src/llhttp-precompiled.ts', import.meta.url));

/**
 * Edits of undici's own files, by file: each text must be found, so that an undici
 * that changed fails the build rather than the CLI. node:http is loaded for two
 * values (see src/http-lazy.cjs).
 */
const UNDICI_EDITS: Record<string, Array<[string, string]>> = {
  'lib/core/util.js': [
    ["const { IncomingMessage } = require('node:http')", `const { isIncomingMessageClass } = require(${JSON.stringify(HTTP_STAND_IN)})`],
    ['Object.getPrototypeOf(stream).constructor === IncomingMessage', 'isIncomingMessageClass(Object.getPrototypeOf(stream).constructor)'],
    // undici builds a search tree of ~100 well-known header names when it loads
    // (~0.8 ms of every HTTP command's start), to lower-case a response's header
    // names without a string for each; without it, util.js lower-cases each name,
    // the same strings for the CLI's few responses.
    ["const { tree } = require('./tree')", 'const tree = { lookup: () => null }'],
  ],
  'lib/dispatcher/client.js': [
    ["const http = require('node:http')", `const http = require(${JSON.stringify(HTTP_STAND_IN)})`],
    // A new connection waits for the parser the executable compiles (see src/llhttp-precompiled.ts).
    ['client[kConnector]({', `require(${JSON.stringify(PRECOMPILED_LLHTTP)}).afterPrecompiledLlhttp(client[kConnector])({`],
  ],
  // The executable compiles the SIMD parser ahead (see src/llhttp-precompiled.ts).
  'lib/dispatcher/client-h1.js': [
    [
      "mod = new WebAssembly.Module(require('../llhttp/llhttp_simd-wasm.js'))",
      `mod = require(${JSON.stringify(PRECOMPILED_LLHTTP)}).precompiledLlhttp() ?? new WebAssembly.Module(require('../llhttp/llhttp_simd-wasm.js'))`,
    ],
  ],
};

/**
 * llhttp's constants as data, and only those undici reads: the module computes ~23 KB
 * of enums and character tables when it loads (~1 ms of every command's start), of
 * which undici's HTTP/1 client, its one user, reads two enums. The client is checked
 * to read nothing else of them, so that an undici that does fails the build.
 */
function precomputedLlhttpConstants(path: string): string {
  const user = readFileSync(join(dirname(path), '../dispatcher/client-h1.js'), 'utf8');
  const uses = user
    .replace(/^\s*(\/\/|\*).*$/gm, '')
    .replace("require('../llhttp/constants.js')", '')
    .match(/\bconstants\b(\.[A-Za-z_$]+)?/g) ?? [];
  const read = uses.filter((u) => u !== 'constants').map((u) => u.slice('constants.'.length));
  if (uses.filter((u) => u === 'constants').length !== 1 || read.some((k) => !LLHTTP_CONSTANTS_READ.includes(k))) {
    throw new Error(`slim-undici: undici's client-h1.js reads llhttp's constants other than as constants.{${LLHTTP_CONSTANTS_READ.join(',')}}; update LLHTTP_CONSTANTS_READ`);
  }
  const all = createRequire(import.meta.url)(path) as Record<string, unknown>;
  const value = Object.fromEntries(LLHTTP_CONSTANTS_READ.map((k) => [k, all[k]]));
  return `'use strict';\n// What undici reads of llhttp's constants, computed at build time from ${path.replace(/^.*node_modules[\\/]/, '')}.\nmodule.exports = JSON.parse(${JSON.stringify(JSON.stringify(value))});\n`;
}
/** The llhttp constants undici's client-h1.js reads. */
const LLHTTP_CONSTANTS_READ = ['ERROR', 'TYPE'];

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
      const file = args.path.replace(/\\/g, '/').replace(/^.*[/]undici[/]/, '');
      if (file === 'lib/llhttp/constants.js') return { contents: precomputedLlhttpConstants(args.path), loader: 'js' };
      let contents = await readFile(args.path, 'utf8');
      for (const [builtin, standIn] of LAZY_BUILTINS) contents = contents.replaceAll(`require('${builtin}')`, `require(${JSON.stringify(standIn)})`);
      for (const [from, to] of UNDICI_EDITS[file] ?? []) {
        if (!contents.includes(from)) throw new Error(`slim-undici: ${args.path} no longer contains ${JSON.stringify(from)}; update UNDICI_EDITS`);
        contents = contents.replaceAll(from, to);
      }
      return { contents, loader: 'js' };
    });
  },
};

/**
 * The parts of `@smithy/core`'s submodule barrels that @smithy/signature-v4 imports, by
 * file. A barrel such as `@smithy/core/serde` evaluates code of its own when it loads
 * (a UUID generator that reaches for WebCrypto, blob adapters), which costs the CLI
 * ~10 ms of start-up for three hex and UTF-8 helpers. If signature-v4 starts importing
 * a name not listed here, the bundle fails to build rather than break at run time.
 */
const SMITHY_CORE_PARTS: Record<string, Record<string, string>> = {
  '@smithy/core/serde': {
    fromHex: 'serde/util-hex-encoding/hex-encoding.js',
    toHex: 'serde/util-hex-encoding/hex-encoding.js',
    fromUtf8: 'serde/util-utf8/fromUtf8.js',
    toUint8Array: 'serde/util-utf8/toUint8Array.js',
    isArrayBuffer: 'serde/is-array-buffer/is-array-buffer.js',
    writeKey: 'serde/writeKey.js',
    hasOwn: 'transport/hasOwn.js',
  },
  '@smithy/core/protocols': { escapeUri: 'protocols/util-uri-escape/escape-uri.js', HttpRequest: 'transport/httpRequest.js' },
  '@smithy/core/client': { normalizeProvider: 'transport/normalizeProvider.js' },
};

const slimSmithy: NonNullable<Options['esbuildPlugins']>[number] = {
  name: 'slim-smithy-core',
  setup(build) {
    const filter = new RegExp(`^(${Object.keys(SMITHY_CORE_PARTS).join('|')})$`);
    build.onResolve({ filter }, async (args) => {
      if (args.pluginData === 'barrel') return undefined;
      // Where the importer's @smithy/core lives (its own copy if it has one).
      const barrel = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: 'barrel' });
      if (barrel.errors.length) return { errors: barrel.errors };
      const submodules = barrel.path.replace(/[\\/]submodules[\\/].*$/, '/submodules/');
      return { path: args.path, namespace: 'slim-smithy-core', pluginData: submodules };
    });
    build.onLoad({ filter: /.*/, namespace: 'slim-smithy-core' }, (args) => ({
      contents: Object.entries(SMITHY_CORE_PARTS[args.path]!)
        .map(([name, file]) => `export { ${name} } from ${JSON.stringify(`${args.pluginData as string}${file}`)};`)
        .join('\n'),
      loader: 'js',
      resolveDir: args.pluginData as string,
    }));
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
    esbuildPlugins: [slimUndici, slimSmithy],
    // The workspace packages from their sources: both are free of side effects, so the
    // bundle evaluates only the modules a command uses (version and net-dial load no
    // HTTP client). Their built entries are one module each.
    esbuildOptions(options) {
      options.alias = { '@consul-ecs-ts/core': CORE_SOURCE, '@consul-ecs-ts/dataplane': DATAPLANE_SOURCE };
    },
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: false,
    clean: false,
    define: { __CONSUL_ECS_VERSION__: JSON.stringify(version) },
  },
]);
