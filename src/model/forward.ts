// The transformer forward pass (Llama / Qwen2 / Qwen3), one sequence, any number of new tokens.
// Every scratch buffer lives in RunState and is allocated once per chunk size.

import { UsageError } from "../errors.js";
import type { KvCache } from "./kv-cache.js";
import { matmulMatrix, matrixRow, type Matrix } from "../tensor/matrix.js";
import { addInPlace, headRmsnorm, rmsnorm, rope, swiglu } from "../tensor/kernels.js";
import { allocF32, arenaOf, release, withArena } from "../tensor/memory.js";
import { placementArenas, singlePlacement, type Placement } from "./placement.js";
import { releaseWeights } from "./weights.js";
import type { ModelConfig } from "./config.js";
import { ropeInvFreq, ropeTables } from "./rope.js";
import type { Weights } from "./weights.js";

export type LogitsMode = "last" | "all" | "none";

/** Scratch buffers for a chunk of up to `tokens` tokens (one per arena the model computes in). */
class RunState {
  readonly x: Float32Array; // (T, dim) residual stream
  readonly xb: Float32Array; // (T, dim) normed input of a sublayer
  readonly q: Float32Array; // (T, numHeads·d)
  readonly k: Float32Array; // (T, numKvHeads·d)
  readonly v: Float32Array; // (T, numKvHeads·d)
  readonly kPre: Float32Array; // (T, numKvHeads·d) keys before RoPE (after Qwen3's k_norm), for caches that apply RoPE themselves
  readonly att: Float32Array; // (T, numHeads·d) attention output before o_proj
  readonly proj: Float32Array; // (T, dim) output of o_proj / down_proj
  readonly gate: Float32Array; // (T, intermediate)
  readonly up: Float32Array; // (T, intermediate)
  readonly cos: Float32Array; // (T, d/2)
  readonly sin: Float32Array; // (T, d/2)
  logits: Float32Array; // (1 or T, vocab)

  constructor(readonly tokens: number, c: ModelConfig) {
    const T = tokens;
    this.x = allocF32(T * c.hiddenSize);
    this.xb = allocF32(T * c.hiddenSize);
    this.q = allocF32(T * c.numHeads * c.headDim);
    this.k = allocF32(T * c.numKvHeads * c.headDim);
    this.v = allocF32(T * c.numKvHeads * c.headDim);
    this.kPre = allocF32(T * c.numKvHeads * c.headDim);
    this.att = allocF32(T * c.numHeads * c.headDim);
    this.proj = allocF32(T * c.hiddenSize);
    this.gate = allocF32(T * c.intermediateSize);
    this.up = allocF32(T * c.intermediateSize);
    this.cos = allocF32((T * c.headDim) / 2);
    this.sin = allocF32((T * c.headDim) / 2);
    this.logits = allocF32(c.vocabSize);
  }

  /** Give the buffers back to the kernel arena. */
  release(): void {
    for (const v of Object.values(this)) if (v instanceof Float32Array) release(v);
  }
}

/** Optional observers for calibration: they see intermediate tensors of each block. */
export interface ForwardHooks {
  /** Keys after RoPE and values of block `layer`, (T, numKvHeads·d) each. */
  onKv?(layer: number, keys: Float32Array, values: Float32Array, T: number): void;
  /** Keys of block `layer` before RoPE (after k_norm where the model has one), (T, numKvHeads·d). */
  onKeysBeforeRope?(layer: number, keys: Float32Array, T: number): void;
}

/** Where a forward pass spends its time (benchmarks turn it on with `transformer.profile = newProfile()`). */
export interface ForwardProfile {
  /** Matrix products: q/k/v/o projections, the MLP, the output head. */
  matmulMs: number;
  /** The caches' attention (attend). */
  attendMs: number;
  /** The caches' append (quantizing, packing, shrinking). */
  appendMs: number;
  /** Everything else: embedding, norms, RoPE, SwiGLU, residual adds. */
  otherMs: number;
  calls: number;
}

