// Building the KV cache a run asks for, by method name, and the weight transforms a method
// folds into the model (RotateKV's rotations).

import crypto from "node:crypto";
import { foldRotateKv, validateRotateKv } from "../model/fold-rotatekv.js";
import { UsageError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { Transformer } from "../model/forward.js";
import type { Placement } from "../model/placement.js";
import { withLayerArenas } from "../tensor/memory.js";
import { RopeTable, ropeInvFreq } from "../model/rope.js";
import { isBitWidth } from "../quant/quantizer.js";
import { MB } from "./budgets.js";
import { createFullPrecisionCache, type KvDtype } from "./full.js";
import { createKiviCache } from "./kivi.js";
import type { RotateKvOrder } from "../quant/rotation.js";
import type { StepOrder } from "./pending.js";
import { createMikvCache, MIKV_DEFAULT_SINK_TOKENS } from "./mikv.js";
import { createProgressiveCache, defaultProgressiveOptions, type ProgressiveOptions } from "./progressive.js";
import { createRotateKvCache, DEFAULT_PIVOTS, type PivotRule } from "./rotatekv.js";
import { createRtnCache } from "./rtn.js";
import { rotateCache } from "./rotated.js";
import { createTurboQuantCache } from "./turboquant.js";
import type { KvCache } from "../model/kv-cache.js";

export const METHODS = ["original", "pm-kvq", "rtn", "kivi", "mikv", "rotatekv", "turboquant"] as const;
export type Method = (typeof METHODS)[number];

export interface CacheSpec {
  method: Method;
  /** original: keys and values as float32 (default) or float16. */
  kvDtype?: KvDtype;
  /** pm-kvq: per-block budgets in MB. */
  budgetsMB?: number[];
  /** pm-kvq: sink/window/init bits, group size, backend (defaults: the original's). */
  progressive?: Partial<ProgressiveOptions>;
  /** Baselines: key and value bits (default 4). */
  kBits?: number;
  vBits?: number;
  /** Quantization group size (default: 128, or head_dim when smaller). */
  groupSize?: number;
  /** MiKV: most-attended tokens kept at full precision. */
  mikvSinkTokens?: number;
  /** RotateKV: Hadamard block over kv_hidden (default kv_hidden), channel reorder, pivot tokens. */
  rotatekv?: { kHadDim?: number; reorder?: Int32Array[] | null; order?: RotateKvOrder; nPivotTokens?: number; pivotRule?: PivotRule };
  /** pm-kvq: hold K (after RoPE) and V of every head Hadamard-rotated (cache/rotated.ts). */
  rotate?: "hadamard" | null;
  /**
   * pm-kvq, rtn, kivi: when a call's tokens are quantized (pending.ts) — "original" (default:
   * after the call's attention, as the original) or "quantize-first".
   */
  stepOrder?: StepOrder;
}

/** Methods whose step order is a setting (the others have one order, the original's: mikv, rotatekv; turboquant quantizes first). */
export const STEP_ORDER_METHODS: readonly Method[] = ["pm-kvq", "rtn", "kivi"];

function baselineBits(spec: CacheSpec): { kBits: number; vBits: number } {
  const kBits = spec.kBits ?? 4;
  const vBits = spec.vBits ?? 4;
  for (const [name, b] of [["k-bits", kBits], ["v-bits", vBits]] as const) {
    if (!isBitWidth(b)) throw new UsageError(`--${name} must be one of 16, 8, 4, 2, 1 (got ${b})`);
  }
  return { kBits, vBits };
}

/** TurboQuant's codebooks take any bit-width from 1 to 8 (3 included). */
function turboBits(spec: CacheSpec): { kBits: number; vBits: number } {
  const kBits = spec.kBits ?? 4;
  const vBits = spec.vBits ?? 4;
  for (const [name, b] of [["k-bits", kBits], ["v-bits", vBits]] as const) {
    if (!Number.isInteger(b) || b < 1 || b > 8) throw new UsageError(`--method turboquant: --${name} must be 1 … 8 (got ${b})`);
  }
  return { kBits, vBits };
}

function rotateKvTransform(config: ModelConfig, spec: CacheSpec) {
  return { kHadDim: spec.rotatekv?.kHadDim ?? config.numKvHeads * config.headDim, reorder: spec.rotatekv?.reorder ?? null, order: spec.rotatekv?.order ?? "rotate-first" };
}

const folded = new WeakMap<Transformer, string>();

/**
 * Fold the weight transforms a method needs into the model (RotateKV only; a no-op for the
 * others). Idempotent for the same transform; a second, different one is refused.
 */
export function prepareModelForMethod(tf: Transformer, spec: CacheSpec): void {
  if (spec.method !== "rotatekv") return;
  const t = rotateKvTransform(tf.config, spec);
  const key = JSON.stringify({ k: t.kHadDim, r: t.reorder?.map((p) => Array.from(p)) ?? null, o: t.order });
  const done = folded.get(tf);
  if (done === key) return;
  if (done !== undefined) throw new UsageError("this model already carries another RotateKV rotation; load it again");
  foldRotateKv(tf.weights, tf.config, t);
  folded.set(tf, key);
  tf.transforms.push(`rotatekv:k_had_dim=${t.kHadDim},reorder=${t.reorder ? `${hashPermutations(t.reorder)},${t.order}` : "none"}`);
}

function hashPermutations(perms: Int32Array[]): string {
  const h = crypto.createHash("sha256");
  for (const p of perms) h.update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  return h.digest("hex").slice(0, 16);
}

export type CacheSettingValue = string | number | boolean | null | number[];

/**
 * The settings of a cache spec that change its results, with defaults resolved, as flat
 * `kv.*` keys — only those the method reads (for run settings, eval/settings.ts).
 */
export function cacheSettings(config: ModelConfig, spec: CacheSpec): Record<string, CacheSettingValue> {
  const groupSize = spec.groupSize ?? Math.min(128, config.headDim);
  const out: Record<string, CacheSettingValue> = {};
  switch (spec.method) {
    case "original":
      out["kv.dtype"] = spec.kvDtype ?? "f32";
      break;
    case "pm-kvq": {
      const o = { ...defaultProgressiveOptions(config.headDim), groupSize, ...spec.progressive };
      out["kv.budgets_mb"] = spec.budgetsMB ?? null;
      out["kv.backend"] = o.backend;
      out["kv.group_size"] = o.groupSize;
      out["kv.n_sink_token"] = o.nSinkTokens;
      out["kv.n_sink_token_bits"] = o.sinkBits;
      out["kv.n_window_token"] = o.nWindowTokens;
      out["kv.n_window_token_bits"] = o.windowBits;
      out["kv.n_init_kv_bits"] = o.initBodyBits;
      if (spec.rotate) out["kv.rotate"] = spec.rotate;
      out["kv.step_order"] = spec.stepOrder ?? "original";
      break;
    }
    case "turboquant": {
      const { kBits, vBits } = turboBits(spec);
      out["kv.k_bits"] = kBits;
      out["kv.v_bits"] = vBits;
      break;
    }
    default: {
      const { kBits, vBits } = baselineBits(spec);
      out["kv.k_bits"] = kBits;
      out["kv.v_bits"] = vBits;
      out["kv.group_size"] = groupSize;
      if (spec.method === "rtn" || spec.method === "kivi") out["kv.step_order"] = spec.stepOrder ?? "original";
      if (spec.method === "mikv") out["kv.n_sink_tokens"] = spec.mikvSinkTokens ?? MIKV_DEFAULT_SINK_TOKENS;
      if (spec.method === "rotatekv") {
        const t = rotateKvTransform(config, spec);
        out["kv.k_had_dim"] = t.kHadDim;
        out["kv.reorder"] = t.reorder ? hashPermutations(t.reorder) : null;
        out["kv.reorder_order"] = t.reorder ? t.order : null;
        out["kv.pivot_rule"] = spec.rotatekv?.pivotRule ?? "elements";
        out["kv.n_pivot_token"] = spec.rotatekv?.nPivotTokens ?? DEFAULT_PIVOTS;
      }
    }
  }
  return out;
}

/**
 * The cache a spec asks for. For a model in several WebAssembly memories pass its placement
 * (transformer.placement): each layer's storage is then made in the memory of its block.
 */
export function createCache(config: ModelConfig, spec: CacheSpec, placement?: Placement): KvCache {
  const cache = withLayerArenas(placement?.blockArena ?? null, () => buildCache(config, spec));
  cache.placement = placement ?? null;
  return cache;
}

function buildCache(config: ModelConfig, spec: CacheSpec): KvCache {
  const groupSize = spec.groupSize ?? Math.min(128, config.headDim);
  if (!Number.isInteger(groupSize) || groupSize < 1 || config.headDim % groupSize !== 0) {
    throw new UsageError(`--group-size ${groupSize} must divide head_dim ${config.headDim}`);
  }
  const L = config.numLayers;
  switch (spec.method) {
    case "original":
      return createFullPrecisionCache(config, L, spec.kvDtype ?? "f32");
    case "pm-kvq": {
      if (!spec.budgetsMB) throw new UsageError("--method pm-kvq needs --kv-budgets (MB per block, or a JSON file from `pmkvq allocate`)");
      if (spec.budgetsMB.length !== L) throw new UsageError(`${spec.budgetsMB.length} KV budgets for ${L} blocks`);
      const opts = { ...defaultProgressiveOptions(config.headDim), groupSize, ...spec.progressive, stepOrder: spec.stepOrder };
      const cache = createProgressiveCache(config, spec.budgetsMB.map((mb) => Math.floor(mb * MB)), opts);
      return spec.rotate === "hadamard" ? rotateCache(config, cache) : cache;
    }
    case "turboquant":
      return createTurboQuantCache(config, L, turboBits(spec));
    case "rtn":
      return createRtnCache(config, L, { ...baselineBits(spec), groupSize, stepOrder: spec.stepOrder });
    case "kivi":
      return createKiviCache(config, L, { ...baselineBits(spec), groupSize, stepOrder: spec.stepOrder });
    case "mikv":
      return createMikvCache(config, L, { ...baselineBits(spec), groupSize, nSinkTokens: spec.mikvSinkTokens ?? MIKV_DEFAULT_SINK_TOKENS });
    case "rotatekv": {
      const t = rotateKvTransform(config, spec);
      validateRotateKv(config, t);
      const rope = new RopeTable(ropeInvFreq(config));
      return createRotateKvCache(config, L, { ...t, ...baselineBits(spec), groupSize, nPivotTokens: spec.rotatekv?.nPivotTokens ?? DEFAULT_PIVOTS, pivotRule: spec.rotatekv?.pivotRule ?? "elements", rotateKeysOnAppend: config.qkNorm }, rope);
    }
    default:
      throw new UsageError(`unknown method ${JSON.stringify(spec.method)}; supported: ${METHODS.join(", ")}`);
  }
}
