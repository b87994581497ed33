// WebAssembly SIMD kernels (AssemblyScript). Every kernel has a plain-TypeScript twin in
// src/tensor/ or src/cache/ that is its test oracle. Pointers are byte offsets into the
// shared memory the host imports; nothing here allocates. Row ranges [r0, r1) let the host
// split a kernel across threads.

export { attendTiled, prepareQueries, scratchBytes, expScalar } from "./attention";

// Read n bytes (a multiple of 64) with v128 loads and fold them into one value: the memory
// bandwidth one thread reaches, as benchmarks measure it.
export function readSum(ptr: usize, n: i32): i32 {
  let a = i32x4.splat(0), b = i32x4.splat(0), c = i32x4.splat(0), d = i32x4.splat(0);
  for (let i = 0; i < n; i += 64) {
    const p = ptr + <usize>i;
    a = i32x4.add(a, v128.load(p));
    b = i32x4.add(b, v128.load(p, 16));
    c = i32x4.add(c, v128.load(p, 32));
    d = i32x4.add(d, v128.load(p, 48));
  }
  const s = i32x4.add(i32x4.add(a, b), i32x4.add(c, d));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
}

// c + a·b: one fused multiply-add where the runtime has relaxed SIMD (the kernels-relaxed.wasm
// build), else a multiply and an add. Used where products are compute-bound (prefill tiles).
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

// Horizontal sum of a f32x4.
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

// Dot product of n f32 at a and b (n a multiple of 16 for the vector part).
@inline function dotF32(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const ai = a + (<usize>i << 2);
    const bi = b + (<usize>i << 2);
    s0 = f32x4.add(s0, f32x4.mul(v128.load(ai), v128.load(bi)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(ai, 16), v128.load(bi, 16)));
    s2 = f32x4.add(s2, f32x4.mul(v128.load(ai, 32), v128.load(bi, 32)));
    s3 = f32x4.add(s3, f32x4.mul(v128.load(ai, 48), v128.load(bi, 48)));
  }
  let s = hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

// bf16 → f32: the top half of an f32.
@inline function bf16Lo(a: v128): v128 {
  return i32x4.shl(i32x4.extend_low_i16x8_u(a), 16);
}
@inline function bf16Hi(a: v128): v128 {
  return i32x4.shl(i32x4.extend_high_i16x8_u(a), 16);
}

// f16 → f32 exactly (zero and subnormals too): sign-extend, shift the 15 magnitude bits into
// the f32 exponent/mantissa field, keep the sign in bit 31, and scale by 2^112 (a float
// multiply, so f16 subnormals come out right).
const F16_MAGIC: v128 = f32x4.splat(reinterpret<f32>(0x77800000));
const F16_FIELDS: v128 = i32x4.splat(0x8fffe000);
@inline function f16Lo(a: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(a), 13), F16_FIELDS), F16_MAGIC);
}
@inline function f16Hi(a: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(a), 13), F16_FIELDS), F16_MAGIC);
}

// Widen n 16-bit floats at src into f32 at dst (n a multiple of 8). kind: 1 = bf16, 2 = f16.
export function widen16(dst: usize, src: usize, n: i32, kind: i32): void {
  for (let i = 0; i < n; i += 8) {
    const a = v128.load(src + (<usize>i << 1));
    const d = dst + (<usize>i << 2);
    if (kind == 1) {
      v128.store(d, bf16Lo(a));
      v128.store(d, bf16Hi(a), 16);
    } else {
      v128.store(d, f16Lo(a));
      v128.store(d, f16Hi(a), 16);
    }
  }
}

// out (T, outDim) rows r0…r1 = x (T, inDim) · Wᵀ (+ bias); W f32 (outDim, inDim).
export function matmulF32(out: usize, x: usize, w: usize, bias: usize, T: i32, inDim: i32, outDim: i32, r0: i32, r1: i32): void {
  if (T >= 2 && (inDim & 3) == 0) {
    let o = r0;
    for (; o + 4 <= r1; o += 4) tile4(out, x, w + (<usize>o * <usize>inDim << 2), bias, T, inDim, outDim, o);
    r0 = o;
  }
  for (let o = r0; o < r1; o++) {
    const row = w + (<usize>o * <usize>inDim << 2);
    const b: f32 = bias ? load<f32>(bias + (<usize>o << 2)) : 0;
    for (let t = 0; t < T; t++) {
      store<f32>(out + ((<usize>t * <usize>outDim + <usize>o) << 2), dotF32(x + (<usize>t * <usize>inDim << 2), row, inDim) + b);
    }
  }
}

