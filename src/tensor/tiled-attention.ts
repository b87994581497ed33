// Tiled attention over a cache's own storage, the plain-TypeScript twin of the WebAssembly
// kernel (src/tensor/assembly/attention.ts: the algorithm is described there) and its fallback.
// It follows the kernel's blocks, thread chunks and integer arithmetic exactly — int16 queries
// per (head, group), int16 value weights per (head, group, key block), exact integer dot
// products — and differs from it only by float rounding (float64 here, float32 there).
//
// A segment is a run of tokens in one storage format; a cache passes its segments in token
// order (sink, body, window; or one segment for a full-precision cache).

import { f16Value, roundHalfEven } from "./dtype.js";
import { SEG_F16, SEG_F32, SEG_PACKED, SEG_PACKED16 } from "./layout.js";

export { SEG_F16, SEG_F32, SEG_PACKED, SEG_PACKED16 };

/** Head counts and size (as the cache's KvShape). */
export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/** Tokens per key block (as the kernel's KEY_BLOCK). */
export const KEY_BLOCK = 32;
/** Queries per prefill tile (as the kernel's QUERY_BLOCK). */
export const QUERY_BLOCK = 16;
/** From this many queries a call is a prefill (query blocks over threads), below it a decode per query (keys over threads). */
export const PREFILL_MIN_QUERIES = 16;
/** exp(x) below this is taken as 0 (as the kernel's). */
export const EXP_MIN = -87;
/** Work (keys seen × heads × d) below which one thread does a decode step alone. */
export const TILED_PARALLEL_MIN = 1 << 18;

/** Threads a decode step over `seen` keys uses (the kernel's rule; the twin mirrors it). */
export function decodeThreads(seen: number, shape: AttentionShape, threads: number): number {
  return threads > 1 && seen * shape.numHeads * shape.headDim >= TILED_PARALLEL_MIN ? threads : 1;
}

/** The storage kinds of layout.ts. */
export type SegmentKind = typeof SEG_F32 | typeof SEG_F16 | typeof SEG_PACKED | typeof SEG_PACKED16;

export interface TiledSegment {
  /** f32 rows, f16 rows, packed codes of 1/2/4/8 bits, packed 16-bit codes. */
  kind: SegmentKind;
  /** f32 values, f16 bit patterns, or packed code words. */
  data: Float32Array | Uint16Array | Uint32Array;
  /** f16 scale and zero per group (packed kinds). */
  scales: Uint16Array | null;
  zeros: Uint16Array | null;
  length: number;
  bits: number;
  /** Row stride: elements (kinds 0, 1) or 32-bit words (kinds 2, 3). */
  rowStride: number;
  groupsPerRow: number;
}

/** A packed store (PackedTokenStore) as a segment. */
export function packedSegment(s: { codes: Uint32Array; scales: Uint16Array; zeros: Uint16Array; length: number; bits: number; wordsPerRow: number; groupsPerRow: number }): TiledSegment {
  return { kind: s.bits === 16 ? SEG_PACKED16 : SEG_PACKED, data: s.codes, scales: s.scales, zeros: s.zeros, length: s.length, bits: s.bits, rowStride: s.wordsPerRow, groupsPerRow: s.groupsPerRow };
}

/** Float rows (a full-precision cache) as a segment. */
export function floatSegment(data: Float32Array | Uint16Array, length: number, rowStride: number): TiledSegment {
  return { kind: data instanceof Float32Array ? SEG_F32 : SEG_F16, data, scales: null, zeros: null, length, bits: data instanceof Float32Array ? 32 : 16, rowStride, groupsPerRow: 0 };
}

/** Bytes of a head's codes the kernel unpacks at once: 16, or 8 when a group holds only 64 bits. */
export function chunkBytes(bits: number, G: number): number {
  return Math.min(16, (G * bits) / 8);
}

/** Tile index → channel for codes of `bits` (the order the kernel unpacks a head's codes in). */
export function tilePermutation(bits: number, d: number, G: number): Int32Array {
  const chunk = chunkBytes(bits, G);
  const per = 8 / bits;
  const perChunk = chunk * per;
  const perm = new Int32Array(d);
  for (let i = 0; i < d; i++) {
    const c = Math.floor(i / perChunk);
    const r = i % perChunk;
    perm[i] = c * perChunk + (r % chunk) * per + Math.floor(r / chunk);
  }
  return perm;
}

