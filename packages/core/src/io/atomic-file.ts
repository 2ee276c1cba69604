import { closeSync, fchmodSync, fchownSync, fsyncSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConsulEcsError, describeError, writableDirHint } from '../util/errors.js';
import { removeFile } from './fs.js';

export interface AtomicWriteOptions {
  /** File mode, e.g. 0o600 for tokens other containers must not read. */
  mode: number;
  /** Create the parent directory if it is missing. Default false. */
  mkdirs?: boolean;
  /**
   * Flush the data to disk before the rename, so the file survives a host crash.
   * Default false: files in a task's bootstrap volume die with the task, and a
   * flush there waits for every other write on the volume (the executable copy).
   */
  fsync?: boolean;
  /**
   * Give the file to this user and group (it takes root, or CAP_CHOWN): the
   * container that reads it runs as another user. With `ifPermitted`, a refusal
   * (EPERM) leaves the file this process's.
   */
  owner?: { uid: number; gid: number; ifPermitted?: boolean };
}

/**
 * A name for the temporary file no other writer uses: this process's id and 52
 * random bits (for writers in other PID namespaces, i.e. containers sharing the
 * volume). It is created with O_EXCL, so a clash fails the write rather than
 * sharing a file, and nothing depends on the name being unguessable, so
 * Math.random does (node:crypto costs the CLI ~5 ms to load).
 */
function temporaryName(path: string): string {
  const random = Math.floor(Math.random() * 2 ** 52).toString(36);
  return join(dirname(path), `.${basename(path)}.${process.pid}-${random}.tmp`);
}

/** A file written under a temporary name beside its target, not yet in place. */
export interface PreparedFile {
  /** Renames it over the target. */
  commit(): Promise<void>;
  /** Removes it; the target is left as it was. */
  abandon(): Promise<void>;
}

const writeFailed = (path: string, err: unknown) =>
  new ConsulEcsError('file-write-failed', `cannot write ${path}: ${describeError(err)}; ${writableDirHint(dirname(path))}`, {
    cause: err,
  });

/**
 * Writes a file for another container to read: to a temporary file in the same
 * directory, given its mode, then renamed over the target, so readers see the
 * old file or the whole new one and never a partial write.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: AtomicWriteOptions): Promise<void> {
  await (await prepareFileAtomic(path, data, opts)).commit();
}

/**
 * The first half of writeFileAtomic: writes the temporary file, and leaves
 * putting it in place (or not) to the caller, e.g. once what it holds is known
 * to be good.
 *
 * The files are small (tokens, configs of a few KB) and local, so they are
 * written with synchronous calls on one open file: a few system calls take
 * microseconds, where each trip through libuv's thread pool waits for the event
 * loop to come back (mesh-init's and login's is busy), and the first one starts
 * the pool's threads, which login would otherwise never need (nor stop at exit).
 */
export async function prepareFileAtomic(path: string, data: string | Uint8Array, opts: AtomicWriteOptions): Promise<PreparedFile> {
  const dir = dirname(path);
  const tmp = temporaryName(path);
  try {
    if (opts.mkdirs) mkdirSync(dir, { recursive: true });
    const fd = openSync(tmp, 'wx', opts.mode);
    try {
      writeFileSync(fd, data);
      if (opts.fsync) fsyncSync(fd);
      // The umask may have narrowed the mode given to open().
      fchmodSync(fd, opts.mode);
      if (opts.owner) {
        const { uid, gid, ifPermitted } = opts.owner;
        try {
          fchownSync(fd, uid, gid);
        } catch (err) {
          if (!(ifPermitted && (err as NodeJS.ErrnoException).code === 'EPERM')) throw err;
        }
      }
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    await removeFile(tmp).catch(() => {});
    throw writeFailed(path, err);
  }
  return {
    commit: async () => {
      try {
        renameSync(tmp, path);
      } catch (err) {
        await removeFile(tmp).catch(() => {});
        throw writeFailed(path, err);
      }
    },
    abandon: () => removeFile(tmp).catch(() => {}),
  };
}
