// The long-reasoning task of the default model (issue 8): a prompt lists facts (k03=4) and a
// start key; the solution walks the keys in order from the start (k03, k00 after the last
// key, …), looks each key's value up (in the prompt, hundreds of tokens back by the end, or
// in its own earlier lines) and carries a running sum mod 10. The answer is the last three
// running sums, so any slip in any step shows in it. Seeded and exact.
//
//   facts : k00=3 k01=7 k02=4 k03=2 start : k02 walk the keys …
//   solution : k02 4 ; 0 + 4 = 4 \n k03 2 ; 4 + 2 = 6 \n k00 3 ; … answer : \boxed{739}
//
// A fact is one word (one token), so a lookup is a single attention hop from the key just
// written to the prompt token that holds it (k03 → k03=2). Designs that did not train on this
// machine in the time available are described in the README ("The default model").

import { Rng } from "../util/rng.js";

export interface LookupSumOptions {
  /** Number of facts k00 … (up to MAX_FACTS). */
  facts: number;
  /** Solution steps (lookups), up to MAX_STEPS (MAX_COUNTDOWN_STEPS with countdown). */
  steps: number;
  /**
   * The prompt states the number of steps (`steps : 4 7`) and every solution line starts with
   * the steps left, two digits (`4 7 : k02 4 ; …`, then `4 6 : …`), so a model can stop at any
   * length (answers whose length varies). Digits, so counting down is ten rules shared by every
   * line (words n1 … n250 were 250 rules to learn one by one: 0% after 150 steps).
   */
  countdown?: boolean;
}

export const DEFAULT_TASK: LookupSumOptions = { facts: 4, steps: 60 };

/** The largest task: every fact kNN=v is a word of the vocabulary. */
export const MAX_FACTS = 32;
export const MAX_STEPS = 100;
export const MAX_COUNTDOWN_STEPS = 99;

export interface LookupSumProblem {
  prompt: string;
  solution: string;
  answer: string;
}

const two = (i: number) => String(i).padStart(2, "0");
/** A countdown value as two digit words: 7 → "0 7". */
const digits = (i: number) => two(i).split("").join(" ");

export const TASK_INSTRUCTION = "walk the keys in order from the start , after the last key comes k00 . compute the running sum mod 10 of the values , starting from 0 .";

export function generateProblem(seed: number, o: LookupSumOptions = DEFAULT_TASK): LookupSumProblem {
  const maxSteps = o.countdown ? MAX_COUNTDOWN_STEPS : MAX_STEPS;
  if (!(o.facts >= 1 && o.facts <= MAX_FACTS && o.steps >= 3 && o.steps <= maxSteps) || !Number.isInteger(o.facts) || !Number.isInteger(o.steps)) {
    throw new RangeError(`facts must be 1 … ${MAX_FACTS} and steps 3 … ${maxSteps} (every fact and counter is a word of the tokenizer)`);
  }
  const rng = new Rng(seed);
  const values = Array.from({ length: o.facts }, () => Math.floor(rng.next() * 10));
  const start = Math.floor(rng.next() * o.facts);
  const facts = values.map((v, i) => `k${two(i)}=${v}`).join(" ");
  const prompt = `facts : ${facts} start : k${two(start)}${o.countdown ? ` steps : ${digits(o.steps)}` : ""} ${TASK_INSTRUCTION}`;
  const lines: string[] = [];
  const sums: number[] = [];
  let acc = 0;
  let key = start;
  for (let j = 0; j < o.steps; j++) {
    const v = values[key];
    const next = (acc + v) % 10;
    lines.push(`${o.countdown ? `${digits(o.steps - j)} : ` : ""}k${two(key)} ${v} ; ${acc} + ${v} = ${next}`);
    sums.push(next);
    acc = next;
    key = (key + 1) % o.facts;
  }
  const answer = sums.slice(-3).join("");
  const solution = lines.join("\n") + `\nanswer : \\boxed{${answer}}`;
  return { prompt, solution, answer };
}

/** Every plain word the task (and the eval instruction) uses, for the tokenizer's vocabulary ("steps" last, with countdown). */
export function taskWords(countdown = false): string[] {
  const words = new Set<string>(["facts", "queries", "solution", "answer", ":", "=", ";", "+", "\n", ...TASK_INSTRUCTION.split(" ")]);
  for (let i = 0; i < 10; i++) words.add(String(i));
  for (let i = 0; i < MAX_FACTS; i++) words.add(`k${two(i)}`);
  for (const w of "Please reason step by step, and put your final answer within \\boxed{}.".split(" ")) words.add(w);
  if (countdown) words.add("steps");
  return [...words];
}

/** The fused words: every fact kNN=v, as [left, right] parts. */
export function taskPairs(): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < MAX_FACTS; i++) for (let v = 0; v < 10; v++) pairs.push([`k${two(i)}`, String(v)]);
  return pairs;
}