// The same for 16-bit weights (kind 1 = bf16, 2 = f16); inDim a multiple of 16. With T > 1
// each row is widened once into scratch (inDim f32) and used for every token.
export function matmul16(out: usize, x: usize, w: usize, bias: usize, T: i32, inDim: i32, outDim: i32, r0: i32, r1: i32, kind: i32, scratch: usize): void {
  if (T == 1 && kind == 1) {
    matvecBf16(out, x, w, bias, inDim, r0, r1, scratch);
    return;
  }
  if (T == 1) {
    matvecF16(out, x, w, bias, inDim, r0, r1);
    return;
  }
  for (let o = r0; o < r1; o++) {
    const row = w + (<usize>o * <usize>inDim << 1);
    const b: f32 = bias ? load<f32>(bias + (<usize>o << 2)) : 0;
    if (T == 1) {
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      for (let i = 0; i < inDim; i += 16) {
        const xi = x + (<usize>i << 2);
        const a = v128.load(row + (<usize>i << 1));
        const c = v128.load(row + (<usize>i << 1), 16);
        if (kind == 1) {
          s0 = f32x4.add(s0, f32x4.mul(v128.load(xi), bf16Lo(a)));
          s1 = f32x4.add(s1, f32x4.mul(v128.load(xi, 16), bf16Hi(a)));
          s2 = f32x4.add(s2, f32x4.mul(v128.load(xi, 32), bf16Lo(c)));
          s3 = f32x4.add(s3, f32x4.mul(v128.load(xi, 48), bf16Hi(c)));
        } else {
          s0 = f32x4.add(s0, f32x4.mul(v128.load(xi), f16Lo(a)));
          s1 = f32x4.add(s1, f32x4.mul(v128.load(xi, 16), f16Hi(a)));
          s2 = f32x4.add(s2, f32x4.mul(v128.load(xi, 32), f16Lo(c)));
          s3 = f32x4.add(s3, f32x4.mul(v128.load(xi, 48), f16Hi(c)));
        }
      }
      store<f32>(out + (<usize>o << 2), hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3))) + b);
    } else if (o + 4 <= r1) {
      // four rows widened into scratch, then the register-tiled product
      for (let r = 0; r < 4; r++) widen16(scratch + (<usize>(r * inDim) << 2), row + (<usize>(r * inDim) << 1), inDim, kind);
      tile4(out, x, scratch, bias, T, inDim, outDim, o);
      o += 3;
    } else {
      widen16(scratch, row, inDim, kind);
      for (let t = 0; t < T; t++) {
        store<f32>(out + ((<usize>t * <usize>outDim + <usize>o) << 2), dotF32(x + (<usize>t * <usize>inDim << 2), scratch, inDim) + b);
      }
    }
  }
}

const BF16_HI: v128 = i32x4.splat(0xffff0000);

// out[r0 … r1) = W x for bf16 rows, the decode product (bound by reading W). A 32-bit lane
// holds bf16 elements 2k (low half) and 2k+1 (high half), so a shift and a mask make both f32
// without shuffles; x is deinterleaved once into xs to match (per 8 values: x0 x2 x4 x6 |
// x1 x3 x5 x7). Four rows share every x load.
function matvecBf16(out: usize, x: usize, w: usize, bias: usize, inDim: i32, r0: i32, r1: i32, xs: usize): void {
  for (let i = 0; i < inDim; i += 8) {
    const p = x + (<usize>i << 2);
    const a = v128.load(p), b = v128.load(p, 16);
    v128.store(xs + (<usize>i << 2), v128.shuffle<i32>(a, b, 0, 2, 4, 6));
    v128.store(xs + (<usize>i << 2), v128.shuffle<i32>(a, b, 1, 3, 5, 7), 16);
  }
  const rowBytes = <usize>inDim << 1;
  let o = r0;
  for (; o + 4 <= r1; o += 4) {
    const w0 = w + <usize>o * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
    let d0 = f32x4.splat(0), d1 = f32x4.splat(0), d2 = f32x4.splat(0), d3 = f32x4.splat(0);
    for (let i = 0; i < inDim; i += 8) {
      const off = <usize>i << 1;
      const xe = v128.load(xs + (<usize>i << 2)), xo = v128.load(xs + (<usize>i << 2), 16);
      const a0 = v128.load(w0 + off);
      e0 = madd(i32x4.shl(a0, 16), xe, e0);
      d0 = madd(v128.and(a0, BF16_HI), xo, d0);
      const a1 = v128.load(w1 + off);
      e1 = madd(i32x4.shl(a1, 16), xe, e1);
      d1 = madd(v128.and(a1, BF16_HI), xo, d1);
      const a2 = v128.load(w2 + off);
      e2 = madd(i32x4.shl(a2, 16), xe, e2);
      d2 = madd(v128.and(a2, BF16_HI), xo, d2);
      const a3 = v128.load(w3 + off);
      e3 = madd(i32x4.shl(a3, 16), xe, e3);
      d3 = madd(v128.and(a3, BF16_HI), xo, d3);
    }
    const po = out + (<usize>o << 2);
    store<f32>(po, hsum(f32x4.add(e0, d0)) + (bias ? load<f32>(bias + (<usize>o << 2)) : 0));
    store<f32>(po, hsum(f32x4.add(e1, d1)) + (bias ? load<f32>(bias + (<usize>(o + 1) << 2)) : 0), 4);
    store<f32>(po, hsum(f32x4.add(e2, d2)) + (bias ? load<f32>(bias + (<usize>(o + 2) << 2)) : 0), 8);
    store<f32>(po, hsum(f32x4.add(e3, d3)) + (bias ? load<f32>(bias + (<usize>(o + 3) << 2)) : 0), 12);
  }
  for (; o < r1; o++) {
    const w0 = w + <usize>o * rowBytes;
    let e0 = f32x4.splat(0), d0 = f32x4.splat(0);
    for (let i = 0; i < inDim; i += 8) {
      const a0 = v128.load(w0 + (<usize>i << 1));
      e0 = madd(i32x4.shl(a0, 16), v128.load(xs + (<usize>i << 2)), e0);
      d0 = madd(v128.and(a0, BF16_HI), v128.load(xs + (<usize>i << 2), 16), d0);
    }
    store<f32>(out + (<usize>o << 2), hsum(f32x4.add(e0, d0)) + (bias ? load<f32>(bias + (<usize>o << 2)) : 0));
  }
}

