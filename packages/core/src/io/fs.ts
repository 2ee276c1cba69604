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
  copyFile as copyFileCb,
  fsync as fsyncCb,
  ftruncate as ftruncateCb,
  mkdir as mkdirCb,
  open as openCb,
  read as readCb,
  readFile as readFileCb,
  rename as renameCb,
  stat as statCb,
  rmdir as rmdirCb,
  unlink as unlinkCb,
  write as writeCb,
  writeFile as writeFileCb,
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
export const write = promisifiedOnUse(() => promisify(writeCb));
export const rmdir = promisifiedOnUse(() => promisify(rmdirCb));
const unlink = promisifiedOnUse(() => promisify(unlinkCb));

/** Removes a file; one that is not there is fine (as `rm -f`). */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
