// Lloyd–Max scalar quantizers for a standard normal source: the 2^b reconstruction levels that
// minimise the mean squared error (Max, 1960). Each level is the conditional mean of its cell,
// each cell boundary the midpoint of its two levels; Lloyd's iteration from a uniform start
// converges to the optimum for the (log-concave) normal density.

/** Standard normal density. */
function phi(x: number): number {
  return Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}

/** Standard normal CDF through erfc: erf's Taylor series below 2.5, a continued fraction beyond (both to ~1e-15). */
export function normalCdf(x: number): number {
  if (x === Infinity) return 1;
  if (x === -Infinity) return 0;
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  if (x > 27) return 0; // below the smallest double
  if (x < 2.5) {
    // erf by its Taylor series: erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let term = x, sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // continued fraction (Lentz): erfc(x) = exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …))))
  const tiny = 1e-300;
  let f = x, C = x, D = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    D = x + a * D;
    D = D === 0 ? tiny : 1 / D;
    C = x + a / C;
    if (C === 0) C = tiny;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

const cache = new Map<number, Float64Array>();

/** The 2^bits Lloyd–Max levels for N(0, 1), ascending (symmetric about 0). */
export function lloydMaxNormal(bits: number): Float64Array {
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new RangeError(`Lloyd–Max codebooks are built for 1 … 8 bits (got ${bits})`);
  const hit = cache.get(bits);
  if (hit) return hit;
  const n = 2 ** bits;
  // start: uniform levels over ±3σ
  const c = Float64Array.from({ length: n }, (_, i) => -3 + (6 * (i + 0.5)) / n);
  for (let iter = 0; iter < 10_000; iter++) {
    let moved = 0;
    for (let i = 0; i < n; i++) {
      const lo = i === 0 ? -Infinity : (c[i - 1] + c[i]) / 2;
      const hi = i === n - 1 ? Infinity : (c[i] + c[i + 1]) / 2;
      const mass = normalCdf(hi) - normalCdf(lo);
      const next = mass > 0 ? ((lo === -Infinity ? 0 : phi(lo)) - (hi === Infinity ? 0 : phi(hi))) / mass : c[i];
      moved = Math.max(moved, Math.abs(next - c[i]));
      c[i] = next;
    }
    if (moved < 1e-13) break;
  }
  // the optimum is symmetric; remove the round-off the sweep order leaves
  for (let i = 0; i < n / 2; i++) {
    const m = (c[n - 1 - i] - c[i]) / 2;
    c[i] = -m;
    c[n - 1 - i] = m;
  }
  cache.set(bits, c);
  return c;
}

/** Index of the level nearest x (levels ascending): a binary search on the cell midpoints. */
export function nearestLevel(levels: Float64Array | Float32Array, x: number): number {
  let lo = 0, hi = levels.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > (levels[mid] + levels[mid + 1]) / 2) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
