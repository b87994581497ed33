// The safetensors format, parsed and validated by hand:
//   u64 little-endian N | N bytes of JSON header | data bytes
// header: { "__metadata__"?: {str: str}, name: {dtype, shape, data_offsets: [begin, end]} }
// with offsets relative to the start of the data section.

import fs from "node:fs";
import { CheckpointError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import type { Matrix, WeightDtype } from "../tensor/matrix.js";
import { allocF32, allocU16, release } from "../tensor/memory.js";

/** Headers larger than this are refused: real ones are kilobytes, a huge value means corruption. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};

/** dtypes whose values we convert to float32 on load. */
export const FLOAT_DTYPES = ["F32", "F16", "BF16"] as const;
export type FloatDtype = (typeof FLOAT_DTYPES)[number];

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  fileBytes: number;
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

function fail(file: string, what: string): never {
  throw new CheckpointError(`${file}: ${what}`);
}

/** Read and validate the header of a safetensors file (does not read tensor data). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    throw new CheckpointError(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  try {
    const fileBytes = fs.fstatSync(fd).size;
    if (fileBytes < 8) fail(file, `truncated: ${fileBytes} bytes, too small to hold the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = lenBuf.readBigUInt64LE(0);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      fail(file, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte bound (corrupt file?)`);
    }
    const n = Number(headerLen);
    if (8 + n > fileBytes) fail(file, `truncated: header says ${n} header bytes but the file has only ${fileBytes - 8} after the length`);
    const headerBuf = Buffer.alloc(n);
    fs.readSync(fd, headerBuf, 0, n, 8);
    return parseHeader(file, headerBuf, fileBytes);
  } finally {
    fs.closeSync(fd);
  }
}

function parseHeader(file: string, headerBuf: Buffer, fileBytes: number): SafetensorsHeader {
  let json: unknown;
  try {
    json = JSON.parse(headerBuf.toString("utf8"));
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) fail(file, "header is not a JSON object");
  const dataStart = 8 + headerBuf.length;
  const dataBytes = fileBytes - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(file, "__metadata__ is not an object");
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(file, `__metadata__.${k} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const where = `tensor "${name}"`;
    if (raw === null || typeof raw !== "object") fail(file, `${where}: entry is not an object`);
    const { dtype, shape, data_offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      fail(file, `${where}: unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(", ")})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(file, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(data_offsets) || data_offsets.length !== 2 ||
      !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0) || data_offsets[0] > data_offsets[1]
    ) {
      fail(file, `${where}: data_offsets ${JSON.stringify(data_offsets)} must be [begin, end] with 0 <= begin <= end`);
    }
    const [b, e] = data_offsets as number[];
    const elements = (shape as number[]).reduce((a, d) => a * d, 1);
    const expected = elements * DTYPE_BYTES[dtype];
    if (e - b !== expected) {
      fail(file, `${where}: shape ${JSON.stringify(shape)} × ${dtype} (${DTYPE_BYTES[dtype]} B) = ${expected} bytes, but data_offsets span ${e - b}`);
    }
    if (e > dataBytes) {
      fail(file, `${where}: data ends at byte ${e} of the data section, but the file holds only ${dataBytes} data bytes (truncated?)`);
    }
    tensors.set(name, { name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  // no two non-empty tensors share a byte: compare each with the furthest-reaching one before it
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((x, y) => x.begin - y.begin || x.end - y.end);
  let reach: TensorInfo | null = null;
  for (const cur of sorted) {
    if (reach && cur.begin < reach.end) fail(file, `tensor "${cur.name}" overlaps tensor "${reach.name}" in the data section`);
    if (!reach || cur.end > reach.end) reach = cur;
  }
  return { file, fileBytes, dataStart, tensors, metadata };
}

/** Reads tensors of one safetensors file one at a time (peak memory: one tensor's raw bytes). */
export class SafetensorsFile {
  readonly header: SafetensorsHeader;
  private fd: number;

  constructor(readonly file: string) {
    this.header = readSafetensorsHeader(file);
    this.fd = fs.openSync(file, "r");
  }

  get names(): string[] {
    return [...this.header.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (!t) throw new CheckpointError(`${this.file}: no tensor "${name}"`);
    return t;
  }

  /** Read a float tensor converted to float32 (into `out` when given). */
  readF32(name: string, out?: Float32Array): Float32Array {
    const t = this.info(name);
    if (!(FLOAT_DTYPES as readonly string[]).includes(t.dtype)) {
      throw new CheckpointError(`${this.file}: tensor "${name}" has dtype ${t.dtype}; supported: ${FLOAT_DTYPES.join(", ")}`);
    }
    const n = t.shape.reduce((a, d) => a * d, 1);
    const result = out ?? allocF32(n);
    if (result.length !== n) throw new CheckpointError(`${this.file}: tensor "${name}" has ${n} elements, destination ${result.length}`);
    const bytes = t.end - t.begin;
    if (t.dtype === "F32") {
      this.readInto(t, new Uint8Array(result.buffer, result.byteOffset, bytes));
    } else {
      const raw = new Uint16Array(n);
      this.readInto(t, new Uint8Array(raw.buffer, 0, bytes));
      if (t.dtype === "F16") f16ToF32(raw, result);
      else bf16ToF32(raw, result);
    }
    return result;
  }

  /**
   * A 2-D float tensor as a weight matrix in `dtype`; "auto" keeps the checkpoint's
   * precision (F32 → f32, F16 → f16, BF16 → bf16).
   */
  readMatrix(name: string, dtype: WeightDtype | "auto"): Matrix {
    const t = this.info(name);
    if (t.shape.length !== 2) throw new CheckpointError(`${this.file}: tensor "${name}" has shape ${JSON.stringify(t.shape)}, expected a matrix`);
    const [rows, cols] = t.shape;
    const stored: WeightDtype | null = t.dtype === "F32" ? "f32" : t.dtype === "F16" ? "f16" : t.dtype === "BF16" ? "bf16" : null;
    const target = dtype === "auto" ? stored : dtype;
    if (stored === null || target === null) {
      throw new CheckpointError(`${this.file}: tensor "${name}" has dtype ${t.dtype}; supported: ${FLOAT_DTYPES.join(", ")}`);
    }
    if (target === stored && stored !== "f32") {
      const raw = allocU16(rows * cols);
      this.readInto(t, new Uint8Array(raw.buffer, raw.byteOffset, t.end - t.begin));
      return { dtype: stored, rows, cols, data: raw };
    }
    const f32 = this.readF32(name);
    if (target === "f32") return { dtype: "f32", rows, cols, data: f32 };
    const half = allocU16(f32.length);
    if (target === "bf16") f32ToBf16(f32, half);
    else f32ToF16(f32, half);
    release(f32);
    return { dtype: target, rows, cols, data: half };
  }

  /** Raw bytes of a tensor (any dtype). */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const buf = new Uint8Array(t.end - t.begin);
    this.readInto(t, buf);
    return buf;
  }

  private readInto(t: TensorInfo, dest: Uint8Array): void {
    let done = 0;
    while (done < dest.length) {
      const got = fs.readSync(this.fd, dest, done, dest.length - done, t.begin + done);
      if (got === 0) throw new CheckpointError(`${this.file}: tensor "${t.name}": unexpected end of file (truncated?)`);
      done += got;
    }
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

export interface TensorToWrite {
  name: string;
  dtype: "F32" | "F16" | "BF16" | "I32" | "I64" | "U8";
  shape: number[];
  /** Float data is converted to the dtype; integer dtypes take Int32Array/BigInt64Array/Uint8Array. */
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array;
}

/** Serialise tensors to safetensors bytes. */
export function encodeSafetensors(tensors: TensorToWrite[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const bytes = tensorBytes(t);
    const elements = t.shape.reduce((a, d) => a * d, 1);
    if (bytes.length !== elements * DTYPE_BYTES[t.dtype]) {
      throw new CheckpointError(`tensor "${t.name}": ${bytes.length} bytes do not match shape ${JSON.stringify(t.shape)} × ${t.dtype}`);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, "utf8");
  const jsonBuf = Buffer.from(json + " ".repeat((8 - (jsonBytes % 8)) % 8), "utf8"); // align the data section to 8 bytes
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(jsonBuf.length));
  return Buffer.concat([len, jsonBuf, ...chunks]);
}

function tensorBytes(t: TensorToWrite): Uint8Array {
  const d = t.data;
  if (t.dtype === "F32" || t.dtype === "F16" || t.dtype === "BF16") {
    if (!(d instanceof Float32Array)) throw new CheckpointError(`tensor "${t.name}": ${t.dtype} needs Float32Array data`);
    if (t.dtype === "F32") return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    const half = new Uint16Array(d.length);
    if (t.dtype === "F16") f32ToF16(d, half);
    else f32ToBf16(d, half);
    return new Uint8Array(half.buffer);
  }
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
