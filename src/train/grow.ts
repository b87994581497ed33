// Growing a trained model into a larger one that computes the same function (issue 18): the
// lookups a small model found are kept while the larger one trains on. Three moves, each exact:
//
// - more blocks: the old blocks keep their order, spread over the new depth; every other block
//   starts as the identity (o_proj and down_proj zero, so it adds nothing to the residual; the
//   rest random, so its gradients are not zero);
// - wider heads (head_dim × k, same head counts): RoPE rotates channel pairs (i, i + d/2) at
//   θ^(−2i/d), so old pair j turns at the frequency of new pair k·j — old query/key channel j
//   goes to k·j (and j + d/2 to k·j + kd/2); the other key channels are zero (so the other query
//   channels add nothing to a score), and queries are scaled by √k for the 1/√d of the softmax.
//   Value channel c stays c, o_proj reads the others with zero weights;
// - more words: rows of the embedding and the output head move by word, new words keep their
//   initialisation (their logits are new, the old words' logits are the old ones).

import { UsageError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { Matrix } from "../tensor/matrix.js";
import type { LayerWeights, Weights } from "../model/weights.js";
import type { TextTokenizer } from "../tokenizer/tokenizer.js";

export interface GrowSource {
  /** What identifies the source (a resume must grow from the same model). */
  fingerprint: string;
  config: ModelConfig;
  weights: Weights;
  tokenizer: TextTokenizer;
}

const f32 = (m: Matrix, what: string): Float32Array => {
  if (m.dtype !== "f32") throw new UsageError(`growing needs float32 weights (${what} is ${m.dtype})`);
  return m.data as Float32Array;
};

/** Which new block each old block becomes: the first stays first, the last last, the rest spread between. */
export function blockPlacement(oldLayers: number, newLayers: number): number[] {
  if (oldLayers === 1) return [0];
  return Array.from({ length: oldLayers }, (_, i) => Math.round((i * (newLayers - 1)) / (oldLayers - 1)));
}

/** New channel of old channel c of a head, for RoPE'd queries and keys (old head_dim d, factor k). */
export function ropeChannel(c: number, d: number, k: number): number {
  const half = d / 2;
  return c < half ? k * c : k * (c - half) + k * half;
}

function checkShapes(from: ModelConfig, to: ModelConfig): number {
  const k = to.headDim / from.headDim;
  const why =
    to.hiddenSize !== from.hiddenSize ? `hidden size ${from.hiddenSize} → ${to.hiddenSize}` :
    to.numHeads !== from.numHeads || to.numKvHeads !== from.numKvHeads ? `heads ${from.numHeads}/${from.numKvHeads} → ${to.numHeads}/${to.numKvHeads} (query/KV)` :
    !Number.isInteger(k) || k < 1 ? `head_dim ${from.headDim} → ${to.headDim} (not a whole multiple)` :
    to.numLayers < from.numLayers ? `${from.numLayers} → ${to.numLayers} blocks` :
    to.intermediateSize !== from.intermediateSize ? `FFN ${from.intermediateSize} → ${to.intermediateSize}` :
    to.ropeTheta !== from.ropeTheta || from.ropeScaling.type !== "default" ? "its RoPE" :
    from.architecture !== "LlamaForCausalLM" || from.tieWordEmbeddings ? `${from.architecture}${from.tieWordEmbeddings ? " (tied)" : ""}` :
    null;
  if (why) throw new UsageError(`cannot grow this model into the new shape: ${why} (same hidden size, heads, FFN and RoPE; more blocks and whole multiples of head_dim only; an untied Llama)`);
  return k;
}

function growBlock(src: LayerWeights, dst: LayerWeights, from: ModelConfig, to: ModelConfig, k: number): void {
  const H = from.hiddenSize;
  const [d, nd] = [from.headDim, to.headDim];
  const rows = (m: Matrix, what: string) => ({ data: f32(m, what), cols: m.cols });
  const copyRow = (s: { data: Float32Array; cols: number }, r: number, t: Float32Array, tr: number, scale = 1) => {
    for (let c = 0; c < s.cols; c++) t[tr * s.cols + c] = s.data[r * s.cols + c] * scale;
  };
  const [wq, wk, wv, wo] = [rows(src.wq, "q_proj"), rows(src.wk, "k_proj"), rows(src.wv, "v_proj"), rows(src.wo, "o_proj")];
  const [dq, dk, dv, dwo] = [f32(dst.wq, "q_proj"), f32(dst.wk, "k_proj"), f32(dst.wv, "v_proj"), f32(dst.wo, "o_proj")];
  dk.fill(0);
  dwo.fill(0);
  for (let h = 0; h < from.numHeads; h++) for (let c = 0; c < d; c++) copyRow(wq, h * d + c, dq, h * nd + ropeChannel(c, d, k), Math.sqrt(k));
  for (let h = 0; h < from.numKvHeads; h++) {
    for (let c = 0; c < d; c++) {
      copyRow(wk, h * d + c, dk, h * nd + ropeChannel(c, d, k));
      copyRow(wv, h * d + c, dv, h * nd + c);
    }
  }
  // o_proj (H, heads·d): column h·d + c → h·nd + c
  const qOld = from.numHeads * d;
  const qNew = to.numHeads * nd;
  for (let r = 0; r < H; r++) for (let h = 0; h < from.numHeads; h++) for (let c = 0; c < d; c++) dwo[r * qNew + h * nd + c] = wo.data[r * qOld + h * d + c];
  dst.attnNorm.set(src.attnNorm);
  dst.ffnNorm.set(src.ffnNorm);
  for (const key of ["wGate", "wUp", "wDown"] as const) f32(dst[key], key).set(f32(src[key], key));
}

/**
 * Write `src` into freshly initialised weights `dst` of the larger shape `to`, so that the new
 * model's logits over the old words equal the old model's (up to float32 rounding).
 */
export function growInto(src: GrowSource, dst: Weights, to: ModelConfig, tok: TextTokenizer): void {
  const from = src.config;
  const k = checkShapes(from, to);
  const place = blockPlacement(from.numLayers, to.numLayers);
  dst.layers.forEach((l, i) => {
    const old = place.indexOf(i);
    if (old >= 0) growBlock(src.weights.layers[old], l, from, to, k);
    else {
      f32(l.wo, "o_proj").fill(0); // identity block: adds nothing to the residual at first
      f32(l.wDown, "down_proj").fill(0);
    }
  });
  dst.finalNorm.set(src.weights.finalNorm);
  const H = from.hiddenSize;
  const [oe, ol] = [f32(src.weights.embed, "embed"), f32(src.weights.lmHead, "lm_head")];
  const [ne, nl] = [f32(dst.embed, "embed"), f32(dst.lmHead, "lm_head")];
  for (let id = 0; id < from.vocabSize; id++) {
    const word = src.tokenizer.idToToken(id);
    const nid = word === undefined ? undefined : tok.tokenToId(word);
    if (nid === undefined) throw new UsageError(`cannot grow: the new vocabulary lacks the old word ${JSON.stringify(word)} (id ${id})`);
    ne.set(oe.subarray(id * H, (id + 1) * H), nid * H);
    nl.set(ol.subarray(id * H, (id + 1) * H), nid * H);
  }
}
