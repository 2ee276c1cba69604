// File system calls as promises, made from node:fs's callback functions, and the
// synchronous ones used for small local files (see below).
// node:fs/promises would cost every command ~1.3 ms of its start: it loads
// readline and the REPL's history with it (for FileHandle.readLines).
// Named imports: a namespace import is bundled as a copy of node:fs's
// properties, whose walk loads fs.Dir's module (~0.8 ms on Node.js 24). Each
// function is promisified at its first call (~30 µs apiece at start-up).
import {
  chmod as chmodCb,
  close as closeCb,
  closeSync,
  copyFile as copyFileCb,
  fchmodSync,
  fchownSync,
  fsync as fsyncCb,
  fsyncSync,
  ftruncate as ftruncateCb,
  mkdirSync,
  open as openCb,
  openSync,
  readFile as readFileCb,
  readFileSync,
  readSync,
  rename as renameCb,
  renameSync,
  stat as statCb,
  statSync,
  rmdir as rmdirCb,
  unlink as unlinkCb,
  writeFile as writeFileCb,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { promisify } from 'node:util';

/** `promisify(fn)`, made when it is first called. */
function promisifiedOnUse<T>(make: () => T): T {
  let fn: ((...args: unknown[]) => unknown) | undefined;
  return ((...args: unknown[]) => (fn ??= make() as (...args: unknown[]) => unknown)(...args)) as T;
}

export const readFile = promisifiedOnUse(() => promisify(readFileCb));
export const writeFile = promisifiedOnUse(() => promisify(writeFileCb));
export const rename = promisifiedOnUse(() => promisify(renameCb));
export const chmod = promisifiedOnUse(() => promisify(chmodCb));
export const copyFile = promisifiedOnUse(() => promisify(copyFileCb));
export const stat = promisifiedOnUse(() => promisify(statCb));
export const open = promisifiedOnUse(() => promisify(openCb));
export const close = promisifiedOnUse(() => promisify(closeCb));
export const fsync = promisifiedOnUse(() => promisify(fsyncCb));
export const ftruncate = promisifiedOnUse(() => promisify(ftruncateCb));
export const rmdir = promisifiedOnUse(() => promisify(rmdirCb));
const unlink = promisifiedOnUse(() => promisify(unlinkCb));

/**
 * Synchronous calls, for small local files (tokens, configs, an ELF header): each
 * is one system call of microseconds, where a trip through libuv's thread pool
 * waits for the event loop to come back, and the first one starts the pool.
 */
export { closeSync, fchmodSync, fchownSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync, writeSync };

/** Removes a file; one that is not there is fine (as `rm -f`). */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
