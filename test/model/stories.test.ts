// The engine against reference values for stories260K computed by an independent
// float64 port of llama2.c (../shared/models/stories260K/reference.json).

import assert from "node:assert/strict";
import { test } from "node:test";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { readStoriesReference, STORIES_DIR } from "../helpers.js";

const ref = readStoriesReference();
const model = loadModel(STORIES_DIR);

/** Mean next-token NLL of a sequence, teacher-forced, from all-position logits. */
function perTokenNll(ids: number[], chunk: number): number[] {
  const c = model.config;
  const cache = createFullPrecisionCache(c, c.numLayers);
  const nll: number[] = [];
  for (let start = 0; start < ids.length - 1; start += chunk) {
    const part = ids.slice(start, Math.min(start + chunk, ids.length - 1));
    const logits = model.transformer.forward(part, part.map((_, j) => start + j), cache, "all");
    for (let t = 0; t < part.length; t++) {
      const row = logits.subarray(t * c.vocabSize, (t + 1) * c.vocabSize);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      nll.push(Math.log(sum) + max - row[ids[start + t + 1]]);
    }
  }
  return nll;
}

test("prompt encodes to the reference ids", () => {
  assert.deepEqual(model.tokenizer.encode("Once upon a time"), ref.prompt_ids);
});

test("greedy generation reproduces the 64 reference ids and text", () => {
  const r = generate(model, ref.prompt_ids, { maxNewTokens: 64 });
  assert.deepEqual(r.ids, ref.greedy_ids);
  assert.equal(r.text, ref.greedy_text);
  assert.equal(r.finishReason, "length");
});

test("last-position logits within 1e-4 of the reference", () => {
  const cache = createFullPrecisionCache(model.config, model.config.numLayers);
  const logits = model.transformer.forward(ref.prompt_ids, ref.prompt_ids.map((_, i) => i), cache, "last");
  let maxDiff = 0;
  for (let i = 0; i < ref.logits_last.length; i++) maxDiff = Math.max(maxDiff, Math.abs(logits[i] - ref.logits_last[i]));
  assert.ok(maxDiff < 1e-4, `max |Δlogit| = ${maxDiff}`);
});

test("top-5 logits at every prompt position match", () => {
  const cache = createFullPrecisionCache(model.config, model.config.numLayers);
  const V = model.config.vocabSize;
  const logits = model.transformer.forward(ref.prompt_ids, ref.prompt_ids.map((_, i) => i), cache, "all");
  ref.top5_by_position.forEach((top5, t) => {
    const row = Array.from(logits.subarray(t * V, (t + 1) * V));
    const ours = row.map((v, id) => [id, v] as [number, number]).sort((a, b) => b[1] - a[1]).slice(0, 5);
    assert.deepEqual(ours.map((x) => x[0]), top5.map((x) => x[0]), `position ${t}`);
    ours.forEach(([, v], k) => assert.ok(Math.abs(v - top5[k][1]) < 1e-4, `position ${t} rank ${k}: ${v} vs ${top5[k][1]}`));
  });
});

test("mean NLL of the 300-token case within 1e-4 (one-shot and chunked prefill)", () => {
  const lc = ref.long_case;
  for (const chunk of [300, 37]) {
    const nll = perTokenNll(lc.ids, chunk);
    assert.equal(nll.length, lc.n_predicted);
    const mean = nll.reduce((a, b) => a + b, 0) / nll.length;
    assert.ok(Math.abs(mean - lc.mean_nll) < 1e-4, `chunk ${chunk}: mean NLL ${mean} vs ${lc.mean_nll}`);
    const worst = Math.max(...nll.map((v, i) => Math.abs(v - lc.nll_per_token[i])));
    assert.ok(worst < 1e-3, `chunk ${chunk}: worst per-token NLL difference ${worst}`);
  }
});

test("greedy from BOS alone reproduces llama2.c's 200-token story", () => {
  const bos = ref.bos_only_greedy_200 as unknown as { ids: number[]; text: string };
  const r = generate(model, [1], { maxNewTokens: 200, eosTokenIds: [] });
  assert.deepEqual([1, ...r.ids], bos.ids);
});

test("the model stops on BOS from generation_config.json, after the reference continuation", () => {
  assert.deepEqual([...model.generation.eosTokenIds].sort(), [1, 2]);
  // Greedy ends the story by predicting BOS (1) some time after the 300-token reference case.
  const r = generate(model, ref.prompt_ids, { maxNewTokens: 600 });
  assert.equal(r.finishReason, "stop");
  assert.equal(r.stopTokenId, 1);
  assert.deepEqual(r.ids.slice(0, ref.long_case.ids.length - ref.prompt_ids.length), ref.long_case.ids.slice(ref.prompt_ids.length));
  assert.ok(!r.ids.includes(1) && !r.ids.includes(2));
});
