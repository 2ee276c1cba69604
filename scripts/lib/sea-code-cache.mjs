// The self-contained executable's code caches: V8 bytecode of the functions each
// short-lived command runs, made at build time so that a task's containers do not
// compile them at every start (measured: login ~104 -> ~89 ms of CPU).
//
// Node.js's own SEA code cache (useCodeCache) holds only what V8 compiles before
// the script runs: the top level, not the functions it calls. So the executable's
// entry is a small loader (loaderSource) that compiles the bundle with the cache of
// the command it runs, made by `train`: this script, run with the pinned runtime
// and the executable's V8 flags, loads the bundle the same way, runs each command
// against stand-ins on loopback (the project's ECS agent simulator and a minimal
// Consul HTTP API), and saves the bytecode of what that command compiled. V8 checks
// a cache against the source, its own version and its flags, and compiles as usual
// when it does not match; build-sea checks that the executable takes every cache.
//
//   node <V8 flags> scripts/lib/sea-code-cache.mjs train <bundle.cjs> <out dir>
import fs, { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';

/** The bundle is compiled as the body of this function, as Node.js compiles a CommonJS module. */
const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname) {';
const WRAPPER_TAIL = '\n})';
export const BUNDLE_ASSET = 'consul-ecs.cjs';
/** The name of the code cache asset made by running `consul-ecs <command>`. */
export const cacheAsset = (command) => `consul-ecs.${command}.cache`;
/**
 * The bundle's source as the executable carries it and compiles it, whole: in
 * the function wrapper already (no string to join at run time, which V8 would
 * copy again to compile it), and ASCII only, so that the loader can make the
 * source string from the asset's bytes as Latin-1 (a copy) rather than decode
 * UTF-8 (~1 ms for the ~1 MB bundle). esbuild already escapes non-ASCII characters
 * in code; what is left is in comments (a license notice), where an escape changes
 * nothing. The same string is compiled at training, or V8 rejects the caches.
 */
export function bundleSource(text) {
  return WRAPPER_HEAD + text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) + WRAPPER_TAIL;
}
/** The cache for commands trained on none of their own: what every command runs first. */
const DEFAULT_CACHE_COMMAND = 'version';
/** Set in the environment, the executable says on stderr whether V8 took its code cache. */
export const CACHE_CHECK_ENV = 'CONSUL_ECS_CODE_CACHE_CHECK';
/** undici's SIMD HTTP parser, as the executable carries it: the WebAssembly bytes of the bundle's copy. */
export const LLHTTP_ASSET = 'llhttp_simd.wasm';
/** Where the loader leaves the parser it compiled (packages/control-plane/src/llhttp-precompiled.ts reads it). */
export const LLHTTP_MODULE_KEY = 'consul-ecs.llhttp-simd-module';
/** Where the loader leaves the executable's copy it started (packages/control-plane/src/started-copy.ts takes it). */
export const STARTED_COPY_KEY = 'consul-ecs.started-executable-copy';
/** The commands that copy the executable into the bootstrap dir: the loader starts the copy for them. */
const COPY_COMMANDS = ['mesh-init', 'control-plane'];
/** The short commands that make HTTP requests: the loader compiles the parser for them. */
export const PARSER_COMMANDS = ['login', 'logout', 'mesh-init'];
/**
 * The built-in modules those commands load (with what they load) before the parser
 * is compiled: the loader loads them while V8's flags are the defaults.
 */
const PARSER_COMMAND_BUILTINS = ['node:v8', 'node:net', 'node:stream'];
/**
 * The parser is compiled with these off (all functions at once, with V8's baseline
 * compiler only: see v8-flags.ts on tiering), and so is the command's code cache
 * read, which V8 takes only under the flags it was made under (V8's flag hash).
 * They are put back, to their defaults, once the parser is compiled: while a V8
 * flag differs, Node.js compiles each built-in module it loads from source, as
 * their code cache no longer matches (hence PARSER_COMMAND_BUILTINS). They include
 * the flags the CLI sets at run time (packages/control-plane/src/v8-flags.ts).
 */
const PARSER_COMPILE_FLAGS = ['wasm-lazy-compilation', 'wasm-tier-up', 'wasm-dynamic-tiering'];

/**
 * The executable's entry: compiles the bundle asset with the code cache of the
 * command it runs (one of `commands`, else the default) and runs it.
 */
