// Tiled attention straight from the KV cache's storage (flash-decoding / flash-attention):
// keys and values are read a block of KEY_BLOCK tokens of one KV head at a time, in the format
// they are stored in, and every query head of the GQA group (and, in prefill, every query of a
// query block) uses the block while it is in cache. Softmax is online (running max and sum), so
// a decode step can split its tokens over threads and merge the parts (the host merges).
//
// Storage kinds (a segment = a run of tokens in one format, e.g. sink | body | window):
//   SEG_F32       f32 rows            (full-precision cache)
//   SEG_F16       f16 rows            (full-precision cache in half precision)
//   SEG_PACKED    packed codes of 1, 2, 4 or 8 bits, f16 scale and zero per group: integer path
//   SEG_PACKED16  packed 16-bit codes, f16 scale and zero per group: the same factoring in float32
//                 (s·(q·c') − z'·Σq; int16 queries would lose precision against 16-bit codes)
// Integer path (spec §3: q·k̂ = Σ_groups s·(q·codes) − z·Σq): codes are unpacked once per block
// into int16, centred (c = code − 2^(b−1), z' = z − s·2^(b−1)), in a fixed channel permutation, the query is quantized once per step to int16
// per (head, group) (scale max|q|/32767) in the same permutation, and q·codes is exact integer
// arithmetic (i32x4.dot_i16x8_s). Values: Σ_j p_j v̂_j = Σ_groups Σ_j (p_j s_j)·codes_j − Σ_j p_j z_j;
// the weights p_j·s_j of a block are quantized to int16 per (head, group) and summed with the
// codes by dot_i16x8_s over pairs of tokens. Everything else is float32. The plain-TypeScript
// twin (src/tensor/tiled-attention.ts) runs the same algorithm and is the test oracle.
//
// A plan (i32 fields PLAN_*, written by the host) describes one call, its segment tables the
// tokens (SEG_* fields); ../layout.ts defines both layouts for the host and here. Each thread
// runs attendTiled(plan, index, n): decode (mode 0) splits the keys of one query over the
// threads and writes partial states (m, l, acc[d]) per query head; prefill (mode 1) deals
// query blocks to the threads and writes the outputs.

import {
  PLAN_D, PLAN_G, PLAN_HEADS, PLAN_KV_HEADS, PLAN_L, PLAN_MODE, PLAN_OUT, PLAN_PARTIAL_STRIDE, PLAN_PARTIALS, PLAN_PERM, PLAN_Q, PLAN_QINT,
  PLAN_QINT_STRIDE, PLAN_QS, PLAN_QUERY, PLAN_SCALE, PLAN_SCRATCH, PLAN_SCRATCH_STRIDE, PLAN_SEG_K, PLAN_SEG_V, PLAN_SEGMENTS, PLAN_SUM_Q, PLAN_T,
  MODE_DECODE, SEG_BITS, SEG_DATA, SEG_F16, SEG_F32, SEG_GROUPS_PER_ROW, SEG_INTS, SEG_KIND, SEG_LENGTH, SEG_PACKED, SEG_ROW_STRIDE, SEG_SCALES, SEG_ZEROS,
} from "../layout";

export const KEY_BLOCK: i32 = 32;
export const QUERY_BLOCK: i32 = 16;

@inline function pI(plan: usize, i: i32): i32 {
  return load<i32>(plan + (<usize>i << 2));
}

@inline function segI(seg: usize, i: i32): i32 {
  return load<i32>(seg + (<usize>i << 2));
}

// An f16 bit pattern as f32 (finite values; the cache never stores ∞ or NaN).
@inline function f16(h: u32): f32 {
  return reinterpret<f32>(((h & 0x8000) << 16) | ((h & 0x7fff) << 13)) * reinterpret<f32>(0x77800000);
}

@inline function hsumI(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

@inline function hsumF(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

// exp(x) for x ≤ 0, four lanes (Cephes expf: |rel err| < 2e-7); x < EXP_MIN gives 0.
export const EXP_MIN: f32 = -87.0;
@inline function expv(x: v128): v128 {
  const keep = f32x4.ge(x, f32x4.splat(EXP_MIN));
  const xc = f32x4.max(x, f32x4.splat(EXP_MIN));
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1.0));
  const e = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return v128.and(f32x4.mul(p, e), keep);
}

