// The long-reasoning task of the default model (issue 8): a prompt lists facts (k13 = 4) and
// numbered queries (q07 = k13); the solution walks every query in order, looks its key up in
// the queries and the key's value up in the facts — both far back in the context — and
// carries a running sum mod 10. The answer is the last three running sums, so any slip in
// any step shows in it. Seeded and exact.
//
//   facts : k00 3 ; k01 7 ; … queries : q00 k13 ; q01 k05 ; … compute the running sum …
//   solution : q00 k13 4 ; 0 + 4 = 4 \n q01 k05 9 ; 4 + 9 = 3 \n … answer : \boxed{739}
// Each lookup copies the token that follows the current one in the prompt (q00 → k13 in the
// queries, k13 → 4 in the facts): one induction step each.

import { Rng } from "../generate/rng.js";

export interface LookupSumOptions {
  /** Number of facts k00 … (up to 100). */
  facts: number;
  /** Number of queries = solution steps (up to 100). */
  steps: number;
}

export const DEFAULT_TASK: LookupSumOptions = { facts: 32, steps: 56 };

export interface LookupSumProblem {
  prompt: string;
  solution: string;
  answer: string;
}

const two = (i: number) => String(i).padStart(2, "0");

export const TASK_INSTRUCTION = "compute the running sum mod 10 of the queried facts , starting from 0 .";

export function generateProblem(seed: number, o: LookupSumOptions = DEFAULT_TASK): LookupSumProblem {
  if (o.facts < 1 || o.facts > 100 || o.steps < 3 || o.steps > 100) throw new RangeError("facts must be 1 … 100 and steps 3 … 100");
  const rng = new Rng(seed);
  const digit = () => Math.floor(rng.next() * 10);
  const values = Array.from({ length: o.facts }, digit);
  const queries = Array.from({ length: o.steps }, () => Math.floor(rng.next() * o.facts));
  const facts = values.map((v, i) => `k${two(i)} ${v} ;`).join(" ");
  const qs = queries.map((k, j) => `q${two(j)} k${two(k)} ;`).join(" ");
  const prompt = `facts : ${facts} queries : ${qs} ${TASK_INSTRUCTION}`;
  const lines: string[] = [];
  const sums: number[] = [];
  let acc = 0;
  queries.forEach((k, j) => {
    const v = values[k];
    const next = (acc + v) % 10;
    lines.push(`q${two(j)} k${two(k)} ${v} ; ${acc} + ${v} = ${next}`);
    sums.push(next);
    acc = next;
  });
  const answer = sums.slice(-3).join("");
  const solution = lines.join("\n") + `\nanswer : \\boxed{${answer}}`;
  return { prompt, solution, answer };
}

/** Every word the task (and the eval instruction) uses, for the tokenizer's vocabulary. */
export function taskWords(maxFacts = 100, maxSteps = 100): string[] {
  const words = new Set<string>(["facts", "queries", "solution", "answer", ":", "=", ";", "+", "\n", ...TASK_INSTRUCTION.split(" ")]);
  for (let i = 0; i < 10; i++) words.add(String(i));
  for (let i = 0; i < maxFacts; i++) words.add(`k${two(i)}`);
  for (let i = 0; i < maxSteps; i++) words.add(`q${two(i)}`);
  for (const w of "Please reason step by step, and put your final answer within \\boxed{}.".split(" ")) words.add(w);
  return [...words];
}
