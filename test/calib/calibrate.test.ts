// End to end on stories260K with a small corpus the test writes: every calibration command,
// `pmkvq calibrate` with its manifest and resume, and generation with the artifacts.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { readSensitivity } from "../../src/calib/allocate.js";
import { readMaxKeys } from "../../src/calib/max-keys.js";
import { readRepScales } from "../../src/calib/rep-scales.js";
import { calibrate } from "../../src/calib/calibrate.js";
import { foldRepScales } from "../../src/calib/rep-scales.js";
import { createCache } from "../../src/cache/factory.js";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { generate } from "../../src/generate/generate.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { maxRelDiff, REPO_ROOT, seededRandom, STORIES_DIR, tempDir } from "../helpers.js";
import { writeRandomModelFolder } from "../model-fixtures.js";

const BIN = path.join(REPO_ROOT, "bin", "pmkvq.js");
const dir = tempDir("pmkvq-calib-");
const model = loadModel(STORIES_DIR);

function pmkvq(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 120000 });
}

/** A few KB of little stories in JSON lines, as RedPajama samples come. */
function writeCorpus(): string {
  const rand = seededRandom(3);
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  const lines = Array.from({ length: 40 }, () => {
    const [a, b] = [pick(["Lily", "Tom", "Sam", "Mia"]), pick(["Ben", "Sue", "Max"])];
    const thing = pick(["ball", "kite", "dog", "cake", "boat"]);
    return JSON.stringify({ text: `Once upon a time, ${a} had a red ${thing}. One day ${a} and ${b} went to the park to play with the ${thing}. They were very happy. Then it started to rain, so they ran home and had warm milk.` });
  });
  const file = path.join(dir, "corpus.jsonl");
  fs.writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

const corpus = writeCorpus();
const common = ["--model", STORIES_DIR, "--n-samples", "4", "--seq-len", "64", "--effective-len", "256"];

test("each calibration command writes an artifact the next one reads (original spellings too)", () => {
  const sens = path.join(dir, "steps", "sens.json");
  let r = pmkvq(["sensitivity", ...common, "--dataset_path", corpus, "--save_path", sens]);
  assert.equal(r.status, 0, r.stderr);
  const s = readSensitivity(sens, [4, 2]);
  assert.equal(s.kSensitivity["4"].length, 5);
  const alloc = path.join(dir, "steps", "alloc.json");
  r = pmkvq(["allocate", "--sensitivity_path", sens, "--memory_budget", "0.02", "--fbit_choices", "4,2", "--hidden_size", "32", "--max_len", "256", "--save_path", alloc]);
  assert.equal(r.status, 0, r.stderr);
  const a = JSON.parse(fs.readFileSync(alloc, "utf8"));
  assert.equal(a.bits.length, 5);
  assert.ok(a.totalMB <= 0.02);
  const mk = path.join(dir, "steps", "mk.safetensors");
  r = pmkvq(["max-keys", ...common, "--dataset", corpus, "--out", mk]);
  assert.equal(r.status, 0, r.stderr);
  const { maxKeys, metadata } = readMaxKeys(mk, model.config);
  assert.equal(maxKeys.length, 5);
  assert.equal(metadata.effective_len, "256");
  const rs = path.join(dir, "steps", "rs.safetensors");
  r = pmkvq(["search-scales", ...common, "--dataset", corpus, "--max_keys_path", mk, "--k_bits", "2", "--v_bits", "2", "--grid", "5", "--out", rs]);
  assert.equal(r.status, 0, r.stderr);
  const scales = readRepScales(rs, model.config);
  assert.equal(scales.scales.length, 5);
  assert.ok([...scales.alphas].every((x) => [1, 0.8, 0.6, 0.4, 0.2].some((g) => Math.abs(g - x) < 1e-6)));
});

test("calibrate: all steps, a manifest with hashes, resume, and generation with the results", () => {
  const out = path.join(dir, "cal");
  // budgets for 4096 tokens: at 2 to 4 bits they dwarf the 16-bit window, as with the original's 32768
  const args = ["calibrate", ...common, "--dataset", corpus, "--memory-budget", "0.4", "--max-len", "4096", "--grid", "4", "--out", out];
  let r = pmkvq(args);
  assert.equal(r.status, 0, r.stderr);
  for (const f of ["sensitivity.json", "allocation.json", "max_keys.safetensors", "rep_scales.safetensors", "manifest.json"]) assert.ok(fs.existsSync(path.join(out, f)), f);
  const manifest = JSON.parse(fs.readFileSync(path.join(out, "manifest.json"), "utf8"));
  assert.deepEqual(Object.keys(manifest.steps).sort(), ["allocation", "max-keys", "rep-scales", "sensitivity"]);
  assert.match(manifest.model.sha256, /^[0-9a-f]{64}$/);
  assert.match(manifest.dataset.sha256, /^[0-9a-f]{64}$/);
  assert.match(r.stdout, /ran: sensitivity, allocation, max-keys, rep-scales/);
  // same inputs: nothing reruns
  r = pmkvq(args);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ran: nothing; up to date: sensitivity, allocation, max-keys, rep-scales/);
  // another budget: only the allocation reruns; a damaged artifact is rebuilt
  fs.appendFileSync(path.join(out, "max_keys.safetensors"), "x");
  r = pmkvq(args.map((a) => (a === "0.4" ? "0.5" : a)));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ran: allocation, max-keys; up to date: sensitivity, rep-scales/);
  assert.ok(fs.readdirSync(out).every((f) => !f.endsWith(".tmp")));
  // the artifacts drive generation
  const g = pmkvq([
    "generate", "--model", STORIES_DIR, "--prompt", "Once upon a time", "--max-new-tokens", "30", "--json", "--method", "pm-kvq",
    "--kv-budgets", path.join(out, "allocation.json"), "--rep-scales", path.join(out, "rep_scales.safetensors"),
  ]);
  assert.equal(g.status, 0, g.stderr);
  const res = JSON.parse(g.stdout);
  const alloc = JSON.parse(fs.readFileSync(path.join(out, "allocation.json"), "utf8"));
  assert.deepEqual(res.kv.blocks.map((b: { budgetBytes: number }) => b.budgetBytes), alloc.budgetsMB.map((mb: number) => Math.floor(mb * 2 ** 20)));
  assert.ok(alloc.bits.includes(2) && alloc.bits.includes(4), `mixed bits: ${alloc.bits}`);
  assert.ok(res.outputTokens > 0 && res.finishReason !== "kv_budget", `${res.finishReason} after ${res.outputTokens} tokens`);
});