/** The same on one value (lane 0), for the running-max corrections. */
export function expScalar(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

// ---------------------------------------------------------------- query preparation

// For every query t < T and head h: Σq and the int16 scale per group; for every bits index b
// whose flag is set in bitsMask (1 << b for 1, 2, 4, 8 bits), the int16 query in b's tile
// permutation (perm: 4 × d i32, tile index → channel).
export function prepareQueries(plan: usize, bitsMask: i32): void {
  const T = pI(plan, PLAN_T), H = pI(plan, PLAN_HEADS), d = pI(plan, PLAN_D), G = pI(plan, PLAN_G);
  const q = <usize>pI(plan, PLAN_Q), qs = <usize>pI(plan, PLAN_QS), sumQ = <usize>pI(plan, PLAN_SUM_Q);
  const qint = <usize>pI(plan, PLAN_QINT), stride = <usize>pI(plan, PLAN_QINT_STRIDE), perm = <usize>pI(plan, PLAN_PERM);
  const hg = d / G;
  for (let r = 0; r < T * H; r++) {
    const qr = q + (<usize>(r * d) << 2);
    for (let gi = 0; gi < hg; gi++) {
      let amax: f32 = 0, s: f32 = 0;
      for (let c = gi * G; c < (gi + 1) * G; c++) {
        const v = load<f32>(qr + (<usize>c << 2));
        amax = max(amax, abs(v));
        s += v;
      }
      store<f32>(qs + (<usize>(r * hg + gi) << 2), amax / 32767.0);
      store<f32>(sumQ + (<usize>(r * hg + gi) << 2), s);
    }
    for (let b = 0; b < 4; b++) {
      if (!(bitsMask & (1 << b))) continue;
      const dst = qint + <usize>b * stride + (<usize>(r * d) << 1);
      const pb = perm + (<usize>(b * d) << 2);
      for (let i = 0; i < d; i++) {
        const c = load<i32>(pb + (<usize>i << 2));
        const sc = load<f32>(qs + (<usize>(r * hg + c / G) << 2));
        const v: f32 = sc > 0 ? nearest(load<f32>(qr + (<usize>c << 2)) / sc) : 0;
        store<i16>(dst + (<usize>i << 1), <i16>v);
      }
    }
  }
}

// ---------------------------------------------------------------- tiles

// Unpack the codes of tokens [ja, ja + nT) of KV head kvh into int16, centred (code − 2^(b−1),
// so that sums of codes do not carry the offset of unsigned codes), in tile index order: per
// chunk (16 or 8 bytes of a head's codes), per shift k, per 8-byte half, 8 lanes.
// One shift k of a 16-byte chunk: codes (v >> k·bits) & mask, centred in bytes, as 2 × 8 int16.
@inline function unpackStep(o: usize, x: v128, mask: v128, mid: v128): void {
  const c = i8x16.sub(v128.and(x, mask), mid);
  v128.store(o, i16x8.extend_low_i8x16_s(c));
  v128.store(o, i16x8.extend_high_i8x16_s(c), 16);
}

function unpackTile(dst: usize, codes: usize, strideWords: i32, ja: i32, nT: i32, kvh: i32, d: i32, bits: i32, chunk: i32): void {
  const headBytes = (d * bits) >> 3;
  if (chunk == 16 && bits >= 2) {
    // unrolled for 16-byte chunks of 2, 4 or 8 bits (the bodies a decode reads most)
    const mask = i8x16.splat(<i8>(bits == 2 ? 3 : bits == 4 ? 15 : -1));
    const mid = i8x16.splat(<i8>(bits == 2 ? 2 : bits == 4 ? 8 : -128));
    for (let jj = 0; jj < nT; jj++) {
      const src = codes + (<usize>((ja + jj) * strideWords) << 2) + <usize>(kvh * headBytes);
      let o = dst + (<usize>(jj * d) << 1);
      for (let off = 0; off < headBytes; off += 16) {
        const v = v128.load(src + <usize>off);
        if (bits == 2) {
          unpackStep(o, v, mask, mid);
          unpackStep(o + 32, i8x16.shr_u(v, 2), mask, mid);
          unpackStep(o + 64, i8x16.shr_u(v, 4), mask, mid);
          unpackStep(o + 96, i8x16.shr_u(v, 6), mask, mid);
          o += 128;
        } else if (bits == 4) {
          unpackStep(o, v, mask, mid);
          unpackStep(o + 32, i8x16.shr_u(v, 4), mask, mid);
          o += 64;
        } else {
          unpackStep(o, v, mask, mid);
          o += 32;
        }
      }
    }
    return;
  }
  const per = 8 / bits;
  const maskBits: i32 = (1 << bits) - 1;
  const mask = i8x16.splat(<i8>maskBits);
  const midBits: i32 = 1 << (bits - 1);
  const mid = i16x8.splat(<i16>midBits);
  for (let jj = 0; jj < nT; jj++) {
    const src = codes + (<usize>((ja + jj) * strideWords) << 2) + <usize>(kvh * headBytes);
    let o = dst + (<usize>(jj * d) << 1);
    for (let off = 0; off < headBytes; off += chunk) {
      const v = chunk == 16 ? v128.load(src + <usize>off) : v128.load64_zero(src + <usize>off);
      for (let k = 0; k < per; k++) {
        let x = k == 0 ? v : i8x16.shr_u(v, k * bits);
        if (bits < 8) x = v128.and(x, mask);
        v128.store(o, i16x8.sub(i16x8.extend_low_i8x16_u(x), mid));
        o += 16;
        if (chunk == 16) {
          v128.store(o, i16x8.sub(i16x8.extend_high_i8x16_u(x), mid));
          o += 16;
        }
      }
    }
  }
}

// f16 lanes 0–3 / 4–7 of a v128 as f32 (exact, subnormals included: see kernels.ts f16Lo).
@inline function halfLo(a: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(a), 13), i32x4.splat(0x8fffe000)), f32x4.splat(reinterpret<f32>(0x77800000)));
}
@inline function halfHi(a: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(a), 13), i32x4.splat(0x8fffe000)), f32x4.splat(reinterpret<f32>(0x77800000)));
}

// scores[v][jj] = scale·(q·k) over f16 rows (rowStride values apart): each row widened once
// into an L1 buffer, then one dot product per virtual head over it, sixteen floats a step
// (four accumulators: lane l of accumulator a holds channels 16i + 4a + l).
function scoresHalf(sc: Scratch, q: usize, rows: usize, rowStride: i32, nT: i32, kvh: i32, t0: i32, nV: i32, group: i32, H: i32, d: i32, scale: f32): void {
  const buf = sc.tileK;
  for (let jj = 0; jj < nT; jj++) {
    const row = rows + (<usize>(jj * rowStride) << 1);
    for (let c: usize = 0, e: usize = <usize>d; c < e; c += 8) {
      const h = v128.load(row + (c << 1));
      v128.store(buf + (c << 2), halfLo(h));
      v128.store(buf + (c << 2), halfHi(h), 16);
    }
    for (let v = 0; v < nV; v++) {
      const r = (t0 + v / group) * H + kvh * group + (v % group);
      const qr = q + (<usize>(r * d) << 2);
      store<f32>(sc.scores + (<usize>(v * KEY_BLOCK + jj) << 2), dotF32(buf, qr, d) * scale);
    }
  }
}

// Virtual head v's row of the score block.
@inline function scoreRow(sc: Scratch, v: i32): usize {
  return sc.scores + (<usize>(v * KEY_BLOCK) << 2);
}

// acc[v] += Σ_jj p[v][jj]·row_jj over f16 rows, widened as they are read (accumulators for
// eight channels of four virtual heads stay in registers over the block's tokens).
function valuesHalf(sc: Scratch, rows: usize, rowStride: i32, nT: i32, nV: i32, d: i32, st: usize): void {
  const stRow = <usize>(2 + d) << 2;
  for (let v = 0; v < nV; v += 4) {
    const n = min(4, nV - v);
    const v1 = min(v + 1, v + n - 1), v2 = min(v + 2, v + n - 1), v3 = min(v + 3, v + n - 1);
    const p0 = scoreRow(sc, v), p1 = scoreRow(sc, v1), p2 = scoreRow(sc, v2), p3 = scoreRow(sc, v3);
    const c0 = st + <usize>v * stRow + 8, c1 = st + <usize>v1 * stRow + 8, c2 = st + <usize>v2 * stRow + 8, c3 = st + <usize>v3 * stRow + 8;
    for (let c = 0; c < d; c += 8) {
      const o = <usize>c << 2;
      let a0 = v128.load(c0 + o), a1 = v128.load(c1 + o), a2 = v128.load(c2 + o), a3 = v128.load(c3 + o);
      let b0 = v128.load(c0 + o, 16), b1 = v128.load(c1 + o, 16), b2 = v128.load(c2 + o, 16), b3 = v128.load(c3 + o, 16);
      for (let jj = 0; jj < nT; jj++) {
        const h = v128.load(rows + (<usize>(jj * rowStride + c) << 1));
        const x = halfLo(h), y = halfHi(h);
        const pj = <usize>jj << 2;
        const w0 = v128.load32_splat(p0 + pj), w1 = v128.load32_splat(p1 + pj), w2 = v128.load32_splat(p2 + pj), w3 = v128.load32_splat(p3 + pj);
        a0 = f32x4.add(a0, f32x4.mul(x, w0));
        b0 = f32x4.add(b0, f32x4.mul(y, w0));
        a1 = f32x4.add(a1, f32x4.mul(x, w1));
        b1 = f32x4.add(b1, f32x4.mul(y, w1));
        a2 = f32x4.add(a2, f32x4.mul(x, w2));
        b2 = f32x4.add(b2, f32x4.mul(y, w2));
        a3 = f32x4.add(a3, f32x4.mul(x, w3));
        b3 = f32x4.add(b3, f32x4.mul(y, w3));
      }
      v128.store(c0 + o, a0);
      v128.store(c0 + o, b0, 16);
      if (n > 1) {
        v128.store(c1 + o, a1);
        v128.store(c1 + o, b1, 16);
      }
      if (n > 2) {
        v128.store(c2 + o, a2);
        v128.store(c2 + o, b2, 16);
      }
      if (n > 3) {
        v128.store(c3 + o, a3);
        v128.store(c3 + o, b3, 16);
      }
    }
  }
}