export function newProfile(): ForwardProfile {
  return { matmulMs: 0, attendMs: 0, appendMs: 0, otherMs: 0, calls: 0 };
}

export class Transformer {
  readonly invFreq: Float64Array;
  /** Scratch per arena index (one entry for a model in one memory). */
  private states = new Map<number, RunState>();
  /** Which arena each part lives in; caches for this model are made with it (createCache). */
  readonly placement: Placement;
  private disposed = false;
  /** Transforms folded into the weights since load (rep scales, rotations), for run settings. */
  readonly transforms: string[] = [];
  /** When set, forward() adds its time per part here (off by default: a clock read per product). */
  profile: ForwardProfile | null = null;

  constructor(readonly config: ModelConfig, readonly weights: Weights, placement?: Placement) {
    this.invFreq = ropeInvFreq(config);
    this.placement = placement ?? singlePlacement(config.numLayers, arenaOf(weights.embed.data)?.index ?? 0);
  }

  /** Does the model span more than one WebAssembly memory? */
  get multiMemory(): boolean {
    return placementArenas(this.placement).length > 1;
  }

  /** Give the weights and scratch back to the kernel arena; the model cannot run after. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.releaseScratch();
    releaseWeights(this.weights);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Give the forward scratch (sized for the largest chunk seen) back; the next forward takes what it needs. */
  releaseScratch(): void {
    for (const s of this.states.values()) s.release();
    this.states.clear();
  }

  /** The scratch in arena `arena` for chunks of T tokens (allocated in that arena). */
  private stateFor(arena: number, T: number): RunState {
    let s = this.states.get(arena);
    if (!s || s.tokens < T) {
      s?.release();
      this.states.delete(arena);
      s = withArena(arena, () => new RunState(T, this.config));
      this.states.set(arena, s);
    }
    return s;
  }

  /** Carry the chunk's residual stream and RoPE tables from one arena's scratch to another's. */
  private crossTo(arena: number, from: RunState, T: number): RunState {
    const to = this.stateFor(arena, T);
    const dim = this.config.hiddenSize;
    const half = (T * this.config.headDim) / 2;
    to.x.set(from.x.subarray(0, T * dim));
    to.cos.set(from.cos.subarray(0, half));
    to.sin.set(from.sin.subarray(0, half));
    return to;
  }

