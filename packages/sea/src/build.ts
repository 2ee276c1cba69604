// Builds the self-contained consul-ecs executable (a Node.js single executable
// application) from the CLI bundle and the pinned LTS runtime:
//   packages/cli/dist/sea/consul-ecs
// It runs in images with no Node.js installed; mesh-init copies it into the
// bootstrap dir for the dataplane and app containers. Run by `npm run build` once
// the CLI bundle is built; skips the work when its inputs are unchanged.
//
// `--arch=arm64` (or CONSUL_ECS_SEA_ARCH=arm64) builds it for linux/arm64, into
//   packages/cli/dist/sea/consul-ecs-arm64
// on an x64 machine too: the runtime's own steps (the code caches, the blob, the
// check that each command takes its cache) then run under qemu-user
// (qemu-aarch64 with the arm64 C and C++ libraries of /usr/aarch64-linux-gnu),
// since V8 takes only a code cache made by the same V8 build for the same CPU.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommandEntry } from '@consul-ecs-ts/cli';
import { BUNDLE_ASSET, bundleSource, CACHE_CHECK_ENV, cacheAsset, DEFAULT_CACHE_COMMAND, EXEC_ARGV } from './assets.js';
import { EXECUTABLE_LIBRARIES_DIR } from './executable-copy.js';
import { trainCodeCaches } from './train.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../../..');
const bundle = join(root, 'packages/cli/dist/consul-ecs.cjs');
const seaDir = join(root, 'packages/cli/dist/sea');
const SENTINEL = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/**
 * mesh-init's copy of the executable runs in other containers' images, which may
 * lack glibc's version or libstdc++ (hashicorp/consul-dataplane's distroless base)
 * or any C library. So the runtime gets a library search path beside itself
 * (`$ORIGIN/.consul-ecs-lib`, DT_RPATH, which also applies to the libraries' own
 * dependencies) and room in its loader path (PT_INTERP), made of "./"s so the
 * executable where it is still runs with the system's loader: mesh-init copies the
 * loader and libraries beside the copy and points its loader path there
 * (executable-copy.ts).
 */
const INTERPRETER_ROOM = 256;
/**
 * patchelf shifts the file to make that room. By its default 4 KB the segments'
 * offsets no longer match their addresses modulo 2 MB, as Node.js links them for
 * large pages, and every command starts a few ms later; by 2 MB they still do.
 */
const PATCHELF_SHIFT = String(2 * 1024 * 1024);

type Arch = 'x64' | 'arm64';
const ARCHES: readonly Arch[] = ['x64', 'arm64'];

/** What the build is for, and how it runs that architecture's programs here. */
interface Target {
  arch: Arch;
  /** The executable it writes. */
  out: string;
  /** Put before a command of that architecture: [] when the machine runs it, else the emulator and its arguments. */
  runner: string[];
  /** binutils' strip for that architecture, if installed. */
  strip: string | undefined;
}

/** The first of `candidates` that runs with `args`. */
function findTool(candidates: Array<string | undefined>, args: string[]): string | undefined {
  return candidates.find((p): p is string => !!p && spawnSync(p, args).status === 0);
}

/** Where the arm64 C and C++ libraries are for qemu-user (Debian's libc6-arm64-cross, libstdc++6-arm64-cross). */
const ARM64_SYSROOT = process.env.CONSUL_ECS_ARM64_SYSROOT || '/usr/aarch64-linux-gnu';

/** The emulator command that runs linux/arm64 programs on this machine, or undefined when it cannot. */
function arm64Runner(): string[] | undefined {
  const qemu = findTool([process.env.QEMU_AARCH64, 'qemu-aarch64', 'qemu-aarch64-static'], ['--version']);
  if (!qemu || !existsSync(join(ARM64_SYSROOT, 'lib/ld-linux-aarch64.so.1'))) return undefined;
  // An absolute path: the training runs have no PATH.
  const path = qemu.includes('/') ? qemu : execFileSync('sh', ['-c', 'command -v "$0"', qemu], { encoding: 'utf8' }).trim();
  return [path, '-L', ARM64_SYSROOT];
}

