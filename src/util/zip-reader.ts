// A minimal ZIP reader for torch.save archives: the end-of-central-directory record (ZIP64 when
// present), the central directory, and each entry's bytes through its local header — STORED
// entries as they are, DEFLATE entries inflated with node:zlib, every entry's CRC-32 checked.
// Every offset, size and count is checked against the file's length before it is used, so a
// damaged or hostile archive fails with a FileError and never makes us allocate more than the
// file holds (a deflated entry is inflated to at most its declared size).

import zlib from "node:zlib";
import { FileError } from "../errors.js";

export interface ZipEntry {
  name: string;
  /** 0 = STORED, 8 = DEFLATE; others are refused when read. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_BYTES = 22;
const CENTRAL_BYTES = 46;
const LOCAL_BYTES = 30;
const MAX_COMMENT = 0xffff;
/** The largest entry a deflated archive may inflate to (calibration artifacts are kilobytes). */
const MAX_INFLATED_BYTES = 1 << 30;
const METHOD_NAMES: Record<number, string> = { 1: "shrink", 6: "implode", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 95: "xz", 98: "ppmd", 99: "AES encryption" };

const crcTable = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (the ZIP/PNG polynomial) of bytes. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();
  private readonly view: DataView;
  /** Where the central directory starts: every entry's data lies before it. */
  private readonly centralOffset: number;

  /** Parse the central directory of `bytes`; `where` (the file) starts every error message. */
  constructor(readonly bytes: Uint8Array, readonly where: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const eocd = this.findEocd();
    let count = this.u16(eocd + 10);
    let centralSize = this.u32(eocd + 12);
    let centralOffset = this.u32(eocd + 16);
    let end = eocd; // the central directory ends before the (ZIP64) end record
    if (this.u16(eocd + 4) !== 0 || this.u16(eocd + 6) !== 0) this.fail("is split over several disks (multi-disk ZIP), which pm-kvq does not read");
    const locator = eocd - 20;
    if (locator >= 0 && this.u32(locator) === ZIP64_LOCATOR_SIG) {
      const at = this.u64(locator + 8, "ZIP64 end-record offset");
      if (at + 56 > locator || this.u32(at) !== ZIP64_EOCD_SIG) this.fail("has a ZIP64 locator that points to no ZIP64 end record (truncated or damaged)");
      count = this.u64(at + 32, "ZIP64 entry count");
      centralSize = this.u64(at + 40, "ZIP64 central directory size");
      centralOffset = this.u64(at + 48, "ZIP64 central directory offset");
      end = at;
    } else if (count === 0xffff || centralSize === 0xffffffff || centralOffset === 0xffffffff) {
      this.fail("needs ZIP64 records that are missing (truncated or damaged)");
    }
    if (centralOffset + centralSize > end) this.fail(`central directory (${centralSize} bytes at ${centralOffset}) runs past the end of the archive (truncated?)`);
    if (count * CENTRAL_BYTES > centralSize) this.fail(`claims ${count} entries, more than its ${centralSize}-byte central directory can hold`);
    this.centralOffset = centralOffset;
    let p = centralOffset;
    for (let i = 0; i < count; i++) {
      const entry = this.readCentral(p, centralOffset + centralSize);
      if (this.entries.has(entry.name)) this.fail(`holds two entries named "${entry.name}"`);
      this.entries.set(entry.name, entry);
      p = entry.nextCentral;
    }
  }

