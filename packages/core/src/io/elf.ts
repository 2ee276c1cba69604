// How an ELF executable is loaded, read from its headers: the loader it names
// (PT_INTERP), the shared libraries it needs (DT_NEEDED) and where it looks for
// them (DT_RPATH, DT_RUNPATH). 64-bit little-endian files only (linux-x64 and
// linux-arm64, what Node.js single executables are built for). Only the headers,
// the dynamic section and its string table are read, not the whole file.
import { close, open, read } from './fs.js';

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

/** The loading information of `file`; undefined when it is not a 64-bit little-endian ELF file. */
export async function readElfLoading(file: string): Promise<ElfLoading | undefined> {
  const fd = await open(file, 'r');
  try {
    const at = async (position: number, length: number): Promise<Buffer> => {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await read(fd, buf, 0, length, position);
      if (bytesRead !== length) throw new Error(`${file}: ELF data at ${position} (${length} bytes) is past the end of the file`);
      return buf;
    };
    const header = Buffer.alloc(64);
    const { bytesRead } = await read(fd, header, 0, 64, 0);
    if (bytesRead < 64 || header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return undefined;
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = await at(phoff, phentsize * phnum);

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
      const field = await at(interp.offset, interp.size);
      const end = field.indexOf(0);
      out.interpreter = { path: field.toString('utf8', 0, end < 0 ? field.length : end), ...interp };
    }
    if (!dynamic) return out;

    const entries = await at(dynamic.offset, dynamic.size);
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
    const strings = await at(load.offset + (strtab - load.vaddr), strsz);
    const str = (i: bigint) => {
      const start = Number(i);
      const end = strings.indexOf(0, start);
      return strings.toString('utf8', start, end < 0 ? strings.length : end);
    };
    out.needed = needed.map(str);
    out.searchPath = paths.flatMap((p) => str(p).split(':')).filter((p) => p !== '');
    return out;
  } finally {
    await close(fd);
  }
}
