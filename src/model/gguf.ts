// GGUF v3, the llama.cpp file format: a minimal reader (metadata, tensor table, one tensor's
// bytes) and a writer for float and block-quantized tensors (Q8_0, Q4_0, Q4_K, Q6_K) — enough to
// hand llama.cpp the same weights this engine runs.
//   "GGUF" | u32 version | u64 tensors | u64 metadata entries | metadata | tensor infos | pad | data
// The reader trusts no count: each is checked against the bytes left before anything is
// allocated, and every tensor must lie, aligned, inside the data section.

import fs from "node:fs";
import { CheckpointError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { ggmlTraitsById } from "../tensor/ggml-quant.js";
import { openForReading } from "./files.js";
import { describeFsError } from "../util/fs-errors.js";

export const GGUF_TYPE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 } as const;

export type GgufValue = number | bigint | boolean | string | GgufArray;
export interface GgufArray {
  type: number;
  values: (number | bigint | boolean | string)[];
}
/** A metadata entry with its GGUF value type. */
export interface GgufEntry {
  type: number;
  value: GgufValue;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (row length). */
  dims: number[];
  type: number;
  offset: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufEntry>;
  tensors: GgufTensorInfo[];
  dataStart: number;
  /** general.alignment (default 32): the data section and every tensor offset are multiples of it. */
  alignment: number;
  fileBytes: number;
}

/**
 * Bytes of a tensor of a type whose block layout we know (ggml-quant's traits table: float types
 * are blocks of one value): null for other types (only their offset is checked), NaN when the row
 * length is not a whole number of blocks.
 */
export function ggufTensorBytes(t: { dims: number[]; type: number }): number | null {
  const traits = ggmlTraitsById(t.type);
  if (!traits) return null;
  const rowLength = t.dims[0] ?? 1;
  if (rowLength % traits.blockSize !== 0) return NaN;
  let bytes = (rowLength / traits.blockSize) * traits.blockBytes;
  for (const d of t.dims.slice(1)) bytes *= d;
  return bytes;
}
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;
/** Smallest encoding of each value type (a string is at least its 8-byte length, an array its type and count). */
const VALUE_MIN_BYTES: Record<number, number> = {
  [GGUF_TYPE.u8]: 1, [GGUF_TYPE.i8]: 1, [GGUF_TYPE.u16]: 2, [GGUF_TYPE.i16]: 2, [GGUF_TYPE.u32]: 4, [GGUF_TYPE.i32]: 4,
  [GGUF_TYPE.f32]: 4, [GGUF_TYPE.bool]: 1, [GGUF_TYPE.string]: 8, [GGUF_TYPE.array]: 12, [GGUF_TYPE.u64]: 8,
  [GGUF_TYPE.i64]: 8, [GGUF_TYPE.f64]: 8,
};
/** key (8-byte length) + type + the smallest value. */
const ENTRY_MIN_BYTES = 8 + 4 + 1;
/** name (8-byte length) + dim count + type + offset. */
const TENSOR_INFO_MIN_BYTES = 8 + 4 + 4 + 8;

/**
 * Reads the header part of a GGUF file from its descriptor, loading more of the file only as the
 * header asks for it (a multi-gigabyte model is never read whole). Every count is checked against
 * the bytes that remain before anything is allocated for it.
 */
class Reader {
  off = 0;
  private buf = Buffer.alloc(0);
  constructor(private readonly fd: number, readonly file: string, readonly fileBytes: number) {}

  fail(what: string): never {
    throw new CheckpointError(`${this.file}: ${what}`);
  }

  get remaining(): number {
    return this.fileBytes - this.off;
  }

  private need(n: number, what: string): void {
    if (n > this.remaining) this.fail(`truncated GGUF header at byte ${this.off}: ${what} needs ${n} bytes, ${this.remaining} remain`);
    if (this.off + n <= this.buf.length) return;
    const size = Math.min(this.fileBytes, Math.max(this.off + n, 2 * this.buf.length, 1 << 16));
    const next = Buffer.alloc(size);
    this.buf.copy(next);
    let done = this.buf.length;
    while (done < size) {
      let got: number;
      try {
        got = fs.readSync(this.fd, next, done, size - done, done);
      } catch (e) {
        this.fail(`cannot read (${describeFsError(e)})`);
      }
      if (got === 0) this.fail(`file shrank while being read (${done} of ${this.fileBytes} bytes)`);
      done += got;
    }
    this.buf = next;
  }

  private take(n: number, what: string): number {
    this.need(n, what);
    const at = this.off;
    this.off += n;
    return at;
  }

  u32(what: string): number {
    const at = this.take(4, what);
    return this.buf.readUInt32LE(at);
  }

