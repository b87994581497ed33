// TurboQuant-style baseline (the MSE variant; Zandieh et al., ICLR 2026): every head vector of
// K (after RoPE) and V is rotated by a randomized Walsh–Hadamard transform R = H·D (D: fixed
// random signs), which makes its coordinates near-Gaussian whatever the channel outliers; each
// coordinate of √d·Rx/‖x‖ is coded with the b-bit Lloyd–Max codebook of N(0, 1); and one f16
// scale σ = ‖x‖/‖ŷ‖ per vector corrects the norm, so x̂ = σ·Rᵀŷ has exactly x's norm (up to
// σ's f16 rounding).
//
// Attention never leaves the rotated space: q·x̂ = σ·(Rq)·ŷ, and Σ p·x̂ = Rᵀ(Σ p·σ·ŷ), so the
// query is rotated once per call and the output once per head. Codes are bit-streamed (any b
// from 1 to 8, 3 included), plain TypeScript (no WebAssembly kernel: a baseline for accuracy,
// not speed).
//
// Storage per block (R = numKvHeads·headDim, capacity grows in steps of 128 tokens):
//   keyCodes, valueCodes    (capacity, ⌈R·b/32⌉) u32   codes, head by head
//   keyScales, valueScales  (capacity, numKvHeads) f16 σ per vector

import { UsageError } from "../errors.js";
import { assertHadamardSize, fwht } from "../quant/hadamard.js";
import { lloydMaxNormal, nearestLevel } from "../quant/lloyd-max.js";
import { f16Bits, f16Value } from "../tensor/dtype.js";
import { KvCache, type KvBlockStats, type KvShape, type LayerKvCache } from "../model/kv-cache.js";
import { Rng } from "../util/rng.js";
import { perLayer } from "../tensor/memory.js";

export interface TurboQuantOptions {
  kBits: number;
  vBits: number;
  /** Seed of the random signs D. */
  seed?: number;
}

const GROW = 128;

/** The random signs of R = H·D for vectors of length d (seeded). */
export function rotationSigns(d: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: d }, () => (rng.next() < 0.5 ? -1 : 1));
}

/** x[off … off+d) ← H·D·x (in place). */
export function rotate(x: Float32Array, off: number, d: number, signs: Float32Array): void {
  for (let i = 0; i < d; i++) x[off + i] *= signs[i];
  fwht(x, off, d);
}

/** x[off … off+d) ← (H·D)ᵀ·x = D·H·x (in place). */
export function unrotate(x: Float32Array, off: number, d: number, signs: Float32Array): void {
  fwht(x, off, d);
  for (let i = 0; i < d; i++) x[off + i] *= signs[i];
}

/** Rows of b-bit codebook indices, bit-streamed, with one f16 scale per head vector. */
class CodebookStore {
  codes = new Uint32Array(0);
  scales = new Uint16Array(0);
  length = 0;
  readonly wordsPerRow: number;
  readonly levels: Float32Array;
  private capacity = 0;

  constructor(private readonly heads: number, private readonly d: number, readonly bits: number) {
    this.wordsPerRow = Math.ceil((heads * d * bits) / 32);
    this.levels = Float32Array.from(lloydMaxNormal(bits));
  }

  heldBytes(): number {
    return this.codes.byteLength + this.scales.byteLength;
  }

  private reserve(tokens: number): void {
    if (tokens <= this.capacity) return;
    const cap = Math.ceil(tokens / GROW) * GROW;
    const codes = new Uint32Array(cap * this.wordsPerRow);
    codes.set(this.codes.subarray(0, this.length * this.wordsPerRow));
    const scales = new Uint16Array(cap * this.heads);
    scales.set(this.scales.subarray(0, this.length * this.heads));
    this.codes = codes;
    this.scales = scales;
    this.capacity = cap;
  }

  /** Append one token: rotated head vectors y (heads × d, already R·x) and their norms ‖x‖. */
  append(y: Float32Array, norms: Float32Array): void {
    this.reserve(this.length + 1);
    const { d, bits, heads } = this;
    const base = this.length * this.wordsPerRow;
    const s = Math.sqrt(d);
    for (let h = 0; h < heads; h++) {
      const n = norms[h];
      let sq = 0;
      for (let j = 0; j < d; j++) {
        const u = n > 0 ? (y[h * d + j] * s) / n : 0;
        const c = nearestLevel(this.levels, u);
        sq += this.levels[c] * this.levels[c];
        const bit = (h * d + j) * bits;
        const w = base + (bit >>> 5), o = bit & 31;
        this.codes[w] |= (c << o) >>> 0;
        if (o + bits > 32) this.codes[w + 1] |= c >>> (32 - o);
      }
      this.scales[this.length * heads + h] = n > 0 ? f16Bits(n / Math.sqrt(sq)) : 0;
    }
    this.length++;
  }

  /** The codebook values ŷ of token t, head h, into out[0 … d). */
  levelsOf(t: number, h: number, out: Float32Array): void {
    const { d, bits } = this;
    const base = t * this.wordsPerRow;
    const mask = (1 << bits) - 1;
    for (let j = 0; j < d; j++) {
      const bit = (h * d + j) * bits;
      const w = base + (bit >>> 5), o = bit & 31;
      let c = this.codes[w] >>> o;
      if (o + bits > 32) c |= this.codes[w + 1] << (32 - o);
      out[j] = this.levels[c & mask];
    }
  }

  scale(t: number, h: number): number {
    return f16Value(this.scales[t * this.heads + h]);
  }

  truncate(tokens: number): void {
    this.codes.fill(0, tokens * this.wordsPerRow, this.length * this.wordsPerRow);
    this.length = tokens;
  }