/** The target from `--arch=` or CONSUL_ECS_SEA_ARCH; by default the machine's architecture, into consul-ecs. */
function target(): Target {
  const flag = process.argv.find((a) => a.startsWith('--arch='))?.slice('--arch='.length) ?? process.env.CONSUL_ECS_SEA_ARCH;
  const native: Arch = process.arch === 'arm64' ? 'arm64' : 'x64';
  const arch = (flag || native) as Arch;
  if (!ARCHES.includes(arch)) throw new Error(`sea: unknown architecture ${arch} (${ARCHES.join(' or ')})`);
  // The x64 executable keeps its name; one for arm64 asked for by name is consul-ecs-arm64.
  const out = join(seaDir, flag && arch !== 'x64' ? `consul-ecs-${arch}` : 'consul-ecs');
  let runner: string[] = [];
  if (arch !== native) {
    if (arch !== 'arm64') throw new Error(`sea: an ${arch} executable is built on an ${arch} machine`);
    const qemu = arm64Runner();
    if (!qemu)
      throw new Error(
        `sea: building for arm64 on ${native} runs the arm64 runtime under qemu-user: install qemu-user, libc6-arm64-cross and libstdc++6-arm64-cross (${ARM64_SYSROOT}), or set QEMU_AARCH64`,
      );
    runner = qemu;
  }
  const strip = arch === native ? 'strip' : findTool(['aarch64-linux-gnu-strip'], ['--version']);
  return { arch, out, runner, strip };
}

function findPatchelf(): string | undefined {
  return findTool(
    [process.env.PATCHELF, join(process.env.CONSUL_ECS_PEERS_DIR || join(homedir(), '.cache/consul-ecs-ts/peers'), 'bin/patchelf'), 'patchelf'],
    ['--version'],
  );
}

/** `path` made `length` characters long with "./" (and a "/"), naming the same file. */
function padPath(path: string, length: number): string {
  const room = length - path.length;
  if (room < 0) throw new Error(`sea: the loader path ${path} is longer than ${length}`);
  return `${dirname(path)}/${'/'.repeat(room % 2)}${'./'.repeat(room >> 1)}${basename(path)}`;
}

/** The commands whose code caches the executable carries, from the CLI's command table. */
async function cachedCommands(): Promise<string[]> {
  const { commands } = (await import('@consul-ecs-ts/cli')) as { commands: readonly CommandEntry[] };
  const cached = commands.filter((c) => c.codeCache).map((c) => c.name);
  if (!cached.includes(DEFAULT_CACHE_COMMAND))
    throw new Error(`sea: the command table must give ${DEFAULT_CACHE_COMMAND} a code cache: the other commands fall back to it`);
  return cached;
}

