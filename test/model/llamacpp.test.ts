// Cross-check against llama.cpp (node-llama-cpp) on the same model stored as GGUF:
// same tokenization and the same greedy continuation on several prompts.

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { getLlama, type Llama, type LlamaContext, type LlamaModel } from "node-llama-cpp";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { STORIES_DIR } from "../helpers.js";

const PROMPTS = ["Once upon a time", "Tom and his dog went to the park.", "The little bird was sad because", "One day, Lily found a"];
const NEW_TOKENS = 48;

const ours = loadModel(STORIES_DIR);
let llama: Llama;
let gguf: LlamaModel;
let context: LlamaContext;

before(async () => {
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  gguf = await llama.loadModel({ modelPath: path.join(STORIES_DIR, "stories260K.gguf") });
  // An F32 KV cache, so llama.cpp computes at the same precision as we do.
  context = await gguf.createContext({ contextSize: 512, threads: 1, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
});

after(async () => {
  await context?.dispose();
  await gguf?.dispose();
  await llama?.dispose();
});

async function llamaGreedy(ids: number[], n: number): Promise<number[]> {
  const seq = context.getSequence();
  try {
    const out: number[] = [];
    for await (const t of seq.evaluate(ids as never, { temperature: 0 })) {
      out.push(t as number);
      if (out.length >= n) break;
    }
    return out;
  } finally {
    seq.dispose();
  }
}

for (const prompt of PROMPTS) {
  test(`same tokens and greedy continuation as llama.cpp: ${JSON.stringify(prompt)}`, async () => {
    const ids = ours.tokenizer.encode(prompt);
    const theirIds = Array.from(gguf.tokenize(prompt)) as number[];
    assert.deepEqual(ids.slice(1), theirIds.filter((t) => t !== 1), "tokenization (BOS aside)");
    const theirs = await llamaGreedy(ids, NEW_TOKENS);
    const r = generate(ours, ids, { maxNewTokens: NEW_TOKENS, eosTokenIds: [] });
    assert.deepEqual(r.ids, theirs);
  });
}
