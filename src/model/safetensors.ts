// The safetensors format, parsed and validated by hand:
//   u64 little-endian N | N bytes of JSON header | data bytes
// header: { "__metadata__"?: {str: str}, name: {dtype, shape, data_offsets: [begin, end]} }
// with offsets relative to the start of the data section. As strict as the reference (Rust)
// implementation: UTF-8 JSON opening with "{", no key twice, and the tensors tiling the data
// section exactly, so a corrupt header length cannot go unnoticed.

import fs from "node:fs";
import { CheckpointError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { parseJsonStrict, preview } from "../util/json.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import { isQuantDtype } from "../tensor/ggml-quant.js";
import type { Matrix, WeightDtype } from "../tensor/matrix.js";
import { allocF32, allocU16, release } from "../tensor/memory.js";
import { openForReading, readExactly } from "./files.js";

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
  const { fd } = openForReading(file);
  try {
    return readHeader(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

function readHeader(fd: number, file: string): SafetensorsHeader {
  const fileBytes = fs.fstatSync(fd).size;
  if (fileBytes < 8) fail(file, `truncated: ${fileBytes} bytes, too small to hold the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  readExactly(fd, file, lenBuf, 0, "the header length");
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    fail(file, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte bound (corrupt file?)`);
  }
  const n = Number(headerLen);
  if (8 + n > fileBytes) fail(file, `truncated: header says ${n} header bytes but the file has only ${fileBytes - 8} after the length`);
  const headerBuf = Buffer.alloc(n);
  readExactly(fd, file, headerBuf, 8, "the header");
  return parseHeader(file, headerBuf, fileBytes);
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

function parseHeader(file: string, headerBuf: Buffer, fileBytes: number): SafetensorsHeader {
  // as the reference implementation: the header is UTF-8 JSON that opens with "{" (padding may only trail)
  if (headerBuf[0] !== 0x7b) {
    fail(file, `header is not a JSON object (it must start with "{", ${headerBuf.length ? `found byte 0x${headerBuf[0].toString(16).padStart(2, "0")}` : "but it is empty"})`);
  }
  let text: string;
  try {
    text = UTF8.decode(headerBuf);
  } catch {
    fail(file, "header is not valid UTF-8 (corrupt file?)");
  }
  const json = parseJsonStrict(text, file, CheckpointError, "header");
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
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail(file, `${where}: entry is not an object`);
    const { dtype, shape, data_offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      fail(file, `${where}: unknown dtype ${preview(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(", ")})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(file, `${where}: shape ${preview(shape)} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(data_offsets) || data_offsets.length !== 2 ||
      !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0) || data_offsets[0] > data_offsets[1]
    ) {
      fail(file, `${where}: data_offsets ${preview(data_offsets)} must be [begin, end] with 0 <= begin <= end`);
    }
    const [b, e] = data_offsets as number[];
    const expected = byteSize(shape as number[], DTYPE_BYTES[dtype]);
    if (e - b !== expected) {
      const bytes = expected === null ? "more bytes than any file holds" : `${expected} bytes`;
      fail(file, `${where}: shape ${JSON.stringify(shape)} × ${dtype} (${DTYPE_BYTES[dtype]} B) = ${bytes}, but data_offsets span ${e - b}`);
    }
    if (e > dataBytes) {
      fail(file, `${where}: data ends at byte ${e} of the data section, but the file holds only ${dataBytes} data bytes (truncated?)`);
    }
    tensors.set(name, { name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  checkTiling(file, [...tensors.values()], dataStart, dataBytes);
  return { file, fileBytes, dataStart, tensors, metadata };
}

/** shape × bytes per element, or null past 2^53 (no file is that large). */
function byteSize(shape: number[], elementBytes: number): number | null {
  if (shape.includes(0)) return 0;
  let n = elementBytes;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return null;
  }
  return n;
}

/**
 * As the reference implementation: the tensors, by offset (empty ones included), tile the data
 * section exactly — no gap, no shared byte, nothing after the last. A header length off by a few
 * bytes (padding spaces make the JSON still parse) shifts every tensor and is caught here.
 */
function checkTiling(file: string, tensors: TensorInfo[], dataStart: number, dataBytes: number): void {
  const sorted = tensors.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let at = 0; // data-section offset where the next tensor must begin
  let previous: TensorInfo | null = null;
  for (const t of sorted) {
    const begin = t.begin - dataStart;
    if (begin > at) {
      fail(file, `bytes ${at} … ${begin} of the data section are not covered by any tensor (the next is tensor "${t.name}"; corrupt header?)`);
    }
    if (begin < at) fail(file, `tensor "${t.name}" overlaps tensor "${previous!.name}" in the data section`);
    at = t.end - dataStart;
    previous = t;
  }
  if (at < dataBytes) {
    fail(file, `${dataBytes - at} bytes after the last tensor (the tensors end at byte ${at} of a ${dataBytes}-byte data section; wrong header length or extra data?)`);
  }
}

/** Reads tensors of one safetensors file one at a time (peak memory: one tensor's raw bytes). */
export class SafetensorsFile {
  readonly header: SafetensorsHeader;
  private fd: number;

  constructor(readonly file: string) {
    this.fd = openForReading(file).fd;
    try {
      this.header = readHeader(this.fd, file);
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
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
    if (target !== null && isQuantDtype(target)) {
      throw new CheckpointError(`${this.file}: tensor "${name}": safetensors weights load as f32, f16 or bf16; ${target} matrices come from GGUF files (quantMatrix)`);
    }
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
    if (this.fd < 0) throw new CheckpointError(`${this.file}: tensor "${t.name}" read after the file was closed`);
    readExactly(this.fd, this.file, dest, t.begin, `tensor "${t.name}"`);
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
  const header: Record<string, unknown> = Object.create(null); // a tensor may be called "__proto__"
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === "__metadata__" || Object.hasOwn(header, t.name)) {
      throw new CheckpointError(`tensor "${t.name}": ${t.name === "__metadata__" ? "the name is reserved for the metadata" : "two tensors have this name"}`);
    }
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
