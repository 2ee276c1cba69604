// File system calls as promises, made from node:fs's callback functions.
// node:fs/promises would cost every command ~1.3 ms of its start: it loads
// readline and the REPL's history with it (for FileHandle.readLines).
import * as fs from 'node:fs';
import { promisify } from 'node:util';

export const readFile = promisify(fs.readFile);
export const writeFile = promisify(fs.writeFile);
export const rename = promisify(fs.rename);
export const chmod = promisify(fs.chmod);
export const copyFile = promisify(fs.copyFile);
export const mkdir = promisify(fs.mkdir);
export const stat = promisify(fs.stat);
export const open = promisify(fs.open);
export const close = promisify(fs.close);
export const fsync = promisify(fs.fsync);
export const ftruncate = promisify(fs.ftruncate);
const unlink = promisify(fs.unlink);

/** Removes a file; one that is not there is fine (as `rm -f`). */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