// out[r0 … r1) = W x for f16 rows: four rows share every x load (f16 → f32 costs four
// operations per four values in WebAssembly, so this product is bound by them, not by memory).
function matvecF16(out: usize, x: usize, w: usize, bias: usize, inDim: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>inDim << 1;
  let o = r0;
  for (; o + 4 <= r1; o += 4) {
    const w0 = w + <usize>o * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
    let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
    let d0 = f32x4.splat(0), d1 = f32x4.splat(0), d2 = f32x4.splat(0), d3 = f32x4.splat(0);
    for (let i = 0; i < inDim; i += 8) {
      const off = <usize>i << 1;
      const xl = v128.load(x + (<usize>i << 2)), xh = v128.load(x + (<usize>i << 2), 16);
      const a0 = v128.load(w0 + off);
      e0 = madd(f16Lo(a0), xl, e0);
      d0 = madd(f16Hi(a0), xh, d0);
      const a1 = v128.load(w1 + off);
      e1 = madd(f16Lo(a1), xl, e1);
      d1 = madd(f16Hi(a1), xh, d1);
      const a2 = v128.load(w2 + off);
      e2 = madd(f16Lo(a2), xl, e2);
      d2 = madd(f16Hi(a2), xh, d2);
      const a3 = v128.load(w3 + off);
      e3 = madd(f16Lo(a3), xl, e3);
      d3 = madd(f16Hi(a3), xh, d3);
    }
    const po = out + (<usize>o << 2);
    store<f32>(po, hsum(f32x4.add(e0, d0)) + (bias ? load<f32>(bias + (<usize>o << 2)) : 0));
    store<f32>(po, hsum(f32x4.add(e1, d1)) + (bias ? load<f32>(bias + (<usize>(o + 1) << 2)) : 0), 4);
    store<f32>(po, hsum(f32x4.add(e2, d2)) + (bias ? load<f32>(bias + (<usize>(o + 2) << 2)) : 0), 8);
    store<f32>(po, hsum(f32x4.add(e3, d3)) + (bias ? load<f32>(bias + (<usize>(o + 3) << 2)) : 0), 12);
  }
  for (; o < r1; o++) {
    const w0 = w + <usize>o * rowBytes;
    let e0 = f32x4.splat(0), d0 = f32x4.splat(0);
    for (let i = 0; i < inDim; i += 8) {
      const a0 = v128.load(w0 + (<usize>i << 1));
      e0 = madd(f16Lo(a0), v128.load(x + (<usize>i << 2)), e0);
      d0 = madd(f16Hi(a0), v128.load(x + (<usize>i << 2), 16), d0);
    }
    store<f32>(out + (<usize>o << 2), hsum(f32x4.add(e0, d0)) + (bias ? load<f32>(bias + (<usize>o << 2)) : 0));
  }
}

// Rows o … o+3 (4 consecutive f32 rows at w) for all T tokens, two tokens at a time:
// 8 accumulators, each loaded x and w vector used twice.
function tile4(out: usize, x: usize, w: usize, bias: usize, T: i32, inDim: i32, outDim: i32, o: i32): void {
  const rs = <usize>inDim << 2;
  const w0 = w, w1 = w + rs, w2 = w + 2 * rs, w3 = w + 3 * rs;
  let b0: f32 = 0, b1: f32 = 0, b2: f32 = 0, b3: f32 = 0;
  if (bias) {
    b0 = load<f32>(bias + (<usize>o << 2));
    b1 = load<f32>(bias + (<usize>(o + 1) << 2));
    b2 = load<f32>(bias + (<usize>(o + 2) << 2));
    b3 = load<f32>(bias + (<usize>(o + 3) << 2));
  }
  let t = 0;
  for (; t + 2 <= T; t += 2) {
    const xa = x + (<usize>t * <usize>inDim << 2);
    const xb = xa + rs;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
    for (let i = 0; i < inDim; i += 4) {
      const off = <usize>i << 2;
      const va = v128.load(xa + off), vb = v128.load(xb + off);
      const v0 = v128.load(w0 + off), v1 = v128.load(w1 + off), v2 = v128.load(w2 + off), v3 = v128.load(w3 + off);
      a0 = madd(va, v0, a0);
      a1 = madd(va, v1, a1);
      a2 = madd(va, v2, a2);
      a3 = madd(va, v3, a3);
      c0 = madd(vb, v0, c0);
      c1 = madd(vb, v1, c1);
      c2 = madd(vb, v2, c2);
      c3 = madd(vb, v3, c3);
    }
    const pa = out + ((<usize>t * <usize>outDim + <usize>o) << 2);
    const pb = pa + (<usize>outDim << 2);
    store<f32>(pa, hsum(a0) + b0);
    store<f32>(pa, hsum(a1) + b1, 4);
    store<f32>(pa, hsum(a2) + b2, 8);
    store<f32>(pa, hsum(a3) + b3, 12);
    store<f32>(pb, hsum(c0) + b0);
    store<f32>(pb, hsum(c1) + b1, 4);
    store<f32>(pb, hsum(c2) + b2, 8);
    store<f32>(pb, hsum(c3) + b3, 12);
  }
  for (; t < T; t++) {
    const xa = x + (<usize>t * <usize>inDim << 2);
    const pa = out + ((<usize>t * <usize>outDim + <usize>o) << 2);
    store<f32>(pa, dotF32(xa, w0, inDim) + b0);
    store<f32>(pa, dotF32(xa, w1, inDim) + b1, 4);
    store<f32>(pa, dotF32(xa, w2, inDim) + b2, 8);
    store<f32>(pa, dotF32(xa, w3, inDim) + b3, 12);
  }
}

// out[t] = x[t] / sqrt(mean(x[t]²) + eps) ⊙ weight, rows t0 … t1 of size n.
export function rmsnorm(out: usize, x: usize, weight: usize, t0: i32, t1: i32, n: i32, eps: f32): void {
  for (let t = t0; t < t1; t++) {
    const xr = x + (<usize>t * <usize>n << 2);
    const or = out + (<usize>t * <usize>n << 2);
    const inv: f32 = <f32>(1.0 / Math.sqrt(<f64>dotF32(xr, xr, n) / <f64>n + <f64>eps));
    const vinv = f32x4.splat(inv);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(or + o, f32x4.mul(f32x4.mul(v128.load(xr + o), vinv), v128.load(weight + o)));
    }
    for (; i < n; i++) store<f32>(or + (<usize>i << 2), load<f32>(xr + (<usize>i << 2)) * inv * load<f32>(weight + (<usize>i << 2)));
  }
}

