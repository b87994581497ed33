// tokenizer.json through @huggingface/tokenizers against llama2.c's own encoder (reference
// ids), and streaming decode against one-shot decode.

import assert from "node:assert/strict";
import { test } from "node:test";
import fs from "node:fs";
import path from "node:path";
import { TokenizerError } from "../../src/errors.js";
import { IncrementalDecoder, TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { readStoriesReference, REPO_ROOT, seededRandom, STORIES_DIR, tempDir } from "../helpers.js";
import { QWEN3_CHAT_TEMPLATE } from "./qwen3-template.js";

const ref = readStoriesReference();
const tok = TextTokenizer.fromDir(STORIES_DIR);

test("all 26 reference texts encode to llama2.c's ids", () => {
  for (const c of ref.tokenizer_cases) assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
});

test("streamed deltas concatenate to the one-shot decode (byte-fallback included)", () => {
  const rand = seededRandom(3);
  const cases = ref.tokenizer_cases.map((c) => c.ids.slice(1));
  for (let k = 0; k < 50; k++) cases.push(Array.from({ length: 40 }, () => 3 + Math.floor(rand() * 509)));
  for (const ids of cases) {
    const dec = new IncrementalDecoder(tok, [1]);
    let text = "";
    for (const id of ids) text += dec.push(id);
    const whole = tok.decode(ids);
    // deltas may hold back an incomplete UTF-8 tail; everything else must match exactly
    assert.ok(whole.startsWith(text), `${JSON.stringify(text)} vs ${JSON.stringify(whole)}`);
    assert.ok(whole.length - text.length <= 1 || whole.endsWith("\uFFFD"));
  }
});

test("the CJK/emoji reference cases stream out whole characters", () => {
  for (const c of ref.tokenizer_cases.filter((x) => /[^\x00-\x7f]/.test(x.text))) {
    const dec = new IncrementalDecoder(tok, [1]);
    let text = "";
    for (const id of c.ids.slice(1)) {
      const d = dec.push(id);
      assert.ok(!d.includes("\uFFFD"), `partial character emitted for ${JSON.stringify(c.text)}`);
      text += d;
    }
    assert.equal(text, tok.decode(c.ids.slice(1)));
  }
});

test("chat template renders messages; a model without one says so", () => {
  assert.equal(tok.hasChatTemplate, false);
  assert.throws(() => tok.applyChatTemplate([{ role: "user", content: "hi" }]), TokenizerError);
  const dir = tempDir();
  fs.copyFileSync(path.join(STORIES_DIR, "tokenizer.json"), path.join(dir, "tokenizer.json"));
  const cfg = JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "tokenizer_config.json"), "utf8"));
  cfg.chat_template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(cfg));
  const t2 = TextTokenizer.fromDir(dir);
  const text = t2.applyChatTemplate([{ role: "user", content: "Hello" }], true);
  assert.equal(text, "<s>[user] Hello\n[assistant]");
  assert.equal(t2.encodeChat([{ role: "user", content: "Hello" }]).filter((id) => id === 1).length, 1, "exactly one BOS");
});

test("missing or broken tokenizer files give a TokenizerError naming the file", () => {
  const dir = tempDir();
  assert.throws(() => TextTokenizer.fromDir(dir), (e: Error) => e instanceof TokenizerError && e.message.includes("tokenizer.json"));
  fs.writeFileSync(path.join(dir, "tokenizer.json"), "{not json");
  assert.throws(() => TextTokenizer.fromDir(dir), (e: Error) => e instanceof TokenizerError && e.message.includes(path.join(dir, "tokenizer.json")));
});

// tokenizer.json is checked before @huggingface/tokenizers sees it: every id bounded.
const DEFAULT_DIR = path.join(REPO_ROOT, "models", "default");
const defaultTokenizerJson = () => JSON.parse(fs.readFileSync(path.join(DEFAULT_DIR, "tokenizer.json"), "utf8"));

/** A model folder with the default model's tokenizer files, `edit` applied to tokenizer.json (text or object). */
function tokenizerDir(edit: (tj: Record<string, any>) => unknown = (tj) => tj, config?: string): string {
  const d = tempDir();
  const tj = edit(defaultTokenizerJson());
  fs.writeFileSync(path.join(d, "tokenizer.json"), typeof tj === "string" ? tj : JSON.stringify(tj));
  fs.writeFileSync(path.join(d, "tokenizer_config.json"), config ?? fs.readFileSync(path.join(DEFAULT_DIR, "tokenizer_config.json"), "utf8"));
  return d;
}

