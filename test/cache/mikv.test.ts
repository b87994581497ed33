// The MiKV baseline (spec §7) against a brute-force reference written here from the rules
// (channel balance at the first attend, accumulated attention, lowest-scored float tokens
// quantized per spec §2, plain float64 attention), plain float attention when nothing is
// quantized, the effect of balancing on a key outlier channel, its memory layout computed
// from first principles, and greedy generation on stories260K at 16 bits.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createMikvCache, MIKV_GROW_TOKENS, MikvLayerCache, type MikvOptions } from "../../src/cache/mikv.js";
import type { KvShape } from "../../src/model/kv-cache.js";
import { UsageError } from "../../src/errors.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { maxRelDiff, randomArray, readStoriesReference, seededRandom, STORIES_DIR } from "../helpers.js";
import { refQuantGroup } from "../f16-ref.js";

// ---- the reference, from the rules ----

/** One group quantized by the quantizer's rule (f16 scale and zero, test/f16-ref.ts): the dequantized values. */
const refQuantizeGroup = (x: number[], bits: number): number[] => refQuantGroup(x, bits).xh;

const refQuantizeRow = (row: number[], G: number, bits: number): number[] =>
  row.flatMap((_, i) => (i % G === 0 ? refQuantizeGroup(row.slice(i, i + G), bits) : []));

interface RefToken {
  k: number[]; // balanced key (float32), or its dequantized value once quantized
  v: number[];
  fp: boolean;
  score: number;
}

/** MiKV written plainly: one record per token, float64 attention and bookkeeping. */
class RefMikv {
  toks: RefToken[] = [];
  b: number[] | null = null;
  constructor(readonly shape: KvShape, readonly o: MikvOptions) {}

  append(k: Float32Array, v: Float32Array, n: number): void {
    const R = this.shape.numKvHeads * this.shape.headDim;
    for (let t = 0; t < n; t++) {
      const key = Array.from(k.subarray(t * R, (t + 1) * R));
      this.toks.push({ k: this.b ? key.map((x, e) => Math.fround(x * this.b![e])) : key, v: Array.from(v.subarray(t * R, (t + 1) * R)), fp: true, score: 0 });
    }
  }

  attend(q: Float32Array, T: number): Float32Array {
    const { numHeads, numKvHeads, headDim: d } = this.shape;
    const R = numKvHeads * d;
    const group = numHeads / numKvHeads;
    if (!this.b) {
      // b = sqrt(max|q| / max|k|) per KV head and channel, 1 when either is 0
      const b: number[] = [];
      for (let e = 0; e < R; e++) {
        const kvh = Math.floor(e / d);
        let mq = 0;
        for (let t = 0; t < T; t++) for (let h = kvh * group; h < (kvh + 1) * group; h++) mq = Math.max(mq, Math.abs(q[(t * numHeads + h) * d + (e % d)]));
        const mk = Math.max(...this.toks.map((x) => Math.abs(x.k[e])));
        b.push(this.o.balance === false || mq === 0 || mk === 0 ? 1 : Math.fround(Math.sqrt(mq / mk)));
      }
      this.b = b;
      for (const x of this.toks) x.k = x.k.map((v, e) => Math.fround(v * b[e]));
    }
    const L = this.toks.length;
    const out = new Float32Array(T * numHeads * d);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < numHeads; h++) {
        const kv = Math.floor(h / group) * d;
        const qOff = (t * numHeads + h) * d;
        const qb = Array.from({ length: d }, (_, c) => Math.fround(q[qOff + c] / this.b![kv + c]));
        const seen = this.toks.slice(0, L - T + t + 1);
        const s = seen.map((x) => qb.reduce((a, qc, c) => a + qc * x.k[kv + c], 0) / Math.sqrt(d));
        const mx = Math.max(...s);
        const e = s.map((v) => Math.exp(v - mx));
        const sum = e.reduce((a, v) => a + v, 0);
        seen.forEach((x, j) => {
          x.score += e[j] / sum;
          for (let c = 0; c < d; c++) out[qOff + c] += (e[j] / sum) * x.v[kv + c];
        });
      }
    }
    // quantize the lowest-scored float tokens (ties: the older) until N remain
    const fp = this.toks.map((x, i) => [x, i] as const).filter(([x]) => x.fp);
    fp.sort(([a, i], [b, j]) => a.score - b.score || i - j);
    for (const [x] of fp.slice(0, Math.max(0, fp.length - this.o.nSinkTokens))) {
      x.k = refQuantizeRow(x.k, this.o.groupSize, this.o.kBits);
      x.v = refQuantizeRow(x.v, this.o.groupSize, this.o.vBits);
      x.fp = false;
    }
    return out;
  }

  fpTokens(): number[] {
    return this.toks.flatMap((x, i) => (x.fp ? [i] : []));
  }
}