// The block's scales s and centred zeros z − s·mid as f32, per group: (hg, KEY_BLOCK), zero-padded.
function blockParams(sc: Scratch, scales: usize, zeros: usize, gpr: i32, mid: f32, ja: i32, nT: i32, kvh: i32, hg: i32): void {
  for (let gi = 0; gi < hg; gi++) {
    const sp = sc.sPar + (<usize>(gi * KEY_BLOCK) << 2), zp = sc.zPar + (<usize>(gi * KEY_BLOCK) << 2);
    for (let jj = 0; jj < KEY_BLOCK; jj++) {
      let sv: f32 = 0, zv: f32 = 0;
      if (jj < nT) {
        const p = <usize>((ja + jj) * gpr + kvh * hg + gi) << 1;
        sv = f16(load<u16>(scales + p));
        zv = f16(load<u16>(zeros + p)) - sv * mid;
      }
      store<f32>(sp + (<usize>jj << 2), sv);
      store<f32>(zp + (<usize>jj << 2), zv);
    }
  }
}

// 16-bit codes centred (c − 32768) as f32: lanes 0–3 / 4–7 of a v128 of 8 codes.
@inline function code16Lo(h: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_low_i16x8_u(h), i32x4.splat(32768)));
}
@inline function code16Hi(h: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.sub(i32x4.extend_high_i16x8_u(h), i32x4.splat(32768)));
}

// scores[v][jj] = scale·Σ_gi (s·(q·c') − z'·Σq) over 16-bit codes c' (centred), the same
// factoring as the integer path with a float dot product: no value is dequantized.
function scoresCode16(sc: Scratch, q: usize, sumQ: usize, rows: usize, strideWords: i32, nT: i32, kvh: i32, t0: i32, nV: i32, group: i32, H: i32, d: i32, G: i32, hg: i32, scale: f32): void {
  for (let v = 0; v < nV; v += 4) {
    const n = min(4, nV - v);
    const r0 = (t0 + v / group) * H + kvh * group + (v % group);
    const r1 = (t0 + min(v + 1, v + n - 1) / group) * H + kvh * group + (min(v + 1, v + n - 1) % group);
    const r2 = (t0 + min(v + 2, v + n - 1) / group) * H + kvh * group + (min(v + 2, v + n - 1) % group);
    const r3 = (t0 + min(v + 3, v + n - 1) / group) * H + kvh * group + (min(v + 3, v + n - 1) % group);
    const q0 = q + (<usize>(r0 * d) << 2), q1 = q + (<usize>(r1 * d) << 2), q2 = q + (<usize>(r2 * d) << 2), q3 = q + (<usize>(r3 * d) << 2);
    for (let jj = 0; jj < nT; jj++) {
      const row = rows + (<usize>(jj * strideWords) << 2);
      let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
      for (let gi = 0; gi < hg; gi++) {
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
        for (let c: usize = <usize>(gi * G), e: usize = <usize>((gi + 1) * G); c < e; c += 8) {
          const h = v128.load(row + (c << 1));
          const x = code16Lo(h), y = code16Hi(h);
          const o = c << 2;
          a0 = f32x4.add(f32x4.add(a0, f32x4.mul(x, v128.load(q0 + o))), f32x4.mul(y, v128.load(q0 + o, 16)));
          a1 = f32x4.add(f32x4.add(a1, f32x4.mul(x, v128.load(q1 + o))), f32x4.mul(y, v128.load(q1 + o, 16)));
          a2 = f32x4.add(f32x4.add(a2, f32x4.mul(x, v128.load(q2 + o))), f32x4.mul(y, v128.load(q2 + o, 16)));
          a3 = f32x4.add(f32x4.add(a3, f32x4.mul(x, v128.load(q3 + o))), f32x4.mul(y, v128.load(q3 + o, 16)));
        }
        const s = load<f32>(sc.sPar + (<usize>(gi * KEY_BLOCK + jj) << 2));
        const z = load<f32>(sc.zPar + (<usize>(gi * KEY_BLOCK + jj) << 2));
        s0 += s * hsumF(a0) - z * load<f32>(sumQ + (<usize>(r0 * hg + gi) << 2));
        s1 += s * hsumF(a1) - z * load<f32>(sumQ + (<usize>(r1 * hg + gi) << 2));
        s2 += s * hsumF(a2) - z * load<f32>(sumQ + (<usize>(r2 * hg + gi) << 2));
        s3 += s * hsumF(a3) - z * load<f32>(sumQ + (<usize>(r3 * hg + gi) << 2));
      }
      const o = sc.scores + (<usize>(v * KEY_BLOCK + jj) << 2);
      store<f32>(o, s0 * scale);
      if (n > 1) store<f32>(o, s1 * scale, KEY_BLOCK << 2);
      if (n > 2) store<f32>(o, s2 * scale, KEY_BLOCK << 3);
      if (n > 3) store<f32>(o, s3 * scale, KEY_BLOCK * 12);
    }
  }
}

