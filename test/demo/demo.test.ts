// pmkvq demo on the embedded default model (a short run): every method reported, pm-kvq
// given no more memory than 2-bit KIVI, the chart written.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { REPO_ROOT, tempDir } from "../helpers.js";

test("pmkvq demo --quick on two problems: table, results.json, demo.svg", () => {
  const out = path.join(tempDir(), "demo");
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "bin", "pmkvq.js"), "demo", "--quick", "--problems", "2", "--calibration-samples", "2", "--out", out], {
    encoding: "utf8",
    timeout: 300000,
  });
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(fs.readFileSync(path.join(out, "results.json"), "utf8"));
  assert.deepEqual(res.methods.map((m: { method: string }) => m.method), ["original", "rtn-2bit", "kivi-2bit", "pm-kvq"]);
  const kivi = res.methods.find((m: { method: string }) => m.method === "kivi-2bit");
  const pm = res.methods.find((m: { method: string }) => m.method === "pm-kvq");
  const full = res.methods.find((m: { method: string }) => m.method === "original");
  for (const m of res.methods) assert.ok(m.accuracy >= 0 && m.accuracy <= 100 && m.heldBytes > 0 && m.tokensPerS > 0);
  assert.ok(pm.heldBytes < full.heldBytes / 2, "pm-kvq holds far less than full precision");
  // equal memory: on the same reference sequence pm-kvq holds no more than 2-bit KIVI
  assert.equal(res.targetHeldBytes, kivi.referenceHeldBytes);
  assert.ok(pm.referenceHeldBytes > 0 && pm.referenceHeldBytes <= kivi.referenceHeldBytes);
  assert.ok(pm.referenceHeldBytes < full.referenceHeldBytes / 4);
  for (const f of ["sensitivity.json", "allocation.json", "max_keys.safetensors", "rep_scales.safetensors", "manifest.json"]) {
    assert.ok(fs.existsSync(path.join(out, "calibration", f)), f);
  }
  const svg = fs.readFileSync(path.join(out, "demo.svg"), "utf8");
  assert.match(svg, /^<svg/);
  assert.match(svg, /pm-kvq/);
  assert.match(r.stdout, /method\s+accuracy/);
});
