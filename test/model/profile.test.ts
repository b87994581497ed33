// transformer.profile (the bench's per-step breakdown): the parts add up to the wall time of
// the forward passes it watched, each part is where it says (attention grows with the
// context, matrix products do not), and turning it on changes no logit.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createFullPrecisionCache } from "../../src/cache/full.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { newProfile } from "../../src/model/forward.js";
import { STORIES_DIR } from "../helpers.js";

test("profile parts sum to the forward passes' wall time and leave logits unchanged", () => {
  using model = loadModel(STORIES_DIR);
  const c = model.config;
  const ids = Array.from({ length: 500 }, (_, i) => 1 + ((i * 37) % (c.vocabSize - 1)));
  using plainCache = createFullPrecisionCache(c, c.numLayers);
  const plain = model.transformer.forward(ids, ids.map((_, i) => i), plainCache, "all").slice();

  using cache = createFullPrecisionCache(c, c.numLayers);
  const prof = newProfile();
  model.transformer.profile = prof;
  const t0 = performance.now();
  const got = model.transformer.forward(ids, ids.map((_, i) => i), cache, "all").slice();
  const wall = performance.now() - t0;
  model.transformer.profile = null;
  assert.deepEqual(got, plain);
  assert.equal(prof.calls, 1);
  for (const k of ["matmulMs", "attendMs", "appendMs", "otherMs"] as const) assert.ok(prof[k] >= 0, `${k} = ${prof[k]}`);
  const sum = prof.matmulMs + prof.attendMs + prof.appendMs + prof.otherMs;
  assert.ok(sum <= wall + 1e-6 && sum >= wall * 0.9, `parts ${sum.toFixed(3)} ms of a ${wall.toFixed(3)} ms forward`);
  assert.ok(prof.matmulMs > 0 && prof.attendMs > 0 && prof.appendMs > 0);

  // decode steps at a long and a short context: attention's share grows with the context
  const step = (n: number, context: number) => {
    using cc = createFullPrecisionCache(c, c.numLayers);
    model.transformer.forward(ids.slice(0, context), ids.slice(0, context).map((_, i) => i), cc, "none");
    const p = newProfile();
    model.transformer.profile = p;
    for (let i = 0; i < n; i++) model.transformer.forward([5], [cc.length], cc, "last");
    model.transformer.profile = null;
    assert.equal(p.calls, n);
    return p;
  };
  const short = step(100, 2);
  const long = step(100, 400);
  assert.ok(long.attendMs / long.calls > short.attendMs / short.calls, `attention ${long.attendMs} ms at 400–500 tokens vs ${short.attendMs} ms at 2`);
});