test("calibrate refuses bad input with a message naming it", () => {
  const out = path.join(dir, "bad");
  const cases: [string[], RegExp][] = [
    [["--dataset", path.join(dir, "none.jsonl"), "--memory-budget", "1"], /no such file or folder/],
    [["--dataset", corpus, "--memory-budget", "0.0001", "--max-len", "256"], /smallest feasible budget/],
    [["--dataset", corpus, "--memory-budget", "1", "--effective-len", "100"], /whole multiple/],
    [["--dataset", corpus, "--memory-budget", "1", "--n-samples", "500"], /holds \d+ samples/],
  ];
  for (const [extra, msg] of cases) {
    const r = pmkvq(["calibrate", ...common, ...extra, "--out", out]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, msg);
  }
});

test("calibrate killed at any moment resumes to the same artifacts; a corrupt manifest is refused, --force recomputes", async () => {
  const base = ["calibrate", ...common, "--dataset", corpus, "--memory-budget", "0.4", "--max-len", "4096", "--grid", "4"];
  const reference = path.join(dir, "kill-ref");
  const t0 = performance.now();
  assert.equal(pmkvq([...base, "--out", reference]).status, 0);
  const runMs = performance.now() - t0;
  const artifacts = ["sensitivity.json", "allocation.json", "max_keys.safetensors", "rep_scales.safetensors"];
  const want = artifacts.map((f) => fs.readFileSync(path.join(reference, f)).toString("base64"));
  const present = (out: string) => artifacts.filter((f) => fs.existsSync(path.join(out, f))).length;
  const partials: number[] = [];
  // kill moments spread over a whole run, as long as it takes on this machine, and kills the
  // moment 1, 2 and 3 of the 4 artifacts exist (so some kill lands between steps however loaded
  // the machine is)
  const kills: ({ afterMs: number } | { atArtifacts: number })[] = [
    ...[0.35, 0.75].map((f) => ({ afterMs: Math.round(f * runMs) })),
    ...[1, 2, 3].map((n) => ({ atArtifacts: n })),
  ];
  for (const [i, kill] of kills.entries()) {
    const out = path.join(dir, `killed-${i}`);
    const child = spawn(process.execPath, [BIN, ...base, "--out", out], { stdio: "ignore" });
    let done = false;
    const exited = new Promise((r) => child.on("exit", () => r((done = true))));
    if ("afterMs" in kill) await new Promise((r) => setTimeout(r, kill.afterMs));
    else while (!done && present(out) < kill.atArtifacts) await new Promise((r) => setTimeout(r, 2));
    child.kill("SIGKILL");
    await exited;
    partials.push(present(out));
    if (fs.existsSync(path.join(out, "manifest.json"))) JSON.parse(fs.readFileSync(path.join(out, "manifest.json"), "utf8")); // never half-written
    const rerun = pmkvq([...base, "--out", out]);
    assert.equal(rerun.status, 0, rerun.stderr);
    assert.deepEqual(artifacts.map((f) => fs.readFileSync(path.join(out, f)).toString("base64")), want, `kill ${JSON.stringify(kill)}`);
    assert.ok(!fs.existsSync(path.join(dir, `.killed-${i}.lock`)), "no lock left after the rerun");
  }
  assert.ok(partials.some((n) => n > 0 && n < artifacts.length), `at least one kill landed between steps (artifacts left: ${partials.join(", ")})`);
  // a manifest that is not one (null, or a step naming another file) is refused, not trusted
  const out = path.join(dir, "kill-ref");
  for (const bad of ["null", JSON.stringify({ steps: { sensitivity: { file: "../elsewhere.json", sha256: "x", inputsKey: "y" } } })]) {
    fs.writeFileSync(path.join(out, "manifest.json"), bad);
    const r = pmkvq([...base, "--out", out]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /manifest\.json: not a calibration manifest written by pmkvq .*--force/);
  }
  const forced = pmkvq([...base, "--out", out, "--force"]);
  assert.equal(forced.status, 0, forced.stderr);
  assert.match(forced.stdout, /ran: sensitivity, allocation, max-keys, rep-scales/);
});