// acc[v] += Σ_jj (p·s)_jj·c'_jj − Σ_jj p_jj·z'_jj over 16-bit codes (centred), per group.
function valuesCode16(sc: Scratch, rows: usize, strideWords: i32, nT: i32, nV: i32, d: i32, G: i32, hg: i32, st: usize): void {
  const stRow = <usize>(2 + d) << 2;
  for (let v = 0; v < nV; v++) {
    const prow = sc.scores + (<usize>(v * KEY_BLOCK) << 2);
    for (let gi = 0; gi < hg; gi++) {
      const sp = sc.sPar + (<usize>(gi * KEY_BLOCK) << 2), zp = sc.zPar + (<usize>(gi * KEY_BLOCK) << 2);
      const wrow = sc.wf + (<usize>((v * hg + gi) * KEY_BLOCK) << 2);
      let zs4 = f32x4.splat(0);
      for (let jj = 0; jj < KEY_BLOCK; jj += 4) {
        const o = <usize>jj << 2;
        const p4 = v128.load(prow + o);
        v128.store(wrow + o, f32x4.mul(p4, v128.load(sp + o)));
        zs4 = f32x4.add(zs4, f32x4.mul(p4, v128.load(zp + o)));
      }
      store<f32>(sc.zsum + (<usize>(v * hg + gi) << 2), hsumF(zs4));
    }
  }
  for (let v = 0; v < nV; v += 4) {
    const n = min(4, nV - v);
    const v1 = min(v + 1, v + n - 1), v2 = min(v + 2, v + n - 1), v3 = min(v + 3, v + n - 1);
    const c0 = st + <usize>v * stRow + 8, c1 = st + <usize>v1 * stRow + 8, c2 = st + <usize>v2 * stRow + 8, c3 = st + <usize>v3 * stRow + 8;
    for (let c = 0; c < d; c += 8) {
      const gi = c / G;
      const p0 = sc.wf + (<usize>((v * hg + gi) * KEY_BLOCK) << 2), p1 = sc.wf + (<usize>((v1 * hg + gi) * KEY_BLOCK) << 2);
      const p2 = sc.wf + (<usize>((v2 * hg + gi) * KEY_BLOCK) << 2), p3 = sc.wf + (<usize>((v3 * hg + gi) * KEY_BLOCK) << 2);
      const o = <usize>c << 2;
      let a0 = v128.load(c0 + o), a1 = v128.load(c1 + o), a2 = v128.load(c2 + o), a3 = v128.load(c3 + o);
      let b0 = v128.load(c0 + o, 16), b1 = v128.load(c1 + o, 16), b2 = v128.load(c2 + o, 16), b3 = v128.load(c3 + o, 16);
      for (let jj = 0; jj < nT; jj++) {
        const h = v128.load(rows + (<usize>(jj * strideWords) << 2) + (<usize>c << 1));
        const x = code16Lo(h), y = code16Hi(h);
        const pj = <usize>jj << 2;
        const w0 = v128.load32_splat(p0 + pj), w1 = v128.load32_splat(p1 + pj), w2 = v128.load32_splat(p2 + pj), w3 = v128.load32_splat(p3 + pj);
        a0 = f32x4.add(a0, f32x4.mul(x, w0));
        b0 = f32x4.add(b0, f32x4.mul(y, w0));
        a1 = f32x4.add(a1, f32x4.mul(x, w1));
        b1 = f32x4.add(b1, f32x4.mul(y, w1));
        a2 = f32x4.add(a2, f32x4.mul(x, w2));
        b2 = f32x4.add(b2, f32x4.mul(y, w2));
        a3 = f32x4.add(a3, f32x4.mul(x, w3));
        b3 = f32x4.add(b3, f32x4.mul(y, w3));
      }
      const z0 = f32x4.splat(load<f32>(sc.zsum + (<usize>(v * hg + gi) << 2))), z1 = f32x4.splat(load<f32>(sc.zsum + (<usize>(v1 * hg + gi) << 2)));
      const z2 = f32x4.splat(load<f32>(sc.zsum + (<usize>(v2 * hg + gi) << 2))), z3 = f32x4.splat(load<f32>(sc.zsum + (<usize>(v3 * hg + gi) << 2)));
      v128.store(c0 + o, f32x4.sub(a0, z0));
      v128.store(c0 + o, f32x4.sub(b0, z0), 16);
      if (n > 1) {
        v128.store(c1 + o, f32x4.sub(a1, z1));
        v128.store(c1 + o, f32x4.sub(b1, z1), 16);
      }
      if (n > 2) {
        v128.store(c2 + o, f32x4.sub(a2, z2));
        v128.store(c2 + o, f32x4.sub(b2, z2), 16);
      }
      if (n > 3) {
        v128.store(c3 + o, f32x4.sub(a3, z3));
        v128.store(c3 + o, f32x4.sub(b3, z3), 16);
      }
    }
  }
}

// ---------------------------------------------------------------- one block of one KV head

// Per-thread scratch layout (bytes from the thread's base), for up to maxV virtual heads. The
// record itself lives in the first 64 bytes of the thread's scratch (no allocation here).
@unmanaged class Scratch {
  tileK: usize;
  tileV: usize;
  scores: usize; // (maxV, KEY_BLOCK) f32
  wpairs: usize; // (maxV, hg, KEY_BLOCK/2) i32
  wtmp: usize; // (KEY_BLOCK) f32
  acci: usize; // (maxV, d) i32
  ws: usize; // (maxV, hg) f32
  zsum: usize; // (maxV, hg) f32
  state: usize; // (maxV, 2 + d) f32: m, l, acc[d]
  sPar: usize; // (hg, KEY_BLOCK) f32: a block's scales
  zPar: usize; // (hg, KEY_BLOCK) f32: and its centred zeros z − s·2^(b−1)
  accP: usize; // (maxV, d) f32: value sums of an integer segment, in tile order (flushed per segment)
  wf: usize; // (maxV, hg, KEY_BLOCK) f32: value weights p·s of 16-bit codes
}

function scratchAt(base: usize, maxV: i32, d: i32, hg: i32): Scratch {
  const sc = changetype<Scratch>(base);
  let p = base + 64;
  // one tile for keys and then values (used one after the other): what a block touches stays in L1
  sc.tileK = p;
  sc.tileV = p;
  p += <usize>(KEY_BLOCK * d) << 2;
  sc.scores = p;
  p += <usize>(maxV * KEY_BLOCK) << 2;
  sc.wpairs = p;
  p += <usize>(maxV * hg * (KEY_BLOCK >> 1)) << 2;
  sc.wtmp = p;
  p += <usize>KEY_BLOCK << 2;
  sc.acci = p;
  p += <usize>(maxV * d) << 2;
  sc.ws = p;
  p += <usize>(maxV * hg) << 2;
  sc.zsum = p;
  p += <usize>(maxV * hg) << 2;
  sc.sPar = p;
  p += <usize>(hg * KEY_BLOCK) << 2;
  sc.zPar = p;
  p += <usize>(hg * KEY_BLOCK) << 2;
  sc.accP = p;
  p += <usize>(maxV * d) << 2;
  sc.wf = p;
  p += <usize>(maxV * hg * KEY_BLOCK) << 2;
  sc.state = p;
  return sc;
}

/** Bytes of per-thread scratch for up to maxV virtual heads (the host sizes its buffers with it). */
export function scratchBytes(maxV: i32, d: i32, G: i32): i32 {
  const hg = d / G;
  return ((KEY_BLOCK * d + maxV * KEY_BLOCK + maxV * hg * (KEY_BLOCK >> 1) + KEY_BLOCK + maxV * d + 2 * maxV * hg + 2 * hg * KEY_BLOCK + maxV * d + maxV * hg * KEY_BLOCK + maxV * (2 + d)) << 2) + 64;
}

@inline function bitsIndex(bits: i32): i32 {
  return bits == 1 ? 0 : bits == 2 ? 1 : bits == 4 ? 2 : 3;
}

