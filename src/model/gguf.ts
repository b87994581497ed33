// GGUF v3, the llama.cpp file format: a minimal reader (metadata and tensor table) and a writer
// for float tensors — enough to hand llama.cpp the same weights this engine runs.
//   "GGUF" | u32 version | u64 tensors | u64 metadata entries | metadata | tensor infos | pad | data

import fs from "node:fs";
import { CheckpointError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";

export const GGUF_TYPE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
export const GGML_TYPE = { F32: 0, F16: 1, BF16: 30 } as const;

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
}

class Reader {
  off = 0;
  constructor(private readonly buf: Buffer, private readonly file: string) {}
  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new CheckpointError(`${this.file}: truncated GGUF header at byte ${this.off}`);
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = Number(this.buf.readBigUInt64LE(this.off));
    this.off += 8;
    return v;
  }
  str(): string {
    const n = this.u64();
    this.need(n);
    const s = this.buf.toString("utf8", this.off, this.off + n);
    this.off += n;
    return s;
  }
  scalar(type: number): number | bigint | boolean | string {
    const b = this.buf;
    const take = (n: number) => {
      this.need(n);
      const at = this.off;
      this.off += n;
      return at;
    };
    switch (type) {
      case GGUF_TYPE.u8: return b.readUInt8(take(1));
      case GGUF_TYPE.i8: return b.readInt8(take(1));
      case GGUF_TYPE.u16: return b.readUInt16LE(take(2));
      case GGUF_TYPE.i16: return b.readInt16LE(take(2));
      case GGUF_TYPE.u32: return b.readUInt32LE(take(4));
      case GGUF_TYPE.i32: return b.readInt32LE(take(4));
      case GGUF_TYPE.f32: return b.readFloatLE(take(4));
      case GGUF_TYPE.bool: return b.readUInt8(take(1)) !== 0;
      case GGUF_TYPE.string: return this.str();
      case GGUF_TYPE.u64: return b.readBigUInt64LE(take(8));
      case GGUF_TYPE.i64: return b.readBigInt64LE(take(8));
      case GGUF_TYPE.f64: return b.readDoubleLE(take(8));
      default: throw new CheckpointError(`${this.file}: unknown GGUF value type ${type}`);
    }
  }
}

/** Read the metadata and tensor table of a GGUF file (not the tensor data). */
export function readGguf(file: string): GgufFile {
  const buf = fs.readFileSync(file);
  const r = new Reader(buf, file);
  if (buf.length < 4 || buf.toString("latin1", 0, 4) !== "GGUF") throw new CheckpointError(`${file}: not a GGUF file (bad magic)`);
  r.off = 4;
  const version = r.u32();
  if (version !== 3) throw new CheckpointError(`${file}: GGUF version ${version}; supported: 3`);
  const nTensors = r.u64();
  const nKv = r.u64();
  const metadata = new Map<string, GgufEntry>();
  for (let i = 0; i < nKv; i++) {
    const key = r.str();
    const type = r.u32();
    if (type === GGUF_TYPE.array) {
      const elemType = r.u32();
      const n = r.u64();
      const values = Array.from({ length: n }, () => r.scalar(elemType));
      metadata.set(key, { type, value: { type: elemType, values } });
    } else metadata.set(key, { type, value: r.scalar(type) });
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.str();
    const nd = r.u32();
    const dims = Array.from({ length: nd }, () => r.u64());
    tensors.push({ name, dims, type: r.u32(), offset: r.u64() });
  }
  const align = Number((metadata.get("general.alignment")?.value as number | undefined) ?? 32);
  return { version, metadata, tensors, dataStart: Math.ceil(r.off / align) * align };
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

/** Write a GGUF v3 file (atomically). Entries keep their given types; data aligned to 32 bytes. */
export function writeGguf(file: string, metadata: Map<string, GgufEntry>, tensors: GgufTensorToWrite[]): void {
  const ALIGN = 32;
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
    offset += Math.ceil(t.data.length / ALIGN) * ALIGN;
  }
  const header = w.concat();
  const pad = (n: number) => Buffer.alloc((ALIGN - (n % ALIGN)) % ALIGN);
  const parts: Uint8Array[] = [header, pad(header.length)];
  for (const t of tensors) parts.push(t.data, pad(t.data.length));
  writeFileAtomic(file, Buffer.concat(parts));
}
