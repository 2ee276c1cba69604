#!/usr/bin/env node
// Builds the self-contained consul-ecs executable (a Node.js single executable
// application) from the CLI bundle and the pinned LTS runtime:
//   packages/control-plane/dist/sea/consul-ecs
// It runs in images with no Node.js installed; mesh-init copies it into the
// bootstrap dir for the dataplane and app containers. Skips the work when the
// bundle and runtime are unchanged.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLE_ASSET, bundleSource, CACHE_CHECK_ENV, cacheAsset, LLHTTP_ASSET, LLHTTP_MODULE_KEY, loaderSource, PARSER_COMMANDS, STARTED_COPY_KEY } from './lib/sea-code-cache.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const bundle = join(root, 'packages/control-plane/dist/consul-ecs.cjs');
const outDir = join(root, 'packages/control-plane/dist/sea');
const out = join(outDir, 'consul-ecs');
const stampFile = `${out}.stamp`;
const SENTINEL = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
// V8 flags the executable always runs with (measured with scripts/bench-control-plane.ts
// and scripts/bench-login.ts): a young generation of a fixed 3 MB and no GC helper
// threads. 3 MB is what a short command allocates before it exits, so login and
// mesh-init run without a single garbage collection (the default starts at 1 MB:
// three scavenges in login, ~4.5 ms of CPU, and ~6 ms in mesh-init); a
// long-running container keeps ~2.5 MB more resident than with 1 MB (health-sync
// ~56.5 against ~54 MB). None of these changes V8's flag hash, so Node.js's
// built-in code cache still applies; flags that do
// (--liftoff-only, --no-opt) cost ~30 ms at every start. The WebAssembly
// tiering and optimising-compiler flags that matter are set at run time instead
// (packages/control-plane/src/v8-flags.ts).
const EXEC_ARGV = ['--min-semi-space-size=3', '--max-semi-space-size=3', '--single-threaded-gc'];
// mesh-init's copy of the executable runs in other containers' images:
// hashicorp/consul-dataplane's (distroless base: glibc without libstdc++) or an
// app's (musl, or no C library at all). So the runtime is given a library search
// path beside itself ($ORIGIN/<this dir>; DT_RPATH, which also applies to the
// libraries' own dependencies) and room in its loader path (PT_INTERP): mesh-init
// copies the C and C++ libraries and the loader the process runs with into
// <bootstrapDir>/.consul-ecs-lib and points the copy's loader path there
// (packages/core/src/mesh/executable-copy.ts, which expects this name). The room
// is made of "./"s, so the executable where it is still runs with the system's loader.
const LIB_DIR = '.consul-ecs-lib';
const INTERPRETER_ROOM = 256;
// The room makes patchelf move the headers and shift the rest of the file. By the
// default 4 KB, the segments' file offsets no longer match their addresses modulo
// 2 MB, as Node.js links them (its text is 2 MB-aligned for large pages), and the
// kernel then maps the executable's page-cache folios in small pages only: every
// command started ~2-4 ms later (mesh-init, alternating runs). Shifted by 2 MB, the
// file is 2 MB larger and starts as fast as one patchelf did not touch.
const PATCHELF_SHIFT = String(2 * 1024 * 1024);
const patchelf = [
  process.env.PATCHELF,
  join(process.env.CONSUL_ECS_PEERS_DIR || join(homedir(), '.cache/consul-ecs-ts/peers'), 'bin/patchelf'),
  'patchelf',
].find((p) => p && spawnSync(p, ['--version']).status === 0);

/** `path` made `length` characters long with "./" (and a "/"), naming the same file. */
function padPath(path, length) {
  const room = length - path.length;
  if (room < 0) throw new Error(`sea: the loader path ${path} is longer than ${length}`);
  return `${dirname(path)}/${'/'.repeat(room % 2)}${'./'.repeat(room >> 1)}${basename(path)}`;
}

