// Tiled attention (tensor/tiled-attention.ts and its WebAssembly kernel) on caches in every
// storage format: the kernel against its plain twin (the same algorithm: ≤ 1e-5 relative) with
// 1 and 2 threads — the twin mirrors every float32 operation, so they agree to float rounding
// of the final merge — and both against float64 attention over the dequantized rows: exact up
// to float32 rounding on float rows (≤ 2e-6), and within the error of the int16 query and
// value weights on codes of 1–8 bits (≤ 1e-3), ≤ 1e-5 on 16-bit codes; the worst measured
// figures are printed.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { PackedTokenStore } from "../../src/cache/packed-store.js";
import { KernelLayoutError } from "../../src/errors.js";
import { f16Value, f32ToF16 } from "../../src/tensor/dtype.js";
import { attendTiledKernel } from "../../src/tensor/kernels.js";
import { MAX_SEGMENTS } from "../../src/tensor/layout.js";
import { allocF32, allocU16, release } from "../../src/tensor/memory.js";
import { attendTiledPlain, floatSegment, KEY_BLOCK, packedSegment, tilePermutation, type TiledSegment } from "../../src/tensor/tiled-attention.js";
import { configureKernels, kernelThreads, wasm } from "../../src/tensor/wasm.js";
import { randomArray, seededRandom } from "../helpers.js";

const skip = wasm() ? false : "WebAssembly kernels are off";
const rand = seededRandom(77);
type Shape = { numHeads: number; numKvHeads: number; headDim: number };

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1e-6, m = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m / scale;
}

/** Float64 attention over the dequantized rows of the segments (the independent reference). */
function reference(q: Float32Array, T: number, segK: TiledSegment[], segV: TiledSegment[], shape: Shape, G: number): Float64Array {
  const { numHeads: H, numKvHeads: KVH, headDim: d } = shape;
  const rows = (segs: TiledSegment[]) => segs.flatMap((s) => Array.from({ length: s.length }, (_, j) => rowOf(s, j, KVH * d, G)));
  const K = rows(segK), V = rows(segV);
  const L = K.length;
  const out = new Float64Array(T * H * d);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / KVH));
      const seen = L - T + t + 1;
      const sc = new Float64Array(seen);
      for (let j = 0; j < seen; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[(t * H + h) * d + c] * K[j][kvh * d + c];
        sc[j] = s / Math.sqrt(d);
      }
      const m = Math.max(...sc);
      let l = 0;
      for (let j = 0; j < seen; j++) l += sc[j] = Math.exp(sc[j] - m);
      for (let j = 0; j < seen; j++) for (let c = 0; c < d; c++) out[(t * H + h) * d + c] += (sc[j] / l) * V[j][kvh * d + c];
    }
  }
  return out;
}

function rowOf(s: TiledSegment, j: number, R: number, G: number): Float64Array {
  const row = new Float64Array(R);
  if (s.kind === 0) for (let c = 0; c < R; c++) row[c] = (s.data as Float32Array)[j * s.rowStride + c];
  else if (s.kind === 1) for (let c = 0; c < R; c++) row[c] = f16Value((s.data as Uint16Array)[j * s.rowStride + c]);
  else {
    const per = 32 / s.bits;
    for (let c = 0; c < R; c++) {
      const code = ((s.data as Uint32Array)[j * s.rowStride + Math.floor(c / per)] >>> ((c % per) * s.bits)) & (s.bits === 32 ? -1 : (1 << s.bits) - 1);
      const p = j * s.groupsPerRow + Math.floor(c / G);
      row[c] = code * f16Value(s.scales![p]) - f16Value(s.zeros![p]);
    }
  }
  return row;
}

interface Built {
  segK: TiledSegment[];
  segV: TiledSegment[];
  free: () => void;
}

