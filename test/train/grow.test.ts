// Growing a model (train/grow.ts) keeps its function: a random 2-block model of head_dim 16
// grown to 5 blocks of head_dim 32 (or 64) with a larger vocabulary gives the same logits for
// every old word on the same text, through the ordinary forward pass (RoPE, GQA, softmax
// scale and all), while the new parts are there to train (identity blocks, zero key channels).

import assert from "node:assert/strict";
import { test } from "node:test";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { parseModelConfig } from "../../src/model/config.js";
import { Transformer } from "../../src/model/forward.js";
import { generateProblem } from "../../src/task/lookup-sum.js";
import { blockPlacement, growInto, ropeChannel } from "../../src/train/grow.js";
import { DEFAULT_SHAPE, hfConfig, initWeights, writeTaskTokenizer, type ModelShape } from "../../src/train/train.js";
import { tempDir } from "../helpers.js";

const small: ModelShape = { ...DEFAULT_SHAPE, layers: 2, hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96 };

function logits(tf: Transformer, ids: number[]): Float32Array {
  return Float32Array.from(tf.forward(ids, ids.map((_, i) => i), createFullPrecisionCache(tf.config, tf.config.numLayers), "all"));
}

test("where old blocks and old RoPE channels go", () => {
  assert.deepEqual(blockPlacement(2, 6), [0, 5]);
  assert.deepEqual(blockPlacement(3, 7), [0, 3, 6]);
  // head_dim 8 → 16: pairs (j, j + 4) → (2j, 2j + 8), each turned at the same frequency
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((c) => ropeChannel(c, 8, 2)), [0, 2, 4, 6, 8, 10, 12, 14]);
  for (const [d, k] of [[16, 2], [32, 4]]) {
    for (let j = 0; j < d / 2; j++) {
      const theta = 10000;
      const oldFreq = theta ** (-(2 * j) / d);
      const nj = ropeChannel(j, d, k);
      assert.equal(ropeChannel(j + d / 2, d, k), nj + (k * d) / 2, "the pair stays a pair");
      assert.ok(Math.abs(theta ** (-(2 * nj) / (k * d)) - oldFreq) < 1e-15 * oldFreq + 1e-300);
    }
  }
});

for (const k of [2, 4]) {
  test(`a grown model (2 → 5 blocks, head_dim 16 → ${16 * k}, more words) computes the old model's logits`, () => {
    const oldTok = writeTaskTokenizer(tempDir());
    const newTok = writeTaskTokenizer(tempDir(), true);
    assert.ok(newTok.vocabSize > oldTok.vocabSize, "the countdown's word is new");
    const oldCfg = parseModelConfig(hfConfig(small, oldTok.vocabSize));
    const oldW = initWeights(oldCfg, 3);
    // norms off 1 so a misplaced norm shows
    for (const l of oldW.layers) l.attnNorm.forEach((_, i) => (l.attnNorm[i] = 0.5 + ((i * 7) % 10) / 10));
    const old = new Transformer(oldCfg, oldW);
    const bigShape = { ...small, layers: 5, headDim: 16 * k };
    const bigCfg = parseModelConfig(hfConfig(bigShape, newTok.vocabSize));
    const bigW = initWeights(bigCfg, 4);
    growInto({ fingerprint: "test", config: oldCfg, weights: oldW, tokenizer: oldTok }, bigW, bigCfg, newTok);
    const big = new Transformer(bigCfg, bigW);
    const p = generateProblem(7, { facts: 6, steps: 12 });
    const text = `${p.prompt} solution : ${p.solution}`;
    const ids = oldTok.encode(text, false);
    const newIds = newTok.encode(text, false);
    assert.deepEqual(newIds.map((i) => newTok.idToToken(i)), ids.map((i) => oldTok.idToToken(i)), "the same words");
    const a = logits(old, ids);
    const b = logits(big, newIds);
    const V = oldCfg.vocabSize;
    const W = bigCfg.vocabSize;
    let worst = 0;
    let scale = 0;
    for (let t = 0; t < ids.length; t++) {
      for (let id = 0; id < V; id++) {
        const nid = newTok.tokenToId(oldTok.idToToken(id)!)!;
        worst = Math.max(worst, Math.abs(a[t * V + id] - b[t * W + nid]));
        scale = Math.max(scale, Math.abs(a[t * V + id]));
      }
    }
    assert.ok(worst < 1e-5 * Math.max(1, scale), `logits differ by ${worst} (scale ${scale})`);
    // the new parts can learn: identity blocks have random q/k/v and FFN inputs, zero outputs
    const ident = bigW.layers[1];
    assert.ok((ident.wo.data as Float32Array).every((x) => x === 0) && (ident.wDown.data as Float32Array).some(() => true));
    assert.ok((ident.wq.data as Float32Array).some((x) => x !== 0));
    old.dispose();
    big.dispose();
  });
}

test("shapes that cannot be grown exactly are refused, naming why", () => {
  const tok = writeTaskTokenizer(tempDir());
  const oldCfg = parseModelConfig(hfConfig(small, tok.vocabSize));
  const oldW = initWeights(oldCfg, 1);
  for (const [shape, why] of [
    [{ ...small, hidden: 128 }, /hidden size 64 → 128/],
    [{ ...small, headDim: 24 }, /head_dim 16 → 24/],
    [{ ...small, layers: 1 }, /2 → 1 blocks/],
    [{ ...small, kvHeads: 1 }, /heads 4\/2 → 4\/1/],
  ] as [ModelShape, RegExp][]) {
    const cfg = parseModelConfig(hfConfig(shape, tok.vocabSize));
    assert.throws(() => growInto({ fingerprint: "t", config: oldCfg, weights: oldW, tokenizer: tok }, initWeights(cfg, 2), cfg, tok), why);
  }
});