export function loaderSource(commands) {
  return `'use strict';
// consul-ecs single executable application: runs the CLI bundle, compiled with
// the V8 code cache of its command made at build time (scripts/lib/sea-code-cache.mjs).
// The assets are read in place (getRawAsset: no copy); the bundle is ASCII (bundleSource).

// mesh-init and control-plane copy this executable into the bootstrap dir
// (packages/control-plane/src/started-copy.ts): the copy starts first, from the
// config's bootstrapDir alone; the command validates the config and takes the copy,
// or the copy is removed when the process exits, or when a signal stops it before
// the command handles signals itself.
if (${JSON.stringify(COPY_COMMANDS)}.includes(process.argv[2])) {
  let dir;
  try {
    dir = JSON.parse(process.env.CONSUL_ECS_CONFIG_JSON ?? '').bootstrapDir;
  } catch {}
  if (typeof dir === 'string' && dir !== '') {
    const fs = require('node:fs');
    // As core names it (packages/core/src/mesh/executable-copy.ts).
    const started = { source: process.execPath, bootstrapDir: dir, tmp: require('node:path').join(dir, 'consul-ecs') + '.tmp-' + process.pid, taken: false };
    const remove = () => {
      if (started.taken) return;
      try {
        fs.unlinkSync(started.tmp);
      } catch {}
    };
    // Handlers first: the copy creates its file on a thread of its own, and a signal
    // that came before them would stop the process at once and leave the file.
    process.on('exit', remove);
    const onSignal = (signal) => {
      if (process.listenerCount(signal) > 1) return; // the command's own handler stops it
      for (const s of ['SIGTERM', 'SIGINT']) process.removeListener(s, onSignal);
      started.copied.then(() => {
        remove();
        process.kill(process.pid, signal);
      });
    };
    for (const s of ['SIGTERM', 'SIGINT']) process.on(s, onSignal);
    started.copied = new Promise((resolve) => {
      fs.copyFile(started.source, started.tmp, fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL, (err) => resolve(!err));
    });
    globalThis[Symbol.for(${JSON.stringify(STARTED_COPY_KEY)})] = started;
  }
}
const { getRawAsset } = require('node:sea');
const { Script } = require('node:vm');
const { Buffer } = require('node:buffer');
const trained = new Set(${JSON.stringify(commands)});
const command = trained.has(process.argv[2]) ? process.argv[2] : ${JSON.stringify(DEFAULT_CACHE_COMMAND)};
// undici's HTTP parser, compiled on V8's background threads while the command
// starts (packages/control-plane/src/llhttp-precompiled.ts). V8's flags are the
// parser's until it is compiled: the built-in modules the command loads before
// then are loaded first, under the defaults, which keep their code cache valid.
let parser;
if (${JSON.stringify(PARSER_COMMANDS)}.includes(process.argv[2]) && process.env.UNDICI_NO_WASM_SIMD !== '1') {
  for (const builtin of ${JSON.stringify(PARSER_COMMAND_BUILTINS)}) require(builtin);
  const { setFlagsFromString } = require('node:v8');
  const flags = ${JSON.stringify(PARSER_COMPILE_FLAGS)};
  for (const flag of flags) setFlagsFromString('--no-' + flag);
  parser = WebAssembly.compile(new Uint8Array(getRawAsset(${JSON.stringify(LLHTTP_ASSET)}))).then(
    (module) => {
      globalThis[Symbol.for(${JSON.stringify(LLHTTP_MODULE_KEY)})] = module;
      for (const flag of flags) setFlagsFromString('--' + flag);
      if (process.env.${CACHE_CHECK_ENV}) process.stderr.write('parser: compiled\\n');
    },
    // undici compiles its own, as the command's flags have it (tiering off).
    () => setFlagsFromString('--wasm-lazy-compilation'),
  );
  // undici hands its first connection over once this settles (the bundle's client.js).
  globalThis[Symbol.for(${JSON.stringify(LLHTTP_MODULE_KEY + '.compiling')})] = parser;
}
const source = Buffer.from(getRawAsset(${JSON.stringify(BUNDLE_ASSET)})).toString('latin1');
const cachedData = new Uint8Array(getRawAsset('consul-ecs.' + command + '.cache'));
const script = new Script(source, { filename: ${JSON.stringify(BUNDLE_ASSET)}, cachedData });
if (process.env.${CACHE_CHECK_ENV}) process.stderr.write('code cache ' + command + ': ' + (script.cachedDataRejected ? 'rejected' : 'accepted') + '\\n');
const run = () => {
  const cli = { exports: {} };
  script.runInThisContext()(cli.exports, require, cli, process.execPath, require('node:path').dirname(process.execPath));
};
// The build's check waits for the parser, to see that it compiles (a compile under
// way does not keep the event loop alive; the timer does).
if (parser && process.env.${CACHE_CHECK_ENV}) {
  const alive = setInterval(() => {}, 60_000);
  parser.then(() => {
    clearInterval(alive);
    run();
  });
} else if (parser) {
  // V8 compiles the parser in three steps: it decodes it on a background thread,
  // sets the compile up on the main thread, then compiles on background threads.
  // The setup is a task for the event loop: the command's first yield comes after
  // its modules are loaded, ~20 ms later, and only then would the compile start.
  // The decode is done by now (the code cache was read meanwhile); one turn of
  // the event loop runs the setup before the command (~3 ms off mesh-init's ready time).
  setImmediate(run);
} else run();
`;
}

