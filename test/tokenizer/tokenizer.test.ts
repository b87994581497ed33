// tokenizer.json through @huggingface/tokenizers against llama2.c's own encoder (reference
// ids), and streaming decode against one-shot decode.

import assert from "node:assert/strict";
import { test } from "node:test";
import fs from "node:fs";
import path from "node:path";
import { TokenizerError } from "../../src/errors.js";
import { IncrementalDecoder, TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { readStoriesReference, seededRandom, STORIES_DIR, tempDir } from "../helpers.js";

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