/** Packed segments: [tokens, bits] in token order (stores in the arena). */
function packed(shape: Shape, G: number, spec: [number, number][]): Built {
  const R = shape.numKvHeads * shape.headDim;
  const stores = spec.map(([n, b]) => {
    const pair = [new PackedTokenStore(R, G, b), new PackedTokenStore(R, G, b)];
    // keys with an outlier channel and an offset, values plain: scales and zeros of every size
    for (const [i, s] of pair.entries()) {
      if (n === 0) continue;
      const x = randomArray(n * R, rand, 2);
      if (i === 0) for (let t = 0; t < n; t++) (x[t * R + 3] *= 20), (x[t * R + 5] += 7);
      s.appendFloats(x, 0, n);
    }
    return pair;
  });
  return { segK: stores.map(([k]) => packedSegment(k)), segV: stores.map(([, v]) => packedSegment(v)), free: () => stores.flat().forEach((s) => s.reset()) };
}

/** One float segment of L rows (f32 or f16) in the arena. */
function float(shape: Shape, L: number, f16: boolean): Built {
  const R = shape.numKvHeads * shape.headDim;
  const mk = () => {
    const x = randomArray(L * R, rand, 2);
    if (!f16) {
      const a = allocF32(L * R);
      a.set(x);
      return a;
    }
    const a = allocU16(L * R);
    f32ToF16(x, a);
    return a;
  };
  const k = mk(), v = mk();
  return { segK: [floatSegment(k, L, R)], segV: [floatSegment(v, L, R)], free: () => (release(k), release(v)) };
}

const worst = new Map<string, number>();
function run(name: string, shape: Shape, G: number, b: Built, T: number, refTol: number): void {
  const H = shape.numHeads, d = shape.headDim;
  const q = allocF32(T * H * d);
  q.set(randomArray(T * H * d, rand, 1.5));
  const got = allocF32(T * H * d).fill(NaN);
  try {
    assert.ok(attendTiledKernel(got, q, T, b.segK, b.segV, shape, G), `${name}: the kernel ran`);
    const twin = new Float32Array(T * H * d);
    attendTiledPlain(twin, q, T, b.segK, b.segV, shape, G, kernelThreads());
    const dTwin = relDiff(got, twin);
    assert.ok(dTwin <= 1e-5, `${name}: kernel vs twin ${dTwin.toExponential(2)}`);
    const want = reference(q, T, b.segK, b.segV, shape, G);
    const dRef = relDiff(twin, want);
    assert.ok(dRef <= refTol, `${name}: twin vs float64 reference ${dRef.toExponential(2)} > ${refTol}`);
    const key = refTol === FLOAT_TOL ? "float rows" : refTol === CODE16_TOL ? "16-bit codes" : "codes of 1–8 bits";
    worst.set(key, Math.max(worst.get(key) ?? 0, dRef));
  } finally {
    release(q);
    release(got);
  }
}

const SHAPES: [Shape, number][] = [
  [{ numHeads: 8, numKvHeads: 2, headDim: 128 }, 128],
  [{ numHeads: 6, numKvHeads: 2, headDim: 128 }, 64],
  [{ numHeads: 5, numKvHeads: 1, headDim: 64 }, 64],
  [{ numHeads: 4, numKvHeads: 2, headDim: 32 }, 32], // 2-bit groups of 64 bits: 8-byte chunks
  [{ numHeads: 8, numKvHeads: 4, headDim: 8 }, 8], // stories260K's heads: float rows end in a last 8 channels
];
/** int16 queries and value weights (a 15-bit step of each group's / block's largest): measured ≤ 5.7e-4. */
const CODES_TOL = 1e-3;
/** float rows: float32 rounding of the dot products and sums. */
const FLOAT_TOL = 2e-6;
/** 16-bit codes: s·(q·c') − z'·Σq over centred codes up to 2^15 loses more to float32 rounding — under half a 16-bit code step (7.6e-6 of a group's range). */
const CODE16_TOL = 1e-5;

