// The command line as a user types it: flag parsing (ours and the original's spellings),
// errors with exit codes, and real runs of the built `pmkvq` binary.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { normalizeArgv } from "../../src/cli/args.js";
import { parseCLI } from "../../src/cli/main.js";
import fs from "node:fs";
import { readStoriesReference, REPO_ROOT, STORIES_DIR, tempDir } from "../helpers.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { generate } from "../../src/generate/generate.js";
import { writeRepScales } from "../../src/calib/rep-scales.js";

const BIN = path.join(REPO_ROOT, "bin", "pmkvq.js");
const ref = readStoriesReference();

function pmkvq(args: string[], input?: string) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", input, timeout: 60000 });
}

test("the original's snake_case spellings map to ours", () => {
  assert.deepEqual(normalizeArgv(["--model_path", "m", "--n_sink_token=1", "--save_path", "x", "--prompt", "a_b"]), [
    "--model", "m", "--n-sink-token=1", "--out", "x", "--prompt", "a_b",
  ]);
  assert.deepEqual(normalizeArgv(["--", "--not_a_flag"]), ["--", "--not_a_flag"]);
});

test("parseCLI returns typed flags with defaults", async () => {
  const { command, flags } = await parseCLI(["generate", "--model_path", "/m", "--prompt", "hi", "--max_new_tokens", "7", "--top-p", "0.9"]);
  assert.equal(command, "generate");
  assert.equal(flags.model, "/m");
  assert.equal(flags.maxNewTokens, 7);
  assert.equal(flags.topP, 0.9);
  assert.equal(flags.seed, 0);
  assert.equal(flags.temperature, undefined);
});

test("bad flag values are rejected by the parser", async () => {
  for (const bad of [["--max-new-tokens", "x"], ["--max-new-tokens", "-1"], ["--top-p", "0"], ["--top-p", "1.5"], ["--temperature", "-0.1"], ["--seed", "1.5"]]) {
    await assert.rejects(parseCLI(["generate", "--model", "m", "--prompt", "p", ...bad]), bad.join(" "));
  }
  await assert.rejects(parseCLI(["generate", "--prompt", "p"]), /--model/);
  // the task's limits (every fact is a vocabulary word) are the flags' bounds, before anything is written
  for (const bad of [["--facts", "33"], ["--facts", "0"], ["--task-steps", "2"], ["--task-steps", "101"]]) {
    await assert.rejects(parseCLI(["train", "--out", "o", ...bad]), bad.join(" "));
    await assert.rejects(parseCLI(["demo", ...bad]), bad.join(" "));
  }
  assert.equal((await parseCLI(["train", "--out", "o", "--facts", "32", "--task-steps", "100"])).flags.facts, 32);
});

test("pmkvq generate --json reproduces the reference greedy ids", () => {
  const r = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "Once upon a time", "--max-new-tokens", "64", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.ids, ref.greedy_ids);
  assert.equal(out.text, ref.greedy_text);
  assert.equal(out.finishReason, "length");
  assert.equal(out.promptTokens, 5);
  assert.equal(out.outputTokens, 64);
  for (const k of ["prefillMs", "decodeMs", "prefillTokPerS", "decodeTokPerS"]) assert.equal(typeof out.timings[k], "number");
  assert.equal(out.kv.blocks.length, 5);
});

test("pmkvq generate streams text to stdout and a summary to stderr", () => {
  const r = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "Once upon a time", "--max-new-tokens", "64"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, ref.greedy_text + "\n");
  assert.match(r.stderr, /decode [\d.]+ tok\/s/);
});

test("user errors exit with code 2 or 1 and a message that names the problem", () => {
  const missing = pmkvq(["generate", "--model", "/no/such/model", "--prompt", "x"]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /\/no\/such\/model: not a model folder/);
  const both = pmkvq(["generate", "--model", STORIES_DIR]);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /--prompt/);
  const badFlag = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--top-p", "7"]);
  assert.equal(badFlag.status, 1);
  assert.match(badFlag.stderr, /--top-p/);
  const unknown = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--frobnicate"]);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /unknown option '--frobnicate'/);
});

