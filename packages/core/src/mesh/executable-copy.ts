import { constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { chmod, copyFile, removeFile, rename } from '../io/fs.js';
import { ConsulEcsError, describeError } from '../util/errors.js';
import { BOOTSTRAP_FILES } from './bootstrap-files.js';

/**
 * The self-contained consul-ecs executable on its way into the bootstrap dir,
 * where the dataplane and app containers run it from. It is large (the Node.js
 * runtime is most of it), so it is copied to a temporary name as soon as the
 * config is known to be valid, while the rest of mesh-init goes on; `install`
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

  private constructor(source: string, bootstrapDir: string) {
    this.source = source;
    this.path = join(bootstrapDir, BOOTSTRAP_FILES.executable.name);
    this.#tmp = `${this.path}.tmp-${process.pid}`;
    // A new file (EXCL, after removing one a crashed run left under this pid): libuv
    // then skips its ftruncate(0), which on ext4 makes close() start writing the
    // whole file back (auto_da_alloc), 5-40 ms on mesh-init's critical path.
    // FICLONE shares the data where the file system can (XFS, btrfs).
    this.#copying = removeFile(this.#tmp)
      .then(() => copyFile(source, this.#tmp, fsConstants.COPYFILE_FICLONE | fsConstants.COPYFILE_EXCL))
      .then(() => chmod(this.#tmp, BOOTSTRAP_FILES.executable.mode));
    this.#copying.catch(() => {});
  }

  /** Starts copying `source` into `bootstrapDir` (under a temporary name). */
  static start(source: string, bootstrapDir: string): ExecutableCopy {
    return new ExecutableCopy(source, bootstrapDir);
  }

  /** Waits for the copy to finish and renames it into place. */
  async install(): Promise<void> {
    try {
      await this.#copying;
      await rename(this.#tmp, this.path);
    } catch (err) {
      throw new ConsulEcsError(
        'file-write-failed',
        `cannot copy the consul-ecs executable ${this.source} to ${this.path}: ${describeError(err)}; check that bootstrapDir exists and is writable`,
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
