// The benchmarks' page-cache control. A just-built executable's pages sit in the
// page cache in large folios, which count ~20-30 MB more resident memory (and
// make start-up a little faster) than the same file read from disk, so figures
// would depend on what was built last. Dropping the page cache (root, and a
// writable /proc/sys/vm/drop_caches) makes every run read its binary as a
// container's first run does.
import { execFileSync } from 'node:child_process';
import { accessSync, constants as fsConstants, writeFileSync } from 'node:fs';

const DROP_CACHES = '/proc/sys/vm/drop_caches';

/** Whether this machine lets the page cache be dropped. */
export function canDropPageCache(): boolean {
  try {
    accessSync(DROP_CACHES, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Writes dirty pages out, then drops the clean ones from the page cache. */
export function dropPageCache(): void {
  execFileSync('sync');
  writeFileSync(DROP_CACHES, '1');
}