  /** The bytes of one entry (a view for STORED entries), its CRC-32 checked. */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) this.fail(`has no entry "${name}"`);
    const at = e.localHeaderOffset;
    if (at + LOCAL_BYTES > this.centralOffset || this.u32(at) !== LOCAL_SIG) this.fail(`entry "${name}": no local header at offset ${at} (damaged archive)`);
    const nameLen = this.u16(at + 26);
    const extraLen = this.u16(at + 28);
    const start = at + LOCAL_BYTES + nameLen + extraLen; // torch pads the local extra field to align data to 64 bytes
    if (start + e.compressedSize > this.centralOffset) this.fail(`entry "${name}": its ${e.compressedSize} bytes run past the entry data (truncated?)`);
    if (new TextDecoder().decode(this.bytes.subarray(at + LOCAL_BYTES, at + LOCAL_BYTES + nameLen)) !== name) {
      this.fail(`entry "${name}": the local header names another file (damaged archive)`);
    }
    const raw = this.bytes.subarray(start, start + e.compressedSize);
    let data: Uint8Array;
    if (e.method === 0) {
      if (e.compressedSize !== e.size) this.fail(`entry "${name}": stored, yet ${e.compressedSize} bytes packed for ${e.size} unpacked`);
      data = raw;
    } else if (e.method === 8) {
      // deflate packs at most ~1032:1, and nothing here needs more than MAX_INFLATED_BYTES
      if (e.size > Math.min(MAX_INFLATED_BYTES, e.compressedSize * 1032 + 1024)) this.fail(`entry "${name}": ${e.size} bytes unpacked from ${e.compressedSize} is more than deflate can pack, or pm-kvq reads (damaged or hostile archive)`);
      try {
        const inflated = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
        data = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
      } catch (err) {
        this.fail(`entry "${name}": cannot inflate (${(err as Error).message})`);
      }
      if (data.length !== e.size) this.fail(`entry "${name}": inflates to ${data.length} bytes, the directory says ${e.size}`);
    } else {
      const what = METHOD_NAMES[e.method] ? `${METHOD_NAMES[e.method]} (method ${e.method})` : `method ${e.method}`;
      this.fail(`entry "${name}" is compressed with ${what}; pm-kvq reads stored and deflated entries (torch.save writes stored ones)`);
    }
    const crc = crc32(data);
    if (crc !== e.crc32) this.fail(`entry "${name}": CRC-32 ${hex(crc)} does not match the recorded ${hex(e.crc32)} (damaged file)`);
    return data;
  }

  private findEocd(): number {
    const n = this.bytes.length;
    if (n < EOCD_BYTES) this.fail(`is ${n} bytes, too short to be a ZIP archive`);
    for (let p = n - EOCD_BYTES; p >= Math.max(0, n - EOCD_BYTES - MAX_COMMENT); p--) {
      if (this.u32(p) === EOCD_SIG && p + EOCD_BYTES + this.u16(p + 20) <= n) return p;
    }
    this.fail("has no ZIP end-of-central-directory record (truncated, or not a ZIP archive)");
  }

  private readCentral(p: number, limit: number): ZipEntry & { nextCentral: number } {
    if (p + CENTRAL_BYTES > limit || this.u32(p) !== CENTRAL_SIG) this.fail(`central directory entry at offset ${p} is damaged`);
    const flags = this.u16(p + 8);
    const method = this.u16(p + 10);
    const crc = this.u32(p + 16);
    let compressedSize = this.u32(p + 20);
    let size = this.u32(p + 24);
    const nameLen = this.u16(p + 28);
    const extraLen = this.u16(p + 30);
    const commentLen = this.u16(p + 32);
    let localHeaderOffset = this.u32(p + 42);
    const nameStart = p + CENTRAL_BYTES;
    const next = nameStart + nameLen + extraLen + commentLen;
    if (next > limit) this.fail(`central directory entry at offset ${p} runs past the directory`);
    const name = new TextDecoder().decode(this.bytes.subarray(nameStart, nameStart + nameLen));
    if (flags & 1) this.fail(`entry "${name}" is encrypted`);
    // ZIP64 extended information (0x0001): the 64-bit values of the fields saturated at 0xffffffff, in this order
    let q = nameStart + nameLen;
    const extraEnd = q + extraLen;
    while (q + 4 <= extraEnd) {
      const id = this.u16(q);
      const len = this.u16(q + 2);
      if (q + 4 + len > extraEnd) this.fail(`entry "${name}": extra field runs past its end`);
      if (id === 0x0001) {
        let r = q + 4;
        const take = (what: string, limit = this.bytes.length): number => {
          if (r + 8 > q + 4 + len) this.fail(`entry "${name}": ZIP64 extra field lacks the ${what}`);
          const v = this.u64(r, `${what} of "${name}"`, limit);
          r += 8;
          return v;
        };
        if (size === 0xffffffff) size = take("size", Number.MAX_SAFE_INTEGER); // may exceed the file when deflated
        if (compressedSize === 0xffffffff) compressedSize = take("compressed size");
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take("local header offset");
      }
      q += 4 + len;
    }
    if (localHeaderOffset >= this.bytes.length || compressedSize > this.bytes.length) this.fail(`entry "${name}": offset or size lies beyond the file (damaged archive)`);
    return { name, method, flags, crc32: crc, compressedSize, size, localHeaderOffset, nextCentral: next };
  }

  private u16(p: number): number {
    if (p < 0 || p + 2 > this.bytes.length) this.fail("is truncated");
    return this.view.getUint16(p, true);
  }

  private u32(p: number): number {
    if (p < 0 || p + 4 > this.bytes.length) this.fail("is truncated");
    return this.view.getUint32(p, true);
  }

  /** A 64-bit field, at most `limit` (by default the file's length: offsets and counts lie within it). */
  private u64(p: number, what: string, limit = this.bytes.length): number {
    if (p < 0 || p + 8 > this.bytes.length) this.fail("is truncated");
    const v = this.view.getBigUint64(p, true);
    if (v > BigInt(limit)) this.fail(`${what} ${v} lies beyond the file's ${this.bytes.length} bytes (damaged archive)`);
    return Number(v);
  }

  private fail(why: string): never {
    throw new FileError(`${this.where}: ${why}`);
  }
}

function hex(n: number): string {
  return "0x" + n.toString(16).padStart(8, "0");
}
