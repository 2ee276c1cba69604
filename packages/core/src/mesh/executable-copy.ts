import { constants as fsConstants } from 'node:fs';
import { dirname, join } from 'node:path';
import { chmod, copyFile, removeFile, rename } from '../io/fs.js';
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
 * puts it in place once everything else has succeeded, and `discard` removes
 * whatever it wrote.
 */
export class ExecutableCopy {
  /** The executable copied. */
  readonly source: string;
  /** Where it is installed: `<bootstrapDir>/consul-ecs`. */
  readonly path: string;
  readonly #tmp: string;
  readonly #copying: Promise<void>;
  #installed = false;

  private constructor(source: string, bootstrapDir: string, started?: StartedCopy) {
    this.source = source;
    this.path = join(bootstrapDir, BOOTSTRAP_FILES.executable.name);
    this.#tmp = started?.tmp ?? `${this.path}.tmp-${process.pid}`;
    // Into a new file (EXCL): libuv then skips its ftruncate(0), which on ext4 makes
    // close() start writing the whole file back (auto_da_alloc), 5-40 ms on
    // mesh-init's critical path. The copy is handed to libuv's thread pool here and
    // now, not after a first step: a callback would wait until the caller next
    // yields to the event loop, and mesh-init loads the rest of core before it does.
    // One that a crashed run left under this pid is removed and the copy tried again.
    // FICLONE shares the data where the file system can (XFS, btrfs).
    const copy = () => copyFile(source, this.#tmp, fsConstants.COPYFILE_FICLONE | fsConstants.COPYFILE_EXCL);
    const copyAnew = () =>
      copy().catch(async (err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        await removeFile(this.#tmp);
        await copy();
      });
    this.#copying = (started ? started.copied.then((copied) => (copied ? undefined : copyAnew())) : copyAnew()).then(() =>
      chmod(this.#tmp, BOOTSTRAP_FILES.executable.mode),
    );
    this.#copying.catch(() => {});
  }

  /**
   * Starts copying `source` into `bootstrapDir` (under a temporary name), or carries
   * on with a copy of it already `started` there.
   */
  static start(source: string, bootstrapDir: string, started?: StartedCopy): ExecutableCopy {
    if (started && started.source !== source) throw new TypeError(`the copy started is of ${started.source}, not ${source}`);
    return new ExecutableCopy(source, bootstrapDir, started);
  }

  /** Waits for the copy to finish and renames it into place. */
  async install(): Promise<void> {
    try {
      await this.#copying;
      await rename(this.#tmp, this.path);
    } catch (err) {
      throw new ConsulEcsError(
        'file-write-failed',
        `cannot copy the consul-ecs executable ${this.source} to ${this.path}: ${describeError(err)}; ${writableDirHint(`bootstrapDir ${dirname(this.path)}`)}`,
        { cause: err },
      );
    }
    this.#installed = true;
  }

  /** Waits for the copy to stop and removes what it wrote: the temporary file, and the installed one. */
  async discard(): Promise<void> {
    await this.#copying.catch(() => {});
    await removeFile(this.#tmp);
    if (this.#installed) await removeFile(this.path);
  }
}
