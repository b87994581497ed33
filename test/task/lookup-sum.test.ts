// The lookup-sum task: the answer recomputed independently from the prompt text, the
// solution consistent line by line, the knobs, and the word-level tokenizer.

import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { INSTRUCTION } from "../../src/eval/benchmarks.js";
import { extractAnswer } from "../../src/eval/answer.js";
import { DEFAULT_TASK, generateProblem, taskPairs, taskWords } from "../../src/task/lookup-sum.js";
import { writeTaskTokenizer } from "../../src/train/train.js";
import { tempDir } from "../helpers.js";

/** Solve a prompt by reading it: facts "kNN=v", the start key, the chain rule, sums mod 10. */
function solveFromPrompt(prompt: string, steps: number): { keys: number[]; values: number[]; sums: number[] } {
  const facts = [...prompt.matchAll(/(?<= )k(\d\d)=(\d)(?= )/g)].map((m, i) => (assert.equal(Number(m[1]), i), Number(m[2])));
  let key = Number(/ start : k(\d\d) /.exec(prompt)![1]);
  const keys: number[] = [];
  const values: number[] = [];
  const sums: number[] = [];
  let acc = 0;
  for (let j = 0; j < steps; j++) {
    keys.push(key);
    values.push(facts[key]);
    acc = (acc + facts[key]) % 10;
    sums.push(acc);
    key = (key + 1) % facts.length;
  }
  return { keys, values, sums };
}

test("answers and every solution line agree with a solver that only reads the prompt", () => {
  for (let seed = 0; seed < 50; seed++) {
    const task = { facts: 2 + (seed % 31), steps: 3 + (seed % 98) };
    const p = generateProblem(seed, task);
    const { keys, values, sums } = solveFromPrompt(p.prompt, task.steps);
    assert.equal(p.answer, sums.slice(-3).join(""));
    assert.equal(extractAnswer(p.solution), p.answer);
    const lines = p.solution.split("\n").slice(0, -1);
    assert.equal(lines.length, task.steps);
    lines.forEach((line, j) => {
      const prev = j === 0 ? 0 : sums[j - 1];
      assert.equal(line, `k${String(keys[j]).padStart(2, "0")} ${values[j]} ; ${prev} + ${values[j]} = ${sums[j]}`);
    });
  }
});

test("seeded: same seed same problem, different seeds differ; bad knobs refused", () => {
  assert.deepEqual(generateProblem(7), generateProblem(7));
  assert.notEqual(generateProblem(7).prompt, generateProblem(8).prompt);
  assert.throws(() => generateProblem(1, { facts: 0, steps: 10 }), RangeError);
  assert.throws(() => generateProblem(1, { facts: 10, steps: 101 }), RangeError);
  assert.throws(() => generateProblem(1, { facts: 33, steps: 10 }), RangeError);
  assert.throws(() => generateProblem(1, { facts: 2.5, steps: 10 }), RangeError);
});

test("the tokenizer: one token per word (a fact or a query is one), no unknowns, default solutions of ≥ 512 tokens", () => {
  const tok = writeTaskTokenizer(path.join(tempDir(), "tok"));
  let total = 0;
  for (let seed = 0; seed < 20; seed++) {
    const p = generateProblem(seed, DEFAULT_TASK);
    const prompt = tok.encodeChat([{ role: "user", content: p.prompt + INSTRUCTION }]);
    const solution = tok.encode(p.solution, false);
    assert.ok(!prompt.includes(0) && !solution.includes(0), "no <unk>");
    assert.equal(prompt[0], 1, "BOS from the chat template");
    // BOS, one token per prompt word (a newline is a word), then "\n solution : \n" of the
    // template and the empty word after its last newline
    const promptWords = (p.prompt + INSTRUCTION).replace(/\n/g, " \n ").split(" ").filter(Boolean);
    assert.equal(prompt.length, 1 + promptWords.length + 5, `${prompt.length} tokens for ${promptWords.length} words`);
    for (const w of p.prompt.split(" ").filter((x) => x.includes("="))) assert.equal(tok.encode(w, false).length, 1, w);
    // one token per word (a newline is a word); \boxed{758} is five: \boxed{ 7 5 8 }
    const words = p.solution.replace(/\n/g, " \n ").split(" ").filter(Boolean);
    assert.equal(solution.length, words.length + 4);
    assert.equal(tok.decode(solution).replace(/ \n /g, "\n"), p.solution);
    total += solution.length;
  }
  assert.ok(total / 20 >= 512, `mean solution length ${total / 20} tokens`);
  for (const w of taskWords()) assert.notEqual(tok.tokenToId("▁" + w), undefined, w);
  for (const [a, b] of taskPairs()) assert.deepEqual(tok.encode(`${a}=${b} ${a}`, false), [tok.tokenToId(`▁${a}=${b}`), tok.tokenToId(`▁${a}`)]);
});

test("countdown: the prompt states the steps, lines count down to 0 1 in digits, the rest as without it", () => {
  const tok = writeTaskTokenizer(path.join(tempDir(), "tok"), true);
  for (let seed = 0; seed < 30; seed++) {
    const task = { facts: 2 + (seed % 31), steps: 3 + ((seed * 37) % 97), countdown: true };
    const p = generateProblem(seed, task);
    const two = (i: number) => `${Math.floor(i / 10)} ${i % 10}`;
    assert.match(p.prompt, new RegExp(` start : k\\d\\d steps : ${two(task.steps)} walk `));
    assert.equal(p.answer, generateProblem(seed, { facts: task.facts, steps: task.steps }).answer, "the same facts, walk and answer");
    const { keys, values, sums } = solveFromPrompt(p.prompt, task.steps);
    assert.equal(p.answer, sums.slice(-3).join(""));
    const lines = p.solution.split("\n").slice(0, -1);
    lines.forEach((line, j) => {
      const prev = j === 0 ? 0 : sums[j - 1];
      assert.equal(line, `${two(task.steps - j)} : k${String(keys[j]).padStart(2, "0")} ${values[j]} ; ${prev} + ${values[j]} = ${sums[j]}`);
    });
    const ids = tok.encode(p.solution, false);
    assert.ok(!ids.includes(0), "no <unk>");
    const words = p.solution.replace(/\n/g, " \n ").split(" ").filter(Boolean);
    assert.equal(ids.length, words.length + 4, "one token per word, a counter digit included");
  }
  assert.throws(() => generateProblem(1, { facts: 10, steps: 100, countdown: true }), RangeError);
  assert.deepEqual(taskWords(), taskWords(false), "the default model's vocabulary is unchanged");
  assert.deepEqual(taskWords(true), [...taskWords(), "steps"]);
});
