// Max keys (spec §6): per block, over all calibration tokens (positions interpolated),
// m[h][c] = max |K[h, t, c]|, |K[h, t, c + d/2]| for c < d/2 — the two channels RoPE rotates
// together share one value, so scaling by m commutes with RoPE.

import fs from "node:fs";
import { createFullPrecisionCache } from "../cache/full.js";
import { UsageError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { Transformer } from "../model/forward.js";
import { SafetensorsFile, writeSafetensors } from "../model/safetensors.js";

/** Per block a (numKvHeads × d/2) array of maxima, row-major by head. */
export function computeMaxKeys(tf: Transformer, samples: number[][], positions: number[], onSample?: (done: number, total: number) => void): Float32Array[] {
  const c = tf.config;
  const d = c.headDim;
  const half = d / 2;
  const maxKeys = Array.from({ length: c.numLayers }, () => new Float32Array(c.numKvHeads * half));
  samples.forEach((tokens, s) => {
    const cache = createFullPrecisionCache(c, c.numLayers);
    tf.forward(tokens, positions, cache, "none", {
      onKv: (layer, keys, _values, T) => {
        const m = maxKeys[layer];
        for (let t = 0; t < T; t++) {
          for (let h = 0; h < c.numKvHeads; h++) {
            const off = (t * c.numKvHeads + h) * d;
            for (let ch = 0; ch < half; ch++) {
              const a = Math.max(Math.abs(keys[off + ch]), Math.abs(keys[off + ch + half]));
              if (a > m[h * half + ch]) m[h * half + ch] = a;
            }
          }
        }
      },
    });
    onSample?.(s + 1, samples.length);
  });
  return maxKeys;
}

/** Max keys as safetensors: one tensor layers.{l}.max_keys (numKvHeads, d/2) per block. */
export function writeMaxKeys(file: string, maxKeys: Float32Array[], c: Pick<ModelConfig, "numKvHeads" | "headDim">, metadata: Record<string, string>): void {
  writeSafetensors(
    file,
    maxKeys.map((m, l) => ({ name: `layers.${l}.max_keys`, dtype: "F32" as const, shape: [c.numKvHeads, c.headDim / 2], data: m })),
    { format: "pm-kvq-max-keys", ...metadata },
  );
}

export function readMaxKeys(file: string, c: ModelConfig): { maxKeys: Float32Array[]; metadata: Record<string, string> } {
  if (!fs.existsSync(file)) throw new UsageError(`--max-keys-path ${file}: no such file (make it with \`pmkvq max-keys\`)`);
  const f = new SafetensorsFile(file);
  try {
    const maxKeys = Array.from({ length: c.numLayers }, (_, l) => {
      const name = `layers.${l}.max_keys`;
      if (!f.header.tensors.has(name)) throw new UsageError(`${file}: no tensor "${name}" (made for another model?)`);
      const shape = f.info(name).shape;
      if (shape.length !== 2 || shape[0] !== c.numKvHeads || shape[1] !== c.headDim / 2) throw new UsageError(`${file}: "${name}" has shape ${JSON.stringify(shape)}, the model needs [${c.numKvHeads}, ${c.headDim / 2}]`);
      const m = f.readF32(name);
      const bad = m.findIndex((v) => !Number.isFinite(v) || v < 0);
      if (bad >= 0) throw new UsageError(`${file}: "${name}" value ${bad} is ${m[bad]}; max keys are maxima of |K|, finite and ≥ 0`);
      return m;
    });
    return { maxKeys, metadata: f.header.metadata };
  } finally {
    f.close();
  }
}
