import { readFile } from 'node:fs/promises';

/** The ACL token in a token sink file (as `login` or mesh-init writes it), without the whitespace around it. */
export async function readTokenFile(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}