/** Plain causal GQA attention of the last T of the L raw tokens (no balance, no quantization). */
function floatAttention(q: Float32Array, T: number, K: number[], V: number[], shape: KvShape): Float32Array {
  const { numHeads, numKvHeads, headDim: d } = shape;
  const R = numKvHeads * d;
  const L = K.length / R;
  const out = new Float32Array(T * numHeads * d);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < numHeads; h++) {
      const kv = Math.floor(h / (numHeads / numKvHeads)) * d;
      const qOff = (t * numHeads + h) * d;
      const s: number[] = [];
      for (let j = 0; j <= L - T + t; j++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[qOff + c] * K[j * R + kv + c];
        s.push(dot / Math.sqrt(d));
      }
      const mx = Math.max(...s);
      const e = s.map((v) => Math.exp(v - mx));
      const sum = e.reduce((a, v) => a + v, 0);
      for (let j = 0; j < e.length; j++) for (let c = 0; c < d; c++) out[qOff + c] += (e[j] / sum) * V[j * R + kv + c];
    }
  }
  return out;
}

/** Keys with per-channel magnitudes spread over ~two decades, so b ≠ 1. */
function skewedKeys(n: number, R: number, rand: () => number, channelScale: number[]): Float32Array {
  const k = randomArray(n * R, rand);
  for (let i = 0; i < k.length; i++) k[i] *= channelScale[i % R];
  return k;
}

const SHAPES: KvShape[] = [
  { numHeads: 4, numKvHeads: 2, headDim: 16 }, // GQA 2:1
  { numHeads: 6, numKvHeads: 2, headDim: 8 }, // GQA 3:1
];
const CHUNKS = [12, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1]; // prefill, decode, a mid chunk, decode

// ---- tests ----

test("attention and the full-precision set equal the brute-force MiKV reference", () => {
  const rand = seededRandom(17);
  let worst = 0;
  let calls = 0;
  for (const shape of SHAPES) {
    const { numHeads, headDim: d } = shape;
    const R = shape.numKvHeads * d;
    const channelScale = Array.from({ length: R }, () => 10 ** (2 * rand() - 1));
    for (const G of [d, d / 2]) {
      for (const [kBits, vBits] of [[2, 2], [4, 4], [2, 4], [4, 2]]) {
        for (const N of [0, 1, 5, 100]) {
          const o = { kBits, vBits, groupSize: G, nSinkTokens: N };
          const cache = new MikvLayerCache(shape, o);
          const ref = new RefMikv(shape, o);
          for (const n of CHUNKS) {
            const k = skewedKeys(n, R, rand, channelScale);
            const v = randomArray(n * R, rand);
            const q = randomArray(n * numHeads * d, rand, 2);
            cache.append(k, v, n);
            ref.append(k, v, n);
            const out = new Float32Array(q.length);
            cache.attend(q, n, out);
            const expected = ref.attend(q, n);
            const diff = maxRelDiff(out, expected);
            worst = Math.max(worst, diff);
            const at = `shape ${JSON.stringify(shape)} G=${G} k${kBits}v${vBits} N=${N} at ${cache.length} tokens`;
            assert.ok(diff < 1e-5, `${at}: rel diff ${diff}`);
            assert.deepEqual(cache.fullPrecisionTokens(), ref.fpTokens(), at);
            const st = cache.stats();
            assert.equal(st.sinkTokens, Math.min(N, cache.length));
            assert.equal(st.bodyTokens, cache.length - st.sinkTokens);
            calls++;
          }
          assert.deepEqual(Array.from(cache.channelBalance), ref.b);
        }
      }
    }
  }
  console.log(`# MiKV vs brute-force reference: ${calls} attention calls, max rel diff = ${worst.toExponential(2)}`);
});

