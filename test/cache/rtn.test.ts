// RTN below 16 bits, checked against the quantizer's own definition (spec §1) rather than the
// code's output: per token, channels in groups of G, min/max asymmetric, 2^b − 1 steps. Every
// dequantized value must lie within half a step of the original, the step must be the group's
// range over 2^b − 1 (up to the f16 rounding of the stored scale and zero), and the codes must
// really be coarse (the error is not zero).

import assert from "node:assert/strict";
import { test } from "node:test";
import { RtnLayerCache } from "../../src/cache/rtn.js";
import { seededRandom } from "../helpers.js";

const SHAPE = { numHeads: 4, numKvHeads: 2, headDim: 16 };
const ROW = SHAPE.numKvHeads * SHAPE.headDim;
const F16_ULP = 2 ** -10;

for (const bits of [8, 4, 2, 1]) {
  for (const groupSize of [8, 32]) {
    test(`rtn ${bits}-bit, groups of ${groupSize}: every value within half a step of the group's (max − min) / (2^b − 1)`, () => {
      const rand = seededRandom(bits * 100 + groupSize);
      const cache = new RtnLayerCache(SHAPE, { kBits: bits, vBits: bits, groupSize });
      const T = 37;
      const keys = Float32Array.from({ length: T * ROW }, () => (rand() * 2 - 1) * 3 + 1);
      const values = Float32Array.from({ length: T * ROW }, () => (rand() * 2 - 1) * 0.5);
      cache.append(keys, values, T);
      cache.attend(new Float32Array(SHAPE.numHeads * SHAPE.headDim), 1, new Float32Array(SHAPE.numHeads * SHAPE.headDim)); // places the tokens
      const got = cache.dequantized();
      const levels = 2 ** bits - 1;
      for (const [name, x, y] of [["keys", keys, got.keys], ["values", values, got.values]] as const) {
        let worstRatio = 0;
        for (let t = 0; t < T; t++) {
          for (let g = 0; g < ROW; g += groupSize) {
            const off = t * ROW + g;
            let lo = Infinity, hi = -Infinity;
            for (let i = 0; i < groupSize; i++) {
              lo = Math.min(lo, x[off + i]);
              hi = Math.max(hi, x[off + i]);
            }
            // the stored zero (≥ −min) and scale (≥ (max + zero) / levels) are rounded up to f16
            const step = ((hi - lo + Math.abs(lo) * F16_ULP) / levels) * (1 + F16_ULP) + 1e-7;
            for (let i = 0; i < groupSize; i++) {
              const err = Math.abs(y[off + i] - x[off + i]);
              assert.ok(err <= step / 2 + 1e-6, `${name} t=${t} channel ${g + i}: |error| ${err} > half a step ${step / 2}`);
              worstRatio = Math.max(worstRatio, err / (step / 2));
            }
          }
        }
        // a real grid: some value sits far from every grid point (random data fill the half-step)
        assert.ok(worstRatio > 0.5, `${name}: worst error only ${worstRatio.toFixed(3)} of half a step`);
      }
    });
  }
}