// Virtual heads v = (query t0 + v / group, head kvh·group + v % group), v in [0, nV); state at
// st + v·(2+d)·4. Processes key block [ja, ja + nT) of segment pair (sk, sv).
// ja indexes the segment's storage; jg is the same token's position in the sequence (causality).
function block(
  plan: usize, sk: usize, sv: usize, ja: i32, jg: i32, nT: i32, kvh: i32, t0: i32, nV: i32, st: usize, ap: usize, sc: Scratch,
): void {
  const T = pI(plan, PLAN_T), L = pI(plan, PLAN_L), H = pI(plan, PLAN_HEADS), KVH = pI(plan, PLAN_KV_HEADS), d = pI(plan, PLAN_D), G = pI(plan, PLAN_G);
  const group = H / KVH;
  const hg = d / G;
  const scale = reinterpret<f32>(pI(plan, PLAN_SCALE));
  const q = <usize>pI(plan, PLAN_Q), qs = <usize>pI(plan, PLAN_QS), sumQ = <usize>pI(plan, PLAN_SUM_Q);
  const kind = segI(sk, SEG_KIND);
  const stRow = <usize>(2 + d) << 2;
  // ---- scores (nV, nT)
  if (kind == SEG_PACKED) {
    const bits = segI(sk, SEG_BITS), stride = segI(sk, SEG_ROW_STRIDE), gpr = segI(sk, SEG_GROUPS_PER_ROW);
    const chunk = min(16, (G * bits) >> 3);
    unpackTile(sc.tileK, <usize>segI(sk, SEG_DATA), stride, ja, nT, kvh, d, bits, chunk);
    const qint = <usize>pI(plan, PLAN_QINT) + <usize>bitsIndex(bits) * <usize>pI(plan, PLAN_QINT_STRIDE);
    blockParams(sc, <usize>segI(sk, SEG_SCALES), <usize>segI(sk, SEG_ZEROS), gpr, <f32>(1 << (bits - 1)), ja, nT, kvh, hg);
    scoresInt(sc, qint, qs, sumQ, nT, kvh, t0, nV, group, H, d, G, hg, scale);
  } else {
    if (kind == SEG_F16) {
      scoresHalf(sc, q, <usize>segI(sk, SEG_DATA) + (<usize>(ja * segI(sk, SEG_ROW_STRIDE) + kvh * d) << 1), segI(sk, SEG_ROW_STRIDE), nT, kvh, t0, nV, group, H, d, scale);
    } else {
      let rows: usize, rowStride: i32;
      if (kind == SEG_F32) {
        rows = <usize>segI(sk, SEG_DATA) + (<usize>(ja * segI(sk, SEG_ROW_STRIDE) + kvh * d) << 2);
        rowStride = segI(sk, SEG_ROW_STRIDE);
        scoresFloat(sc, q, rows, rowStride, nT, kvh, t0, nV, group, H, d, scale);
      } else {
        const stride = segI(sk, SEG_ROW_STRIDE);
        blockParams(sc, <usize>segI(sk, SEG_SCALES), <usize>segI(sk, SEG_ZEROS), segI(sk, SEG_GROUPS_PER_ROW), 32768, ja, nT, kvh, hg);
        scoresCode16(sc, q, sumQ, <usize>segI(sk, SEG_DATA) + (<usize>(ja * stride) << 2) + (<usize>(kvh * d) << 1), stride, nT, kvh, t0, nV, group, H, d, G, hg, scale);
      }
    }
  }
  // ---- online softmax: mask, running max, weights p (in place of the scores)
  for (let v = 0; v < nV; v++) {
    const t = t0 + v / group;
    const limit = L - T + t; // last visible key
    const srow = sc.scores + (<usize>(v * KEY_BLOCK) << 2);
    const visible = min(nT, limit - jg + 1);
    const s = st + <usize>v * stRow;
    if (visible <= 0) {
      memory.fill(srow, 0, <usize>KEY_BLOCK << 2);
      continue;
    }
    let mb: f32 = -Infinity;
    for (let jj = 0; jj < visible; jj++) mb = max(mb, load<f32>(srow + (<usize>jj << 2)));
    for (let jj = visible; jj < KEY_BLOCK; jj++) store<f32>(srow + (<usize>jj << 2), -Infinity);
    const m = load<f32>(s);
    const mNew = max(m, mb);
    if (mNew > m) {
      const corr = m == -Infinity ? <f32>0 : expScalar(m - mNew);
      store<f32>(s, mNew);
      store<f32>(s, load<f32>(s, 4) * corr, 4);
      const acc = s + 8;
      const accP = ap + (<usize>(v * d) << 2);
      const vc = f32x4.splat(corr);
      for (let c = 0; c < d; c += 4) {
        v128.store(acc + (<usize>c << 2), f32x4.mul(v128.load(acc + (<usize>c << 2)), vc));
        v128.store(accP + (<usize>c << 2), f32x4.mul(v128.load(accP + (<usize>c << 2)), vc));
      }
    }
    const vm = f32x4.splat(mNew);
    let lsum = f32x4.splat(0);
    for (let jj = 0; jj < KEY_BLOCK; jj += 4) {
      const p = expv(f32x4.sub(v128.load(srow + (<usize>jj << 2)), vm));
      v128.store(srow + (<usize>jj << 2), p);
      lsum = f32x4.add(lsum, p);
    }
    store<f32>(s, load<f32>(s, 4) + hsumF(lsum), 4);
  }
  // ---- values
  const vkind = segI(sv, SEG_KIND);
  if (vkind == SEG_PACKED) {
    const bits = segI(sv, SEG_BITS), stride = segI(sv, SEG_ROW_STRIDE), gpr = segI(sv, SEG_GROUPS_PER_ROW);
    const chunk = min(16, (G * bits) >> 3);
    unpackTile(sc.tileV, <usize>segI(sv, SEG_DATA), stride, ja, nT, kvh, d, bits, chunk);
    blockParams(sc, <usize>segI(sv, SEG_SCALES), <usize>segI(sv, SEG_ZEROS), gpr, <f32>(1 << (bits - 1)), ja, nT, kvh, hg);
    valuesInt(sc, nT, nV, d, G, hg, ap);
  } else {
    if (vkind == SEG_F16) {
      valuesHalf(sc, <usize>segI(sv, SEG_DATA) + (<usize>(ja * segI(sv, SEG_ROW_STRIDE) + kvh * d) << 1), segI(sv, SEG_ROW_STRIDE), nT, nV, d, st);
    } else {
      let rows: usize, rowStride: i32;
      if (vkind == SEG_F32) {
        rows = <usize>segI(sv, SEG_DATA) + (<usize>(ja * segI(sv, SEG_ROW_STRIDE) + kvh * d) << 2);
        rowStride = segI(sv, SEG_ROW_STRIDE);
        valuesFloat(sc, rows, rowStride, nT, nV, d, st);
      } else {
        const stride = segI(sv, SEG_ROW_STRIDE);
        blockParams(sc, <usize>segI(sv, SEG_SCALES), <usize>segI(sv, SEG_ZEROS), segI(sv, SEG_GROUPS_PER_ROW), 32768, ja, nT, kvh, hg);
        valuesCode16(sc, <usize>segI(sv, SEG_DATA) + (<usize>(ja * stride) << 2) + (<usize>(kvh * d) << 1), stride, nT, nV, d, G, hg, st);
      }
    }
  }
}

