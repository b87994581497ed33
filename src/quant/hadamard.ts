// The normalised Walsh–Hadamard transform (Sylvester order): H_n = H_2 ⊗ H_{n/2} / √2,
// orthonormal and symmetric (H = Hᵀ = H⁻¹). n must be a power of two.

import { UsageError } from "../errors.js";

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export function assertHadamardSize(n: number, what: string): void {
  if (!isPowerOfTwo(n)) {
    throw new UsageError(`${what} ${n} is not a power of two; the Walsh–Hadamard transform needs 2^k (e.g. ${2 ** Math.floor(Math.log2(Math.max(1, n)))} or ${2 ** Math.ceil(Math.log2(Math.max(1, n)))})`);
  }
}

/** In-place fast Walsh–Hadamard transform of x[off … off+n), scaled by 1/√n. */
export function fwht(x: Float32Array | Float64Array, off: number, n: number): void {
  for (let h = 1; h < n; h *= 2) {
    for (let i = off; i < off + n; i += 2 * h) {
      for (let j = i; j < i + h; j++) {
        const a = x[j];
        const b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const s = 1 / Math.sqrt(n);
  for (let i = off; i < off + n; i++) x[i] *= s;
}

/** The dense normalised Hadamard matrix (tests and folding), row-major n × n. */
export function hadamardMatrix(n: number): Float64Array {
  assertHadamardSize(n, "Hadamard size");
  const m = new Float64Array(n * n);
  const s = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      // Sylvester: H[i][j] = (−1)^popcount(i & j)
      let v = i & j;
      let parity = 0;
      while (v) {
        parity ^= v & 1;
        v >>>= 1;
      }
      m[i * n + j] = parity ? -s : s;
    }
  }
  return m;
}
