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

  // decode steps at a long and a short context: attention grows with the context. Each step
  // is timed alone and the fastest of many is compared, so a busy host (which only ever slows
  // a step down) cannot invert the order.
  const fastestAttend = (context: number, steps: number): number => {
    using cc = createFullPrecisionCache(c, c.numLayers);
    model.transformer.forward(ids.slice(0, context), ids.slice(0, context).map((_, i) => i), cc, "none");
    let best = Infinity;
    for (let i = 0; i < steps; i++) {
      const p = newProfile();
      model.transformer.profile = p;
      model.transformer.forward([5], [cc.length], cc, "last");
      model.transformer.profile = null;
      assert.equal(p.calls, 1);
      best = Math.min(best, p.attendMs);
    }
    return best;
  };
  const short = fastestAttend(2, 60);
  const long = fastestAttend(c.maxPositionEmbeddings - 60, 60);
  assert.ok(long > short, `fastest attention step ${long.toFixed(4)} ms at ${c.maxPositionEmbeddings - 60}+ tokens vs ${short.toFixed(4)} ms at 2+`);
});