  /** A u64 count or offset: refused if over 2^53 (no file holds that many bytes). */
  u64(what: string): number {
    const at = this.take(8, what);
    const v = this.buf.readBigUInt64LE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, larger than any file (corrupt file?)`);
    return Number(v);
  }

  /** A count of items of at least `itemBytes` bytes each, checked against the bytes that remain. */
  count(what: string, itemBytes: number): number {
    const at = this.take(8, what);
    const n = this.buf.readBigUInt64LE(at);
    if (n * BigInt(itemBytes) > BigInt(this.remaining)) {
      this.fail(`${what} at byte ${at} is ${n}, but only ${this.remaining} bytes remain (at least ${itemBytes} per item; corrupt file?)`);
    }
    return Number(n);
  }

  str(what: string): string {
    const n = this.count(`length of ${what}`, 1);
    const at = this.take(n, what);
    return this.buf.toString("utf8", at, at + n);
  }

  scalar(type: number, what: string): number | bigint | boolean | string {
    if (type === GGUF_TYPE.string) return this.str(what);
    const size = VALUE_MIN_BYTES[type];
    if (size === undefined || type === GGUF_TYPE.array) this.fail(`${what}: unknown GGUF value type ${type}`);
    const at = this.take(size, what); // may load more of the file: read this.buf only after it
    const b = this.buf;
    switch (type) {
      case GGUF_TYPE.u8: return b.readUInt8(at);
      case GGUF_TYPE.i8: return b.readInt8(at);
      case GGUF_TYPE.u16: return b.readUInt16LE(at);
      case GGUF_TYPE.i16: return b.readInt16LE(at);
      case GGUF_TYPE.u32: return b.readUInt32LE(at);
      case GGUF_TYPE.i32: return b.readInt32LE(at);
      case GGUF_TYPE.f32: return b.readFloatLE(at);
      case GGUF_TYPE.bool: return b.readUInt8(at) !== 0;
      case GGUF_TYPE.u64: return b.readBigUInt64LE(at);
      case GGUF_TYPE.i64: return b.readBigInt64LE(at);
      default: return b.readDoubleLE(at);
    }
  }
}

/** Read the metadata and tensor table of a GGUF file (not the tensor data), validating every count and offset. */
export function readGguf(file: string): GgufFile {
  const { fd, size } = openForReading(file);
  try {
    return readHeader(new Reader(fd, file, size));
  } finally {
    fs.closeSync(fd);
  }
}

function readHeader(r: Reader): GgufFile {
  if (r.fileBytes < 4) r.fail("not a GGUF file (bad magic)");
  const magic = r.scalar(GGUF_TYPE.u32, "magic") as number;
  if (magic !== 0x46554747) r.fail("not a GGUF file (bad magic)"); // "GGUF" little-endian
  const version = r.u32("version");
  if (version !== 3) r.fail(`GGUF version ${version}; supported: 3`);
  const nTensors = r.count("tensor count", TENSOR_INFO_MIN_BYTES);
  const nKv = r.count("metadata entry count", ENTRY_MIN_BYTES);
  if (nTensors * TENSOR_INFO_MIN_BYTES + nKv * ENTRY_MIN_BYTES > r.remaining) {
    r.fail(`${nTensors} tensors and ${nKv} metadata entries cannot fit in the ${r.remaining} bytes that remain (corrupt file?)`);
  }
  const metadata = new Map<string, GgufEntry>();
  for (let i = 0; i < nKv; i++) {
    const key = r.str(`metadata key ${i}`);
    if (metadata.has(key)) r.fail(`metadata key "${key}" occurs twice`);
    const type = r.u32(`type of metadata "${key}"`);
    if (type === GGUF_TYPE.array) {
      const elemType = r.u32(`element type of metadata "${key}"`);
      if (elemType === GGUF_TYPE.array || !(elemType in VALUE_MIN_BYTES)) {
        r.fail(`metadata "${key}": array element type ${elemType} is not supported (a GGUF scalar or string type)`);
      }
      const n = r.count(`length of metadata array "${key}"`, VALUE_MIN_BYTES[elemType]);
      const values = new Array<number | bigint | boolean | string>(n);
      for (let j = 0; j < n; j++) values[j] = r.scalar(elemType, `metadata "${key}"[${j}]`);
      metadata.set(key, { type, value: { type: elemType, values } });
    } else metadata.set(key, { type, value: r.scalar(type, `metadata "${key}"`) });
  }
  const alignment = readAlignment(r, metadata);
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = r.str(`name of tensor ${i}`);
    if (names.has(name)) r.fail(`tensor "${name}" occurs twice in the tensor table`);
    names.add(name);
    const nd = r.u32(`dimension count of tensor "${name}"`);
    if (nd > MAX_DIMS) r.fail(`tensor "${name}" has ${nd} dimensions; at most ${MAX_DIMS}`);
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(r.u64(`dimension ${d} of tensor "${name}"`));
    tensors.push({ name, dims, type: r.u32(`type of tensor "${name}"`), offset: r.u64(`offset of tensor "${name}"`) });
  }
  const dataStart = Math.ceil(r.off / alignment) * alignment;
  if (tensors.length && dataStart > r.fileBytes) r.fail(`truncated: the data section starts at byte ${dataStart}, but the file has ${r.fileBytes} bytes`);
  const dataBytes = r.fileBytes - dataStart;
  for (const t of tensors) checkTensor(r, t, alignment, dataBytes);
  return { version, metadata, tensors, dataStart, alignment, fileBytes: r.fileBytes };
}

function readAlignment(r: Reader, metadata: Map<string, GgufEntry>): number {
  const e = metadata.get("general.alignment");
  if (!e) return 32;
  const v = e.value;
  const a = typeof v === "bigint" ? Number(v) : v;
  const isInt = e.type !== GGUF_TYPE.f32 && e.type !== GGUF_TYPE.f64 && typeof a === "number" && Number.isSafeInteger(a);
  if (!isInt || a < 1 || (a & (a - 1)) !== 0 || a > 2 ** 30) {
    r.fail(`general.alignment ${typeof v === "object" ? "(an array)" : String(v)} must be a power of two (1, 2, 4, …, 32, …)`);
  }
  return a as number;
}

function checkTensor(r: Reader, t: GgufTensorInfo, alignment: number, dataBytes: number): void {
  const where = `tensor "${t.name}"`;
  if (t.offset % alignment !== 0) r.fail(`${where}: offset ${t.offset} is not a multiple of the alignment ${alignment}`);
  if (t.offset > dataBytes) r.fail(`${where}: offset ${t.offset} is past the end of the ${dataBytes}-byte data section (truncated?)`);
  const bytes = ggufTensorBytes(t);
  if (bytes === null) return;
  const traits = ggmlTraitsById(t.type)!;
  if (Number.isNaN(bytes)) r.fail(`${where}: a ${traits.name} row holds blocks of ${traits.blockSize} values, but dims ${JSON.stringify(t.dims)} give rows of ${t.dims[0]}`);
  if (t.offset + bytes > dataBytes) {
    r.fail(`${where}: ${JSON.stringify(t.dims)} × ${traits.name} is ${bytes} bytes at offset ${t.offset}, past the end of the ${dataBytes}-byte data section (truncated?)`);
  }
}

/**
 * The raw bytes of one tensor of a GGUF file read by readGguf (for block types, the ggml blocks
 * as stored), read from the open descriptor fd — only that tensor, never the whole file. `into`
 * (exactly the tensor's size, e.g. arena memory) receives them when given. `file` names the file
 * in errors.
 */
export function readGgufTensorData(fd: number, g: GgufFile, t: GgufTensorInfo, file = "GGUF file", into?: Uint8Array): Uint8Array {
  const bytes = ggufTensorBytes(t);
  const where = `${file}: tensor "${t.name}"`;
  if (bytes === null || Number.isNaN(bytes)) throw new CheckpointError(`${where}: ggml type ${t.type} with dims ${JSON.stringify(t.dims)} has no size this reader knows (known: F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K)`);
  const start = g.dataStart + t.offset;
  if (start + bytes > g.fileBytes) throw new CheckpointError(`${where}: bytes ${start} … ${start + bytes} lie past the end of the ${g.fileBytes}-byte file`);
  const out = into ?? new Uint8Array(bytes);
  if (out.length !== bytes) throw new CheckpointError(`${where}: is ${bytes} bytes; the buffer given holds ${out.length}`);
  let done = 0;
  while (done < bytes) {
    let got: number;
    try {
      got = fs.readSync(fd, out, done, bytes - done, start + done);
    } catch (e) {
      throw new CheckpointError(`${where}: cannot read (${describeFsError(e)})`);
    }
    if (got === 0) throw new CheckpointError(`${where}: the file shrank while being read (${done} of ${bytes} bytes)`);
    done += got;
  }
  return out;
}

class Writer {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.push(b);
  }
  scalar(type: number, v: number | bigint | boolean | string): void {
    const b = Buffer.alloc(8);
    switch (type) {
      case GGUF_TYPE.u8: b.writeUInt8(v as number); return this.push(b.subarray(0, 1));
      case GGUF_TYPE.i8: b.writeInt8(v as number); return this.push(b.subarray(0, 1));
      case GGUF_TYPE.u16: b.writeUInt16LE(v as number); return this.push(b.subarray(0, 2));
      case GGUF_TYPE.i16: b.writeInt16LE(v as number); return this.push(b.subarray(0, 2));
      case GGUF_TYPE.u32: b.writeUInt32LE(v as number); return this.push(b.subarray(0, 4));
      case GGUF_TYPE.i32: b.writeInt32LE(v as number); return this.push(b.subarray(0, 4));
      case GGUF_TYPE.f32: b.writeFloatLE(v as number); return this.push(b.subarray(0, 4));
      case GGUF_TYPE.bool: b.writeUInt8(v ? 1 : 0); return this.push(b.subarray(0, 1));
      case GGUF_TYPE.string: return this.str(v as string);
      case GGUF_TYPE.u64: b.writeBigUInt64LE(BigInt(v as number)); return this.push(b);
      case GGUF_TYPE.i64: b.writeBigInt64LE(BigInt(v as number)); return this.push(b);
      case GGUF_TYPE.f64: b.writeDoubleLE(v as number); return this.push(b);
      default: throw new CheckpointError(`unknown GGUF value type ${type}`);
    }
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface GgufTensorToWrite {
  name: string;
  /** ggml order (innermost first). */
  dims: number[];
  type: number;
  /** Raw little-endian bytes of the tensor in that type. */
  data: Uint8Array;
}

/** A tensor written piece by piece (a file larger than memory): its byte length and its bytes in order. */
export interface GgufTensorStream {
  name: string;
  dims: number[];
  type: number;
  byteLength: number;
  chunks(): Iterable<Uint8Array>;
}

/** The header (metadata, tensor table) and the data alignment of a GGUF v3 file. */
function ggufHeader(file: string, metadata: Map<string, GgufEntry>, tensors: { name: string; dims: number[]; type: number; byteLength: number }[]): { header: Buffer; align: number } {
  const alignEntry = metadata.get("general.alignment")?.value;
  const ALIGN = alignEntry === undefined ? 32 : Number(alignEntry);
  if (!Number.isSafeInteger(ALIGN) || ALIGN < 1 || (ALIGN & (ALIGN - 1)) !== 0 || ALIGN > 2 ** 30) {
    throw new CheckpointError(`${file}: general.alignment ${String(alignEntry)} must be a power of two`);
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new CheckpointError(`${file}: two tensors are named "${t.name}"`);
    if (t.dims.length > MAX_DIMS) throw new CheckpointError(`${file}: tensor "${t.name}" has ${t.dims.length} dimensions; at most ${MAX_DIMS}`);
    const bytes = ggufTensorBytes(t);
    if (bytes !== null && bytes !== t.byteLength) {
      throw new CheckpointError(`${file}: tensor "${t.name}" (${JSON.stringify(t.dims)} × ${ggmlTraitsById(t.type)!.name}) needs ${Number.isNaN(bytes) ? "rows of whole blocks" : `${bytes} bytes`}, got ${t.byteLength}`);
    }
    names.add(t.name);
  }
  const w = new Writer();
  w.push(Buffer.from("GGUF", "latin1"));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, e] of metadata) {
    w.str(key);
    w.u32(e.type);
    if (e.type === GGUF_TYPE.array) {
      const a = e.value as GgufArray;
      w.u32(a.type);
      w.u64(a.values.length);
      for (const v of a.values) w.scalar(a.type, v);
    } else w.scalar(e.type, e.value as number | bigint | boolean | string);
  }
  let offset = 0;
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.byteLength / ALIGN) * ALIGN;
  }
  return { header: w.concat(), align: ALIGN };
}

const padding = (n: number, align: number) => Buffer.alloc((align - (n % align)) % align);

/**
 * Write a GGUF v3 file (atomically). Entries keep their given types; data aligned to
 * general.alignment (32 when absent), as readers expect.
 */
export function writeGguf(file: string, metadata: Map<string, GgufEntry>, tensors: GgufTensorToWrite[]): void {
  const { header, align } = ggufHeader(file, metadata, tensors.map((t) => ({ ...t, byteLength: t.data.length })));
  const parts: Uint8Array[] = [header, padding(header.length, align)];
  for (const t of tensors) parts.push(t.data, padding(t.data.length, align));
  writeFileAtomic(file, Buffer.concat(parts));
}

/** writeGguf for tensors produced piece by piece (never the whole file in memory); written to a temporary name, then renamed. */
export function writeGgufStreamed(file: string, metadata: Map<string, GgufEntry>, tensors: GgufTensorStream[]): void {
  const { header, align } = ggufHeader(file, metadata, tensors);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, header);
    fs.writeSync(fd, padding(header.length, align));
    for (const t of tensors) {
      let n = 0;
      for (const c of t.chunks()) {
        fs.writeSync(fd, c);
        n += c.length;
      }
      if (n !== t.byteLength) throw new CheckpointError(`${file}: tensor "${t.name}" gave ${n} bytes, ${t.byteLength} announced`);
      fs.writeSync(fd, padding(n, align));
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      // closed already
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