// scores[v][jj] = scale·Σ_gi (s·(qs·(qint·codes)) − z·Σq) for four virtual heads at a time.
function scoresInt(
  sc: Scratch, qint: usize, qs: usize, sumQ: usize, nT: i32, kvh: i32, t0: i32, nV: i32, group: i32, H: i32, d: i32, G: i32, hg: i32, scale: f32,
): void {
  const vecsPerGroup = G >> 3;
  for (let v = 0; v < nV; v += 4) {
    const n = min(4, nV - v);
    // the query rows (t, h) of the (up to) four virtual heads; missing ones repeat the last
    const r0 = (t0 + v / group) * H + kvh * group + (v % group);
    const r1 = (t0 + min(v + 1, v + n - 1) / group) * H + kvh * group + (min(v + 1, v + n - 1) % group);
    const r2 = (t0 + min(v + 2, v + n - 1) / group) * H + kvh * group + (min(v + 2, v + n - 1) % group);
    const r3 = (t0 + min(v + 3, v + n - 1) / group) * H + kvh * group + (min(v + 3, v + n - 1) % group);
    const q0 = qint + (<usize>(r0 * d) << 1), q1 = qint + (<usize>(r1 * d) << 1), q2 = qint + (<usize>(r2 * d) << 1), q3 = qint + (<usize>(r3 * d) << 1);
    for (let jj = 0; jj < nT; jj++) {
      const row = sc.tileK + (<usize>(jj * d) << 1);
      let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
      for (let gi = 0; gi < hg; gi++) {
        let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
        let o = <usize>(gi * vecsPerGroup) << 4;
        const e = o + (<usize>vecsPerGroup << 4);
        for (; o + 16 < e; o += 32) {
          const x = v128.load(row + o), y = v128.load(row + o, 16);
          a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(x, v128.load(q0 + o)), i32x4.dot_i16x8_s(y, v128.load(q0 + o, 16))));
          a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(x, v128.load(q1 + o)), i32x4.dot_i16x8_s(y, v128.load(q1 + o, 16))));
          a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(x, v128.load(q2 + o)), i32x4.dot_i16x8_s(y, v128.load(q2 + o, 16))));
          a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(x, v128.load(q3 + o)), i32x4.dot_i16x8_s(y, v128.load(q3 + o, 16))));
        }
        if (o < e) {
          const x = v128.load(row + o);
          a0 = i32x4.add(a0, i32x4.dot_i16x8_s(x, v128.load(q0 + o)));
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(x, v128.load(q1 + o)));
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(x, v128.load(q2 + o)));
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(x, v128.load(q3 + o)));
        }
        const s = load<f32>(sc.sPar + (<usize>(gi * KEY_BLOCK + jj) << 2));
        const z = load<f32>(sc.zPar + (<usize>(gi * KEY_BLOCK + jj) << 2));
        s0 += s * (load<f32>(qs + (<usize>(r0 * hg + gi) << 2)) * <f32>hsumI(a0)) - z * load<f32>(sumQ + (<usize>(r0 * hg + gi) << 2));
        s1 += s * (load<f32>(qs + (<usize>(r1 * hg + gi) << 2)) * <f32>hsumI(a1)) - z * load<f32>(sumQ + (<usize>(r1 * hg + gi) << 2));
        s2 += s * (load<f32>(qs + (<usize>(r2 * hg + gi) << 2)) * <f32>hsumI(a2)) - z * load<f32>(sumQ + (<usize>(r2 * hg + gi) << 2));
        s3 += s * (load<f32>(qs + (<usize>(r3 * hg + gi) << 2)) * <f32>hsumI(a3)) - z * load<f32>(sumQ + (<usize>(r3 * hg + gi) << 2));
      }
      const o = sc.scores + (<usize>(v * KEY_BLOCK + jj) << 2);
      store<f32>(o, s0 * scale);
      if (n > 1) store<f32>(o, s1 * scale, KEY_BLOCK << 2);
      if (n > 2) store<f32>(o, s2 * scale, KEY_BLOCK << 3);
      if (n > 3) store<f32>(o, s3 * scale, KEY_BLOCK * 12);
    }
  }
}