for (const threads of [1, 2]) {
  for (const [shape, G] of SHAPES) {
    const label = `${shape.numHeads}/${shape.numKvHeads} d=${shape.headDim} G=${G} [threads=${threads}]`;
    test(`packed sink|body|window at every body width, lengths around block edges: ${label}`, { skip }, () => {
      if (kernelThreads() !== threads) configureKernels({ threads });
      for (const bits of [8, 4, 2, 1, 16]) {
        if ((G * bits) % 64 !== 0 && bits !== 16) continue;
        for (const body of [0, 1, KEY_BLOCK - 1, KEY_BLOCK, KEY_BLOCK + 1, 97]) {
          for (const T of [1, 3, 17]) {
            const b = packed(shape, G, [[1, 16], [body, bits], [T + 4, 16]]);
            try {
              run(`body ${body}@${bits} T=${T} ${label}`, shape, G, b, T, bits === 16 ? CODE16_TOL : CODES_TOL);
            } finally {
              b.free();
            }
          }
        }
      }
    });
    test(`float rows (f32, f16), decode and prefill: ${label}`, { skip }, () => {
      if (kernelThreads() !== threads) configureKernels({ threads });
      for (const f16 of [false, true]) {
        for (const [L, T] of [[1, 1], [33, 1], [600, 1], [600, 5], [70, 70], [130, 40]]) {
          const b = float(shape, L, f16);
          try {
            run(`${f16 ? "f16" : "f32"} L=${L} T=${T} ${label}`, shape, G, b, T, FLOAT_TOL);
          } finally {
            b.free();
          }
        }
      }
    });
  }
}

test("a long 2-bit body split over threads: decode parts merge to the one-thread result", { skip }, () => {
  const shape = { numHeads: 8, numKvHeads: 2, headDim: 128 };
  const b = packed(shape, 128, [[1, 16], [3000, 2], [100, 16]]);
  try {
    const q = allocF32(8 * 128);
    q.set(randomArray(8 * 128, rand, 1.5));
    const outs = [1, 2].map((threads) => {
      configureKernels({ threads });
      const o = allocF32(8 * 128);
      assert.ok(attendTiledKernel(o, q, 1, b.segK, b.segV, shape, 128));
      const copy = o.slice();
      release(o);
      return copy;
    });
    assert.ok(relDiff(outs[1], outs[0]) <= 1e-5, `threads 1 vs 2: ${relDiff(outs[1], outs[0])}`);
    release(q);
  } finally {
    b.free();
  }
});

test(`full segment tables: ${MAX_SEGMENTS} segments of every width, one empty, decode and prefill`, { skip }, () => {
  const shape = { numHeads: 8, numKvHeads: 2, headDim: 128 };
  const widths = [16, 8, 4, 2, 1, 8, 4, 16].slice(0, MAX_SEGMENTS);
  for (const T of [1, 17]) {
    const b = packed(shape, 128, widths.map((bits, i) => [i === 3 ? 0 : 5 + 9 * i, bits]));
    try {
      run(`${MAX_SEGMENTS} segments T=${T}`, shape, 128, b, T, CODES_TOL);
    } finally {
      b.free();
    }
  }
});

test("more segments than a plan's tables hold: a KernelLayoutError, nothing written", () => {
  const shape = { numHeads: 4, numKvHeads: 2, headDim: 32 };
  const b = packed(shape, 32, Array.from({ length: MAX_SEGMENTS + 1 }, () => [2, 8] as [number, number]));
  const q = allocF32(4 * 32).fill(1);
  const out = allocF32(4 * 32).fill(NaN);
  try {
    assert.throws(() => attendTiledKernel(out, q, 1, b.segK, b.segV, shape, 32), (e: unknown) => e instanceof KernelLayoutError && e.message.includes(`${MAX_SEGMENTS + 1} segments given, a plan's tables hold at most ${MAX_SEGMENTS}`));
    assert.ok(out.every(Number.isNaN), "the output is untouched");
  } finally {
    b.free();
    release(q);
    release(out);
  }
});

test("the tile permutation is a permutation that stays inside each group", () => {
  for (const bits of [1, 2, 4, 8]) {
    for (const [d, G] of [[128, 128], [128, 64], [64, 32], [32, 32]]) {
      if ((G * bits) % 64 !== 0) continue;
      const p = tilePermutation(bits, d, G);
      assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: d }, (_, i) => i));
      p.forEach((c, i) => assert.equal(Math.floor(c / G), Math.floor(i / G), `bits ${bits} d ${d} G ${G} index ${i}`));
    }
  }
  assert.deepEqual(Array.from(tilePermutation(8, 16, 16)), Array.from({ length: 16 }, (_, i) => i), "8-bit codes are in channel order");
});

test("worst difference from float64 attention", { skip }, (t) => {
  for (const [k, d] of worst) t.diagnostic(`${k}: ${d.toExponential(2)}`);
});

after(() => configureKernels({ threads: 2 }));
