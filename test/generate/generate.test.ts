// The generation loop: finish reasons, sampling defaults, reproducibility, streaming,
// and chat turns that extend the cache instead of re-reading the conversation.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { KvCache, type LayerKvCache } from "../../src/model/kv-cache.js";
import { KvBudgetError, UsageError } from "../../src/errors.js";
import { ChatSession } from "../../src/generate/chat.js";
import { generate, resolveContextLimit, resolveSampling } from "../../src/generate/generate.js";
import { createCache } from "../../src/cache/factory.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { readStoriesReference, REPO_ROOT, STORIES_DIR, tempDir } from "../helpers.js";

const ref = readStoriesReference();
const model = loadModel(STORIES_DIR);
const DEFAULT_MODEL = path.join(REPO_ROOT, "models", "default");

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
  assert.deepEqual(resolveSampling(model), { temperature: 0, topP: 1, topK: 50 }, "stories260K has no sampling defaults → greedy (top-k: transformers' 50)");
  const sampled = { ...model, generation: { ...model.generation, doSample: true, temperature: 0.6, topP: 0.95, topK: 20 } };
  assert.deepEqual(resolveSampling(sampled), { temperature: 0.6, topP: 0.95, topK: 20 });
  assert.deepEqual(resolveSampling(sampled, 0.2, 0.5, 7), { temperature: 0.2, topP: 0.5, topK: 7 });
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
    dispose: () => l.dispose(),
    truncate: (n) => l.truncate(n),
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

test("a prompt past max_position_embeddings is refused; generation stops at the limit with 'context'", () => {
  const maxPos = model.config.maxPositionEmbeddings;
  const long = Array.from({ length: maxPos + 1 }, (_, i) => 1 + (i % 100));
  assert.throws(() => generate(model, long, { maxNewTokens: 1 }), /has 513 tokens, past the model's context of 512 tokens/);
  // a prompt that fills the context exactly gets one token (predicted at the last position) and stops
  const full = generate(model, long.slice(0, maxPos), { maxNewTokens: 10, eosTokenIds: [] });
  assert.equal(full.finishReason, "context");
  assert.equal(full.outputTokens, 1);
  // a smaller limit: the sequence (prompt + fed tokens) never passes it
  const r = generate(model, ref.prompt_ids, { maxNewTokens: 100, contextLimit: 20, eosTokenIds: [] });
  assert.equal(r.finishReason, "context");
  assert.equal(r.promptTokens + r.outputTokens, 21, "positions 0 … 19 fed, the 20th token predicted but not fed");
  assert.equal(r.kv.blocks[0].bodyTokens, 20);
  assert.deepEqual(r.ids, ref.greedy_ids.slice(0, r.ids.length), "the same tokens as an unlimited run");
});

test("--context-limit past max_position_embeddings: refused without RoPE scaling, a warning with it", () => {
  assert.throws(() => resolveContextLimit(model.config, 4096), /no RoPE scaling: positions past 512 were never trained/);
  assert.deepEqual(resolveContextLimit(model.config, 100), { limit: 100, warning: null });
  const scaled = { ...model.config, ropeScaling: { ...model.config.ropeScaling, type: "linear" as const, factor: 4 } };
  const w = resolveContextLimit(scaled, 2048);
  assert.equal(w.limit, 2048);
  assert.match(w.warning!, /goes past max_position_embeddings 512 \(RoPE scaling "linear", factor 4\)/);
});

test("chat refuses a turn that does not fit (the conversation is unchanged) and stops a reply at the limit", () => {
  const cache = createFullPrecisionCache(model.config, model.config.numLayers);
  const session = new ChatSession(model, cache, undefined, 40);
  const t1 = session.send("Once upon a time", { maxNewTokens: 100 });
  assert.equal(t1.finishReason, "context");
  assert.ok(cache.length <= 40);
  const before = session.messages.length;
  assert.throws(() => session.send("and then the dog ran to the park to play with the ball", { maxNewTokens: 5 }), /this turn has \d+ tokens \(after \d+ already in the cache\), past the model's context of 40/);
  assert.equal(session.messages.length, before, "a refused turn leaves the conversation as it was");
  session.reset();
  assert.equal(session.send("Once", { maxNewTokens: 3 }).finishReason, "length");
});

test("chat on the default model reuses the common token prefix (its template renders past turns differently)", () => {
  const m = loadModel(DEFAULT_MODEL);
  const cache = createFullPrecisionCache(m.config, m.config.numLayers);
  const session = new ChatSession(m, cache);
  const t1 = session.send("a = 3 , b = 5 , c = a + b", { maxNewTokens: 30 });
  assert.ok(t1.outputTokens > 0);
  const t2 = session.send("a = 2 , b = 4 , c = b + a", { maxNewTokens: 30 });
  const conversation = m.tokenizer.encodeChat(session.messages.slice(0, 3), true);
  assert.equal(t2.rebuilt, false, "the cache was not thrown away");
  assert.ok(t2.reusedTokens > 0);
  assert.equal(t2.reusedTokens + t2.newPromptTokens, conversation.length);
  assert.ok(t2.newPromptTokens < conversation.length, `fed ${t2.newPromptTokens} of ${conversation.length} tokens`);
  // the reply equals that of a fresh cache fed the whole conversation
  const oneShot = generate(m, conversation, { maxNewTokens: 30 });
  assert.deepEqual(t2.ids, oneShot.ids);
  m.dispose();
});

test("caches cut to a prefix equal a shorter run's cache (full precision, RTN) or keep what they can (KIVI, pm-kvq)", () => {
  const c = model.config;
  const ids = ref.long_case.ids.slice(0, 90);
  const feed = (cache: KvCache, toks: number[]) => model.transformer.forward(toks, toks.map((_, j) => cache.length + j), cache, "last").slice();
  for (const spec of [{ method: "original" as const }, { method: "rtn" as const, kBits: 4, vBits: 4 }]) {
    using a = createCache(c, spec);
    using b = createCache(c, spec);
    feed(a, ids);
    assert.equal(a.truncate(60), 60);
    const la = feed(a, ids.slice(60, 70));
    feed(b, ids.slice(0, 60));
    const lb = feed(b, ids.slice(60, 70));
    assert.deepEqual(Array.from(la), Array.from(lb), `${spec.method}: cut then fed = fed directly`);
  }
  using kivi = createCache(c, { method: "kivi", kBits: 2, vBits: 2, groupSize: 8 });
  feed(kivi, ids);
  assert.equal(kivi.truncate(61), 56, "KIVI keeps whole key blocks of G = 8 tokens");
  assert.equal(kivi.length, 56);
  using pm = createCache(c, { method: "pm-kvq", budgetsMB: new Array(c.numLayers).fill(0.004), progressive: { nWindowTokens: 8 } });
  feed(pm, ids);
  assert.equal(pm.truncate(45), 45);
  assert.equal(pm.length, 45);
  using mikv = createCache(c, { method: "mikv", kBits: 2, vBits: 2, mikvSinkTokens: 4 });
  feed(mikv, ids);
  assert.equal(mikv.truncate(45), 0, "MiKV cannot be cut (out-of-order evictions): it empties");
});