/** Can the kernel's integer path read codes of `bits` with groups of G (a group is ≥ 64 bits of codes)? */
export function intPathFits(bits: number, G: number): boolean {
  return [1, 2, 4, 8].includes(bits) && (G * bits) % 64 === 0;
}

const fr = Math.fround;

/**
 * The kernel's exp, operation for operation in float32 (Cephes expf: Cody–Waite reduction by
 * ln 2, a degree-6 polynomial, 2^n through the exponent bits), so that the twin's softmax
 * weights — and the int16 value weights made from them — are the kernel's own.
 */
export function expKernel(x: number): number {
  if (!(x >= EXP_MIN)) return 0;
  const n = roundHalfEven(fr(x * fr(1.44269504088896341)));
  let r = fr(x - fr(n * fr(0.693359375)));
  r = fr(r - fr(n * fr(-2.12194440e-4)));
  let p = fr(1.9875691500e-4);
  for (const c of [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]) p = fr(fr(p * r) + fr(c));
  p = fr(fr(fr(fr(p * r) * r) + r) + 1);
  return fr(p * 2 ** n);
}

/** Codes of row j (KV head kvh), centred by 2^(bits−1) when `centre` (the kernel's integer path). */
function unpackRow(seg: TiledSegment, j: number, kvh: number, d: number, out: Int32Array, centre = false): void {
  const words = seg.data as Uint32Array;
  const per = 32 / seg.bits;
  const mask = seg.bits === 32 ? -1 : (1 << seg.bits) - 1;
  const base = j * seg.rowStride;
  const mid = centre ? 2 ** (seg.bits - 1) : 0;
  for (let c = 0; c < d; c++) {
    const e = kvh * d + c;
    out[c] = ((words[base + Math.floor(e / per)] >>> ((e % per) * seg.bits)) & mask) - mid;
  }
}

/** Row j (KV head kvh) of a float or 16-bit segment as floats. */
function floatRow(seg: TiledSegment, j: number, kvh: number, d: number, G: number, out: Float64Array, codes: Int32Array): void {
  if (seg.kind === SEG_F32) {
    const a = seg.data as Float32Array;
    for (let c = 0; c < d; c++) out[c] = a[j * seg.rowStride + kvh * d + c];
  } else if (seg.kind === SEG_F16) {
    const a = seg.data as Uint16Array;
    for (let c = 0; c < d; c++) out[c] = f16Value(a[j * seg.rowStride + kvh * d + c]);
  } else {
    unpackRow(seg, j, kvh, d, codes);
    for (let c = 0; c < d; c++) {
      const p = j * seg.groupsPerRow + kvh * (d / G) + Math.floor(c / G);
      out[c] = fr(fr(codes[c] * f16Value(seg.scales![p])) - f16Value(seg.zeros![p]));
    }
  }
}

interface Prepared {
  /** int16 query of row r = t·H + h in natural channel order. */
  qint: Int32Array;
  qs: Float64Array; // (rows, d/G)
  sumQ: Float64Array; // (rows, d/G)
}

function prepare(q: Float32Array, rows: number, d: number, G: number): Prepared {
  const hg = d / G;
  const qint = new Int32Array(rows * d);
  const qs = new Float64Array(rows * hg);
  const sumQ = new Float64Array(rows * hg);
  for (let r = 0; r < rows; r++) {
    for (let gi = 0; gi < hg; gi++) {
      let amax = 0, s = 0;
      for (let c = gi * G; c < (gi + 1) * G; c++) {
        amax = Math.max(amax, Math.abs(q[r * d + c]));
        s = fr(s + q[r * d + c]);
      }
      const sc = fr(amax / 32767);
      qs[r * hg + gi] = sc;
      sumQ[r * hg + gi] = s;
      for (let c = gi * G; c < (gi + 1) * G; c++) qint[r * d + c] = sc > 0 ? roundHalfEven(fr(q[r * d + c] / sc)) : 0;
    }
  }
  return { qint, qs, sumQ };
}

