// The README's library example, through the package's entry module (src/index.ts, what "pm-kvq"
// resolves to): stories260K's greedy continuation must equal the independent float64 reference,
// and the streamed text must be the decoded ids.

import assert from "node:assert/strict";
import { test } from "node:test";
import { loadModel, generate } from "../../src/index.js";
import { readStoriesReference, STORIES_DIR } from "../helpers.js";

test("README library example: loadModel + generate from the package entry", () => {
  const ref = readStoriesReference();
  const model = loadModel(STORIES_DIR);
  let streamed = "";
  const r = generate(model, ref.prompt_ids, { maxNewTokens: 64, onText: (t: string) => (streamed += t) });
  assert.deepEqual(r.ids, ref.greedy_ids);
  assert.equal(streamed, model.tokenizer.decode(r.ids));
  assert.equal(r.finishReason, "length");
  assert.ok(r.timings.decodeTokPerS > 0);
  assert.equal(r.kv.totalHeldBytes, r.kv.blocks.reduce((a: number, b: { heldBytes: number }) => a + b.heldBytes, 0));
  model.dispose();
});