if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build first`);
const node = execFileSync('bash', [join(root, 'scripts/runtime.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
const codeCacheScript = join(root, 'scripts/lib/sea-code-cache.mjs');
const stamp = createHash('sha256')
  .update(readFileSync(bundle))
  .update(node)
  .update(readFileSync(fileURLToPath(import.meta.url)))
  .update(readFileSync(codeCacheScript))
  .update(patchelf ? 'portable' : 'plain')
  .digest('hex');
if (existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  console.error(`sea: ${out} is up to date`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), 'consul-ecs-sea-'));
try {
  const blob = join(work, 'sea.blob');
  const config = join(work, 'sea-config.json');
  const loader = join(work, 'sea-main.cjs');
  const asset = join(work, BUNDLE_ASSET);
  const bundleText = readFileSync(bundle, 'utf8');
  writeFileSync(asset, bundleSource(bundleText));
  // The parser the loader compiles ahead must be the bundle's own, and the bundle must
  // look for it, and for the executable's copy the loader starts.
  const llhttp = join(work, LLHTTP_ASSET);
  const llhttpBytes = createRequire(join(root, 'packages/control-plane/package.json'))('undici/lib/llhttp/llhttp_simd-wasm.js');
  if (!bundleText.includes(llhttpBytes.toString('base64')) || !bundleText.includes(LLHTTP_MODULE_KEY)) {
    throw new Error(`sea: ${bundle} does not carry undici's llhttp_simd-wasm.js, or does not take the parser the loader compiles (packages/control-plane/src/llhttp-precompiled.ts)`);
  }
  if (!bundleText.includes(STARTED_COPY_KEY)) {
    throw new Error(`sea: ${bundle} does not take the executable's copy the loader starts (packages/control-plane/src/started-copy.ts)`);
  }
  writeFileSync(llhttp, llhttpBytes);
  // V8 bytecode of what each command runs (see scripts/lib/sea-code-cache.mjs), made
  // by the same runtime under the same V8 flags, or V8 rejects it at run time.
  const trained = JSON.parse(execFileSync(node, [...EXEC_ARGV, codeCacheScript, 'train', bundle, work], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
  writeFileSync(loader, loaderSource(trained));
  const caches = Object.fromEntries(trained.map((c) => [cacheAsset(c), join(work, cacheAsset(c))]));
  writeFileSync(
    config,
    JSON.stringify({
      main: loader,
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache: true,
      execArgv: EXEC_ARGV,
      assets: { [BUNDLE_ASSET]: asset, [LLHTTP_ASSET]: llhttp, ...caches },
    }),
  );
  execFileSync(node, [...EXEC_ARGV, '--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  copyFileSync(node, tmp);
  chmodSync(tmp, 0o755);
  // The runtime carries ~18 MB of symbols and debug info that nothing reads at
  // run time; mesh-init copies the executable into every task's bootstrap volume.
  try {
    execFileSync('strip', ['--strip-all', tmp], { stdio: ['ignore', 'ignore', 'inherit'] });
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
    console.error('sea: strip (binutils) is not installed; the executable keeps its symbols (~18 MB larger)');
  }
  if (patchelf) {
    const interpreter = execFileSync(patchelf, ['--print-interpreter', tmp], { encoding: 'utf8' }).trim();
    const padded = padPath(interpreter, INTERPRETER_ROOM - 1);
    execFileSync(patchelf, ['--page-size', PATCHELF_SHIFT, '--set-interpreter', padded, '--force-rpath', '--set-rpath', `$ORIGIN/${LIB_DIR}`, tmp], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  } else {
    console.error('sea: patchelf is not installed (bash scripts/peers.sh install installs it); the copy mesh-init makes will need glibc and libstdc++ in the images it runs in');
  }
  const { inject } = createRequire(import.meta.url)('postject');
  await inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SENTINEL });
  // Each command's cache must be taken: a rejected one would only cost start-up time, silently.
  let version = '';
  for (const command of trained) {
    const check = spawnSync(tmp, command === 'version' ? [command] : [command, '-help'], { encoding: 'utf8', env: { ...process.env, [CACHE_CHECK_ENV]: '1' } });
    const ran = command === 'version' ? check.stdout.includes('consul-ecs') : `${check.stdout}${check.stderr}`.includes(`Usage: consul-ecs ${command}`);
    if (check.status !== 0 || !ran || !check.stderr.includes(`code cache ${command}: accepted`)) {
      throw new Error(`sea: the executable does not run ${command}, or V8 rejects its code cache: exit ${check.status}, ${check.stderr.trim()}`);
    }
    if (PARSER_COMMANDS.includes(command) && !check.stderr.includes('parser: compiled')) {
      throw new Error(`sea: the executable does not compile undici's parser ahead for ${command}: ${check.stderr.trim()}`);
    }
    if (command === 'version') version = check.stdout.trim();
  }
  renameSync(tmp, out);
  writeFileSync(stampFile, stamp);
  const sizes = trained.map((c) => `${c} ${Math.round(statSync(caches[cacheAsset(c)]).size / 1024)} KB`).join(', ');
  console.error(`sea: built ${out} (${version}; code caches: ${sizes})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