/** Puts the runtime's copy in shape: stripped, with its library search path and loader room. */
function prepareRuntime(node: string, file: string, patchelf: string | undefined, t: Target): void {
  copyFileSync(node, file);
  chmodSync(file, 0o755);
  // ~18 MB of symbols and debug info that nothing reads at run time; mesh-init copies the file into every task.
  const noStrip = t.runner.length
    ? 'sea: aarch64-linux-gnu-strip (binutils-aarch64-linux-gnu) is not installed; the arm64 executable keeps its symbols (~18 MB larger)'
    : 'sea: strip (binutils) is not installed; the executable keeps its symbols (~18 MB larger)';
  try {
    if (t.strip) execFileSync(t.strip, ['--strip-all', file], { stdio: ['ignore', 'ignore', 'inherit'] });
    else console.error(noStrip);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    console.error(noStrip);
  }
  if (!patchelf) {
    console.error(
      'sea: patchelf is not installed (bash scripts/peers.sh install installs it); the copy mesh-init makes will need glibc and libstdc++ in the images it runs in',
    );
    return;
  }
  const interpreter = execFileSync(patchelf, ['--print-interpreter', file], { encoding: 'utf8' }).trim();
  const padded = padPath(interpreter, INTERPRETER_ROOM - 1);
  execFileSync(
    patchelf,
    ['--page-size', PATCHELF_SHIFT, '--set-interpreter', padded, '--force-rpath', '--set-rpath', `$ORIGIN/${EXECUTABLE_LIBRARIES_DIR}`, file],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
}

/** Runs each command once with CACHE_CHECK_ENV: V8 must take its cache (a rejected one only costs start-up time, silently). */
function checkCachesTaken(file: string, commands: string[], runner: string[]): string {
  let version = '';
  for (const command of commands) {
    const [cmd, ...args] = [...runner, file, ...(command === 'version' ? [command] : [command, '-help'])];
    const check = spawnSync(cmd!, args, {
      encoding: 'utf8',
      env: { ...process.env, [CACHE_CHECK_ENV]: '1' },
    });
    const ran = command === 'version' ? check.stdout.includes('consul-ecs') : `${check.stdout}${check.stderr}`.includes(`Usage: consul-ecs ${command}`);
    if (check.status !== 0 || !ran || !check.stderr.includes(`code cache ${command}: accepted`)) {
      throw new Error(`sea: the executable does not run ${command}, or V8 rejects its code cache: exit ${check.status}, ${check.stderr.trim()}`);
    }
    if (command === 'version') version = check.stdout.trim();
  }
  return version;
}

async function build(): Promise<void> {
  if (!existsSync(bundle)) throw new Error(`sea: ${bundle} is missing: build the CLI first (npm run build)`);
  const t = target();
  const { out, runner } = t;
  const stampFile = `${out}.stamp`;
  const node = execFileSync('bash', [join(root, 'scripts/runtime.sh'), t.arch], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const loader = join(here, 'loader.cjs');
  const trainLoader = join(here, 'train-loader.cjs');
  const patchelf = findPatchelf();
  const commands = await cachedCommands();
  const stamp = createHash('sha256')
    .update(readFileSync(bundle))
    .update(node)
    .update(readFileSync(fileURLToPath(import.meta.url)))
    .update(readFileSync(loader))
    .update(readFileSync(trainLoader))
    .update(commands.join(','))
    .update(patchelf ? 'portable' : 'plain')
    .update(t.strip ? 'stripped' : 'unstripped')
    .digest('hex');
  if (existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
    console.error(`sea: ${out} is up to date`);
    return;
  }

  const work = mkdtempSync(join(tmpdir(), 'consul-ecs-sea-'));
  try {
    const asset = join(work, BUNDLE_ASSET);
    writeFileSync(asset, bundleSource(readFileSync(bundle, 'utf8')));
    // Made by the same runtime under the same V8 flags, or V8 rejects them at run time.
    const caches = await trainCodeCaches({ node, runner, bundle, trainLoader, commands, outDir: work });
    const blob = join(work, 'sea.blob');
    const config = join(work, 'sea-config.json');
    writeFileSync(
      config,
      JSON.stringify({
        main: loader,
        output: blob,
        disableExperimentalSEAWarning: true,
        useCodeCache: true,
        execArgv: EXEC_ARGV,
        assets: { [BUNDLE_ASSET]: asset, ...caches },
      }),
    );
    // The blob holds the entry script's code cache, so the target's runtime makes it too.
    const [cmd, ...args] = [...runner, node, ...EXEC_ARGV, '--experimental-sea-config', config];
    execFileSync(cmd!, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    mkdirSync(dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    prepareRuntime(node, tmp, patchelf, t);
    const { inject } = createRequire(import.meta.url)('postject') as {
      inject: (file: string, name: string, data: Buffer, opts: { sentinelFuse: string }) => Promise<void>;
    };
    await inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SENTINEL });
    const version = checkCachesTaken(tmp, commands, runner);
    renameSync(tmp, out);
    writeFileSync(stampFile, stamp);
    const sizes = commands.map((c) => `${c} ${Math.round(statSync(join(work, cacheAsset(c))).size / 1024)} KB`).join(', ');
    console.error(`sea: built ${out} (${t.arch}${runner.length ? ', under emulation' : ''}; ${version}; code caches: ${sizes})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await build();
