// How an ELF executable is loaded, read from its headers: the loader it names
// (PT_INTERP), the shared libraries it needs (DT_NEEDED) and where it looks for
// them (DT_RPATH, DT_RUNPATH). 64-bit little-endian files only (linux-x64 and
// linux-arm64, what Node.js single executables are built for). Only the headers,
// the dynamic section and the names wanted from its string table are read.
import { closeSync, openSync, readSync } from 'node:fs';

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

export interface ElfLoading {
  /** The loader's path, and where its NUL-padded field is in the file (`size` bytes at `offset`). */
  interpreter?: { path: string; offset: number; size: number };
  /** DT_NEEDED, in order. */
  needed: string[];
  /** DT_RPATH and DT_RUNPATH, split at ':'. */
  searchPath: string[];
}

/**
 * Bytes read at the start of the file: the ELF header, the program header table
 * and the loader's path are there in an executable as linkers lay it out.
 */
const HEAD_BYTES = 4096;
/** Bytes read past the last string wanted; a longer name is read to its end. */
const NAME_BYTES = 512;

/**
 * The loading information of `file`; undefined when it is not a 64-bit little-endian ELF file.
 * Synchronous, and three reads in all for a usual executable (the first page, the dynamic
 * section, the span of the string table that holds the names wanted): each read through the
 * thread pool would wait for the caller's event loop to come back, which in mesh-init may be
 * late. Node.js's string table is ~2 MB, of which the names are a few hundred bytes.
 */
export function readElfLoading(file: string): ElfLoading | undefined {
  const fd = openSync(file, 'r');
  try {
    const read0 = (position: number, length: number): Buffer => {
      const buf = Buffer.alloc(length);
      return buf.subarray(0, readSync(fd, buf, 0, length, position));
    };
    const head = read0(0, HEAD_BYTES);
    const at = (position: number, length: number): Buffer => {
      if (position + length <= head.length) return head.subarray(position, position + length);
      const buf = read0(position, length);
      if (buf.length !== length) throw new Error(`${file}: ELF data at ${position} (${length} bytes) is past the end of the file`);
      return buf;
    };
    if (head.length < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return undefined;
    const phoff = Number(head.readBigUInt64LE(0x20));
    const phentsize = head.readUInt16LE(0x36);
    const phnum = head.readUInt16LE(0x38);
    const table = at(phoff, phentsize * phnum);

    const loads: Array<{ offset: number; vaddr: number; filesz: number }> = [];
    let interp: { offset: number; size: number } | undefined;
    let dynamic: { offset: number; size: number } | undefined;
    for (let i = 0; i < phnum; i++) {
      const ph = table.subarray(i * phentsize, (i + 1) * phentsize);
      const type = ph.readUInt32LE(0);
      const offset = Number(ph.readBigUInt64LE(8));
      const filesz = Number(ph.readBigUInt64LE(32));
      if (type === PT_LOAD) loads.push({ offset, vaddr: Number(ph.readBigUInt64LE(16)), filesz });
      else if (type === PT_INTERP) interp = { offset, size: filesz };
      else if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
    }

    const out: ElfLoading = { needed: [], searchPath: [] };
    if (interp) {
      const field = at(interp.offset, interp.size);
      const end = field.indexOf(0);
      out.interpreter = { path: field.toString('utf8', 0, end < 0 ? field.length : end), ...interp };
    }
    if (!dynamic) return out;

    const entries = at(dynamic.offset, dynamic.size);
    const needed: bigint[] = [];
    const paths: bigint[] = [];
    let strtab: number | undefined;
    let strsz = 0;
    for (let off = 0; off + 16 <= entries.length; off += 16) {
      const tag = entries.readBigInt64LE(off);
      const val = entries.readBigUInt64LE(off + 8);
      if (tag === DT_NULL) break;
      if (tag === DT_NEEDED) needed.push(val);
      else if (tag === DT_RPATH || tag === DT_RUNPATH) paths.push(val);
      else if (tag === DT_STRTAB) strtab = Number(val);
      else if (tag === DT_STRSZ) strsz = Number(val);
    }
    if (strtab === undefined) return out;
    // DT_STRTAB is an address: find where the segment that holds it is in the file.
    const load = loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.filesz);
    if (!load) throw new Error(`${file}: its dynamic string table (address 0x${strtab.toString(16)}) is in no loaded segment`);
    const base = load.offset + (strtab - load.vaddr);
    const wanted = [...needed, ...paths].map(Number);
    if (wanted.length === 0) return out;
    const past = wanted.find((i) => i >= strsz);
    if (past !== undefined) throw new Error(`${file}: a name at ${past} is past its dynamic string table (${strsz} bytes)`);
    const from = Math.min(...wanted);
    const span = at(base + from, Math.min(strsz, Math.max(...wanted) + NAME_BYTES) - from);
    const str = (i: bigint): string => {
      const start = Number(i);
      let end = span.indexOf(0, start - from);
      if (end >= 0) return span.toString('utf8', start - from, end);
      const rest = at(base + start, strsz - start);
      end = rest.indexOf(0);
      return rest.toString('utf8', 0, end < 0 ? rest.length : end);
    };
    out.needed = needed.map(str);
    out.searchPath = paths.flatMap((p) => str(p).split(':')).filter((p) => p !== '');
    return out;
  } finally {
    closeSync(fd);
  }
}
