// Lloyd–Max codebooks for N(0, 1) against Max's published table (J. Max, "Quantizing for
// minimum distortion", IRE Trans. Inf. Theory, 1960: levels and mean squared errors for
// 2, 4, 8 and 16 levels), and the normal CDF against known values.

import assert from "node:assert/strict";
import { test } from "node:test";
import { lloydMaxNormal, nearestLevel, normalCdf } from "../../src/quant/lloyd-max.js";

const MAX_1960: Record<number, { levels: number[]; mse: number }> = {
  1: { levels: [0.7979], mse: 0.3634 },
  2: { levels: [0.4528, 1.51], mse: 0.1175 },
  3: { levels: [0.2451, 0.756, 1.344, 2.152], mse: 0.03454 },
  4: { levels: [0.1284, 0.3881, 0.6568, 0.9424, 1.256, 1.618, 2.069, 2.733], mse: 0.009497 },
};

/** E[(X − q(X))²] for X ~ N(0, 1) by a fine midpoint rule over ±10σ (independent of the iteration). */
function mse(levels: Float64Array): number {
  let sum = 0;
  const h = 1e-4;
  for (let x = -10 + h / 2; x < 10; x += h) {
    const e = x - levels[nearestLevel(levels, x)];
    sum += e * e * Math.exp(-0.5 * x * x) * h;
  }
  return sum / Math.sqrt(2 * Math.PI);
}

test("normal CDF: known values", () => {
  for (const [x, p] of [[0, 0.5], [1, 0.8413447460685429], [-1.96, 0.024997895148220435], [3, 0.9986501019683699], [-6, 9.865876450376946e-10]] as const) {
    assert.ok(Math.abs(normalCdf(x) - p) <= 1e-12 + 1e-9 * p, `Φ(${x}) = ${normalCdf(x)}, want ${p}`);
  }
});

for (const [bits, want] of Object.entries(MAX_1960)) {
  test(`${bits}-bit Lloyd–Max levels and distortion match Max (1960)`, () => {
    const c = lloydMaxNormal(Number(bits));
    assert.equal(c.length, 2 ** Number(bits));
    const positive = Array.from(c.slice(c.length / 2));
    want.levels.forEach((l, i) => assert.ok(Math.abs(positive[i] - l) < 1.5e-3, `level ${i}: ${positive[i]} vs ${l}`));
    // symmetric, ascending
    for (let i = 0; i < c.length; i++) assert.ok(Math.abs(c[i] + c[c.length - 1 - i]) < 1e-12);
    for (let i = 1; i < c.length; i++) assert.ok(c[i] > c[i - 1]);
    const d = mse(c);
    assert.ok(Math.abs(d - want.mse) / want.mse < 2e-3, `distortion ${d} vs ${want.mse}`);
  });
}

test("nearestLevel picks the closest level (brute force)", () => {
  const c = lloydMaxNormal(3);
  for (let x = -4; x <= 4; x += 0.01) {
    let best = 0;
    for (let i = 1; i < c.length; i++) if (Math.abs(x - c[i]) < Math.abs(x - c[best])) best = i;
    assert.equal(nearestLevel(c, x), best, `x = ${x}`);
  }
});
