// Teacher-forced accuracy of a trained model on the lookup-sum task, per kind of solution token
// (counter digits, key, value, the sum's parts, newline): where a model in training still fails.
// Usage: node dist/bench/probe-task.js --model DIR [--facts N] [--steps S,S2,…] [--problems P]
// (the task's countdown as the model was trained; problems from seed 0, held out; each listed
// length probed on its own: a countdown's first decrement differs with the stated length)

import { parseArgs } from "node:util";
import { createFullPrecisionCache } from "../src/cache/full.js";
import { trainedTask } from "../src/demo/demo.js";
import { loadModel } from "../src/model/checkpoint.js";
import type { LookupSumOptions } from "../src/task/lookup-sum.js";
import { trainingSequence } from "../src/train/train.js";

const { values: a } = parseArgs({ options: { model: { type: "string" }, facts: { type: "string" }, steps: { type: "string" }, problems: { type: "string", default: "4" } } });
if (!a.model) throw new Error("--model DIR is needed");
const trained = trainedTask(a.model);
using m = loadModel(a.model, { weightsDtype: "f32" });
for (const steps of (a.steps ?? String(trained.steps)).split(",").map(Number)) probe({ ...trained, facts: Number(a.facts ?? trained.facts), steps });

function probe(task: LookupSumOptions): void {
  const V = m.config.vocabSize;
  // the tokens of one solution line, in order
  const kinds = [...(task.countdown ? ["n", "d", ":"] : []), "key", "value", ";", "acc", "+", "v", "=", "sum", "newline"];
  const hits = kinds.map(() => [0, 0]);
  for (let seed = 0; seed < Number(a.problems); seed++) {
    const s = trainingSequence(m.tokenizer, seed, task);
    using cache = createFullPrecisionCache(m.config, m.config.numLayers);
    const logits = m.transformer.forward(s.ids, s.ids.map((_, i) => i), cache, "all");
    let col = 0;
    for (let t = 0; t < s.ids.length - 1; t++) {
      if (!s.mask[t]) continue;
      const target = s.ids[t + 1];
      let best = 0;
      for (let i = 1; i < V; i++) if (logits[t * V + i] > logits[t * V + best]) best = i;
      if (col < kinds.length) {
        hits[col][0] += best === target ? 1 : 0;
        hits[col][1]++;
      }
      col = m.tokenizer.idToToken(target)?.endsWith("\n") ? 0 : col + 1;
    }
  }
  console.log(`${a.model}: ${task.facts} facts, ${task.steps} steps, ${a.problems} problems — ` + kinds.map((k, i) => `${k} ${((100 * hits[i][0]) / Math.max(1, hits[i][1])).toFixed(1)}%`).join(" · "));
}
