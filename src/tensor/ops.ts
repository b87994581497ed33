// Plain-TypeScript kernels. They are the reference ("twin") that faster kernels are tested
// against, and the implementation used where no faster kernel exists.
// Layout: row-major; a matrix W of shape (rows, cols) stores W[r][c] at r * cols + c.

/** out[t, o] = Σ_i x[t, i] · w[o, i] (+ bias[o]) — x: (T, inDim), w: (outDim, inDim), out: (T, outDim). */
export function matmul(
  out: Float32Array, x: Float32Array, w: Float32Array, bias: Float32Array | null,
  T: number, inDim: number, outDim: number,
): void {
  for (let t = 0; t < T; t++) {
    const xOff = t * inDim;
    const oOff = t * outDim;
    for (let o = 0; o < outDim; o++) {
      const wOff = o * inDim;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let i = 0;
      for (; i + 3 < inDim; i += 4) {
        s0 += x[xOff + i] * w[wOff + i];
        s1 += x[xOff + i + 1] * w[wOff + i + 1];
        s2 += x[xOff + i + 2] * w[wOff + i + 2];
        s3 += x[xOff + i + 3] * w[wOff + i + 3];
      }
      for (; i < inDim; i++) s0 += x[xOff + i] * w[wOff + i];
      out[oOff + o] = s0 + s1 + s2 + s3 + (bias ? bias[o] : 0);
    }
  }
}

/** out[t] = x[t] / sqrt(mean(x[t]²) + eps) ⊙ weight, for T rows of size n. */
export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, T: number, n: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const off = t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[off + i] = x[off + i] * inv * weight[i];
  }
}

/** In-place softmax over x[off .. off+n). */
export function softmax(x: Float32Array, off: number, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i] > max) max = x[off + i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[off + i] - max);
    x[off + i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) x[off + i] *= inv;
}

/** SwiGLU: gate[i] = silu(gate[i]) · up[i], silu(x) = x / (1 + e^−x). */
export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** x += y over n elements. */
export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}

/**
 * RoPE in the Hugging Face rotate-half layout, in place: for each head and each pair
 * (c, c + d/2), rotate by the angle whose cos/sin are given per token.
 * x: (T, nHeads, d); cos/sin: (T, d/2).
 */
export function rope(x: Float32Array, cos: Float32Array, sin: Float32Array, T: number, nHeads: number, d: number): void {
  const half = d / 2;
  for (let t = 0; t < T; t++) {
    const cOff = t * half;
    for (let h = 0; h < nHeads; h++) {
      const off = (t * nHeads + h) * d;
      for (let c = 0; c < half; c++) {
        const a = x[off + c];
        const b = x[off + c + half];
        const co = cos[cOff + c];
        const si = sin[cOff + c];
        x[off + c] = a * co - b * si;
        x[off + c + half] = b * co + a * si;
      }
    }
  }
}

/** out (T, n) = x (T, k) · W (k, n), row-major W — the input gradient dy·W of y = x·Wᵀ. */
export function matmulNN(out: Float32Array, x: Float32Array, w: Float32Array, T: number, k: number, n: number): void {
  out.fill(0, 0, T * n);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < k; j++) {
      const a = x[t * k + j];
      if (a === 0) continue;
      for (let i = 0; i < n; i++) out[t * n + i] += a * w[j * n + i];
    }
  }
}

/** out (m, n) += aᵀ · b for a (T, m), b (T, n) — the weight gradient dyᵀ·x. */
export function matmulTNAcc(out: Float32Array, a: Float32Array, b: Float32Array, T: number, m: number, n: number): void {
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < m; r++) {
      const s = a[t * m + r];
      if (s === 0) continue;
      for (let i = 0; i < n; i++) out[r * n + i] += s * b[t * n + i];
    }
  }
}
