// Reading how an ELF executable is loaded: its loader, the libraries it needs and
// its library search path, from the headers alone.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { readElfLoading } from '../../packages/core/src/io/elf.ts';

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
    // A minimal executable: the headers and a loader path in the first page, then a dynamic
    // section at 8 KB and a 64 KB string table at 12 KB. Its RUNPATH, the last name wanted,
    // is 2000 bytes: longer than what is read past the start of the last name.
    const runpath = `$ORIGIN/${'x'.repeat(1990)}:/opt/lib`;
    const strtab = Buffer.alloc(65536);
    const names = { libc: 1, libm: 30000, runpath: 30020 };
    strtab.write('libc.so.6\0', names.libc, 'latin1');
    strtab.write('libm.so.6\0', names.libm, 'latin1');
    strtab.write(`${runpath}\0`, names.runpath, 'latin1');
    const dynOff = 8192;
    const strOff = 12288;
    const dyn = Buffer.alloc(16 * 6);
    [[1n, names.libc], [1n, names.libm], [29n, names.runpath], [5n, strOff], [10n, strtab.length], [0n, 0]].forEach(([tag, val], i) => {
      dyn.writeBigInt64LE(BigInt(tag!), i * 16);
      dyn.writeBigUInt64LE(BigInt(val!), i * 16 + 8);
    });
    const file = Buffer.alloc(strOff + strtab.length);
    file.write('\x7fELF', 0, 'latin1');
    file[4] = 2;
    file[5] = 1;
    file.writeBigUInt64LE(64n, 0x20);
    file.writeUInt16LE(56, 0x36);
    file.writeUInt16LE(3, 0x38);
    const ph = (i: number, type: number, offset: number, vaddr: number, size: number) => {
      const at = 64 + i * 56;
      file.writeUInt32LE(type, at);
      file.writeBigUInt64LE(BigInt(offset), at + 8);
      file.writeBigUInt64LE(BigInt(vaddr), at + 16);
      file.writeBigUInt64LE(BigInt(size), at + 32);
    };
    ph(0, 3, 512, 512, 64); // PT_INTERP
    ph(1, 1, 0, 0, file.length); // PT_LOAD: the whole file, at address 0
    ph(2, 2, dynOff, dynOff, dyn.length); // PT_DYNAMIC
    file.write('/lib64/ld-linux-x86-64.so.2\0', 512, 'latin1');
    dyn.copy(file, dynOff);
    strtab.copy(file, strOff);
    await writeFile(join(dir, 'exe'), file);
    assert.deepEqual(readElfLoading(join(dir, 'exe')), {
      interpreter: { path: '/lib64/ld-linux-x86-64.so.2', offset: 512, size: 64 },
      needed: ['libc.so.6', 'libm.so.6'],
      searchPath: [`$ORIGIN/${'x'.repeat(1990)}`, '/opt/lib'],
    });
  });
});