// Rotate-half RoPE in place on x (T, nHeads, d) with cos/sin (T, d/2).
export function rope(x: usize, cos: usize, sin: usize, T: i32, nHeads: i32, d: i32): void {
  const half = d >> 1;
  for (let t = 0; t < T; t++) {
    const cr = cos + (<usize>t * <usize>half << 2);
    const sr = sin + (<usize>t * <usize>half << 2);
    for (let h = 0; h < nHeads; h++) {
      const a = x + (<usize>(t * nHeads + h) * <usize>d << 2);
      const b = a + (<usize>half << 2);
      let c = 0;
      for (; c + 4 <= half; c += 4) {
        const o = <usize>c << 2;
        const va = v128.load(a + o), vb = v128.load(b + o), co = v128.load(cr + o), si = v128.load(sr + o);
        v128.store(a + o, f32x4.sub(f32x4.mul(va, co), f32x4.mul(vb, si)));
        v128.store(b + o, f32x4.add(f32x4.mul(vb, co), f32x4.mul(va, si)));
      }
      for (; c < half; c++) {
        const o = <usize>c << 2;
        const va = load<f32>(a + o), vb = load<f32>(b + o), co = load<f32>(cr + o), si = load<f32>(sr + o);
        store<f32>(a + o, va * co - vb * si);
        store<f32>(b + o, vb * co + va * si);
      }
    }
  }
}

// In-place softmax over n f32 at x.
export function softmax(x: usize, n: i32): void {
  let max: f32 = -Infinity;
  for (let i = 0; i < n; i++) max = Mathf.max(max, load<f32>(x + (<usize>i << 2)));
  let sum: f64 = 0;
  for (let i = 0; i < n; i++) {
    const e = Mathf.exp(load<f32>(x + (<usize>i << 2)) - max);
    store<f32>(x + (<usize>i << 2), e);
    sum += e;
  }
  const inv = f32x4.splat(<f32>(1.0 / sum));
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(x + (<usize>i << 2), f32x4.mul(v128.load(x + (<usize>i << 2)), inv));
  for (; i < n; i++) store<f32>(x + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) * f32x4.extract_lane(inv, 0));
}

// gate[i] = silu(gate[i]) · up[i] for i in i0 … i1.
export function swiglu(gate: usize, up: usize, i0: i32, i1: i32): void {
  for (let i = i0; i < i1; i++) {
    const p = <usize>i << 2;
    const g = load<f32>(gate + p);
    store<f32>(gate + p, g / (1 + Mathf.exp(-g)) * load<f32>(up + p));
  }
}