function assertTokenizerError(fn: () => unknown, parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TokenizerError, `expected a TokenizerError, got ${String(e)}`);
    for (const part of parts) assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
    return true;
  });
}

test("one vocabulary id of 2e9 is refused in milliseconds (it used to take about a minute of CPU)", () => {
  const d = tokenizerDir((tj) => ((tj.model.vocab.a = 2_000_000_000), tj));
  const t0 = performance.now();
  assertTokenizerError(() => TextTokenizer.fromDir(d), [path.join(d, "tokenizer.json"), 'token "a"', "id 2000000000", "[0, 16777216)"]);
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
});

test("bad ids, a missing model and a bad top level are TokenizerErrors naming the file", () => {
  const cases: [(tj: Record<string, any>) => unknown, string[]][] = [
    [(tj) => ((tj.model.vocab.a = -1), tj), ['token "a"', "id -1"]],
    [(tj) => ((tj.model.vocab.a = 1.5), tj), ['token "a"', "id 1.5"]],
    [(tj) => ((tj.model.vocab.a = "23"), tj), ['token "a"', 'id "23"']],
    [(tj) => ((tj.model.vocab.a = null), tj), ['token "a"', "id null"]],
    [(tj) => JSON.stringify(tj).replace('"a":23', `"a":${"[".repeat(1e5)}${"]".repeat(1e5)}`), ['token "a"', "id a list nested too deep to show"]],
    [(tj) => ((tj.added_tokens[1].id = 2 ** 31), tj), ['added token "<s>"', "id 2147483648"]],
    [(tj) => ((tj.added_tokens[1].id = undefined), tj), ['added token "<s>"', "has no id"]],
    [(tj) => ((tj.added_tokens[0] = 7), tj), ["added_tokens[0] must be an object"]],
    [(tj) => ((tj.added_tokens = { id: 0 }), tj), ['"added_tokens" must be a list']],
    [(tj) => ((tj.model.vocab = [["a", 0]]), (tj.model.type = "BPE"), tj), ["model.vocab must be an object"]],
    [(tj) => ((tj.model = { type: "Unigram", vocab: { a: 0 } }), tj), ["Unigram", "must be a list of [token, score]"]],
    [(tj) => ((tj.model = { type: "Unigram", vocab: [["a", 0], null] }), tj), ["model.vocab[1] must be [token, score]"]],
    [(tj) => ((tj.model = { type: "Unigram", vocab: [["a", 0]], unk_id: 3 }), tj), ["model.unk_id 3"]],
    [(tj) => ((tj.model.unk_token = "nope"), tj), ['model.unk_token "nope" is not a token of model.vocab']],
    [(tj) => ((tj.model.unk_token = ["<unk>"]), tj), ['model.unk_token ["<unk>"]']], // encoded "Once" to id undefined
    [(tj) => ((tj.model.unk_token = 2_000_000_000), tj), ["model.unk_token 2000000000"]],
    [(tj) => (delete tj.model, tj), ['"model" must be an object']],
    [(tj) => ((tj.model = null), tj), ['"model" must be an object']],
    [() => null, ["expected a JSON object"]],
    [() => "[1, 2]", ["expected a JSON object"]],
    [(tj) => JSON.stringify(tj).replace('"<unk>":0,', '"<unk>":0,"a":99,'), ['duplicate key "a" at $.model.vocab']],
  ];
  for (const [edit, parts] of cases) {
    const d = tokenizerDir(edit);
    assertTokenizerError(() => TextTokenizer.fromDir(d), [path.join(d, "tokenizer.json"), ...parts]);
  }
});

test("maxVocab bounds the ids: the default tokenizer's 587 ids pass at 587, not at 586", () => {
  const tj = defaultTokenizerJson();
  const ids = [...Object.values(tj.model.vocab as Record<string, number>), ...tj.added_tokens.map((t: { id: number }) => t.id)];
  const want = Math.max(...ids) + 1;
  assert.equal(want, 587);
  assert.equal(TextTokenizer.fromDir(DEFAULT_DIR, { maxVocab: want }).vocabSize, want);
  assertTokenizerError(() => TextTokenizer.fromDir(DEFAULT_DIR, { maxVocab: want - 1 }), ["id 586", "[0, 586)"]);
  assertTokenizerError(() => TextTokenizer.fromDir(tokenizerDir((t) => ({ ...t, model: { type: "Unigram", vocab: [["a", 0], ["b", -1], ["c", -2]] } })), { maxVocab: 2 }), ["3 tokens", "[0, 2)"]);
});

