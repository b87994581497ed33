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

// One token times bf16 rows r0 … r1 (decode: the product that reads every weight once, so its
// ops per weight set the speed). x is first deinterleaved in groups of 8 into scratch,
// [x0 x2 x4 x6 | x1 x3 x5 x7], so a 32-bit lane holding bf16 pair (2k, 2k+1) widens to the even
// value by one shift and to the odd one by one mask; four rows share each x load.
function matvecBf16(out: usize, x: usize, w: usize, bias: usize, inDim: i32, r0: i32, r1: i32, scratch: usize): void {
  for (let i = 0; i < inDim; i += 8) {
    const p = x + (<usize>i << 2);
    const v0 = v128.load(p), v1 = v128.load(p, 16);
    const q = scratch + (<usize>i << 2);
    v128.store(q, i32x4.shuffle(v0, v1, 0, 2, 4, 6));
    v128.store(q, i32x4.shuffle(v0, v1, 1, 3, 5, 7), 16);
  }
  const mask = i32x4.splat(0xffff0000);
  const rs = <usize>inDim << 1;
  let o = r0;
  for (; o + 4 <= r1; o += 4) {
    const w0 = w + <usize>o * rs, w1 = w0 + rs, w2 = w1 + rs, w3 = w2 + rs;
    let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
    let d0 = f32x4.splat(0), d1 = f32x4.splat(0), d2 = f32x4.splat(0), d3 = f32x4.splat(0);
    for (let i = 0; i < inDim; i += 8) {
      const q = scratch + (<usize>i << 2);
      const xe = v128.load(q), xo = v128.load(q, 16);
      const off = <usize>i << 1;
      const a0 = v128.load(w0 + off), a1 = v128.load(w1 + off), a2 = v128.load(w2 + off), a3 = v128.load(w3 + off);
      e0 = f32x4.add(e0, f32x4.mul(xe, i32x4.shl(a0, 16)));
      d0 = f32x4.add(d0, f32x4.mul(xo, v128.and(a0, mask)));
      e1 = f32x4.add(e1, f32x4.mul(xe, i32x4.shl(a1, 16)));
      d1 = f32x4.add(d1, f32x4.mul(xo, v128.and(a1, mask)));
      e2 = f32x4.add(e2, f32x4.mul(xe, i32x4.shl(a2, 16)));
      d2 = f32x4.add(d2, f32x4.mul(xo, v128.and(a2, mask)));
      e3 = f32x4.add(e3, f32x4.mul(xe, i32x4.shl(a3, 16)));
      d3 = f32x4.add(d3, f32x4.mul(xo, v128.and(a3, mask)));
    }
    const po = out + (<usize>o << 2);
    store<f32>(po, hsum(f32x4.add(e0, d0)) + (bias ? load<f32>(bias + (<usize>o << 2)) : 0));
    store<f32>(po, hsum(f32x4.add(e1, d1)) + (bias ? load<f32>(bias + (<usize>(o + 1) << 2)) : 0), 4);
    store<f32>(po, hsum(f32x4.add(e2, d2)) + (bias ? load<f32>(bias + (<usize>(o + 2) << 2)) : 0), 8);
    store<f32>(po, hsum(f32x4.add(e3, d3)) + (bias ? load<f32>(bias + (<usize>(o + 3) << 2)) : 0), 12);
  }
  for (; o < r1; o++) {
    const w0 = w + <usize>o * rs;
    let e0 = f32x4.splat(0), d0 = f32x4.splat(0);
    for (let i = 0; i < inDim; i += 8) {
      const q = scratch + (<usize>i << 2);
      const a0 = v128.load(w0 + (<usize>i << 1));
      e0 = f32x4.add(e0, f32x4.mul(v128.load(q), i32x4.shl(a0, 16)));
      d0 = f32x4.add(d0, f32x4.mul(v128.load(q, 16), v128.and(a0, mask)));
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
      a0 = f32x4.add(a0, f32x4.mul(va, v0));
      a1 = f32x4.add(a1, f32x4.mul(va, v1));
      a2 = f32x4.add(a2, f32x4.mul(va, v2));
      a3 = f32x4.add(a3, f32x4.mul(va, v3));
      c0 = f32x4.add(c0, f32x4.mul(vb, v0));
      c1 = f32x4.add(c1, f32x4.mul(vb, v1));
      c2 = f32x4.add(c2, f32x4.mul(vb, v2));
      c3 = f32x4.add(c3, f32x4.mul(vb, v3));
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
