// pmkvq demo --quick on the embedded default model (a short run): the frontier of the quick
// selection, both verdicts printed, results.json, frontier.svg and the calibration written.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { REPO_ROOT, tempDir } from "../helpers.js";

test("pmkvq demo --quick on two problems: table, verdicts, results.json, frontier.svg", () => {
  const out = path.join(tempDir(), "demo");
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "bin", "pmkvq.js"), "demo", "--quick", "--problems", "2", "--calibration-samples", "2", "--out", out], {
    encoding: "utf8",
    timeout: 300000,
  });
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(fs.readFileSync(path.join(out, "results.json"), "utf8"));
  const keys: string[] = res.settings.map((m: { key: string }) => m.key);
  assert.deepEqual(keys.slice(0, 8), ["original", "rtn-4", "rtn-2", "kivi-4", "kivi-2", "turboquant-4", "turboquant-3", "turboquant-2"]);
  assert.ok(keys.slice(8).length >= 4 && keys.slice(8).every((k) => k.startsWith("pm-kvq W=32 ")), keys.join());
  const problems = res.settings[0].problems;
  assert.ok(problems > 0);
  for (const m of res.settings) {
    // accuracy is the share of correct answers over the same problems for every setting
    assert.equal(m.problems, problems, m.key);
    assert.ok(Number.isInteger(m.correct) && m.correct >= 0 && m.correct <= problems, m.key);
    assert.ok(Math.abs(m.accuracy - (100 * m.correct) / problems) < 1e-9, `${m.key}: accuracy ${m.accuracy} for ${m.correct}/${problems}`);
    assert.ok(m.heldBytes > 0 && m.heldMaxBytes >= m.heldBytes && m.reservedBytes >= m.heldMaxBytes && m.tokensPerS > 0, m.key);
  }
  assert.equal(res.settings.find((m: { key: string }) => m.key === "original").accuracy, 100, "the full-precision cache answers every held-out problem (the default model is trained to)");
  const full = res.settings.find((m: { key: string }) => m.key === "original");
  const pm = res.settings.filter((m: { method: string }) => m.method === "pm-kvq");
  assert.ok(Math.min(...pm.map((m: { reservedBytes: number }) => m.reservedBytes)) < full.reservedBytes / 4, "pm-kvq's smallest allocation reserves far less than full precision");
  for (const f of ["sensitivity.json", "allocation.json", "max_keys.safetensors", "rep_scales.safetensors", "manifest.json"]) {
    assert.ok(fs.existsSync(path.join(out, "calibration", f)), f);
  }
  const svg = fs.readFileSync(path.join(out, "frontier.svg"), "utf8");
  assert.match(svg, /^<svg/);
  assert.match(svg, /pm-kvq W=32/);
  assert.match(r.stdout, /setting\s+accuracy/);
  assert.match(r.stdout, /^reserved: /m);
  assert.match(r.stdout, /^held \(mean peak per answer\): /m);
});