/** Online-softmax state of one virtual head (a query row of one head). */
export interface HeadState {
  m: number;
  l: number;
  acc: Float32Array;
  /** Value sums of the integer segment in progress (added into acc when it ends). */
  accP: Float32Array;
}

/** The kernel's horizontal sum of four float32 lanes. */
const hsum4 = (a: Float32Array): number => fr(fr(fr(a[0] + a[1]) + a[2]) + a[3]);

/**
 * Keys [j0, j1) of KV head kvh for query rows `vheads` (t, h) with causal limits, block by
 * block — every float operation as the kernel does it in float32, in its order (its four-lane
 * accumulators included), so that the softmax weights, and the int16 value weights made from
 * them, are the kernel's own bit for bit.
 */
function keysRange(
  segK: TiledSegment[], segV: TiledSegment[], q: Float32Array, prep: Prepared, shape: AttentionShape, G: number,
  kvh: number, vheads: { t: number; h: number; limit: number }[], j0: number, j1: number, states: HeadState[],
): void {
  const d = shape.headDim;
  const hg = d / G;
  const H = shape.numHeads;
  const scale = fr(1 / Math.sqrt(d));
  const codes = new Int32Array(d);
  const row = new Float64Array(d);
  const lanes = new Float32Array(4);
  const lanes16 = new Float32Array(16);
  let start = 0;
  for (let s = 0; s < segK.length; s++) {
    const sk = segK[s], sv = segV[s];
    const a = Math.max(j0, start), b = Math.min(j1, start + sk.length);
    for (let jg = a; jg < b; jg += KEY_BLOCK) {
      const nT = Math.min(KEY_BLOCK, b - jg);
      const ja = jg - start;
      // scores
      const scores = vheads.map(() => new Float32Array(KEY_BLOCK).fill(-Infinity));
      for (let jj = 0; jj < nT; jj++) {
        if (sk.kind === SEG_PACKED || sk.kind === SEG_PACKED16) unpackRow(sk, ja + jj, kvh, d, codes, true);
        else floatRow(sk, ja + jj, kvh, d, G, row, codes);
        vheads.forEach((vh, v) => {
          const r = vh.t * H + vh.h;
          let score = 0;
          if (sk.kind === SEG_PACKED) {
            const mid = 2 ** (sk.bits - 1);
            for (let gi = 0; gi < hg; gi++) {
              let dot = 0;
              for (let c = gi * G; c < (gi + 1) * G; c++) dot += prep.qint[r * d + c] * codes[c];
              const p = (ja + jj) * sk.groupsPerRow + kvh * hg + gi;
              const sc = f16Value(sk.scales![p]);
              const z = fr(f16Value(sk.zeros![p]) - fr(sc * mid));
              score = fr(score + fr(fr(sc * fr(prep.qs[r * hg + gi] * fr(dot))) - fr(z * prep.sumQ[r * hg + gi])));
            }
          } else if (sk.kind === SEG_PACKED16) {
            // s·(q·c') − z'·Σq per group, c' = code − 32768: the float dot over centred codes
            for (let gi = 0; gi < hg; gi++) {
              lanes.fill(0);
              for (let c = gi * G; c < (gi + 1) * G; c++) lanes[c & 3] = fr(lanes[c & 3] + fr(codes[c] * q[r * d + c]));
              const p = (ja + jj) * sk.groupsPerRow + kvh * hg + gi;
              const sc = f16Value(sk.scales![p]);
              const z = fr(f16Value(sk.zeros![p]) - fr(sc * 32768));
              score = fr(score + fr(fr(sc * hsum4(lanes)) - fr(z * prep.sumQ[r * hg + gi])));
            }
          } else {
            // the kernel's four accumulators of four lanes: channel c in accumulator (c mod 16) / 4, lane c mod 4
            lanes16.fill(0);
            for (let c = 0; c < d; c++) lanes16[c & 15] = fr(lanes16[c & 15] + fr(row[c] * q[r * d + c]));
            for (let l = 0; l < 4; l++) lanes[l] = fr(fr(lanes16[l] + lanes16[4 + l]) + fr(lanes16[8 + l] + lanes16[12 + l]));
            score = hsum4(lanes);
          }
          scores[v][jj] = fr(score * scale);
        });
      }
      // online softmax
      const probs = vheads.map((vh, v) => {
        const p = new Float32Array(KEY_BLOCK);
        const visible = Math.min(nT, vh.limit - jg + 1);
        if (visible <= 0) return p;
        const st = states[v];
        let mb = -Infinity;
        for (let jj = 0; jj < visible; jj++) mb = Math.max(mb, scores[v][jj]);
        const mNew = Math.max(st.m, mb);
        if (mNew > st.m) {
          const corr = st.m === -Infinity ? 0 : expKernel(fr(st.m - mNew));
          st.l = fr(st.l * corr);
          for (let c = 0; c < d; c++) {
            st.acc[c] = fr(st.acc[c] * corr);
            st.accP[c] = fr(st.accP[c] * corr);
          }
          st.m = mNew;
        }
        lanes.fill(0);
        for (let jj = 0; jj < visible; jj++) {
          p[jj] = expKernel(fr(scores[v][jj] - mNew));
          lanes[jj & 3] = fr(lanes[jj & 3] + p[jj]);
        }
        st.l = fr(st.l + hsum4(lanes));
        return p;
      });
      // values
      if (sv.kind === SEG_PACKED) {
        const mid = 2 ** (sv.bits - 1);
        const vcodes = Array.from({ length: nT }, (_, jj) => {
          const cc = new Int32Array(d);
          unpackRow(sv, ja + jj, kvh, d, cc, true);
          return cc;
        });
        vheads.forEach((_, v) => {
          const st = states[v];
          for (let gi = 0; gi < hg; gi++) {
            const w = new Float32Array(nT);
            let wmax = 0;
            lanes.fill(0); // Σ p·z' in the kernel's four lanes
            for (let jj = 0; jj < nT; jj++) {
              const p = (ja + jj) * sv.groupsPerRow + kvh * hg + gi;
              const s16 = f16Value(sv.scales![p]);
              w[jj] = fr(probs[v][jj] * s16);
              wmax = Math.max(wmax, w[jj]);
              lanes[jj & 3] = fr(lanes[jj & 3] + fr(probs[v][jj] * fr(f16Value(sv.zeros![p]) - fr(s16 * mid))));
            }
            const zs = hsum4(lanes);
            const ws = fr(wmax / 32767);
            const wint = Array.from(w, (x) => (ws > 0 ? roundHalfEven(fr(x / ws)) : 0));
            for (let c = gi * G; c < (gi + 1) * G; c++) {
              let dot = 0;
              for (let jj = 0; jj < nT; jj++) dot += wint[jj] * vcodes[jj][c];
              st.accP[c] = fr(fr(st.accP[c] + fr(ws * fr(dot))) - zs);
            }
          }
        });
      } else if (sv.kind === SEG_PACKED16) {
        // Σ (p·s)·c' − Σ p·z' per group, centred codes, float
        const vcodes = Array.from({ length: nT }, (_, jj) => {
          const cc = new Int32Array(d);
          unpackRow(sv, ja + jj, kvh, d, cc, true);
          return cc;
        });
        vheads.forEach((_, v) => {
          const acc = states[v].acc;
          for (let gi = 0; gi < hg; gi++) {
            const w = new Float32Array(nT);
            lanes.fill(0);
            for (let jj = 0; jj < nT; jj++) {
              const p = (ja + jj) * sv.groupsPerRow + kvh * hg + gi;
              const s16 = f16Value(sv.scales![p]);
              w[jj] = fr(probs[v][jj] * s16);
              lanes[jj & 3] = fr(lanes[jj & 3] + fr(probs[v][jj] * fr(f16Value(sv.zeros![p]) - fr(s16 * 32768))));
            }
            const zs = hsum4(lanes);
            for (let c = gi * G; c < (gi + 1) * G; c++) {
              let a = acc[c];
              for (let jj = 0; jj < nT; jj++) a = fr(a + fr(vcodes[jj][c] * w[jj]));
              acc[c] = fr(a - zs);
            }
          }
        });
      } else {
        for (let jj = 0; jj < nT; jj++) {
          floatRow(sv, ja + jj, kvh, d, G, row, codes);
          vheads.forEach((_, v) => {
            const p = probs[v][jj];
            const acc = states[v].acc;
            for (let c = 0; c < d; c++) acc[c] = fr(acc[c] + fr(row[c] * p));
          });
        }
      }
    }
    if (a < b && sv.kind === SEG_PACKED) {
      // the integer segment ends: its sums join the state
      for (const st of states) {
        for (let c = 0; c < d; c++) st.acc[c] = fr(st.acc[c] + st.accP[c]);
        st.accP.fill(0);
      }
    }
    start += sk.length;
  }
}