// a·b over d float32 channels (d a multiple of 8), sixteen a step: lane l of accumulator i holds
// channels 16k + 4i + l.
@inline function dotF32(a: usize, b: usize, d: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let o: usize = 0;
  for (const e: usize = <usize>(d & ~15) << 2; o < e; o += 64) {
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
    s2 = f32x4.add(s2, f32x4.mul(v128.load(a + o, 32), v128.load(b + o, 32)));
    s3 = f32x4.add(s3, f32x4.mul(v128.load(a + o, 48), v128.load(b + o, 48)));
  }
  if (d & 8) {
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  return hsumF(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
}

// scores[v][jj] = scale·(q·k) over float rows (rowStride f32 apart): one dot product per virtual
// head, sixteen floats a step (lane l of accumulator a holds channels 16i + 4a + l).
function scoresFloat(sc: Scratch, q: usize, rows: usize, rowStride: i32, nT: i32, kvh: i32, t0: i32, nV: i32, group: i32, H: i32, d: i32, scale: f32): void {
  for (let jj = 0; jj < nT; jj++) {
    const row = rows + (<usize>(jj * rowStride) << 2);
    for (let v = 0; v < nV; v++) {
      const r = (t0 + v / group) * H + kvh * group + (v % group);
      const qr = q + (<usize>(r * d) << 2);
      store<f32>(sc.scores + (<usize>(v * KEY_BLOCK + jj) << 2), dotF32(row, qr, d) * scale);
    }
  }
}

// accP[v] += Σ_jj p[v][jj]·v̂_jj for codes, in tile order: per (v, group) the weights p·s
// quantized to int16 and paired by token, Σ_j p_j z'_j subtracted from every channel of the group.
function valuesInt(sc: Scratch, nT: i32, nV: i32, d: i32, G: i32, hg: i32, ap: usize): void {
  const pairs = (nT + 1) >> 1;
  // weights: w = p·s, its largest, Σ p·z' (four lanes), then int16 w/ws packed in token pairs
  for (let v = 0; v < nV; v++) {
    const prow = sc.scores + (<usize>(v * KEY_BLOCK) << 2);
    for (let gi = 0; gi < hg; gi++) {
      const sp = sc.sPar + (<usize>(gi * KEY_BLOCK) << 2), zp = sc.zPar + (<usize>(gi * KEY_BLOCK) << 2);
      let wm = f32x4.splat(0), zs4 = f32x4.splat(0);
      for (let jj = 0; jj < KEY_BLOCK; jj += 4) {
        const o = <usize>jj << 2;
        const p4 = v128.load(prow + o);
        const w4 = f32x4.mul(p4, v128.load(sp + o));
        v128.store(sc.wtmp + o, w4);
        wm = f32x4.max(wm, w4);
        zs4 = f32x4.add(zs4, f32x4.mul(p4, v128.load(zp + o)));
      }
      const wmax = max(max(f32x4.extract_lane(wm, 0), f32x4.extract_lane(wm, 1)), max(f32x4.extract_lane(wm, 2), f32x4.extract_lane(wm, 3)));
      const ws: f32 = wmax / 32767.0;
      store<f32>(sc.ws + (<usize>(v * hg + gi) << 2), ws);
      store<f32>(sc.zsum + (<usize>(v * hg + gi) << 2), hsumF(zs4));
      const wp = sc.wpairs + (<usize>((v * hg + gi) * (KEY_BLOCK >> 1)) << 2);
      if (ws > 0) {
        const vws = f32x4.splat(ws);
        for (let jj = 0; jj < KEY_BLOCK; jj += 8) {
          const a = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.div(v128.load(sc.wtmp + (<usize>jj << 2)), vws)));
          const b = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.div(v128.load(sc.wtmp + (<usize>jj << 2), 16), vws)));
          v128.store(wp + (<usize>jj << 1), i16x8.narrow_i32x4_s(a, b));
        }
      } else memory.fill(wp, 0, <usize>KEY_BLOCK << 1);
    }
  }
  // Σ over token pairs of dot(interleaved codes, weight pair), four virtual heads at a time
  const vecsPerGroup = G >> 3;
  for (let v = 0; v < nV; v += 4) {
    const n = min(4, nV - v);
    const v1 = min(v + 1, v + n - 1), v2 = min(v + 2, v + n - 1), v3 = min(v + 3, v + n - 1);
    for (let k = 0; k < (d >> 3); k++) {
      const gi = k / vecsPerGroup;
      const w0 = sc.wpairs + (<usize>((v * hg + gi) * (KEY_BLOCK >> 1)) << 2);
      const w1 = sc.wpairs + (<usize>((v1 * hg + gi) * (KEY_BLOCK >> 1)) << 2);
      const w2 = sc.wpairs + (<usize>((v2 * hg + gi) * (KEY_BLOCK >> 1)) << 2);
      const w3 = sc.wpairs + (<usize>((v3 * hg + gi) * (KEY_BLOCK >> 1)) << 2);
      let l0 = i32x4.splat(0), h0 = i32x4.splat(0), l1 = i32x4.splat(0), h1 = i32x4.splat(0);
      let l2 = i32x4.splat(0), h2 = i32x4.splat(0), l3 = i32x4.splat(0), h3 = i32x4.splat(0);
      // pairs of tile rows (an odd block's last row pairs with a stale row of weight 0)
      let ta = sc.tileV + (<usize>(k << 3) << 1);
      const rowBytes = <usize>d << 1;
      for (let pw: usize = 0, pe: usize = <usize>pairs << 2; pw < pe; pw += 4) {
        const a = v128.load(ta);
        const b = v128.load(ta + rowBytes);
        ta += rowBytes << 1;
        const lo = i16x8.shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11);
        const hi = i16x8.shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
        const x0 = v128.load32_splat(w0 + pw);
        l0 = i32x4.add(l0, i32x4.dot_i16x8_s(lo, x0));
        h0 = i32x4.add(h0, i32x4.dot_i16x8_s(hi, x0));
        const x1 = v128.load32_splat(w1 + pw);
        l1 = i32x4.add(l1, i32x4.dot_i16x8_s(lo, x1));
        h1 = i32x4.add(h1, i32x4.dot_i16x8_s(hi, x1));
        const x2 = v128.load32_splat(w2 + pw);
        l2 = i32x4.add(l2, i32x4.dot_i16x8_s(lo, x2));
        h2 = i32x4.add(h2, i32x4.dot_i16x8_s(hi, x2));
        const x3 = v128.load32_splat(w3 + pw);
        l3 = i32x4.add(l3, i32x4.dot_i16x8_s(lo, x3));
        h3 = i32x4.add(h3, i32x4.dot_i16x8_s(hi, x3));
      }
      const o = <usize>(k << 3) << 2;
      v128.store(sc.acci + (<usize>(v * d) << 2) + o, l0);
      v128.store(sc.acci + (<usize>(v * d) << 2) + o, h0, 16);
      if (n > 1) {
        v128.store(sc.acci + (<usize>(v1 * d) << 2) + o, l1);
        v128.store(sc.acci + (<usize>(v1 * d) << 2) + o, h1, 16);
      }
      if (n > 2) {
        v128.store(sc.acci + (<usize>(v2 * d) << 2) + o, l2);
        v128.store(sc.acci + (<usize>(v2 * d) << 2) + o, h2, 16);
      }
      if (n > 3) {
        v128.store(sc.acci + (<usize>(v3 * d) << 2) + o, l3);
        v128.store(sc.acci + (<usize>(v3 * d) << 2) + o, h3, 16);
      }
    }
  }
  // fold into the integer segment's float sums (tile order; a tile vector lies in one group)
  for (let v = 0; v < nV; v++) {
    const a = ap + (<usize>(v * d) << 2);
    const ai = sc.acci + (<usize>(v * d) << 2);
    for (let i = 0; i < d; i += 4) {
      const gi = i / G;
      const ws = f32x4.splat(load<f32>(sc.ws + (<usize>(v * hg + gi) << 2)));
      const zs = f32x4.splat(load<f32>(sc.zsum + (<usize>(v * hg + gi) << 2)));
      const o = <usize>i << 2;
      v128.store(a + o, f32x4.sub(f32x4.add(v128.load(a + o), f32x4.mul(ws, f32x4.convert_i32x4_s(v128.load(ai + o)))), zs));
    }
  }
}