test("--help explains every flag", () => {
  const r = pmkvq(["generate", "--help"]);
  assert.equal(r.status, 0);
  for (const f of ["--model", "--prompt", "--prompt-file", "--chat", "--max-new-tokens", "--temperature", "--top-p", "--seed", "--json"]) assert.ok(r.stdout.includes(f), f);
});

test("pmkvq chat: two turns, /reset and /exit over stdin", () => {
  const r = pmkvq(["chat", "--model", STORIES_DIR, "--max-new-tokens", "10"], "Once upon a time\nThe dog\n/reset\nOnce upon a time\n/exit\nnever read\n");
  assert.equal(r.status, 0, r.stderr);
  const replies = r.stdout.split("\n").filter(Boolean);
  assert.equal(replies.length, 3);
  assert.equal(replies[0], replies[2], "after /reset the same input gives the same greedy reply");
  assert.equal(replies[0], ref.greedy_text.slice(0, replies[0].length));
  assert.match(r.stderr, /conversation cleared/);
});

test("pmkvq generate --method pm-kvq: budgets, snake_case flags, kv figures and a trace", () => {
  const trace = path.join(tempDir(), "trace.jsonl");
  const r = pmkvq([
    "generate", "--model", STORIES_DIR, "--prompt", "Once upon a time", "--max-new-tokens", "100", "--json",
    "--method", "pm-kvq", "--kv_budgets", "0.008", "--n_window_token", "32", "--backend", "real", "--kv-trace", trace,
  ]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.kv.method, "pm-kvq/real");
  assert.equal(out.kv.blocks.length, 5);
  for (const b of out.kv.blocks) {
    for (const k of ["bodyBits", "sinkTokens", "bodyTokens", "windowTokens", "codeBytes", "heldBytes", "budgetBytes"]) assert.equal(typeof b[k], "number", k);
    assert.equal(b.budgetBytes, Math.floor(0.008 * 2 ** 20));
    assert.ok(b.codeBytes <= b.budgetBytes);
    assert.equal(b.sinkTokens + b.bodyTokens + b.windowTokens, out.promptTokens + out.outputTokens - (out.finishReason === "length" ? 1 : 0));
  }
  assert.equal(out.kv.totalHeldBytes, out.kv.blocks.reduce((a: number, b: { heldBytes: number }) => a + b.heldBytes, 0));
  const lines = fs.readFileSync(trace, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines[0].step, 0);
  assert.equal(lines.length, out.outputTokens, "prefill + one line per decode step");
  assert.ok(lines.every((l, i) => i === 0 || l.tokens === lines[i - 1].tokens + 1));
  assert.ok(lines.some((l) => l.blocks[0].bodyBits < 16), "the budget forced the body down");
  assert.ok(fs.readdirSync(path.dirname(trace)).every((f) => !f.endsWith(".tmp")), "no temp file left");
});

test("pmkvq generate --method pm-kvq errors: no budgets, bad bits, a budget too small", () => {
  const base = ["generate", "--model", STORIES_DIR, "--prompt", "Once upon a time", "--method", "pm-kvq"];
  const none = pmkvq(base);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /needs --kv-budgets/);
  const bits = pmkvq([...base, "--kv-budgets", "1", "--n-init-kv-bits", "3"]);
  assert.equal(bits.status, 1, "refused as the flag is read");
  assert.match(bits.stderr, /--n-init-kv-bits <b>' argument '3' is invalid\. 3 is not one of 16, 8, 4, 2\./);
  const tiny = pmkvq([...base, "--kv-budgets", "0.0001", "--json"]);
  assert.equal(tiny.status, 0, tiny.stderr);
  const out = JSON.parse(tiny.stdout);
  assert.equal(out.finishReason, "kv_budget");
  assert.match(out.kvBudgetMessage, /over its budget/);
});