  reset(): void {
    this.codes = new Uint32Array(0);
    this.scales = new Uint16Array(0);
    this.length = 0;
    this.capacity = 0;
  }
}

export class TurboQuantLayerCache implements LayerKvCache {
  private readonly keys: CodebookStore;
  private readonly values: CodebookStore;
  private readonly signs: Float32Array;
  private readonly rowK: Float32Array;
  private readonly rowV: Float32Array;
  private readonly norms: Float32Array;
  private readonly tmp: Float32Array;

  constructor(readonly shape: KvShape, readonly opts: TurboQuantOptions) {
    assertHadamardSize(shape.headDim, "turboquant: head_dim");
    for (const [name, b] of [["k-bits", opts.kBits], ["v-bits", opts.vBits]] as const) {
      if (!Number.isInteger(b) || b < 1 || b > 8) throw new UsageError(`turboquant: --${name} must be 1 … 8 (got ${b})`);
    }
    const R = shape.numKvHeads * shape.headDim;
    this.keys = new CodebookStore(shape.numKvHeads, shape.headDim, opts.kBits);
    this.values = new CodebookStore(shape.numKvHeads, shape.headDim, opts.vBits);
    this.signs = rotationSigns(shape.headDim, opts.seed ?? 0x7017);
    this.rowK = new Float32Array(R);
    this.rowV = new Float32Array(R);
    this.norms = new Float32Array(shape.numKvHeads);
    this.tmp = new Float32Array(shape.headDim);
  }

  get length(): number {
    return this.keys.length;
  }

  private store(src: Float32Array, off: number, row: Float32Array, into: CodebookStore): void {
    const { numKvHeads: Hk, headDim: d } = this.shape;
    row.set(src.subarray(off, off + Hk * d));
    for (let h = 0; h < Hk; h++) {
      let sq = 0;
      for (let j = 0; j < d; j++) sq += row[h * d + j] * row[h * d + j];
      this.norms[h] = Math.sqrt(sq);
      rotate(row, h * d, d, this.signs);
    }
    into.append(row, this.norms);
  }

  append(keys: Float32Array, values: Float32Array, n: number): void {
    const R = this.shape.numKvHeads * this.shape.headDim;
    for (let t = 0; t < n; t++) {
      this.store(keys, t * R, this.rowK, this.keys);
      this.store(values, t * R, this.rowV, this.values);
    }
  }

  attend(queries: Float32Array, nTokens: number, out: Float32Array): void {
    const { numHeads: H, numKvHeads: Hk, headDim: d } = this.shape;
    const L = this.length;
    const group = H / Hk;
    const qr = new Float32Array(d);
    const acc = new Float32Array(d);
    const scores = new Float32Array(L);
    const scale = 1 / Math.sqrt(d);
    const y = this.tmp;
    for (let i = 0; i < nTokens; i++) {
      const visible = L - nTokens + i + 1;
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        qr.set(queries.subarray((i * H + h) * d, (i * H + h + 1) * d));
        rotate(qr, 0, d, this.signs);
        let max = -Infinity;
        for (let t = 0; t < visible; t++) {
          this.keys.levelsOf(t, kvh, y);
          let dot = 0;
          for (let j = 0; j < d; j++) dot += qr[j] * y[j];
          const sc = dot * this.keys.scale(t, kvh) * scale;
          scores[t] = sc;
          if (sc > max) max = sc;
        }
        let sum = 0;
        for (let t = 0; t < visible; t++) sum += scores[t] = Math.exp(scores[t] - max);
        acc.fill(0);
        for (let t = 0; t < visible; t++) {
          const w = (scores[t] / sum) * this.values.scale(t, kvh);
          if (w === 0) continue;
          this.values.levelsOf(t, kvh, y);
          for (let j = 0; j < d; j++) acc[j] += w * y[j];
        }
        unrotate(acc, 0, d, this.signs);
        out.set(acc, (i * H + h) * d);
      }
    }
  }

  /** Dequantized keys and values in token order, x̂ = σ·Rᵀŷ (tests). */
  dequantized(): { keys: Float32Array; values: Float32Array } {
    const { numKvHeads: Hk, headDim: d } = this.shape;
    const R = Hk * d;
    const keys = new Float32Array(this.length * R);
    const values = new Float32Array(this.length * R);
    for (const [store, outArr] of [[this.keys, keys], [this.values, values]] as const) {
      for (let t = 0; t < this.length; t++) {
        for (let h = 0; h < Hk; h++) {
          store.levelsOf(t, h, this.tmp);
          const s = store.scale(t, h);
          for (let j = 0; j < d; j++) this.tmp[j] *= s;
          unrotate(this.tmp, 0, d, this.signs);
          outArr.set(this.tmp, t * R + h * d);
        }
      }
    }
    return { keys, values };
  }

  truncate(tokens: number): number {
    const keep = Math.max(0, Math.min(tokens, this.length));
    this.keys.truncate(keep);
    this.values.truncate(keep);
    return keep;
  }

  stats(): KvBlockStats {
    const elems = this.length * this.shape.numKvHeads * this.shape.headDim;
    return {
      bodyBits: this.opts.kBits,
      sinkTokens: 0,
      bodyTokens: this.length,
      windowTokens: 0,
      codeBytes: (elems * (this.opts.kBits + this.opts.vBits)) / 8,
      heldBytes: this.keys.heldBytes() + this.values.heldBytes(),
      budgetBytes: null,
    };
  }

  reset(): void {
    this.keys.reset();
    this.values.reset();
  }

  dispose(): void {
    this.reset();
  }
}

export function createTurboQuantCache(shape: KvShape, numLayers: number, opts: TurboQuantOptions): KvCache {
  return new KvCache("turboquant", perLayer(numLayers, () => new TurboQuantLayerCache(shape, opts)));
}
