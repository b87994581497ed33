// Token rows held as bit-packed integer codes with an f16 scale and zero per group — the
// storage of the real progressive cache and of the baselines. Rows are kept in token order:
//   codes  (capacity, wordsPerRow) u32   a row holds every KV head's codes, head by head
//   scales (capacity, groupsPerRow) f16  bit patterns
//   zeros  (capacity, groupsPerRow) f16

import { dequantizeValue, quantizeGroups } from "../quant/quantizer.js";
import { unpackCodes, packCodes, wordsFor } from "../quant/pack.js";
import { shrinkScaleBits, shrinkTable } from "../quant/shrink.js";
import { f16Value } from "../tensor/dtype.js";
import { allocU16, allocU32, release } from "../tensor/memory.js";

export class PackedTokenStore {
  codes: Uint32Array; // (capacity, wordsPerRow) packed codes
  scales: Uint16Array; // (capacity, groupsPerRow) f16
  zeros: Uint16Array; // (capacity, groupsPerRow) f16
  length = 0;
  wordsPerRow: number;
  readonly groupsPerRow: number;
  private capacity: number;
  private rowCodes: Uint16Array; // one row of unpacked codes (scratch)

  /**
   * rowElems values per token (numKvHeads × headDim) in groups of G; storage grows in steps
   * of growTokens (0: exactly what is held).
   */
  constructor(readonly rowElems: number, readonly G: number, public bits: number, initialTokens = 0, private readonly growTokens = 0) {
    this.groupsPerRow = rowElems / G;
    this.wordsPerRow = wordsFor(rowElems, bits);
    this.capacity = initialTokens;
    this.codes = allocU32(initialTokens * this.wordsPerRow);
    this.scales = allocU16(initialTokens * this.groupsPerRow);
    this.zeros = allocU16(initialTokens * this.groupsPerRow);
    this.rowCodes = new Uint16Array(rowElems);
  }

  heldBytes(): number {
    return this.codes.byteLength + this.scales.byteLength + this.zeros.byteLength;
  }

  /** Bytes of the codes of the rows held (the original's figure). */
  codeBytes(): number {
    return (this.length * this.rowElems * this.bits) / 8;
  }

  private reserve(tokens: number): void {
    if (tokens <= this.capacity) return;
    const cap = this.growTokens > 0 ? Math.ceil(tokens / this.growTokens) * this.growTokens : tokens;
    const codes = allocU32(cap * this.wordsPerRow);
    codes.set(this.codes.subarray(0, this.length * this.wordsPerRow));
    const scales = allocU16(cap * this.groupsPerRow);
    scales.set(this.scales.subarray(0, this.length * this.groupsPerRow));
    const zeros = allocU16(cap * this.groupsPerRow);
    zeros.set(this.zeros.subarray(0, this.length * this.groupsPerRow));
    this.releaseBuffers();
    this.codes = codes;
    this.scales = scales;
    this.zeros = zeros;
    this.capacity = cap;
  }

  /** Quantize n float rows x[xOff …] at this store's bits and append them. */
  appendFloats(x: Float32Array, xOff: number, n: number): void {
    this.reserve(this.length + n);
    for (let t = 0; t < n; t++) {
      const row = this.length + t;
      quantizeGroups(x, xOff + t * this.rowElems, this.rowElems, this.G, this.bits, this.rowCodes, 0, this.scales, this.zeros, row * this.groupsPerRow);
      packCodes(this.rowCodes, 0, this.rowElems, this.bits, this.codes, row * this.wordsPerRow);
    }
    this.length += n;
  }