// x += y over n f32.
export function addInPlace(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(x + (<usize>i << 2), f32x4.add(v128.load(x + (<usize>i << 2)), v128.load(y + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(x + (<usize>i << 2), load<f32>(x + (<usize>i << 2)) + load<f32>(y + (<usize>i << 2)));
}

// Causal attention over a float cache for KV heads kv0 … kv1: keys/values (L, numKvHeads·d)
// as f32 (kvKind 0) or f16 (kvKind 2); queries/out (T, numHeads·d); scores: ≥ group·L f32
// scratch; vrow: ≥ d f32 scratch (widened rows of a 16-bit cache).
export function attendFloat(
  out: usize, q: usize, T: i32, keys: usize, values: usize, L: i32,
  numHeads: i32, numKvHeads: i32, d: i32, kv0: i32, kv1: i32, scores: usize, vrow: usize, kvKind: i32,
): void {
  const group = numHeads / numKvHeads;
  const scale: f32 = <f32>(1.0 / Math.sqrt(<f64>d));
  const kvStride = numKvHeads * d;
  const elem: usize = kvKind == 0 ? 4 : 2;
  for (let t = 0; t < T; t++) {
    const seen = L - T + t + 1;
    for (let kvh = kv0; kvh < kv1; kvh++) {
      // scores of the group's query heads, one key row at a time (the row is read once)
      for (let j = 0; j < seen; j++) {
        let krow = keys + (<usize>(j * kvStride + kvh * d)) * elem;
        if (kvKind != 0) {
          widen16(vrow, krow, d, kvKind);
          krow = vrow;
        }
        for (let g = 0; g < group; g++) {
          const h = kvh * group + g;
          store<f32>(scores + (<usize>(g * L + j) << 2), dotF32(q + (<usize>((t * numHeads + h) * d) << 2), krow, d) * scale);
        }
      }
      for (let g = 0; g < group; g++) {
        softmax(scores + (<usize>(g * L) << 2), seen);
        const o = out + (<usize>((t * numHeads + kvh * group + g) * d) << 2);
        memory.fill(o, 0, <usize>d << 2);
      }
      // weighted sum of value rows
      for (let j = 0; j < seen; j++) {
        let vr = values + (<usize>(j * kvStride + kvh * d)) * elem;
        if (kvKind != 0) {
          widen16(vrow, vr, d, kvKind);
          vr = vrow;
        }
        for (let g = 0; g < group; g++) {
          const p = f32x4.splat(load<f32>(scores + (<usize>(g * L + j) << 2)));
          const o = out + (<usize>((t * numHeads + kvh * group + g) * d) << 2);
          for (let c = 0; c < d; c += 4) {
            const oc = o + (<usize>c << 2);
            v128.store(oc, f32x4.add(v128.load(oc), f32x4.mul(p, v128.load(vr + (<usize>c << 2)))));
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- training products
// out (T, n) rows t0 … t1 = x (T, k) · W (k, n) — the input gradient dy·W of y = x·Wᵀ.
export function matmulNN(out: usize, x: usize, w: usize, T: i32, k: i32, n: i32, t0: i32, t1: i32): void {
  for (let t = t0; t < t1; t++) {
    const o = out + (<usize>t * <usize>n << 2);
    memory.fill(o, 0, <usize>n << 2);
    for (let j = 0; j < k; j++) {
      const a: f32 = load<f32>(x + ((<usize>t * <usize>k + <usize>j) << 2));
      if (a == 0) continue;
      axpy(o, w + (<usize>j * <usize>n << 2), a, n);
    }
  }
}

// out (m, n) rows r0 … r1 += aᵀ · b for a (T, m), b (T, n) — the weight gradient dyᵀ·x.
export function matmulTNAcc(out: usize, a: usize, b: usize, T: i32, m: i32, n: i32, r0: i32, r1: i32): void {
  for (let t = 0; t < T; t++) {
    const brow = b + (<usize>t * <usize>n << 2);
    for (let r = r0; r < r1; r++) {
      const s: f32 = load<f32>(a + ((<usize>t * <usize>m + <usize>r) << 2));
      if (s == 0) continue;
      axpy(out + (<usize>r * <usize>n << 2), brow, s, n);
    }
  }
}

// y[0 … n) += a · x[0 … n).
@inline function axpy(y: usize, x: usize, a: f32, n: i32): void {
  const va = f32x4.splat(a);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = <usize>i << 2;
    v128.store(y + p, f32x4.add(v128.load(y + p), f32x4.mul(va, v128.load(x + p))));
  }
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) + a * load<f32>(x + (<usize>i << 2)));
}

// Causal attention backward for KV heads kv0 … kv1 (the thread owns their dK, dV rows):
// adds into dq (T, numHeads·d), dk and dv (T, numKvHeads·d) given q, k (after RoPE), v and
// dOut (T, numHeads·d). Softmax rows are recomputed; p: ≥ T f32 scratch.
export function attentionBackward(
  dq: usize, dk: usize, dv: usize, dOut: usize, q: usize, k: usize, v: usize,
  T: i32, numHeads: i32, numKvHeads: i32, d: i32, kv0: i32, kv1: i32, p: usize,
): void {
  const group = numHeads / numKvHeads;
  const kvStride = numKvHeads * d;
  const scale: f32 = <f32>(1.0 / Math.sqrt(<f64>d));
  for (let kvh = kv0; kvh < kv1; kvh++) {
    for (let g = 0; g < group; g++) {
      const h = kvh * group + g;
      for (let t = 0; t < T; t++) {
        const qo = q + (<usize>((t * numHeads + h) * d) << 2);
        const go = dOut + (<usize>((t * numHeads + h) * d) << 2);
        // p_j = softmax(q·k_j·scale), dp_j = dOut·v_j, Σ p·dp
        let max: f32 = -Infinity;
        for (let j = 0; j <= t; j++) {
          const s = dotF32(qo, k + (<usize>(j * kvStride + kvh * d) << 2), d) * scale;
          store<f32>(p + (<usize>j << 2), s);
          max = Mathf.max(max, s);
        }
        let sum: f32 = 0;
        for (let j = 0; j <= t; j++) {
          const e = Mathf.exp(load<f32>(p + (<usize>j << 2)) - max);
          store<f32>(p + (<usize>j << 2), e);
          sum += e;
        }
        let pdp: f32 = 0;
        for (let j = 0; j <= t; j++) {
          const pj = load<f32>(p + (<usize>j << 2)) / sum;
          store<f32>(p + (<usize>j << 2), pj);
          pdp += pj * dotF32(go, v + (<usize>(j * kvStride + kvh * d) << 2), d);
        }
        const dqo = dq + (<usize>((t * numHeads + h) * d) << 2);
        for (let j = 0; j <= t; j++) {
          const row = <usize>(j * kvStride + kvh * d) << 2;
          const pj = load<f32>(p + (<usize>j << 2));
          const ds = pj * (dotF32(go, v + row, d) - pdp) * scale;
          axpy(dv + row, go, pj, d);
          axpy(dqo, k + row, ds, d);
          axpy(dk + row, qo, ds, d);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- ggml block-quantized weights
// Rows of ggml blocks (see src/tensor/ggml-quant.ts); kind is the ggml type id: 2 = Q4_0,
// 8 = Q8_0, 12 = Q4_K, 14 = Q6_K. Decode (T = 1) reads the blocks directly against x quantized
// to int8 blocks of 32 (held as i16, quantizeX32) with integer dot products; prefill widens four
// rows at a time into scratch and reuses tile4. Twin: src/tensor/quant-matmul.ts (decode) and
// the reference dequantizers (prefill).

// One f16 to f32 exactly, in integers: no float multiply by a subnormal (a Q6_K scale d is often
// an f16 subnormal, and x86 takes a slow microcode assist for every subnormal operand).
@inline function f16Scalar(h: i32): f32 {
  const sign = (h & 0x8000) << 16, e = h & 0x7c00;
  if (e == 0) return reinterpret<f32>(reinterpret<i32>(<f32>(h & 0x3ff) * reinterpret<f32>(0x33800000)) | sign); // m · 2^-24
  if (e == 0x7c00) return reinterpret<f32>(sign | 0x7f800000 | ((h & 0x3ff) << 13)); // ±∞, NaN
  return reinterpret<f32>(sign | (((h & 0x7fff) << 13) + 0x38000000)); // rebias the exponent: 15 → 127
}

@inline function rowBytesQ(kind: i32, cols: i32): usize {
  if (kind == 8) return <usize>(cols >> 5) * 34;
  if (kind == 2) return <usize>(cols >> 5) * 18;
  if (kind == 12) return <usize>(cols >> 8) * 144;
  return <usize>(cols >> 8) * 210;
}

// x (n f32, n a multiple of 32) → q (n i16 holding int8 values), per block of 32 the scale
// d = max|x| / 127 (scales) and d · Σq (sums). Rounding: half to even.
export function quantizeX32(x: usize, n: i32, q: usize, scales: usize, sums: usize): void {
  for (let b = 0; b < n; b += 32) {
    let amax: f32 = 0;
    for (let i = 0; i < 32; i++) amax = Mathf.max(amax, Mathf.abs(load<f32>(x + (<usize>(b + i) << 2))));
    const d: f32 = amax / <f32>127;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    let s: i32 = 0;
    for (let i = 0; i < 32; i++) {
      const v = <i32>nearest<f32>(load<f32>(x + (<usize>(b + i) << 2)) * id);
      store<i16>(q + (<usize>(b + i) << 1), <i16>v);
      s += v;
    }
    store<f32>(scales + (<usize>(b >> 5) << 2), d);
    store<f32>(sums + (<usize>(b >> 5) << 2), d * <f32>s);
  }
}

// Σ w·x over 16 int8 weights (lanes of w) and 16 i16 x at xq, as 4 i32 lanes.
@inline function dot16(w: v128, xq: usize): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w), v128.load(xq)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w), v128.load(xq, 16)),
  );
}

// The high nibble of each byte (a 16-bit shift and a mask: WebAssembly has no cheap 8-bit shift).
@inline function nibHi(v: v128): v128 {
  return v128.and(i16x8.shr_u(v, 4), i8x16.splat(15));
}

// acc + float(lanes) · factor
@inline function addScaled(acc: v128, lanes: v128, factor: f32): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(lanes), f32x4.splat(factor)));
}

// Q4_K: scale and min of sub-block j from the 12 packed bytes at s (ggml's get_scale_min_k4).
@inline function k4Scale(s: usize, j: i32): i32 {
  return j < 4 ? load<u8>(s + j) & 63 : (load<u8>(s + j + 4) & 15) | ((load<u8>(s + j - 4) >> 6) << 4);
}
@inline function k4Min(s: usize, j: i32): i32 {
  return j < 4 ? load<u8>(s + j + 4) & 63 : (load<u8>(s + j + 4) >> 4) | ((load<u8>(s + j) >> 6) << 4);
}

// Q6_K: two groups of 16 codes (−32 … 31) with their int8 scales, against one x block of 32.
@inline function q6Pair(ga: v128, gb: v128, sc: usize, xo: usize): v128 {
  return i32x4.add(
    i32x4.mul(dot16(ga, xo), i32x4.splat(<i32>load<i8>(sc))),
    i32x4.mul(dot16(gb, xo + 32), i32x4.splat(<i32>load<i8>(sc, 1))),
  );
}

// One row of each block type against x̂: Σ (one f32 accumulator per SIMD lane, summed as hsum).
@inline function rowQ8_0(row: usize, xq: usize, xs: usize, xsum: usize, cols: i32): f32 {
  const LOW = i8x16.splat(15), EIGHT = i8x16.splat(8), HI2 = i8x16.splat(0x30), K32 = i8x16.splat(32);
  let acc = f32x4.splat(0);
  let minAcc: f32 = 0;
  for (let xb = 0; xb < cols >> 5; xb++) {
    const p = row + <usize>xb * 34, xo = xq + (<usize>xb << 6);
    const sv = i32x4.add(dot16(v128.load(p, 2), xo), dot16(v128.load(p, 18), xo + 32));
    acc = addScaled(acc, sv, f16Scalar(load<u16>(p)) * load<f32>(xs + (<usize>xb << 2)));
  }
  return hsum(acc) - minAcc;
}

@inline function rowQ4_0(row: usize, xq: usize, xs: usize, xsum: usize, cols: i32): f32 {
  const LOW = i8x16.splat(15), EIGHT = i8x16.splat(8), HI2 = i8x16.splat(0x30), K32 = i8x16.splat(32);
  let acc = f32x4.splat(0);
  let minAcc: f32 = 0;
  for (let xb = 0; xb < cols >> 5; xb++) {
    const p = row + <usize>xb * 18, xo = xq + (<usize>xb << 6);
    const v = v128.load(p, 2);
    const lo = i8x16.sub(v128.and(v, LOW), EIGHT), hi = i8x16.sub(nibHi(v), EIGHT);
    acc = addScaled(acc, i32x4.add(dot16(lo, xo), dot16(hi, xo + 32)), f16Scalar(load<u16>(p)) * load<f32>(xs + (<usize>xb << 2)));
  }
  return hsum(acc) - minAcc;
}

@inline function rowQ4_K(row: usize, xq: usize, xs: usize, xsum: usize, cols: i32): f32 {
  const LOW = i8x16.splat(15), EIGHT = i8x16.splat(8), HI2 = i8x16.splat(0x30), K32 = i8x16.splat(32);
  let acc = f32x4.splat(0);
  let minAcc: f32 = 0;
  for (let blk = 0; blk < cols >> 8; blk++) {
    const p = row + <usize>blk * 144;
    const d = f16Scalar(load<u16>(p)), dmin = f16Scalar(load<u16>(p, 2));
    for (let jp = 0; jp < 4; jp++) {
      const v0 = v128.load(p + 16 + (<usize>jp << 5)), v1 = v128.load(p + 16 + (<usize>jp << 5), 16);
      for (let h = 0; h < 2; h++) {
        const j = 2 * jp + h;
        const xb = blk * 8 + j, xo = xq + (<usize>xb << 6);
        const a = h == 0 ? v128.and(v0, LOW) : nibHi(v0);
        const b = h == 0 ? v128.and(v1, LOW) : nibHi(v1);
        acc = addScaled(acc, i32x4.add(dot16(a, xo), dot16(b, xo + 32)), d * <f32>k4Scale(p + 4, j) * load<f32>(xs + (<usize>xb << 2)));
        minAcc += dmin * <f32>k4Min(p + 4, j) * load<f32>(xsum + (<usize>xb << 2));
      }
    }
  }
  return hsum(acc) - minAcc;
}

@inline function rowQ6_K(row: usize, xq: usize, xs: usize, xsum: usize, cols: i32): f32 {
  const LOW = i8x16.splat(15), EIGHT = i8x16.splat(8), HI2 = i8x16.splat(0x30), K32 = i8x16.splat(32);
  let acc = f32x4.splat(0);
  let minAcc: f32 = 0;
  for (let blk = 0; blk < cols >> 8; blk++) {
    const p = row + <usize>blk * 210;
    const d = f16Scalar(load<u16>(p, 208));
    for (let h = 0; h < 2; h++) {
      const ql = p + (<usize>h << 6), qh = p + 128 + (<usize>h << 5), sc = p + 192 + (<usize>h << 3);
      const xb = blk * 8 + h * 4;
      const xo = xq + (<usize>xb << 6), s = xs + (<usize>xb << 2);
      // element e of this half: 4 low bits from ql, 2 high bits from qh (ggml's dequantize_row_q6_K);
      // 16-bit shifts then byte masks (WebAssembly has no cheap 8-bit shift); groups built pair by
      // pair from fresh loads, so few vectors stay live
      let g0 = i8x16.sub(v128.or(v128.and(v128.load(ql), LOW), v128.and(i16x8.shl(v128.load(qh), 4), HI2)), K32);
      let g1 = i8x16.sub(v128.or(v128.and(v128.load(ql, 16), LOW), v128.and(i16x8.shl(v128.load(qh, 16), 4), HI2)), K32);
      acc = addScaled(acc, q6Pair(g0, g1, sc, xo), d * load<f32>(s));
      g0 = i8x16.sub(v128.or(v128.and(v128.load(ql, 32), LOW), v128.and(i16x8.shl(v128.load(qh), 2), HI2)), K32);
      g1 = i8x16.sub(v128.or(v128.and(v128.load(ql, 48), LOW), v128.and(i16x8.shl(v128.load(qh, 16), 2), HI2)), K32);
      acc = addScaled(acc, q6Pair(g0, g1, sc + 2, xo + 64), d * load<f32>(s, 4));
      g0 = i8x16.sub(v128.or(nibHi(v128.load(ql)), v128.and(v128.load(qh), HI2)), K32);
      g1 = i8x16.sub(v128.or(nibHi(v128.load(ql, 16)), v128.and(v128.load(qh, 16), HI2)), K32);
      acc = addScaled(acc, q6Pair(g0, g1, sc + 4, xo + 128), d * load<f32>(s, 8));
      g0 = i8x16.sub(v128.or(nibHi(v128.load(ql, 32)), v128.and(i16x8.shr_u(v128.load(qh), 2), HI2)), K32);
      g1 = i8x16.sub(v128.or(nibHi(v128.load(ql, 48)), v128.and(i16x8.shr_u(v128.load(qh, 16), 2), HI2)), K32);
      acc = addScaled(acc, q6Pair(g0, g1, sc + 6, xo + 192), d * load<f32>(s, 12));
    }
  }
  return hsum(acc) - minAcc;
}

// A row loop per type, so each loop's body is small (the engine keeps its vectors in registers).
@inline function rowsQ(out: usize, xq: usize, xs: usize, xsum: usize, w: usize, bias: usize, cols: i32, r0: i32, r1: i32, kind: i32): void {
  const rowBytes = rowBytesQ(kind, cols);
  for (let o = r0; o < r1; o++) {
    const row = w + <usize>o * rowBytes;
    let v: f32;
    if (kind == 8) v = rowQ8_0(row, xq, xs, xsum, cols);
    else if (kind == 2) v = rowQ4_0(row, xq, xs, xsum, cols);
    else if (kind == 12) v = rowQ4_K(row, xq, xs, xsum, cols);
    else v = rowQ6_K(row, xq, xs, xsum, cols);
    const b: f32 = bias ? load<f32>(bias + (<usize>o << 2)) : 0;
    store<f32>(out + (<usize>o << 2), v + b);
  }
}
function rowsQ8_0(out: usize, xq: usize, xs: usize, xsum: usize, w: usize, bias: usize, cols: i32, r0: i32, r1: i32): void {
  rowsQ(out, xq, xs, xsum, w, bias, cols, r0, r1, 8);
}
function rowsQ4_0(out: usize, xq: usize, xs: usize, xsum: usize, w: usize, bias: usize, cols: i32, r0: i32, r1: i32): void {
  rowsQ(out, xq, xs, xsum, w, bias, cols, r0, r1, 2);
}
function rowsQ4_K(out: usize, xq: usize, xs: usize, xsum: usize, w: usize, bias: usize, cols: i32, r0: i32, r1: i32): void {
  rowsQ(out, xq, xs, xsum, w, bias, cols, r0, r1, 12);
}
function rowsQ6_K(out: usize, xq: usize, xs: usize, xsum: usize, w: usize, bias: usize, cols: i32, r0: i32, r1: i32): void {
  rowsQ(out, xq, xs, xsum, w, bias, cols, r0, r1, 14);
}

// out rows r0 … r1 = W x̂ (+ bias) for x̂ quantized by quantizeX32 (xq, xs, xsum); cols a
// multiple of the block size.
export function matvecQ(out: usize, xq: usize, xs: usize, xsum: usize, w: usize, bias: usize, cols: i32, r0: i32, r1: i32, kind: i32): void {
  if (kind == 8) rowsQ8_0(out, xq, xs, xsum, w, bias, cols, r0, r1);
  else if (kind == 2) rowsQ4_0(out, xq, xs, xsum, w, bias, cols, r0, r1);
  else if (kind == 12) rowsQ4_K(out, xq, xs, xsum, w, bias, cols, r0, r1);
  else rowsQ6_K(out, xq, xs, xsum, w, bias, cols, r0, r1);
}

// 16 int8 codes (lanes of g) → f32 at dst: code · scale − sub (sub = 0: exactly code · scale),
// rounding as the reference dequantizers do.
@inline function storeCodes16(dst: usize, g: v128, scale: f32, sub: f32): void {
  const vs = f32x4.splat(scale), vm = f32x4.splat(sub);
  const lo = i16x8.extend_low_i8x16_s(g), hi = i16x8.extend_high_i8x16_s(g);
  v128.store(dst, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), vs), vm));
  v128.store(dst, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), vs), vm), 16);
  v128.store(dst, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), vs), vm), 32);
  v128.store(dst, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), vs), vm), 48);
}

