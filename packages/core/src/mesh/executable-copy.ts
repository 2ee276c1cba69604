import { constants as fsConstants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readElfLoading } from '../io/elf.js';
import { chmod, closeSync, copyFile, fchmodSync, mkdirSync, openSync, readFileSync, removeFile, rename, rmdir, statSync, writeSync } from '../io/fs.js';
import { ConsulEcsError, describeError, writableDirHint } from '../util/errors.js';
import { BOOTSTRAP_FILES } from './bootstrap-files.js';

/**
 * A copy of the executable into the bootstrap dir that was started before the
 * config was read (the executable's loader starts one for mesh-init), for
 * ExecutableCopy to carry on with.
 */
export interface StartedCopy {
  /** The file being copied. */
  source: string;
  /** The temporary file it is copied to, in the bootstrap dir. */
  tmp: string;
  /** True once copied; false if the copy failed (ExecutableCopy then copies again, and reports what fails). */
  copied: Promise<boolean>;
}

/**
 * The self-contained consul-ecs executable on its way into the bootstrap dir,
 * where the dataplane and app containers run it from. It is large (the Node.js
 * runtime is most of it), so it is copied to a temporary name as soon as the
 * config is known to be valid (or carried on with, when the executable started
 * the copy even earlier), while the rest of mesh-init goes on; `install`
 * puts it in place once the caller is ready for it, and `discard` removes
 * whatever it wrote.
 */
export class ExecutableCopy {
  /** The executable copied. */
  readonly source: string;
  /** Where it is installed: `<bootstrapDir>/consul-ecs`. */
  readonly path: string;
  readonly #tmp: string;
  /** `<bootstrapDir>/.consul-ecs-lib`, where the copy's loader and libraries go. */
  readonly #libDir: string;
  readonly #copied: Promise<void>;
  #libraries?: Promise<CopiedLibraries | undefined>;
  #copying?: Promise<void>;
  /** Set by discard: libraries asked for after it are not copied. */
  #discarded = false;
  /** What install put in place: the libraries, then the executable. */
  readonly #installed: string[] = [];

  private constructor(source: string, bootstrapDir: string, started?: StartedCopy, opts: ExecutableCopyOptions = {}) {
    this.source = source;
    this.path = join(bootstrapDir, BOOTSTRAP_FILES.executable.name);
    this.#tmp = started?.tmp ?? `${this.path}.tmp-${process.pid}`;
    this.#libDir = join(bootstrapDir, BOOTSTRAP_FILES.executableLibraries.name);
    // Into a new file (EXCL): libuv then skips its ftruncate(0), which on ext4 makes
    // close() start writing the whole file back (auto_da_alloc), 5-40 ms on
    // mesh-init's critical path. The copy is handed to libuv's thread pool here and
    // now, not after a first step: a callback would wait until the caller next
    // yields to the event loop, and mesh-init loads the rest of core before it does.
    // One that a crashed run left under this pid is removed and the copy tried again.
    // FICLONE shares the data where the file system can (XFS, btrfs).
    const copyAnew = () => copyAsNew(source, this.#tmp);
    this.#copied = started ? started.copied.then((copied) => (copied ? undefined : copyAnew())) : copyAnew();
    this.#copied.catch(() => {});
    if (!opts.librariesLater) this.startLibraries();
  }

  /**
   * Starts copying `source` into `bootstrapDir` (under a temporary name), or carries
   * on with a copy of it already `started` there.
   */
  static start(source: string, bootstrapDir: string, started?: StartedCopy, opts?: ExecutableCopyOptions): ExecutableCopy {
    if (started && started.source !== source) throw new TypeError(`the copy started is of ${started.source}, not ${source}`);
    return new ExecutableCopy(source, bootstrapDir, started, opts);
  }

  /**
   * Starts copying the runtime's loader and libraries beside the executable's copy, when
   * the executable looks for them there (once; install starts it if nobody did). It finds
   * them with a few reads done at once on the calling thread.
   */
  startLibraries(): void {
    if (this.#libraries || this.#discarded) return;
    const libraries = copyLibraries(this.source, this.#libDir);
    this.#libraries = libraries;
    this.#copying = Promise.all([this.#copied, libraries]).then(async ([, libs]) => {
      if (libs) setInterpreter(this.#tmp, libs, BOOTSTRAP_FILES.executable.mode);
      else await chmod(this.#tmp, BOOTSTRAP_FILES.executable.mode);
    });
    libraries.catch(() => {});
    this.#copying.catch(() => {});
  }

  /** Waits for the copy to finish and renames it into place, after the libraries beside it. */
  async install(): Promise<void> {
    try {
      if (this.#discarded) throw new Error('the copy was discarded');
      this.startLibraries();
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
    await this.#copying?.catch(() => {});
    const libraries = await this.#libraries?.catch(() => undefined);
    for (const path of [this.#tmp, ...(libraries?.files ?? []).map((lib) => lib.tmp), ...this.#installed.splice(0)]) await removeFile(path);
    if (libraries?.createdDir) await rmdir(this.#libDir).catch(() => {});
  }
}

export interface ExecutableCopyOptions {
  /**
   * Leave the loader and libraries until startLibraries (or install) is called. Finding
   * them takes ~1 ms of the calling thread, and their copies (~5 MB) compete with it:
   * mesh-init starts them once its login is on the wire and its main thread waits.
   */
  librariesLater?: boolean;
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
const LIBRARY_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib'];

/**
 * The copy runs in other containers' images, which may have a C library of
 * another version, no C++ library (hashicorp/consul-dataplane's distroless base)
 * or no C library at all (musl, scratch). The executable is built to look for its
 * libraries beside itself, in `$ORIGIN/.consul-ecs-lib` (scripts/build-sea.mjs),
 * with room in its loader path. This copies the loader and the libraries it needs,
 * as this process runs with them (so that they are of one C library build), into
 * `libDir` under temporary names, and says what the copy's loader path becomes:
 * `<libDir>/<loader>`, which must be the same path in every container that runs
 * it (ECS mounts the bootstrap volume at the same path in each). Undefined for an
 * executable built without that search path: it is copied as it is.
 */
async function copyLibraries(source: string, libDir: string): Promise<CopiedLibraries | undefined> {
  // What to copy is found at once (a few small reads), and the copies are handed to the
  // thread pool here and now: a chain of trips through the pool would advance only as
  // often as the caller's event loop comes back, which in mesh-init can be late enough
  // to make the libraries, not the network work, its last step.
  const elf = readElfLoading(source);
  if (!elf?.interpreter || !elf.searchPath.includes(`$ORIGIN/${basename(libDir)}`)) return undefined;
  const loaderName = basename(elf.interpreter.path);
  const interpreterPath = join(libDir, loaderName);
  if (Buffer.byteLength(interpreterPath) >= elf.interpreter.size) {
    throw new Error(`the path ${interpreterPath} is too long for the executable's loader path (at most ${elf.interpreter.size - 1} bytes); choose a shorter bootstrapDir`);
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
    ...elf.needed.filter((name) => name !== loaderName).map((name) => ({ name, from: find(name, LIBRARY_DIRS.map((dir) => join(dir, name))) })),
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

/** The text of a file, or '' when it cannot be read: read at once (a /proc file through the thread pool takes several trips). */
function readProcFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Writes the copy's loader path into its NUL-padded field and gives the copy its mode:
 * at once, a few small calls on a file just written, rather than four trips through
 * the thread pool at the end of mesh-init.
 */
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