// acc[v] += Σ_jj p[v][jj]·row_jj over float rows, four virtual heads at a time.
function valuesFloat(sc: Scratch, rows: usize, rowStride: i32, nT: i32, nV: i32, d: i32, st: usize): void {
  const stRow = <usize>(2 + d) << 2;
  for (let v = 0; v < nV; v += 4) {
    const n = min(4, nV - v);
    const v1 = min(v + 1, v + n - 1), v2 = min(v + 2, v + n - 1), v3 = min(v + 3, v + n - 1);
    const p0 = scoreRow(sc, v), p1 = scoreRow(sc, v1), p2 = scoreRow(sc, v2), p3 = scoreRow(sc, v3);
    const c0 = st + <usize>v * stRow + 8, c1 = st + <usize>v1 * stRow + 8, c2 = st + <usize>v2 * stRow + 8, c3 = st + <usize>v3 * stRow + 8;
    for (let c = 0; c < d; c += 4) {
      const o = <usize>c << 2;
      let a0 = v128.load(c0 + o), a1 = v128.load(c1 + o), a2 = v128.load(c2 + o), a3 = v128.load(c3 + o);
      for (let jj = 0; jj < nT; jj++) {
        const x = v128.load(rows + (<usize>(jj * rowStride) << 2) + o);
        const pj = <usize>jj << 2;
        a0 = f32x4.add(a0, f32x4.mul(x, v128.load32_splat(p0 + pj)));
        a1 = f32x4.add(a1, f32x4.mul(x, v128.load32_splat(p1 + pj)));
        a2 = f32x4.add(a2, f32x4.mul(x, v128.load32_splat(p2 + pj)));
        a3 = f32x4.add(a3, f32x4.mul(x, v128.load32_splat(p3 + pj)));
      }
      v128.store(c0 + o, a0);
      if (n > 1) v128.store(c1 + o, a1);
      if (n > 2) v128.store(c2 + o, a2);
      if (n > 3) v128.store(c3 + o, a3);
    }
  }
}

// ---------------------------------------------------------------- the call

// Keys [j0, j1) of KV head kvh for the virtual heads of queries [t0, t0 + nQ), block by block,
// segment by segment (a block never spans two segments).
function keysRange(plan: usize, t0: i32, nQ: i32, j0: i32, j1: i32, st: usize, sc: Scratch): void {
  const KVH = pI(plan, PLAN_KV_HEADS);
  const H = pI(plan, PLAN_HEADS);
  const group = H / KVH;
  const d = pI(plan, PLAN_D);
  const stRow = <usize>(2 + d) << 2;
  const headStates = <usize>(nQ * group) * stRow;
  const headSums = <usize>(nQ * group * d) << 2;
  const segK = <usize>pI(plan, PLAN_SEG_K), segV = <usize>pI(plan, PLAN_SEG_V), nSeg = pI(plan, PLAN_SEGMENTS);
  let start = 0;
  for (let s = 0; s < nSeg; s++) {
    const sk = segK + (<usize>(s * SEG_INTS) << 2);
    const sv = segV + (<usize>(s * SEG_INTS) << 2);
    const len = segI(sk, SEG_LENGTH);
    const a = max(j0, start), b = min(j1, start + len);
    // block by block, every KV head of a block while its rows are in cache: rows hold all
    // heads, so they stream through memory once, in order
    if (a < b && segI(sv, SEG_KIND) == SEG_PACKED) memory.fill(sc.accP, 0, <usize>(nQ * H * d) << 2);
    for (let ja = a; ja < b; ja += KEY_BLOCK) {
      for (let kvh = 0; kvh < KVH; kvh++) {
        block(plan, sk, sv, ja - start, ja, min(KEY_BLOCK, b - ja), kvh, t0, nQ * group, st + <usize>kvh * headStates, sc.accP + <usize>kvh * headSums, sc);
      }
    }
    if (a < b && segI(sv, SEG_KIND) == SEG_PACKED) {
      // the integer segment's sums, from tile order into the states' channel order
      const perm = <usize>pI(plan, PLAN_PERM) + (<usize>(bitsIndex(segI(sv, SEG_BITS)) * d) << 2);
      for (let v = 0; v < nQ * H; v++) {
        const acc = st + <usize>v * stRow + 8;
        const ap = sc.accP + (<usize>(v * d) << 2);
        for (let i = 0; i < d; i++) {
          const c = acc + (<usize>load<i32>(perm + (<usize>i << 2)) << 2);
          store<f32>(c, load<f32>(c) + load<f32>(ap + (<usize>i << 2)));
        }
      }
    }
    start += len;
  }
}

@inline function initState(st: usize, nV: i32, d: i32): void {
  const stRow = <usize>(2 + d) << 2;
  for (let v = 0; v < nV; v++) {
    const s = st + <usize>v * stRow;
    store<f32>(s, -Infinity);
    store<f32>(s, 0, 4);
    memory.fill(s + 8, 0, <usize>d << 2);
  }
}

/** Thread `index` of `n` runs its part of the call the plan describes. */
export function attendTiled(plan: usize, index: i32, n: i32): void {
  const T = pI(plan, PLAN_T), L = pI(plan, PLAN_L), H = pI(plan, PLAN_HEADS), KVH = pI(plan, PLAN_KV_HEADS), d = pI(plan, PLAN_D), G = pI(plan, PLAN_G);
  const group = H / KVH;
  const scratch = <usize>pI(plan, PLAN_SCRATCH) + <usize>index * <usize>pI(plan, PLAN_SCRATCH_STRIDE);
  const stRow = <usize>(2 + d) << 2;
  if (pI(plan, PLAN_MODE) == MODE_DECODE) {
    // decode: this thread's share of the keys query t sees, every KV head
    const t = pI(plan, PLAN_QUERY);
    const seen = L - T + t + 1;
    const j0 = <i32>((<i64>seen * index) / n), j1 = <i32>((<i64>seen * (index + 1)) / n);
    const sc = scratchAt(scratch, group, d, d / G);
    const part = <usize>pI(plan, PLAN_PARTIALS) + <usize>index * <usize>pI(plan, PLAN_PARTIAL_STRIDE);
    // states of head h = kvh·group + g at part + h·stRow: the KV heads' runs of `group` follow each other
    initState(part, H, d);
    if (j1 > j0) keysRange(plan, t, 1, j0, j1, part, sc);
    return;
  }
  // prefill: query blocks dealt round-robin, all KV heads, outputs normalised
  const out = <usize>pI(plan, PLAN_OUT);
  const sc = scratchAt(scratch, QUERY_BLOCK * H, d, d / G);
  const blocks = (T + QUERY_BLOCK - 1) / QUERY_BLOCK;
  for (let qb = index; qb < blocks; qb += n) {
    const t0 = qb * QUERY_BLOCK;
    const nQ = min(QUERY_BLOCK, T - t0);
    const lastSeen = L - T + t0 + nQ; // keys [0, lastSeen) are visible to some query of the block
    // states [kvh][v], v = (t − t0)·group + g
    initState(sc.state, nQ * H, d);
    keysRange(plan, t0, nQ, 0, lastSeen, sc.state, sc);
    for (let kvh = 0; kvh < KVH; kvh++) {
      for (let v = 0; v < nQ * group; v++) {
        const s = sc.state + <usize>(kvh * nQ * group + v) * stRow;
        const inv = f32x4.splat(<f32>1.0 / load<f32>(s, 4));
        const o = out + (<usize>(((t0 + v / group) * H + kvh * group + (v % group)) * d) << 2);
        for (let c = 0; c < d; c += 4) v128.store(o + (<usize>c << 2), f32x4.mul(v128.load(s + 8 + (<usize>c << 2)), inv));
      }
    }
  }
}
