// A minimal 64-bit little-endian ELF executable, as the loader reads its headers: the
// ELF header and a loader path (PT_INTERP, in a field of `interpreterSize` bytes) in
// the first page, a dynamic section at 8 KB and a 64 KB string table at 12 KB holding
// the names given at their offsets. Enough for readElfLoading; it does not run.
export interface ElfFileSpec {
  interpreter: string;
  interpreterSize?: number;
  /** DT_NEEDED names, at their offsets in the string table. */
  needed: Array<[name: string, offset: number]>;
  /** The DT_RUNPATH string, at its offset in the string table. */
  runpath?: [path: string, offset: number];
}

export const ELF_INTERPRETER_OFFSET = 512;

export function elfFile(spec: ElfFileSpec): Buffer {
  const strtab = Buffer.alloc(65536);
  const entries: Array<[bigint, number]> = [];
  for (const [name, offset] of spec.needed) {
    strtab.write(`${name}\0`, offset, 'latin1');
    entries.push([1n, offset]);
  }
  if (spec.runpath) {
    strtab.write(`${spec.runpath[0]}\0`, spec.runpath[1], 'latin1');
    entries.push([29n, spec.runpath[1]]);
  }
  const dynOff = 8192;
  const strOff = 12288;
  entries.push([5n, strOff], [10n, strtab.length], [0n, 0]);
  const dyn = Buffer.alloc(16 * entries.length);
  entries.forEach(([tag, val], i) => {
    dyn.writeBigInt64LE(tag, i * 16);
    dyn.writeBigUInt64LE(BigInt(val), i * 16 + 8);
  });
  const file = Buffer.alloc(strOff + strtab.length);
  file.write('\x7fELF', 0, 'latin1');
  file[4] = 2;
  file[5] = 1;
  file.writeBigUInt64LE(64n, 0x20);
  file.writeUInt16LE(56, 0x36);
  file.writeUInt16LE(3, 0x38);
  const ph = (i: number, type: number, offset: number, size: number) => {
    const at = 64 + i * 56;
    file.writeUInt32LE(type, at);
    file.writeBigUInt64LE(BigInt(offset), at + 8);
    file.writeBigUInt64LE(BigInt(offset), at + 16); // loaded at address = offset
    file.writeBigUInt64LE(BigInt(size), at + 32);
  };
  ph(0, 3, ELF_INTERPRETER_OFFSET, spec.interpreterSize ?? 64); // PT_INTERP
  ph(1, 1, 0, file.length); // PT_LOAD: the whole file
  ph(2, 2, dynOff, dyn.length); // PT_DYNAMIC
  file.write(`${spec.interpreter}\0`, ELF_INTERPRETER_OFFSET, 'latin1');
  dyn.copy(file, dynOff);
  strtab.copy(file, strOff);
  return file;
}
