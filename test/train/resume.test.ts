// A training run killed part-way and resumed with --resume ends with the same weights, bit for
// bit, as the same run left alone (the state file holds parameters, AdamW's moments, the data
// stream and the curriculum); a folder holding a run is not overwritten, and a resume with
// other settings is refused, naming them.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { Rng } from "../../src/util/rng.js";
import { REPO_ROOT, tempDir } from "../helpers.js";

const BIN = path.join(REPO_ROOT, "bin", "pmkvq.js");
const FLAGS = ["--steps", "24", "--batch-size", "2", "--layers", "2", "--hidden", "64", "--head-dim", "16", "--kv-heads", "2", "--facts", "4", "--task-steps", "6", "--seed", "3", "--warmup", "4"];
const sha = (f: string) => crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");

test("the data stream's generator continues from its saved state", () => {
  const a = new Rng(9);
  for (let i = 0; i < 5; i++) a.next();
  const b = Rng.fromState(a.state());
  for (let i = 0; i < 20; i++) assert.equal(b.nextU32(), a.nextU32());
  assert.throws(() => Rng.fromState([0, 0, 0, 0]), RangeError);
});

test("a run killed part-way and resumed reaches the uninterrupted run's weights bit for bit", async () => {
  const whole = tempDir();
  const r = spawnSync(process.execPath, [BIN, "train", "--out", whole, ...FLAGS], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.existsSync(path.join(whole, "train-state.safetensors")), false, "a finished run leaves only the model and its log");
  const config = JSON.parse(fs.readFileSync(path.join(whole, "config.json"), "utf8"));
  assert.deepEqual([config.head_dim, config.num_attention_heads, config.num_key_value_heads], [16, 4, 2], "--head-dim and --kv-heads shape the model");

  const cut = tempDir();
  const state = path.join(cut, "train-state.safetensors");
  const child = spawn(process.execPath, [BIN, "train", "--out", cut, ...FLAGS, "--checkpoint-minutes", "0"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  let done = false;
  const exited = new Promise((res) => child.on("exit", () => res((done = true))));
  // killed once the log shows step 11 (a state is written after every step with --checkpoint-minutes 0)
  while (!done && !/^step 11\//m.test(stderr)) await new Promise((res) => setTimeout(res, 1));
  child.kill("SIGKILL");
  await exited;
  assert.ok(fs.existsSync(state), "the killed run left its state");
  assert.equal(JSON.parse(fs.readFileSync(path.join(cut, "train_log.json"), "utf8")).partial, true, "killed before it finished");

  const again = spawnSync(process.execPath, [BIN, "train", "--out", cut, ...FLAGS], { encoding: "utf8" });
  assert.equal(again.status, 2, "a folder holding a run is not trained over without --resume");
  assert.match(again.stderr, /holds a training run .*--resume/);
  const other = spawnSync(process.execPath, [BIN, "train", "--out", cut, ...FLAGS, "--lr", "0.001", "--resume"], { encoding: "utf8" });
  assert.notEqual(other.status, 0);
  assert.match(other.stderr, /other settings \(lr: 0\.003 → 0\.001\)/);

  const resumed = spawnSync(process.execPath, [BIN, "train", "--out", cut, ...FLAGS, "--resume"], { encoding: "utf8" });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /^resuming the run in /m);
  assert.doesNotMatch(resumed.stderr, /^step 1\//m, "it did not start over");
  assert.equal(sha(path.join(cut, "model.safetensors")), sha(path.join(whole, "model.safetensors")));
  const logOf = (d: string) => (JSON.parse(fs.readFileSync(path.join(d, "train_log.json"), "utf8")).log as { loss: number; gradNorm: number }[]).map((s) => [s.loss, s.gradNorm]);
  assert.deepEqual(logOf(cut), logOf(whole), "the same losses and gradient norms at every step");
  // SIGTERM (and Ctrl-C) stop a run at once, mid-loop, and the same command takes the folder over
  const term = tempDir();
  const t = spawn(process.execPath, [BIN, "train", "--out", term, ...FLAGS], { stdio: ["ignore", "ignore", "pipe"] });
  let tErr = "";
  t.stderr.on("data", (d) => (tErr += d));
  const tExit = new Promise<NodeJS.Signals | null>((res) => t.on("exit", (_code, sig) => res(sig)));
  while (!/^step 1\//m.test(tErr)) await new Promise((res) => setTimeout(res, 1));
  t.kill("SIGTERM");
  assert.equal(await tExit, "SIGTERM", "ended by the signal, not after the run");
  assert.doesNotMatch(tErr, /^step 21\//m);
  const after = spawnSync(process.execPath, [BIN, "train", "--out", term, ...FLAGS], { encoding: "utf8" });
  assert.equal(after.status, 0, after.stderr);
  const finished = spawnSync(process.execPath, [BIN, "train", "--out", cut, ...FLAGS, "--resume"], { encoding: "utf8" });
  assert.equal(finished.status, 0);
  assert.match(finished.stdout, /has finished .*nothing to resume/);
});

test("a grown run (--grow-from) is reproducible: two runs of the same flags write the same bytes", () => {
  const base = tempDir();
  const small = ["--steps", "3", "--batch-size", "2", "--layers", "1", "--hidden", "64", "--head-dim", "16", "--kv-heads", "2", "--facts", "4", "--task-steps", "5", "--seed", "5"];
  assert.equal(spawnSync(process.execPath, [BIN, "train", "--out", base, ...small], { encoding: "utf8" }).status, 0);
  const grow = ["--grow-from", base, "--steps", "3", "--batch-size", "2", "--layers", "3", "--hidden", "64", "--head-dim", "32", "--heads", "4", "--kv-heads", "2", "--facts", "6", "--task-steps", "8", "--countdown", "--seed", "6"];
  const outs = [tempDir(), tempDir()];
  for (const o of outs) {
    const r = spawnSync(process.execPath, [BIN, "train", "--out", o, ...grow], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  }
  assert.equal(sha(path.join(outs[0], "model.safetensors")), sha(path.join(outs[1], "model.safetensors")));
  const cfg = JSON.parse(fs.readFileSync(path.join(outs[0], "config.json"), "utf8"));
  assert.deepEqual([cfg.num_hidden_layers, cfg.head_dim], [3, 32]);
  const bad = spawnSync(process.execPath, [BIN, "train", "--out", tempDir(), ...grow.map((a) => (a === "64" ? "96" : a))], { encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /cannot grow this model into the new shape: hidden size 64 → 96/);
});