// Widen n values (a multiple of the block size) of blocks at src into f32 at dst, rounding as
// the reference dequantizers do (src/tensor/ggml-quant.ts).
export function dequantRowQ(dst: usize, src: usize, n: i32, kind: i32): void {
  const LOW = i8x16.splat(15), EIGHT = i8x16.splat(8), HI2 = i8x16.splat(0x30), K32 = i8x16.splat(32);
  if (kind == 8 || kind == 2) {
    const bytes: usize = kind == 8 ? 34 : 18;
    for (let xb = 0; xb < n >> 5; xb++) {
      const p = src + <usize>xb * bytes, y = dst + (<usize>xb << 7);
      const d = f16Scalar(load<u16>(p));
      if (kind == 8) {
        storeCodes16(y, v128.load(p, 2), d, 0);
        storeCodes16(y + 64, v128.load(p, 18), d, 0);
      } else {
        const v = v128.load(p, 2);
        storeCodes16(y, i8x16.sub(v128.and(v, LOW), EIGHT), d, 0);
        storeCodes16(y + 64, i8x16.sub(nibHi(v), EIGHT), d, 0);
      }
    }
  } else if (kind == 12) {
    for (let blk = 0; blk < n >> 8; blk++) {
      const p = src + <usize>blk * 144, y = dst + (<usize>blk << 10);
      const d = f16Scalar(load<u16>(p)), dmin = f16Scalar(load<u16>(p, 2));
      for (let j = 0; j < 8; j++) {
        const d1 = d * <f32>k4Scale(p + 4, j), m1 = dmin * <f32>k4Min(p + 4, j);
        const qs = p + 16 + (<usize>(j >> 1) << 5), yj = y + (<usize>j << 7);
        const v0 = v128.load(qs), v1 = v128.load(qs, 16);
        storeCodes16(yj, (j & 1) == 0 ? v128.and(v0, LOW) : nibHi(v0), d1, m1);
        storeCodes16(yj + 64, (j & 1) == 0 ? v128.and(v1, LOW) : nibHi(v1), d1, m1);
      }
    }
  } else {
    for (let blk = 0; blk < n >> 8; blk++) {
      const p = src + <usize>blk * 210, y = dst + (<usize>blk << 10);
      const d = f16Scalar(load<u16>(p, 208));
      for (let h = 0; h < 2; h++) {
        const ql = p + (<usize>h << 6), qh = p + 128 + (<usize>h << 5), sc = p + 192 + (<usize>h << 3);
        const yh = y + (<usize>h << 9);
        // the groups of 16 as in rowQ6_K; group g's scale is sc[g]
        storeCodes16(yh, i8x16.sub(v128.or(v128.and(v128.load(ql), LOW), v128.and(i16x8.shl(v128.load(qh), 4), HI2)), K32), d * <f32>load<i8>(sc), 0);
        storeCodes16(yh + 64, i8x16.sub(v128.or(v128.and(v128.load(ql, 16), LOW), v128.and(i16x8.shl(v128.load(qh, 16), 4), HI2)), K32), d * <f32>load<i8>(sc, 1), 0);
        storeCodes16(yh + 128, i8x16.sub(v128.or(v128.and(v128.load(ql, 32), LOW), v128.and(i16x8.shl(v128.load(qh), 2), HI2)), K32), d * <f32>load<i8>(sc, 2), 0);
        storeCodes16(yh + 192, i8x16.sub(v128.or(v128.and(v128.load(ql, 48), LOW), v128.and(i16x8.shl(v128.load(qh, 16), 2), HI2)), K32), d * <f32>load<i8>(sc, 3), 0);
        storeCodes16(yh + 256, i8x16.sub(v128.or(nibHi(v128.load(ql)), v128.and(v128.load(qh), HI2)), K32), d * <f32>load<i8>(sc, 4), 0);
        storeCodes16(yh + 320, i8x16.sub(v128.or(nibHi(v128.load(ql, 16)), v128.and(v128.load(qh, 16), HI2)), K32), d * <f32>load<i8>(sc, 5), 0);
        storeCodes16(yh + 384, i8x16.sub(v128.or(nibHi(v128.load(ql, 32)), v128.and(i16x8.shr_u(v128.load(qh), 2), HI2)), K32), d * <f32>load<i8>(sc, 6), 0);
        storeCodes16(yh + 448, i8x16.sub(v128.or(nibHi(v128.load(ql, 48)), v128.and(i16x8.shr_u(v128.load(qh, 16), 2), HI2)), K32), d * <f32>load<i8>(sc, 7), 0);
      }
    }
  }
}

// out (T, outDim) rows r0 … r1 = x (T, inDim) · Wᵀ (+ bias) for block-quantized W (prefill):
// four rows widened into scratch (4 · inDim f32), then the register-tiled product.
export function matmulQ(out: usize, x: usize, w: usize, bias: usize, T: i32, inDim: i32, outDim: i32, r0: i32, r1: i32, kind: i32, scratch: usize): void {
  const rowBytes = rowBytesQ(kind, inDim);
  let o = r0;
  for (; o + 4 <= r1; o += 4) {
    for (let r = 0; r < 4; r++) dequantRowQ(scratch + (<usize>(r * inDim) << 2), w + <usize>(o + r) * rowBytes, inDim, kind);
    tile4(out, x, scratch, bias, T, inDim, outDim, o);
  }
  for (; o < r1; o++) {
    dequantRowQ(scratch, w + <usize>o * rowBytes, inDim, kind);
    const b: f32 = bias ? load<f32>(bias + (<usize>o << 2)) : 0;
    for (let t = 0; t < T; t++) {
      store<f32>(out + ((<usize>t * <usize>outDim + <usize>o) << 2), dotF32(x + (<usize>t * <usize>inDim << 2), scratch, inDim) + b);
    }
  }
}