test("tokenizer_config.json: null or not an object is refused; null fields are as absent", () => {
  for (const text of ["null", "[]", "7"]) {
    const d = tokenizerDir(undefined, text);
    assertTokenizerError(() => TextTokenizer.fromDir(d), [path.join(d, "tokenizer_config.json"), "expected a JSON object"]);
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(DEFAULT_DIR, "tokenizer_config.json"), "utf8"));
  const nulls = Object.fromEntries(Object.keys(cfg).map((k) => [k, null]));
  const t = TextTokenizer.fromDir(tokenizerDir(undefined, JSON.stringify(nulls)));
  const bare = TextTokenizer.fromDir(tokenizerDir(undefined, "{}"));
  assert.deepEqual([t.bosToken, t.eosToken, t.hasChatTemplate], [null, null, false]);
  const text = "facts : a = 3 ; b = 4 .\nqueries : a + b";
  assert.deepEqual(t.encode(text), bare.encode(text));
  assert.ok(t.encode(text).length > 5);
});

test("chat_template of the wrong shape is a TokenizerError naming tokenizer_config.json", () => {
  for (const ct of [[null], 5, [{ name: "default" }], { template: "x" }]) {
    const cfg = { ...JSON.parse(fs.readFileSync(path.join(DEFAULT_DIR, "tokenizer_config.json"), "utf8")), chat_template: ct };
    const d = tokenizerDir(undefined, JSON.stringify(cfg));
    assertTokenizerError(() => TextTokenizer.fromDir(d), [path.join(d, "tokenizer_config.json"), '"chat_template" must be a string or a list']);
  }
  const cfg = { chat_template: "{% for m in messages %}" };
  const d = tokenizerDir(undefined, JSON.stringify(cfg));
  assertTokenizerError(() => TextTokenizer.fromDir(d), [path.join(d, "tokenizer_config.json"), "chat template does not parse"]);
});

// Qwen3's hybrid-thinking template through @huggingface/jinja; the expected strings are the
// outputs Qwen documents (model card, the Hugging Face blog on this template), written by hand.
test("Qwen3's chat template: generation prompt, enable_thinking false, earlier thinking dropped, tools", () => {
  const dir = tempDir();
  fs.copyFileSync(path.join(STORIES_DIR, "tokenizer.json"), path.join(dir, "tokenizer.json"));
  const cfg = JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "tokenizer_config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ ...cfg, chat_template: QWEN3_CHAT_TEMPLATE }));
  const qwen = TextTokenizer.fromDir(dir);
  const user = [{ role: "user" as const, content: "Hello" }];
  assert.equal(qwen.applyChatTemplate(user, true), "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
  assert.equal(qwen.applyChatTemplate(user, true, { enable_thinking: true }), "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
  assert.equal(qwen.applyChatTemplate(user, true, { enable_thinking: false }), "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // the last assistant turn gets a (possibly empty) think block; earlier turns lose their thinking
  assert.equal(
    qwen.applyChatTemplate([{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello" }], false),
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello<|im_end|>\n",
  );
  assert.equal(
    qwen.applyChatTemplate([
      { role: "system", content: "Be brief." },
      { role: "user", content: "q1" },
      { role: "assistant", content: "<think>\nr1\n</think>\n\na1" },
      { role: "user", content: "q2" },
    ]),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n",
  );
  const tool = { type: "function", function: { name: "get_weather", description: "Weather in a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } };
  const json = '{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}';
  const text = qwen.applyChatTemplate(
    [
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: "", tool_calls: [{ type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } }] },
      { role: "tool", content: '{"temp": 20}' },
    ],
    true,
    { tools: [tool] },
  );
  assert.equal(
    text,
    "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
      json +
      '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
      "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
      '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
      '<|im_start|>user\n<tool_response>\n{"temp": 20}\n</tool_response><|im_end|>\n' +
      "<|im_start|>assistant\n",
  );
});