test("balancing leaves q·k unchanged: with nothing quantized, outputs equal plain float attention", () => {
  const rand = seededRandom(5);
  let worst = 0;
  for (const shape of SHAPES) {
    const { numHeads, headDim: d } = shape;
    const R = shape.numKvHeads * d;
    const channelScale = Array.from({ length: R }, () => 10 ** (2 * rand() - 1));
    const cache = new MikvLayerCache(shape, { kBits: 2, vBits: 2, groupSize: d, nSinkTokens: 1000 });
    const K: number[] = [];
    const V: number[] = [];
    for (const n of CHUNKS) {
      const k = skewedKeys(n, R, rand, channelScale);
      const v = randomArray(n * R, rand);
      const q = randomArray(n * numHeads * d, rand, 2);
      cache.append(k, v, n);
      K.push(...k);
      V.push(...v);
      const out = new Float32Array(q.length);
      cache.attend(q, n, out);
      const diff = maxRelDiff(out, floatAttention(q, n, K, V, shape));
      worst = Math.max(worst, diff);
      assert.ok(diff < 1e-5, `rel diff ${diff}`);
    }
    const b = Array.from(cache.channelBalance);
    assert.ok(Math.max(...b) / Math.min(...b) > 3, `b spans ${Math.min(...b)} … ${Math.max(...b)}`);
    assert.equal(cache.stats().bodyTokens, 0);
  }
  console.log(`# MiKV N > length vs float attention: max rel diff = ${worst.toExponential(2)}`);
});

test("balancing lowers the 4-bit attention error on keys with an outlier channel", () => {
  const shape: KvShape = { numHeads: 8, numKvHeads: 2, headDim: 64 };
  const { numHeads, headDim: d } = shape;
  const R = shape.numKvHeads * d;
  const errors: Record<string, number> = {};
  for (const balance of [true, false]) {
    const rand = seededRandom(99); // the same data for both
    const cache = new MikvLayerCache(shape, { kBits: 4, vBits: 4, groupSize: 32, nSinkTokens: 2, balance });
    const K: number[] = [];
    const V: number[] = [];
    let err = 0;
    for (const n of [64, ...Array<number>(32).fill(1)]) {
      const k = randomArray(n * R, rand);
      for (let t = 0; t < n; t++) for (const e of [3, d + 40]) k[t * R + e] = 20 + 5 * rand(); // planted outlier channel per head
      const v = randomArray(n * R, rand);
      const q = randomArray(n * numHeads * d, rand, 2);
      cache.append(k, v, n);
      K.push(...k);
      V.push(...v);
      const out = new Float32Array(q.length);
      cache.attend(q, n, out);
      const exact = floatAttention(q, n, K, V, shape);
      for (let i = 0; i < out.length; i++) err += (out[i] - exact[i]) ** 2;
    }
    errors[String(balance)] = Math.sqrt(err);
  }
  console.log(`# 4-bit, outlier key channel: attention error with balancing ${errors.true.toExponential(3)}, without ${errors.false.toExponential(3)}`);
  assert.ok(errors.true < errors.false / 2);
});

test("on tied scores the older token is quantized first", () => {
  // keys ±u, queries u: tokens with −u get probability exactly 0 (exp underflows), a tie at 0
  const shape: KvShape = { numHeads: 2, numKvHeads: 1, headDim: 4 };
  const u = [30, 30, 30, 30];
  const k = Float32Array.from([u, u.map((x) => -x), u.map((x) => -x), u].flat());
  const v = randomArray(16, seededRandom(1));
  const q = Float32Array.from(Array<number[]>(8).fill(u).flat());
  const o = { kBits: 2, vBits: 2, groupSize: 4, nSinkTokens: 3 };
  const cache = new MikvLayerCache(shape, o);
  const ref = new RefMikv(shape, o);
  cache.append(k, v, 4);
  ref.append(k, v, 4);
  cache.attend(q, 4, new Float32Array(q.length));
  ref.attend(q, 4);
  assert.deepEqual(ref.fpTokens(), [0, 2, 3]);
  assert.deepEqual(cache.fullPrecisionTokens(), [0, 2, 3]);
});

