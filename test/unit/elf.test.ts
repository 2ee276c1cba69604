// Reading how an ELF executable is loaded: its loader, the libraries it needs and
// its library search path, from the headers alone.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { readElfLoading } from '@consul-ecs-ts/sea';
import { elfFile } from '../helpers/elf-file.ts';

describe('readElfLoading', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'elf-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("reads this Node.js's loader and the C library it needs, and where the loader's path is in the file", async () => {
    const elf = readElfLoading(process.execPath);
    assert.ok(elf?.interpreter, 'an interpreter');
    assert.match(elf.interpreter.path, /\/ld-linux-(x86-64|aarch64)\.so\.\d$/);
    assert.ok(elf.interpreter.size > elf.interpreter.path.length, 'a NUL-terminated field');
    assert.ok(elf.needed.includes('libc.so.6'), `needs libc.so.6: ${elf.needed}`);
    assert.ok(elf.searchPath.every((p) => p !== ''));
  });

  it('is undefined for a file that is not a 64-bit ELF file (a script), and fails on a cut-off one', async () => {
    await writeFile(join(dir, 'script'), '#!/bin/sh\necho hi\n'.repeat(10));
    assert.equal(readElfLoading(join(dir, 'script')), undefined);
    const header = Buffer.alloc(64);
    header.write('\x7fELF', 0, 'latin1');
    header[4] = 2;
    header[5] = 1;
    header.writeBigUInt64LE(4096n, 0x20); // program headers past the end
    header.writeUInt16LE(56, 0x36);
    header.writeUInt16LE(3, 0x38);
    await writeFile(join(dir, 'cut'), header);
    assert.throws(() => readElfLoading(join(dir, 'cut')), /ELF data at 4096 \(168 bytes\) is past the end of the file/);
  });

  it('reads the names wanted from a string table past the first page, a name longer than the span read after it too', async () => {
    // The string table is past the first page. Its RUNPATH, the last name wanted, is
    // 2000 bytes: longer than what is read past the start of the last name.
    const runpath = `$ORIGIN/${'x'.repeat(1990)}:/opt/lib`;
    const file = elfFile({
      interpreter: '/lib64/ld-linux-x86-64.so.2',
      needed: [
        ['libc.so.6', 1],
        ['libm.so.6', 30000],
      ],
      runpath: [runpath, 30020],
    });
    await writeFile(join(dir, 'exe'), file);
    assert.deepEqual(readElfLoading(join(dir, 'exe')), {
      interpreter: { path: '/lib64/ld-linux-x86-64.so.2', offset: 512, size: 64 },
      needed: ['libc.so.6', 'libm.so.6'],
      searchPath: [`$ORIGIN/${'x'.repeat(1990)}`, '/opt/lib'],
    });
  });
});