/** Merge the partial states of one head (flash-decoding): Σ e^{m_i − M} acc_i / Σ e^{m_i − M} l_i. */
export function mergeStates(parts: { m: number; l: number; acc: ArrayLike<number> }[], d: number, out: Float32Array, outOff: number): void {
  let M = -Infinity;
  for (const p of parts) if (p.l > 0) M = Math.max(M, p.m);
  let l = 0;
  const acc = new Float64Array(d);
  for (const p of parts) {
    if (!(p.l > 0)) continue;
    const e = Math.exp(p.m - M);
    l += e * p.l;
    for (let c = 0; c < d; c++) acc[c] += e * p.acc[c];
  }
  for (let c = 0; c < d; c++) out[outOff + c] = acc[c] / l;
}

/**
 * Causal attention of the last T of L tokens held in `segK`/`segV` (token order): out
 * (T, numHeads·d). `threads` sets the decode key chunks exactly as the kernel splits them.
 */
export function attendTiledPlain(
  out: Float32Array, queries: Float32Array, T: number, segK: TiledSegment[], segV: TiledSegment[], shape: AttentionShape, G: number, threads = 1,
): void {
  const { numHeads: H, numKvHeads, headDim: d } = shape;
  const group = H / numKvHeads;
  const L = segK.reduce((a, s) => a + s.length, 0);
  const prep = prepare(queries, T * H, d, G);
  const fresh = (): HeadState => ({ m: -Infinity, l: 0, acc: new Float32Array(d), accP: new Float32Array(d) });
  if (T < PREFILL_MIN_QUERIES) {
    for (let t = 0; t < T; t++) {
      const seen = L - T + t + 1;
      for (let kvh = 0; kvh < numKvHeads; kvh++) {
        const vheads = Array.from({ length: group }, (_, g) => ({ t, h: kvh * group + g, limit: L - T + t }));
        const n = decodeThreads(seen, shape, threads);
        const parts = Array.from({ length: n }, (_, i) => {
          const states = vheads.map(fresh);
          const j0 = Math.floor((seen * i) / n), j1 = Math.floor((seen * (i + 1)) / n);
          if (j1 > j0) keysRange(segK, segV, queries, prep, shape, G, kvh, vheads, j0, j1, states);
          return states;
        });
        vheads.forEach((vh, v) => mergeStates(parts.map((p) => p[v]), d, out, (t * H + vh.h) * d));
      }
    }
    return;
  }
  for (let t0 = 0; t0 < T; t0 += QUERY_BLOCK) {
    const nQ = Math.min(QUERY_BLOCK, T - t0);
    for (let kvh = 0; kvh < numKvHeads; kvh++) {
      const vheads: { t: number; h: number; limit: number }[] = [];
      for (let t = t0; t < t0 + nQ; t++) for (let g = 0; g < group; g++) vheads.push({ t, h: kvh * group + g, limit: L - T + t });
      const states = vheads.map(fresh);
      keysRange(segK, segV, queries, prep, shape, G, kvh, vheads, 0, L - T + t0 + nQ, states);
      vheads.forEach((vh, v) => {
        const st = states[v];
        const inv = fr(1 / st.l);
        for (let c = 0; c < d; c++) out[(vh.t * H + vh.h) * d + c] = fr(st.acc[c] * inv);
      });
    }
  }
}
