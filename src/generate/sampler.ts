// Choosing the next token from logits: greedy, or temperature + nucleus (top-p) sampling.

import type { Rng } from "./rng.js";

/** Index of the largest logit (the first one on ties). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 disables the cut. */
  topP: number;
}

/**
 * Sample from softmax(logits / temperature) restricted to the smallest set of most likely
 * tokens whose probability mass reaches topP.
 */
export function sampleToken(logits: ArrayLike<number>, p: SamplingParams, rng: Rng): number {
  if (p.temperature <= 0) return argmax(logits);
  const n = logits.length;
  const probs = new Float64Array(n);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((logits[i] - max) / p.temperature);
    sum += probs[i];
  }
  for (let i = 0; i < n; i++) probs[i] /= sum;
  const r = rng.next();
  if (p.topP >= 1) {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += probs[i];
      if (r < acc) return i;
    }
    return argmax(logits);
  }
  // Tokens below (1 − topP)/(n − 1) can never be in the nucleus (llama2.c's cut), so only
  // the rest are sorted.
  const cutoff = (1 - p.topP) / (n - 1);
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (probs[i] >= cutoff) candidates.push(i);
  candidates.sort((a, b) => probs[b] - probs[a] || a - b);
  let mass = 0;
  let last = candidates.length - 1;
  for (let k = 0; k < candidates.length; k++) {
    mass += probs[candidates[k]];
    if (mass >= p.topP) {
      last = k;
      break;
    }
  }
  const target = r * mass;
  let acc = 0;
  for (let k = 0; k <= last; k++) {
    acc += probs[candidates[k]];
    if (target < acc) return candidates[k];
  }
  return candidates[last];
}