  /**
   * Run `tokens` at `positions` through the model, appending their K/V to `cache`.
   * Returns logits of the last token ("last": (vocab)), of every token ("all": (T, vocab)),
   * or an empty array ("none"). The returned buffer is scratch: copy it to keep it.
   */
  forward(tokens: ArrayLike<number>, positions: ArrayLike<number>, cache: KvCache, mode: LogitsMode = "last", hooks?: ForwardHooks): Float32Array {
    const c = this.config;
    const w = this.weights;
    const T = tokens.length;
    if (this.disposed) throw new UsageError("this model was disposed; load it again");
    if (T === 0) throw new UsageError("forward: no tokens");
    if (positions.length !== T) throw new UsageError(`forward: ${T} tokens but ${positions.length} positions`);
    const place = this.placement;
    if (this.multiMemory && cache.placement !== place) {
      throw new UsageError("this model spans several WebAssembly memories: make its cache with createCache(config, spec, transformer.placement), so each block's KV cache lives beside the block");
    }
    let arena = place.embedArena;
    let s = this.stateFor(arena, T);
    const prof = this.profile;
    const t0 = prof ? performance.now() : 0;
    let timed = 0; // ms of the parts measured on their own
    const mm = (out: Float32Array, x: Float32Array, m: Matrix, b: Float32Array | null, rows: number) => {
      if (!prof) return matmulMatrix(out, x, m, b, rows);
      const a = performance.now();
      matmulMatrix(out, x, m, b, rows);
      const dt = performance.now() - a;
      prof.matmulMs += dt;
      timed += dt;
    };
    const dim = c.hiddenSize;
    const d = c.headDim;
    const inter = c.intermediateSize;

    // token embeddings
    for (let t = 0; t < T; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new UsageError(`token id ${id} is outside the vocabulary (0 … ${c.vocabSize - 1})`);
      matrixRow(w.embed, id, s.x.subarray(t * dim, (t + 1) * dim));
    }
    ropeTables(this.invFreq, positions, s.cos, s.sin);

    for (let l = 0; l < c.numLayers; l++) {
      const lw = w.layers[l];
      // a block computes in its own arena: carry the residual stream over where a range starts
      if (place.blockArena[l] !== arena) {
        arena = place.blockArena[l];
        s = this.crossTo(arena, s, T);
      }
      // attention: norm, q/k/v projections, (Qwen3) per-head norm of q and k, RoPE on q and k
      rmsnorm(s.xb, s.x, lw.attnNorm, T, dim, c.rmsNormEps);
      mm(s.q, s.xb, lw.wq, lw.bq, T);
      mm(s.k, s.xb, lw.wk, lw.bk, T);
      mm(s.v, s.xb, lw.wv, lw.bv, T);
      if (lw.qNorm) headRmsnorm(s.q, lw.qNorm, T, c.numHeads, d, c.rmsNormEps);
      if (lw.kNorm) headRmsnorm(s.k, lw.kNorm, T, c.numKvHeads, d, c.rmsNormEps);
      const layerCache = cache.layers[l];
      if (layerCache.keysBeforeRope) s.kPre.set(s.k.subarray(0, T * c.numKvHeads * d));
      hooks?.onKeysBeforeRope?.(l, s.k, T);
      rope(s.q, s.cos, s.sin, T, c.numHeads, d);
      rope(s.k, s.cos, s.sin, T, c.numKvHeads, d);
      hooks?.onKv?.(l, s.k, s.v, T);
      // the cache stores K/V and computes attention from what it holds (growing in the block's arena)
      const st = s;
      withArena(arena, () => {
        if (prof) {
          const a = performance.now();
          layerCache.append(layerCache.keysBeforeRope ? st.kPre : st.k, st.v, T, { positions, hidden: st.x, hiddenSize: dim });
          const b = performance.now();
          layerCache.attend(st.q, T, st.att);
          const e = performance.now();
          prof.appendMs += b - a;
          prof.attendMs += e - b;
          timed += e - a;
        } else {
          layerCache.append(layerCache.keysBeforeRope ? st.kPre : st.k, st.v, T, { positions, hidden: st.x, hiddenSize: dim });
          layerCache.attend(st.q, T, st.att);
        }
      });
      mm(s.proj, s.att, lw.wo, lw.bo, T);
      addInPlace(s.x, s.proj, T * dim);
      // SwiGLU MLP
      rmsnorm(s.xb, s.x, lw.ffnNorm, T, dim, c.rmsNormEps);
      mm(s.gate, s.xb, lw.wGate, null, T);
      mm(s.up, s.xb, lw.wUp, null, T);
      swiglu(s.gate, s.up, T * inter);
      mm(s.proj, s.gate, lw.wDown, null, T);
      addInPlace(s.x, s.proj, T * dim);
    }

    if (mode === "none") {
      if (prof) this.closeProfile(prof, t0, timed);
      return new Float32Array(0);
    }
    if (place.headArena !== arena) {
      arena = place.headArena;
      s = this.crossTo(arena, s, T);
    }
    const first = mode === "last" ? T - 1 : 0;
    const rows = T - first;
    if (s.logits.length < rows * c.vocabSize) {
      release(s.logits);
      s.logits = withArena(arena, () => allocF32(rows * c.vocabSize));
    }
    rmsnorm(s.xb, s.x.subarray(first * dim), w.finalNorm, rows, dim, c.rmsNormEps);
    mm(s.logits, s.xb, w.lmHead, null, rows);
    if (prof) this.closeProfile(prof, t0, timed);
    return s.logits.subarray(0, rows * c.vocabSize);
  }

  private closeProfile(prof: ForwardProfile, t0: number, timed: number): void {
    prof.otherMs += performance.now() - t0 - timed;
    prof.calls++;
  }
}