test("every --method runs from the command line and names itself in kv.method", () => {
  for (const [method, name] of [["rtn", "rtn-k2v4"], ["kivi", "kivi-k2v4"], ["mikv", "mikv-k2v4"], ["rotatekv", "rotatekv-k2v4"]]) {
    const r = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "Once upon a time", "--max-new-tokens", "8", "--json", "--method", method, "--k_bits", "2", "--v_bits", "4"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).kv.method, name);
  }
  const bad = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--method", "h2o"]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /Allowed choices are original, pm-kvq, rtn, kivi, mikv, rotatekv/);
});

test("rotatekv-calib writes reorder indices that generate --method rotatekv takes", () => {
  const dir = tempDir();
  const corpus = path.join(dir, "c.txt");
  fs.writeFileSync(corpus, "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. ".repeat(20));
  const out = path.join(dir, "reorder.safetensors");
  let r = pmkvq(["rotatekv-calib", "--model", STORIES_DIR, "--dataset", corpus, "--n-samples", "2", "--seq-len", "64", "--k-had-dim", "8", "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  r = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "Once upon a time", "--max-new-tokens", "8", "--json", "--method", "rotatekv", "--k-bits", "16", "--v-bits", "16", "--reorder", out]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).ids, ref.greedy_ids.slice(0, 8));
  r = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--method", "rotatekv", "--reorder", out, "--k-had-dim", "16"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /made for --k-had-dim 8, not 16/);
});

test("flags the chosen method does not read are refused, naming the method that reads them", () => {
  const r = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--method", "rtn", "--kv-budgets", "1"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^pmkvq: --method rtn does not read --kv-budgets \(a pm-kvq flag\); rtn reads --k-bits, --v-bits, --group-size, --step-order\n$/);
  const two = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--k-bits", "2", "--n-window-token", "16"]);
  assert.equal(two.status, 2);
  assert.match(two.stderr, /--method original does not read --n-window-token \(a pm-kvq flag\), --k-bits \(a rtn\/kivi\/mikv\/rotatekv\/turboquant flag\)|--method original does not read --k-bits .*, --n-window-token/);
  // the defaults of flags a method does not read are not "given": no error
  assert.equal(pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--max-new-tokens", "2", "--method", "rtn", "--k-bits", "2"]).status, 0);
});

test("bit-widths are one of 16, 8, 4, 2, 1 in every command (calibrate took --k-bits 3, generate refused it); 3 only for turboquant", () => {
  for (const argv of [
    ["calibrate", "--model", STORIES_DIR, "--dataset", "x", "--memory-budget", "1", "--out", "o", "--k-bits", "3"],
    ["search-scales", "--model", STORIES_DIR, "--dataset", "x", "--max-keys-path", "m", "--out", "o", "--v-bits", "3"],
  ]) {
    const r = pmkvq(argv);
    assert.equal(r.status, 1, argv.join(" "));
    assert.match(r.stderr, /is not one of 16, 8, 4, 2, 1\./);
  }
  const big = pmkvq(["eval", "--model", STORIES_DIR, "--dataset-path", "d", "--benchmark", "b", "--version", "v", "--method", "kivi", "--v-bits", "32"]);
  assert.equal(big.status, 1);
  assert.match(big.stderr, /32 is not one of 16, 8, 4, 3, 2, 1\./);
  // before the model is read: a packed method cannot hold 3-bit codes, turboquant cannot hold 16
  const three = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--method", "rtn", "--k-bits", "3"]);
  assert.equal(three.status, 2);
  assert.match(three.stderr, /--k-bits 3: --method rtn holds 16, 8, 4, 2 or 1-bit codes \(3 bits only with --method turboquant\)/);
  const tq = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--method", "turboquant", "--v-bits", "16"]);
  assert.equal(tq.status, 2);
  assert.match(tq.stderr, /--v-bits 16: turboquant's codebooks are 1 … 8 bits/);
});

test("rep scales that are zero, NaN or infinite are refused, naming the file, block and value", () => {
  const dir = tempDir();
  const file = path.join(dir, "bad_scales.safetensors");
  const m = loadModel(STORIES_DIR);
  const half = m.config.headDim / 2;
  for (const bad of [0, Number.NaN, Number.POSITIVE_INFINITY, -1]) {
    const scales = Array.from({ length: m.config.numLayers }, () => new Float32Array(m.config.numKvHeads * half).fill(1));
    scales[2][3] = bad;
    writeRepScales(file, scales, scales.map(() => 0.5), scales.map(() => new Float64Array(1)), scales.map(() => 0), m.config, {});
    const r = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "x", "--rep-scales", file]);
    assert.equal(r.status, 2, String(bad));
    assert.match(r.stderr, new RegExp(`--rep-scales .*bad_scales\\.safetensors: "layers\\.2\\.scales" value 3 \\(head 0, pair 3\\) is ${String(bad).replace("Infinity", "Infinity")}; a key scale must be a finite number > 0`));
  }
  m.dispose();
});

// generate's input and weight flags, each against an independent path to the same result
test("generate --prompt-file gives what --prompt gives with the file's text, and what the library gives", () => {
  const text = "Once upon a time, there was a little dog.";
  const file = path.join(tempDir(), "prompt.txt");
  fs.writeFileSync(file, text);
  const a = pmkvq(["generate", "--model", STORIES_DIR, "--prompt-file", file, "--max-new-tokens", "16", "--json"]);
  const b = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", text, "--max-new-tokens", "16", "--json"]);
  assert.equal(a.status, 0, a.stderr);
  const ids = JSON.parse(a.stdout).ids;
  assert.deepEqual(ids, JSON.parse(b.stdout).ids);
  const model = loadModel(STORIES_DIR);
  assert.deepEqual(ids, generate(model, text, { maxNewTokens: 16 }).ids);
  model.dispose();
});

test("generate --weights-dtype f32|f16|bf16 holds the matrices in that precision (2 bytes a weight for 16-bit)", () => {
  const held: Record<string, number> = {};
  for (const dtype of ["f32", "f16", "bf16"]) {
    const r = pmkvq(["generate", "--model", STORIES_DIR, "--prompt", "Once", "--max-new-tokens", "2", "--weights-dtype", dtype]);
    assert.equal(r.status, 0, r.stderr);
    const m = /weights ([\d.]+) KiB held as (\w+)/.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.equal(m![2], dtype);
    held[dtype] = Number(m![1]);
  }
  // stories260K: 260K matrix weights + 1.5K norm floats; 16-bit halves the matrices' bytes
  assert.ok(Math.abs(held.f16 - held.bf16) < 1e-9);
  assert.ok(held.f16 < 0.55 * held.f32 && held.f16 > 0.45 * held.f32, JSON.stringify(held));
});

test("generate --chat renders the chat template (with --system) and feeds its tokens", () => {
  const dir = tempDir();
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json"]) fs.copyFileSync(path.join(STORIES_DIR, f), path.join(dir, f));
  const template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";
  const tc = JSON.parse(fs.readFileSync(path.join(STORIES_DIR, "tokenizer_config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ ...tc, chat_template: template }));
  const r = pmkvq(["generate", "--model", dir, "--chat", "--system", "be kind", "--prompt", "a story", "--max-new-tokens", "8", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  // the rendering written out by hand, tokenized without special tokens (the template carries its own)
  const model = loadModel(STORIES_DIR);
  const ids = model.tokenizer.encode("[system] be kind\n[user] a story\n[assistant] ", false);
  assert.equal(out.promptTokens, ids.length);
  assert.deepEqual(out.ids, generate(model, ids, { maxNewTokens: 8 }).ids);
  model.dispose();
});
