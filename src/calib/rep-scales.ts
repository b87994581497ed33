// Reparameterization of keys (spec §6): per-channel key scales k = [r, r] per KV head
// (r per RoPE pair), folded into the weights — rows of k_proj (and bias) divided by k, rows of
// q_proj (and bias) multiplied by k for every query head of the KV group — so q·k is unchanged.
// Qwen3 normalises each q/k head after its projection (which would undo a scaled k_proj), so
// there the scales go into q_norm/k_norm instead, widened to one weight slice per head.
// The scale search picks r = clamp(m^α, 1e-4, 1e4) per block from max keys m.

import { UsageError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { Weights } from "../model/weights.js";
import { SafetensorsFile, writeSafetensors } from "../model/safetensors.js";
import { scaleMatrixRows } from "../tensor/matrix.js";
import { allocF32, release } from "../tensor/memory.js";
import { checkInputFile } from "../util/paths.js";

export const REP_SCALE_MIN = 1e-4;
export const REP_SCALE_MAX = 1e4;

/** r = clamp(m^α, 1e-4, 1e4) for each (head, pair). */
export function repScalesFor(maxKeys: Float32Array, alpha: number): Float32Array {
  return maxKeys.map((m) => Math.min(REP_SCALE_MAX, Math.max(REP_SCALE_MIN, Math.pow(m, alpha))));
}

/** The per-channel key scale (numKvHeads × d): channels c and c + d/2 share r[c]. */
export function keyScaleVector(r: Float32Array, c: Pick<ModelConfig, "numKvHeads" | "headDim">): Float32Array {
  const d = c.headDim;
  const half = d / 2;
  const k = new Float32Array(c.numKvHeads * d);
  for (let h = 0; h < c.numKvHeads; h++) {
    for (let ch = 0; ch < half; ch++) {
      k[h * d + ch] = r[h * half + ch];
      k[h * d + ch + half] = r[h * half + ch];
    }
  }
  return k;
}

/** Fold per-block scales r (numKvHeads × d/2 each) into q_proj/k_proj weights and biases, in place. */
export function foldRepScales(w: Weights, c: ModelConfig, scales: Float32Array[]): void {
  if (scales.length !== c.numLayers) throw new UsageError(`rep scales for ${scales.length} blocks, the model has ${c.numLayers}`);
  const d = c.headDim;
  const group = c.numHeads / c.numKvHeads;
  scales.forEach((r, l) => {
    if (r.length !== (c.numKvHeads * d) / 2) throw new UsageError(`rep scales of block ${l}: ${r.length} values, expected ${(c.numKvHeads * d) / 2}`);
    if (r.some((v) => !Number.isFinite(v) || v <= 0)) throw new UsageError(`rep scales of block ${l}: every scale must be a finite number > 0`);
    const k = keyScaleVector(r, c);
    const inv = k.map((v) => 1 / v);
    const qFactors = new Float32Array(c.numHeads * d);
    for (let h = 0; h < c.numHeads; h++) qFactors.set(k.subarray(Math.floor(h / group) * d, (Math.floor(h / group) + 1) * d), h * d);
    const lw = w.layers[l];
    if (lw.qNorm && lw.kNorm) {
      lw.qNorm = perHeadScaled(lw.qNorm, qFactors, d);
      lw.kNorm = perHeadScaled(lw.kNorm, inv, d);
      return;
    }
    scaleMatrixRows(lw.wk, inv);
    scaleMatrixRows(lw.wq, qFactors);
    if (lw.bk) for (let i = 0; i < lw.bk.length; i++) lw.bk[i] *= inv[i];
    if (lw.bq) for (let i = 0; i < lw.bq.length; i++) lw.bq[i] *= qFactors[i];
  });
}

/** norm (d, shared by every head, or one slice per head) ⊙ factors (heads·d), as a new buffer; the old one is given back. */
function perHeadScaled(norm: Float32Array, factors: Float32Array, d: number): Float32Array {
  const out = allocF32(factors.length);
  for (let i = 0; i < factors.length; i++) out[i] = norm[norm.length === d ? i % d : i] * factors[i];
  release(norm);
  return out;
}

/**
 * Write rep scales as safetensors: layers.{l}.scales (kvHeads, d/2), alphas (L), the search's
 * mse (L, grid) and baseline_mse (L, without reparameterization).
 */
export function writeRepScales(
  file: string, scales: Float32Array[], alphas: number[], mse: Float64Array[], baselineMse: number[],
  c: ModelConfig, metadata: Record<string, string>,
): void {
  const half = c.headDim / 2;
  writeSafetensors(
    file,
    [
      ...scales.map((s, l) => ({ name: `layers.${l}.scales`, dtype: "F32" as const, shape: [c.numKvHeads, half], data: s })),
      { name: "alphas", dtype: "F32", shape: [alphas.length], data: Float32Array.from(alphas) },
      { name: "mse", dtype: "F32", shape: [mse.length, mse[0]?.length ?? 0], data: Float32Array.from(mse.flatMap((m) => [...m])) },
      { name: "baseline_mse", dtype: "F32", shape: [baselineMse.length], data: Float32Array.from(baselineMse) },
    ],
    { format: "pm-kvq-rep-scales", ...metadata },
  );
}

/** Read rep scales written by `pmkvq search-scales`, checked against the model's shape. */
export function readRepScales(file: string, c: ModelConfig): { scales: Float32Array[]; alphas: Float32Array } {
  checkInputFile(file, "--rep-scales");
  const f = new SafetensorsFile(file);
  try {
    const format = f.header.metadata.format;
    if (format && format !== "pm-kvq-rep-scales") throw new UsageError(`--rep-scales ${file}: this is a ${format} file, not rep scales from \`pmkvq search-scales\``);
    const scales: Float32Array[] = [];
    for (let l = 0; l < c.numLayers; l++) {
      const name = `layers.${l}.scales`;
      if (!f.header.tensors.has(name)) throw new UsageError(`--rep-scales ${file}: no tensor "${name}" (was it made for a model with ${c.numLayers} blocks?)`);
      const shape = f.info(name).shape;
      if (shape.length !== 2 || shape[0] !== c.numKvHeads || shape[1] !== c.headDim / 2) {
        throw new UsageError(`--rep-scales ${file}: "${name}" has shape ${JSON.stringify(shape)}, the model needs [${c.numKvHeads}, ${c.headDim / 2}]`);
      }
      const r = f.readF32(name);
      const bad = r.findIndex((v) => !Number.isFinite(v) || v <= 0);
      if (bad >= 0) {
        throw new UsageError(
          `--rep-scales ${file}: "${name}" value ${bad} (head ${Math.floor(bad / (c.headDim / 2))}, pair ${bad % (c.headDim / 2)}) is ${r[bad]}; ` +
            `a key scale must be a finite number > 0 (searched scales lie in [${REP_SCALE_MIN}, ${REP_SCALE_MAX}])`,
        );
      }
      scales.push(r);
    }
    const alphas = f.header.tensors.has("alphas") ? f.readF32("alphas") : new Float32Array(0);
    return { scales, alphas };
  } finally {
    f.close();
  }
}