test("two calibrations into one folder: the second stops at once, naming the holder", async () => {
  const out = path.join(dir, "locked");
  const a = spawn(process.execPath, [BIN, "calibrate", ...common, "--dataset", corpus, "--memory-budget", "0.4", "--max-len", "4096", "--grid", "4", "--out", out], { stdio: "ignore" });
  const aExit = new Promise((r) => a.on("exit", r));
  const lock = path.join(dir, ".locked.lock");
  for (let i = 0; i < 200 && !fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 25));
  const b = pmkvq(["calibrate", ...common, "--dataset", corpus, "--memory-budget", "0.4", "--max-len", "4096", "--out", out]);
  assert.equal(b.status, 2);
  assert.match(b.stderr, new RegExp(`^pmkvq: --out .*locked: in use by another run \\(pid ${a.pid} `));
  assert.equal(await aExit, 0);
});

// Qwen3 (q/k norms) through the library: every step, then pm-kvq generation with the allocation
// and the rep scales folded into q_norm/k_norm.
test("calibrate a random Qwen3 folder: all artifacts, scales that keep full-precision logits, pm-kvq generation", () => {
  const qdir = writeRandomModelFolder({ layers: 2, hidden: 48, heads: 4, kvHeads: 2, headDim: 16, intermediate: 64, vocab: 512, seed: 31, architecture: "Qwen3ForCausalLM" }, path.join(dir, "qwen3-model"));
  const qwen3 = loadModel(qdir);
  const out = path.join(dir, "qwen3-cal");
  const r = calibrate(qwen3, {
    dataset: corpus, outDir: out, memoryBudgetMB: 0.2, bits: [4, 2], maxLen: 4096, nSamples: 3, seqLen: 48, effectiveLen: 192, seed: 1,
    groupSize: 16, kBits: 2, vBits: 2, grid: 4,
  });
  assert.deepEqual(r.ran, ["sensitivity", "allocation", "max-keys", "rep-scales"]);
  const sens = readSensitivity(path.join(out, "sensitivity.json"), [4, 2]);
  for (const b of ["4", "2"]) for (const v of [...sens.kSensitivity[b], ...sens.vSensitivity[b]]) assert.ok(Number.isFinite(v) && v > 0, `sensitivity ${v}`);
  const { scales } = readRepScales(path.join(out, "rep_scales.safetensors"), qwen3.config);
  const tokens = [1, 403, 407, 261, 378, 432, 383, 286];
  const logits = () => Float32Array.from(qwen3.transformer.forward(tokens, tokens.map((_, i) => i), createFullPrecisionCache(qwen3.config, 2), "all"));
  const before = logits();
  foldRepScales(qwen3.transformer.weights, qwen3.config, scales);
  assert.ok(maxRelDiff(logits(), before) <= 1e-4, "folded rep scales keep the full-precision logits");
  const budgetsMB = (JSON.parse(fs.readFileSync(path.join(out, "allocation.json"), "utf8")) as { budgetsMB: number[] }).budgetsMB;
  const g = generate(qwen3, tokens, { maxNewTokens: 16, cache: createCache(qwen3.config, { method: "pm-kvq", budgetsMB }), eosTokenIds: [] });
  assert.equal(g.ids.length, 16);
  assert.notEqual(g.finishReason, "kv_budget");
});
