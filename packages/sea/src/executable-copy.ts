// The self-contained executable's copy into a task's bootstrap volume, where the
// dataplane and app containers run it from (envoy-entrypoint, app-entrypoint,
// net-dial): the executable with the loader and C and C++ libraries it runs with,
// so that the copy runs in any Linux image of the same architecture.
import { closeSync, constants as fsConstants, fchmodSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { chmod, copyFile, rename, rmdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BOOTSTRAP_FILES, ConsulEcsError, describeError, writableDirHint, type BootstrapExecutable } from '@consul-ecs-ts/core';
import { readElfLoading } from './elf.js';

/** Where the copy looks for its loader and libraries, beside itself (the build gives it this search path). */
export const EXECUTABLE_LIBRARIES_DIR = BOOTSTRAP_FILES.executableLibraries.name;

/**
 * The self-contained consul-ecs executable on its way into the bootstrap dir.
 * It is large (the Node.js runtime is most of it), so it is copied to a temporary
 * name from the start, while mesh-init does its network work; `install` puts it
 * in place once mesh-init is ready for it, and `discard` removes whatever it wrote.
 */
export class ExecutableCopy implements BootstrapExecutable {
  /** The executable copied. */
  readonly source: string;
  /** Where it is installed: `<bootstrapDir>/consul-ecs`. */
  readonly path: string;
  readonly #tmp: string;
  /** `<bootstrapDir>/.consul-ecs-lib`, where the copy's loader and libraries go. */
  readonly #libDir: string;
  readonly #copied: Promise<void>;
  readonly #libraries: Promise<CopiedLibraries | undefined>;
  readonly #copying: Promise<void>;
  #discarded = false;
  /** What install put in place: the libraries, then the executable. */
  readonly #installed: string[] = [];

  private constructor(source: string, bootstrapDir: string) {
    this.source = source;
    this.path = join(bootstrapDir, BOOTSTRAP_FILES.executable.name);
    this.#tmp = `${this.path}.tmp-${process.pid}`;
    this.#libDir = join(bootstrapDir, EXECUTABLE_LIBRARIES_DIR);
    // Into a new file (EXCL): libuv then skips its ftruncate(0), which on ext4 makes
    // close() write the whole file back (auto_da_alloc). FICLONE shares the data
    // where the file system can (XFS, btrfs). One that a crashed run left under this
    // pid is removed and the copy tried again.
    this.#copied = copyAsNew(source, this.#tmp);
    this.#libraries = copyLibraries(source, this.#libDir);
    this.#copying = Promise.all([this.#copied, this.#libraries]).then(async ([, libs]) => {
      if (libs) setInterpreter(this.#tmp, libs, BOOTSTRAP_FILES.executable.mode);
      else await chmod(this.#tmp, BOOTSTRAP_FILES.executable.mode);
    });
    for (const p of [this.#copied, this.#libraries, this.#copying]) p.catch(() => {});
  }

  /** Starts copying `source` (with its loader and libraries) into `bootstrapDir`, under temporary names. */
  static start(source: string, bootstrapDir: string): ExecutableCopy {
    return new ExecutableCopy(source, bootstrapDir);
  }

  /** Waits for the copy to finish and renames it into place, after the libraries beside it. */
  async install(): Promise<void> {
    try {
      if (this.#discarded) throw new Error('the copy was discarded');
      await this.#copying;
      const libraries = await this.#libraries;
      const renamed = await Promise.allSettled(
        (libraries?.files ?? []).map(async ({ tmp, path }) => {
          await rename(tmp, path);
          this.#installed.push(path);
        }),
      );
      const failed = renamed.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      await rename(this.#tmp, this.path);
      this.#installed.push(this.path);
    } catch (err) {
      throw new ConsulEcsError(
        'file-write-failed',
        `cannot copy the consul-ecs executable ${this.source} to ${this.path}: ${describeError(err)}; ${writableDirHint(`bootstrapDir ${dirname(this.path)}`)}`,
        { cause: err },
      );
    }
  }

  /** Waits for the copy to stop and removes what it wrote: the temporary files, and the installed ones. */
  async discard(): Promise<void> {
    this.#discarded = true;
    await this.#copied.catch(() => {});
    await this.#copying.catch(() => {});
    const libraries = await this.#libraries.catch(() => undefined);
    for (const path of [this.#tmp, ...(libraries?.files ?? []).map((lib) => lib.tmp), ...this.#installed.splice(0)]) await removeFile(path);
    if (libraries?.createdDir) await rmdir(this.#libDir).catch(() => {});
  }
}

/** Copies `source` to `dest`, a new file (one a crashed run left there is replaced). */
async function copyAsNew(source: string, dest: string): Promise<void> {
  const copy = () => copyFile(source, dest, fsConstants.COPYFILE_FICLONE | fsConstants.COPYFILE_EXCL);
  try {
    await copy();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await removeFile(dest);
    await copy();
  }
}

/**
 * The loader and libraries copied beside the executable's copy, under temporary
 * names until it is installed.
 */
interface CopiedLibraries {
  /** Where the loader's path is in the executable (a NUL-padded field), and the path to write there. */
  interpreter: { offset: number; size: number; path: string };
  files: Array<{ tmp: string; path: string }>;
  /** Whether this copy made the directory. */
  createdDir: boolean;
}

/**
 * Directories the loader searches by default, for a library this process has not
 * loaded itself (when it runs as another executable than the one it copies).
 */
const LIBRARY_DIRS = [
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib/aarch64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/lib64',
  '/usr/lib64',
  '/lib',
  '/usr/lib',
];

/**
 * The copy runs in other containers' images, which may have a C library of
 * another version, no C++ library (hashicorp/consul-dataplane's distroless base)
 * or no C library at all (musl, scratch). The executable is built to look for its
 * libraries beside itself, in `$ORIGIN/.consul-ecs-lib` (build.ts),
 * with room in its loader path. This copies the loader and the libraries it needs,
 * as this process runs with them (so that they are of one C library build), into
 * `libDir` under temporary names, and says what the copy's loader path becomes:
 * `<libDir>/<loader>`, which must be the same path in every container that runs
 * it (ECS mounts the bootstrap volume at the same path in each). Undefined for an
 * executable built without that search path: it is copied as it is.
 */
async function copyLibraries(source: string, libDir: string): Promise<CopiedLibraries | undefined> {
  const elf = readElfLoading(source);
  if (!elf?.interpreter || !elf.searchPath.includes(`$ORIGIN/${basename(libDir)}`)) return undefined;
  const loaderName = basename(elf.interpreter.path);
  const interpreterPath = join(libDir, loaderName);
  if (Buffer.byteLength(interpreterPath) >= elf.interpreter.size) {
    throw new Error(
      `the path ${interpreterPath} is too long for the executable's loader path (at most ${elf.interpreter.size - 1} bytes); choose a shorter bootstrapDir`,
    );
  }
  // What this process has mapped (/proc/self/maps): the libraries it runs with.
  const mapped = readProcFile('/proc/self/maps')
    .split('\n')
    .map((line) => line.slice(line.indexOf('/')))
    .filter((path) => path.startsWith('/') && !path.endsWith(' (deleted)'));
  const find = (name: string, fallback: string[]): string => {
    const loaded = mapped.find((path) => basename(path) === name || basename(path).startsWith(`${name}.`));
    if (loaded) return loaded;
    const found = fallback.find((candidate) => statSync(candidate, { throwIfNoEntry: false })?.isFile());
    if (found) return found;
    throw new Error(`${name}, which ${source} needs, is neither loaded by this process nor in ${LIBRARY_DIRS.join(', ')}`);
  };
  const wanted = [
    { name: loaderName, from: find(loaderName, [elf.interpreter.path]) },
    ...elf.needed
      .filter((name) => name !== loaderName)
      .map((name) => ({
        name,
        from: find(
          name,
          LIBRARY_DIRS.map((dir) => join(dir, name)),
        ),
      })),
  ];
  // In the bootstrap dir, which must exist (it is not made here).
  let createdDir = true;
  try {
    mkdirSync(libDir, { mode: BOOTSTRAP_FILES.executableLibraries.mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    createdDir = false;
  }
  const files = wanted.map(({ name }) => ({ tmp: join(libDir, `.${name}.tmp-${process.pid}`), path: join(libDir, name) }));
  const copies = await Promise.allSettled(
    wanted.map(async ({ from }, i) => {
      await copyAsNew(from, files[i]!.tmp);
      await chmod(files[i]!.tmp, BOOTSTRAP_FILES.executableLibraries.mode);
    }),
  );
  const failed = copies.find((c) => c.status === 'rejected');
  if (failed) {
    for (const file of files) await removeFile(file.tmp).catch(() => {});
    if (createdDir) await rmdir(libDir).catch(() => {});
    throw failed.reason;
  }
  return { interpreter: { ...elf.interpreter, path: interpreterPath }, files, createdDir };
}

/** The text of a file, or '' when it cannot be read. */
function readProcFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Writes the copy's loader path into its NUL-padded field and gives the copy its mode. */
function setInterpreter(file: string, { interpreter }: CopiedLibraries, mode: number): void {
  const field = Buffer.alloc(interpreter.size);
  field.write(interpreter.path, 'utf8');
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, field, 0, field.length, interpreter.offset);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/** Removes a file; one that is not there is fine (as `rm -f`). */
async function removeFile(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