  /**
   * Move the oldest n rows into `dest`, shrinking their codes step by step (spec §2) from
   * this store's bits down to dest's bits.
   */
  moveOldestTo(dest: PackedTokenStore, n: number): void {
    dest.reserve(dest.length + n);
    const steps: number[] = [];
    for (let b = this.bits; b > dest.bits; b /= 2) steps.push(b);
    const codes = this.rowCodes;
    for (let t = 0; t < n; t++) {
      unpackCodes(this.codes, t * this.wordsPerRow, this.rowElems, this.bits, codes, 0);
      const pOff = t * this.groupsPerRow;
      const dOff = (dest.length + t) * this.groupsPerRow;
      for (let g = 0; g < this.groupsPerRow; g++) {
        let s = this.scales[pOff + g];
        for (const b of steps) s = shrinkScaleBits(s, b);
        dest.scales[dOff + g] = s;
        dest.zeros[dOff + g] = this.zeros[pOff + g];
      }
      for (const b of steps) {
        const table = shrinkTable(b);
        for (let i = 0; i < this.rowElems; i++) codes[i] = table[codes[i]];
      }
      packCodes(codes, 0, this.rowElems, dest.bits, dest.codes, (dest.length + t) * dest.wordsPerRow);
    }
    dest.length += n;
    this.dropOldest(n);
  }

  /** Remove the newest n rows (capacity stays). */
  dropNewest(n: number): void {
    this.length -= Math.min(n, this.length);
  }

  /** Remove the oldest n rows. */
  dropOldest(n: number): void {
    this.codes.copyWithin(0, n * this.wordsPerRow, this.length * this.wordsPerRow);
    this.scales.copyWithin(0, n * this.groupsPerRow, this.length * this.groupsPerRow);
    this.zeros.copyWithin(0, n * this.groupsPerRow, this.length * this.groupsPerRow);
    this.length -= n;
  }

  /** Halve the bit-width of every row (one shrink step), repacking into smaller buffers. */
  halve(): void {
    const from = this.bits;
    if (from < 2) throw new RangeError(`cannot halve a ${from}-bit store`);
    const to = from / 2;
    const table = shrinkTable(from);
    const wordsTo = wordsFor(this.rowElems, to);
    const cap = this.growTokens > 0 ? Math.ceil(this.length / this.growTokens) * this.growTokens : this.length;
    const codes = allocU32(cap * wordsTo);
    const row = this.rowCodes;
    for (let t = 0; t < this.length; t++) {
      unpackCodes(this.codes, t * this.wordsPerRow, this.rowElems, from, row, 0);
      for (let i = 0; i < this.rowElems; i++) row[i] = table[row[i]];
      packCodes(row, 0, this.rowElems, to, codes, t * wordsTo);
    }
    const n = this.length * this.groupsPerRow;
    const scales = allocU16(cap * this.groupsPerRow);
    const zeros = allocU16(cap * this.groupsPerRow);
    for (let g = 0; g < n; g++) scales[g] = shrinkScaleBits(this.scales[g], from);
    zeros.set(this.zeros.subarray(0, n));
    this.releaseBuffers();
    this.codes = codes;
    this.scales = scales;
    this.zeros = zeros;
    this.capacity = cap;
    this.bits = to;
    this.wordsPerRow = wordsTo;
  }

  /** Dequantized row t into out[outOff …] (tests and the fake comparison). */
  dequantizeRow(t: number, out: Float32Array, outOff = 0): void {
    unpackCodes(this.codes, t * this.wordsPerRow, this.rowElems, this.bits, this.rowCodes, 0);
    for (let i = 0; i < this.rowElems; i++) {
      const g = t * this.groupsPerRow + Math.floor(i / this.G);
      out[outOff + i] = dequantizeValue(this.rowCodes[i], f16Value(this.scales[g]), f16Value(this.zeros[g]));
    }
  }

  /** Empty the store (optionally at another bit-width). */
  reset(bits = this.bits): void {
    this.bits = bits;
    this.wordsPerRow = wordsFor(this.rowElems, bits);
    this.length = 0;
    this.capacity = 0;
    this.releaseBuffers();
    this.codes = new Uint32Array(0);
    this.scales = new Uint16Array(0);
    this.zeros = new Uint16Array(0);
  }

  private releaseBuffers(): void {
    release(this.codes);
    release(this.scales);
    release(this.zeros);
  }
}
