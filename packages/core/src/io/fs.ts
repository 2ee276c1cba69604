// File system calls as promises, made from node:fs's callback functions.
// node:fs/promises would cost every command ~1.3 ms of its start: it loads
// readline and the REPL's history with it (for FileHandle.readLines).
// Named imports: a namespace import is bundled as a copy of node:fs's
// properties, whose walk loads fs.Dir's module (~0.8 ms on Node.js 24). Each
// function is promisified at its first call (~30 µs apiece at start-up).
import {
  chmod as chmodCb,
  chown as chownCb,
  close as closeCb,
  closeSync,
  copyFile as copyFileCb,
  fchmodSync,
  fsync as fsyncCb,
  ftruncate as ftruncateCb,
  mkdir as mkdirCb,
  mkdirSync,
  open as openCb,
  openSync,
  read as readCb,
  readFile as readFileCb,
  readFileSync,
  readSync,
  rename as renameCb,
  stat as statCb,
  statSync,
  rmdir as rmdirCb,
  unlink as unlinkCb,
  writeFile as writeFileCb,
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
export const chown = promisifiedOnUse(() => promisify(chownCb));
export const copyFile = promisifiedOnUse(() => promisify(copyFileCb));
export const mkdir = promisifiedOnUse(() => promisify(mkdirCb));
export const stat = promisifiedOnUse(() => promisify(statCb));
export const open = promisifiedOnUse(() => promisify(openCb));
export const close = promisifiedOnUse(() => promisify(closeCb));
export const fsync = promisifiedOnUse(() => promisify(fsyncCb));
export const ftruncate = promisifiedOnUse(() => promisify(ftruncateCb));
export const read = promisifiedOnUse(() => promisify(readCb));
export const rmdir = promisifiedOnUse(() => promisify(rmdirCb));
const unlink = promisifiedOnUse(() => promisify(unlinkCb));

/**
 * The few calls made synchronously: each is one system call on a file already in the
 * page cache, cheaper than the trips to the thread pool and back to a main thread
 * that may be busy (mesh-init's start-up).
 */
export { closeSync, fchmodSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeSync };

/** Removes a file; one that is not there is fine (as `rm -f`). */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