test("heldBytes follows the documented layout; quantized tokens shrink it", () => {
  const shape: KvShape = { numHeads: 4, numKvHeads: 2, headDim: 64 };
  const R = shape.numKvHeads * shape.headDim;
  const GROW = MIKV_GROW_TOKENS;
  const roundUp = (n: number) => Math.ceil(n / GROW) * GROW;
  const final: Record<number, number> = {};
  for (const [G, kBits, vBits] of [[32, 2, 2], [64, 4, 2], [16, 16, 8]]) {
    for (const N of [0, 3, 70, 1000]) {
      const cache = new MikvLayerCache(shape, { kBits, vBits, groupSize: G, nSinkTokens: N });
      const rand = seededRandom(N + G);
      let L = 0;
      let fpCap = 0;
      const rowBytes = (bits: number) => Math.ceil((R * bits) / 32) * 4 + (R / G) * 4; // codes + f16 scale + zero
      for (const n of [200, ...Array<number>(70).fill(1), 5]) {
        const q = randomArray(n * shape.numHeads * shape.headDim, rand);
        cache.append(randomArray(n * R, rand), randomArray(n * R, rand), n);
        if (Math.min(L, N) + n > fpCap) fpCap = roundUp(Math.min(L, N) + n);
        L += n;
        cache.attend(q, n, new Float32Array(q.length));
        const fp = Math.min(L, N);
        if (L > N && fpCap > fp + 1) fpCap = fp + 1;
        // float slots: K and V f32 rows, i32 token index, f64 score; packed rows; b
        const expected = fpCap * (2 * R * 4 + 4 + 8) + roundUp(L - fp) * (rowBytes(kBits) + rowBytes(vBits)) + R * 4;
        const st = cache.stats();
        assert.equal(st.heldBytes, expected, `G=${G} k${kBits}v${vBits} N=${N} L=${L}`);
        assert.equal(st.codeBytes, ((L - fp) * R * (kBits + vBits)) / 8 + (fp * R * 2 * 16) / 8);
        assert.deepEqual([st.sinkTokens, st.bodyTokens, st.windowTokens, st.budgetBytes], [fp, L - fp, 0, null]);
      }
      if (G === 32) final[N] = cache.stats().heldBytes;
      cache.reset();
      assert.equal(cache.length, 0);
      assert.equal(cache.stats().heldBytes, 0);
    }
  }
  console.log(`# 275 tokens, R=${R}, k2v2 G=32: heldBytes N=0 ${final[0]}, N=3 ${final[3]}, N=70 ${final[70]}, all float ${final[1000]}`);
  assert.ok(final[0] < final[1000] / 6);
  assert.ok(final[0] < final[3] && final[3] < final[70] && final[70] < final[1000]);
});

test("reset gives a fresh cache; options are validated; the cache is named after its bits", () => {
  const shape = SHAPES[0];
  const R = shape.numKvHeads * shape.headDim;
  const o = { kBits: 2, vBits: 4, groupSize: 8, nSinkTokens: 3 };
  const rand = seededRandom(3);
  const k = randomArray(9 * R, rand);
  const v = randomArray(9 * R, rand);
  const q = randomArray(9 * shape.numHeads * shape.headDim, rand);
  const used = new MikvLayerCache(shape, o);
  used.append(randomArray(5 * R, rand), randomArray(5 * R, rand), 5);
  used.attend(randomArray(5 * shape.numHeads * shape.headDim, rand), 5, new Float32Array(5 * shape.numHeads * shape.headDim));
  used.reset();
  const fresh = new MikvLayerCache(shape, o);
  const a = new Float32Array(q.length);
  const b = new Float32Array(q.length);
  for (const [c, out] of [[used, a], [fresh, b]] as const) {
    c.append(k, v, 9);
    c.attend(q, 9, out);
  }
  assert.deepEqual(a, b);
  assert.deepEqual(used.stats(), fresh.stats());
  assert.throws(() => createMikvCache(shape, 1, { ...o, groupSize: 6 }), UsageError);
  assert.throws(() => createMikvCache(shape, 1, { ...o, kBits: 3 }), UsageError);
  assert.throws(() => createMikvCache(shape, 1, { ...o, nSinkTokens: -1 }), UsageError);
  const c = createMikvCache(shape, 3, o);
  assert.equal(c.method, "mikv-k2v4");
  assert.equal(c.layers.length, 3);
  assert.equal(c.stats().blocks[0].bodyBits, 3);
});

test("stories260K: 16-bit MiKV gives the full-precision greedy output", () => {
  const model = loadModel(STORIES_DIR);
  const ref = readStoriesReference();
  const cache = createMikvCache(model.config, model.config.numLayers, { kBits: 16, vBits: 16, groupSize: 8, nSinkTokens: 4 });
  const res = generate(model, ref.prompt_ids, { maxNewTokens: 64, cache });
  assert.deepEqual(res.ids, ref.greedy_ids);
  const st = res.kv.blocks[0];
  assert.equal(st.sinkTokens, 4);
  assert.ok(st.bodyTokens > 0);
  assert.equal(st.sinkTokens + st.bodyTokens, cache.length);
});
