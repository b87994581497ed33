// The long-reasoning task of the default model (issue 8): a prompt lists facts (k13 = 4) and
// numbered queries (q07 = k13); the solution walks every query in order, looks its key up in
// the queries and the key's value up in the facts — both far back in the context — and
// carries a running sum mod 10. The answer is the last three running sums, so any slip in
// any step shows in it. Seeded and exact.
//
//   facts : k00=3 k01=7 … queries : q00=k13 q01=k05 … compute the running sum …
//   solution : q00 k13 4 ; 0 + 4 = 4 \n q01 k05 9 ; 4 + 9 = 3 \n … answer : \boxed{739}
// A fact or query is one word (one token), so each lookup is a single attention hop from the
// token just written to the prompt token that contains it (q00 → q00=k13 gives k13, k13 →
// k13=4 gives 4). With "k13 4" as two tokens a lookup needs an induction circuit (two
// composed heads), which a model of this size did not discover within the training budget
// (lookups stayed at chance after 600 steps while everything else was learned).

import { Rng } from "../generate/rng.js";

export interface LookupSumOptions {
  /** Number of facts k00 … (up to 100). */
  facts: number;
  /** Number of queries = solution steps (up to 100). */
  steps: number;
}

export const DEFAULT_TASK: LookupSumOptions = { facts: 32, steps: 56 };

/** The largest task the vocabulary covers (every fact kNN=v and query qNN=kMM is a word). */
export const MAX_FACTS = 32;
export const MAX_STEPS = 64;

export interface LookupSumProblem {
  prompt: string;
  solution: string;
  answer: string;
}

const two = (i: number) => String(i).padStart(2, "0");

export const TASK_INSTRUCTION = "compute the running sum mod 10 of the queried facts , starting from 0 .";

export function generateProblem(seed: number, o: LookupSumOptions = DEFAULT_TASK): LookupSumProblem {
  if (!(o.facts >= 1 && o.facts <= MAX_FACTS && o.steps >= 3 && o.steps <= MAX_STEPS) || !Number.isInteger(o.facts) || !Number.isInteger(o.steps)) {
    throw new RangeError(`facts must be 1 … ${MAX_FACTS} and steps 3 … ${MAX_STEPS} (the tokenizer's vocabulary)`);
  }
  const rng = new Rng(seed);
  const digit = () => Math.floor(rng.next() * 10);
  const values = Array.from({ length: o.facts }, digit);
  const queries = Array.from({ length: o.steps }, () => Math.floor(rng.next() * o.facts));
  const facts = values.map((v, i) => `k${two(i)}=${v}`).join(" ");
  const qs = queries.map((k, j) => `q${two(j)}=k${two(k)}`).join(" ");
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

/** Every plain word the task (and the eval instruction) uses, for the tokenizer's vocabulary. */
export function taskWords(): string[] {
  const words = new Set<string>(["facts", "queries", "solution", "answer", ":", "=", ";", "+", "\n", ...TASK_INSTRUCTION.split(" ")]);
  for (let i = 0; i < 10; i++) words.add(String(i));
  for (let i = 0; i < MAX_FACTS; i++) words.add(`k${two(i)}`);
  for (let i = 0; i < MAX_STEPS; i++) words.add(`q${two(i)}`);
  for (const w of "Please reason step by step, and put your final answer within \\boxed{}.".split(" ")) words.add(w);
  return [...words];
}

/** The fused words: every fact kNN=v and every query qNN=kMM, as [left, right] parts. */
export function taskPairs(): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < MAX_FACTS; i++) for (let v = 0; v < 10; v++) pairs.push([`k${two(i)}`, String(v)]);
  for (let j = 0; j < MAX_STEPS; j++) for (let i = 0; i < MAX_FACTS; i++) pairs.push([`q${two(j)}`, `k${two(i)}`]);
  return pairs;
}