/** A Consul HTTP API for the training runs: ACL login and logout, and a catalog of one node. */
function startConsulStandIn() {
  const token = {
    AccessorID: '00000000-0000-4000-8000-000000000001',
    SecretID: '00000000-0000-4000-8000-000000000002',
    Description: 'token created via login',
    ServiceIdentities: [{ ServiceName: 'web' }],
    AuthMethod: 'iam-ecs-service-token',
    Local: true,
  };
  /** Service ID → service, as registered. */
  const services = new Map();
  const idIn = (filter) => /ID == [`"]([^`"]+)[`"]/.exec(filter ?? '')?.[1];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const url = new URL(req.url, 'http://consul');
      const json = (value) => {
        res.setHeader('content-type', 'application/json');
        res.setHeader('x-consul-index', '1');
        res.end(JSON.stringify(value));
      };
      const p = url.pathname;
      if (p === '/v1/acl/login') return json(token);
      if (p === '/v1/acl/token/self') return json(token);
      if (p === '/v1/acl/logout') return res.end();
      if (p === '/v1/status/leader') return json('127.0.0.1:8300');
      if (p === '/v1/catalog/register') {
        const reg = JSON.parse(body);
        if (reg.Service) services.set(reg.Service.ID, reg.Service);
        return json(true);
      }
      if (p === '/v1/catalog/deregister') {
        services.delete(JSON.parse(body).ServiceID);
        return json(true);
      }
      if (p.startsWith('/v1/catalog/node-services/')) {
        const id = idIn(url.searchParams.get('filter'));
        const list = [...services.values()].filter((s) => id === undefined || s.ID === id);
        return json({ Node: { Node: decodeURIComponent(p.split('/').pop()) }, Services: list });
      }
      res.statusCode = 404;
      res.end('not found');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function train(bundlePath, outDir) {
  const { EcsAgentSimulator } = await import('@consul-ecs-ts/core/testkit');
  const source = bundleSource(readFileSync(bundlePath, 'utf8'));
  const work = mkdtempSync(join(tmpdir(), 'consul-ecs-train-'));
  const consul = await startConsulStandIn();
  const consulAddr = `http://127.0.0.1:${consul.address().port}`;
  const sim = await new EcsAgentSimulator({
    family: 'web',
    containers: [{ name: 'app', hasHealthCheck: true, health: 'HEALTHY' }, { name: 'consul-dataplane', hasHealthCheck: true, health: 'HEALTHY' }],
    credentials: async () => ({
      AccessKeyId: 'AKIDTRAINING',
      SecretAccessKey: 'training-secret',
      Token: 'training-session-token',
      Expiration: new Date(Date.now() + 3600_000).toISOString(),
      RoleArn: 'arn:aws:iam::123456789012:role/consul-ecs/web',
    }),
  }).start();

  const exit = process.exit;
  const write = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  // The CLI writes its output to file descriptors 1 and 2 itself (packages/control-plane/src/stdio.ts).
  const fdWrite = fs.writeSync;
  /**
   * Runs `consul-ecs <argv>` in this process as the executable would (the bundle
   * compiled as `script`) and resolves with its exit code.
   */
  const run = (script, argv, env) =>
    new Promise((resolve) => {
      let output = '';
      process.argv = [process.execPath, BUNDLE_ASSET, ...argv];
      // No PATH: nothing a command might run (iptables) can be found.
      process.env = { PATH: '/nonexistent', ...sim.containerEnv(), ...env };
      process.stderr.write = process.stdout.write = (chunk) => ((output += chunk), true);
      fs.writeSync = (fd, data, ...rest) => {
        if (fd !== 1 && fd !== 2) return fdWrite(fd, data, ...rest);
        // The CLI writes a buffer from an offset (writeSync(fd, buffer, offset)).
        const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength).subarray(rest[0] ?? 0);
        output += bytes.toString();
        return bytes.length;
      };
      // undici keeps its global dispatcher on globalThis, for every copy of undici in the
      // process: without this, a run would send its requests through an earlier run's
      // undici (or this script's), and its own request code would never be compiled.
      for (const version of [1, 2]) globalThis[Symbol.for(`undici.globalDispatcher.${version}`)] = undefined;
      process.exit = (code) => {
        process.stderr.write = write;
        process.stdout.write = writeOut;
        fs.writeSync = fdWrite;
        process.exit = exit;
        if (code !== 0) write(`sea-code-cache: training run "consul-ecs ${argv.join(' ')}" exited ${code}:\n${output}\n`);
        resolve(code);
      };
      const cli = { exports: {} };
      script.runInThisContext()(cli.exports, createRequire(bundlePath), cli, bundlePath, dirname(bundlePath));
    });
  // Each command's cache holds only what that command compiled: V8 reads the whole
  // cache at start-up, and a long-running process keeps what it read. So each runs
  // on its own compilation of the bundle (a distinct name keeps V8 from sharing
  // compiled functions between them); what it needs done first runs on another.
  let compilations = 0;
  const compile = () => new Script(source, { filename: `${BUNDLE_ASSET}#${compilations++}` });
  const setup = compile();
  try {
    const config = {
      bootstrapDir: join(work, 'bootstrap'),
      consulServers: { hosts: '127.0.0.1', defaults: { tls: false }, http: { https: false, port: consul.address().port }, grpc: { port: 8503 } },
      consulLogin: { enabled: true },
      service: { name: 'web', port: 8080 },
      proxy: { upstreams: [{ destinationName: 'backend', localBindPort: 1234 }] },
      healthSyncContainers: ['app'],
      // Never touch this machine's iptables (the simulated task is on EC2, where it is on by default).
      transparentProxy: { enabled: false },
    };
    mkdirSync(config.bootstrapDir);
    const executable = join(work, 'executable');
    writeFileSync(executable, '#!/bin/sh\n');
    const mesh = { CONSUL_ECS_CONFIG_JSON: JSON.stringify(config), CONSUL_ECS_EXECUTABLE: executable };
    const sink = join(work, 'token');
    const login = ['login', '-http-addr', consulAddr, '-token-sink-file', sink];
    // Not the long-running commands (health-sync, control-plane, the entrypoints): ~15 ms
    // at their start matters less than the ~1.5 MB a cache would add to their resident
    // memory; they take the default cache (the top level every command runs).
    const trainings = {
      version: { argv: ['version'] },
      login: { argv: login },
      logout: { before: [[login]], argv: ['logout', '-http-addr', consulAddr, '-token-file', sink] },
      'mesh-init': { argv: ['mesh-init'], env: mesh },
      'net-dial': { argv: ['net-dial', consulAddr.replace('http://', '')] },
    };
    for (const [name, t] of Object.entries(trainings)) {
      for (const [argv, env] of t.before ?? []) {
        if ((await run(setup, argv, env ?? {})) !== 0) throw new Error(`a training run failed (see above)`);
      }
      const script = compile();
      if ((await run(script, t.argv, t.env ?? {})) !== 0) throw new Error(`a training run failed (see above)`);
      // The cache carries a hash of V8's flags, which must be those the loader reads it
      // under: the parser's, for the commands the loader compiles the parser for (it
      // sets them first), else the defaults (the CLI changed some at run time). Then
      // the defaults again, for the next command.
      const under = PARSER_COMMANDS.includes(name) ? '--no-' : '--';
      for (const flag of PARSER_COMPILE_FLAGS) setFlagsFromString(under + flag);
      writeFileSync(join(outDir, cacheAsset(name)), script.createCachedData());
      for (const flag of PARSER_COMPILE_FLAGS) setFlagsFromString(`--${flag}`);
    }
    return Object.keys(trainings);
  } finally {
    await sim.stop();
    await new Promise((r) => consul.close(r));
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [cmd, bundle, outDir] = process.argv.slice(2);
  if (cmd !== 'train' || !bundle || !outDir) {
    process.stderr.write('usage: node <V8 flags> scripts/lib/sea-code-cache.mjs train <bundle.cjs> <out dir>\n');
    process.exit(2);
  }
  const commands = await train(resolve(bundle), resolve(outDir));
  process.stdout.write(JSON.stringify(commands) + '\n');
}
