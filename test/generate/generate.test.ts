// The generation loop: finish reasons, sampling defaults, reproducibility, streaming,
// and chat turns that extend the cache instead of re-reading the conversation.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { KvCache, type LayerKvCache } from "../../src/cache/types.js";
import { KvBudgetError, UsageError } from "../../src/errors.js";
import { ChatSession } from "../../src/generate/chat.js";
import { generate, resolveSampling } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { readStoriesReference, STORIES_DIR, tempDir } from "../helpers.js";

const ref = readStoriesReference();
const model = loadModel(STORIES_DIR);

test("streamed text equals the returned text", () => {
  let streamed = "";
  const r = generate(model, "Once upon a time", { maxNewTokens: 40, temperature: 0.9, seed: 1, onText: (d) => (streamed += d) });
  assert.equal(streamed, r.text);
  assert.equal(r.outputTokens, r.ids.length);
});

test("same seed → same sample; another seed → another", () => {
  const a = generate(model, "Once upon a time", { maxNewTokens: 40, temperature: 1, topP: 0.95, seed: 123 });
  const b = generate(model, "Once upon a time", { maxNewTokens: 40, temperature: 1, topP: 0.95, seed: 123 });
  const c = generate(model, "Once upon a time", { maxNewTokens: 40, temperature: 1, topP: 0.95, seed: 124 });
  assert.deepEqual(a.ids, b.ids);
  assert.notDeepEqual(a.ids, c.ids);
});

test("max new tokens gives finish reason length; 0 tokens is allowed", () => {
  const r = generate(model, ref.prompt_ids, { maxNewTokens: 5 });
  assert.equal(r.finishReason, "length");
  assert.deepEqual(r.ids, ref.greedy_ids.slice(0, 5));
  assert.equal(generate(model, ref.prompt_ids, { maxNewTokens: 0 }).outputTokens, 0);
});

test("an EOS id stops generation and is not part of the output", () => {
  // make the 4th greedy token an EOS id
  const r = generate(model, ref.prompt_ids, { maxNewTokens: 20, eosTokenIds: [ref.greedy_ids[3]] });
  assert.equal(r.finishReason, "stop");
  assert.equal(r.stopTokenId, ref.greedy_ids[3]);
  assert.deepEqual(r.ids, ref.greedy_ids.slice(0, 3));
});

test("sampling defaults come from generation_config.json when do_sample is set", () => {
  assert.deepEqual(resolveSampling(model), { temperature: 0, topP: 1 }, "stories260K has no sampling defaults → greedy");
  const sampled = { ...model, generation: { ...model.generation, doSample: true, temperature: 0.6, topP: 0.95 } };
  assert.deepEqual(resolveSampling(sampled), { temperature: 0.6, topP: 0.95 });
  assert.deepEqual(resolveSampling(sampled, 0.2, 0.5), { temperature: 0.2, topP: 0.5 });
  assert.throws(() => resolveSampling(model, -1), UsageError);
  assert.throws(() => resolveSampling(model, 1, 0), UsageError);
});

test("a cache that runs out of budget stops cleanly with kv_budget and the text so far", () => {
  const c = model.config;
  const inner = createFullPrecisionCache(c, c.numLayers);
  const limit = ref.prompt_ids.length + 7;
  const layers: LayerKvCache[] = inner.layers.map((l, i) => ({
    get length() {
      return l.length;
    },
    append(k, v, n) {
      if (l.length + n > limit) throw new KvBudgetError(`block ${i}: over budget`, i);
      l.append(k, v, n);
    },
    attend: (q, n, out) => l.attend(q, n, out),
    stats: () => l.stats(),
    reset: () => l.reset(),
  }));
  const r = generate(model, ref.prompt_ids, { maxNewTokens: 50, cache: new KvCache("limited", layers) });
  assert.equal(r.finishReason, "kv_budget");
  assert.deepEqual(r.ids, ref.greedy_ids.slice(0, 8));
  assert.equal(r.text, model.tokenizer.decode(ref.greedy_ids.slice(0, 8)));
  assert.match(r.kvBudgetMessage ?? "", /over budget/);
});

test("chat without a template: turn 2 extends the cache and equals a one-shot run", () => {
  const cache = createFullPrecisionCache(model.config, model.config.numLayers);
  const session = new ChatSession(model, cache);
  const t1 = session.send("Once upon a time", { maxNewTokens: 12 });
  const heldAfter1 = cache.length;
  assert.equal(heldAfter1, t1.promptTokens + t1.outputTokens, "the cache holds the prompt and the whole reply");
  const t2 = session.send("The dog", { maxNewTokens: 12 });
  assert.equal(t2.rebuilt, false);
  assert.equal(t2.promptTokens, t2.newPromptTokens);
  assert.equal(t2.newPromptTokens, model.tokenizer.encode("\nThe dog", false).length);
  // one-shot: the same tokens fed to a fresh cache
  const fed = [...model.tokenizer.encode("Once upon a time"), ...t1.ids, ...model.tokenizer.encode("\nThe dog", false)];
  assert.equal(fed.length, heldAfter1 + t2.newPromptTokens);
  const oneShot = generate(model, fed, { maxNewTokens: 12 });
  assert.deepEqual(t2.ids, oneShot.ids);
  session.reset();
  assert.equal(cache.length, 0);
});

test("chat with a template feeds only the new turn's text", () => {
  const dir = tempDir();
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json"]) fs.copyFileSync(path.join(STORIES_DIR, f), path.join(dir, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "tokenizer_config.json"), "utf8"));
  cfg.chat_template = "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(cfg));
  const m = loadModel(dir);
  const cache = createFullPrecisionCache(m.config, m.config.numLayers);
  const session = new ChatSession(m, cache);
  const t1 = session.send("Tell a story", { maxNewTokens: 10 });
  assert.equal(session.messages[1].role, "assistant");
  assert.equal(t1.promptTokens, m.tokenizer.encodeChat([{ role: "user", content: "Tell a story" }]).length);
  const t2 = session.send("More", { maxNewTokens: 10 });
  assert.equal(t2.rebuilt, false);
  const delta = `\nuser:More\nassistant:`;
  assert.equal(t2.newPromptTokens, m.tokenizer.encode(delta, false).length);
});

test("an empty prompt is rejected", () => {
  assert.throws(() => generate(model, [], {}), UsageError);
});
