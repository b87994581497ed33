// Choosing the next token from logits: greedy, or temperature, then top-k, then nucleus
// (top-p) sampling — the order of transformers' logits warpers (TemperatureLogitsWarper,
// TopKLogitsWarper, TopPLogitsWarper), which the original samples through.

import type { Rng } from "../util/rng.js";

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
  /**
   * Keep only the tokens whose logit is at least the k-th largest (ties kept, as transformers'
   * `scores < topk(scores, k)[-1]` removal); 0 or absent disables the cut.
   */
  topK?: number;
}

/** The k-th largest value of `x` (1 ≤ k ≤ x.length), by a size-k min-heap: O(n log k). */
export function kthLargest(x: ArrayLike<number>, k: number): number {
  const heap = new Float64Array(k);
  let size = 0;
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < size && heap[l] < heap[m]) m = l;
      if (r < size && heap[r] < heap[m]) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (size < k) {
      let j = size++;
      heap[j] = v;
      while (j > 0 && heap[(j - 1) >> 1] > heap[j]) {
        const parent = (j - 1) >> 1;
        [heap[j], heap[parent]] = [heap[parent], heap[j]];
        j = parent;
      }
    } else if (v > heap[0]) {
      heap[0] = v;
      down(0);
    }
  }
  return heap[0];
}

/**
 * Sample from softmax(logits / temperature) restricted to the smallest set of most likely
 * tokens whose probability mass reaches topP.
 */
export function sampleToken(logits: ArrayLike<number>, p: SamplingParams, rng: Rng): number {
  if (p.temperature <= 0) return argmax(logits);
  const n = logits.length;
  const k = p.topK ?? 0;
  if (k > 0 && k < n) return sampleTopK(logits, p, k, rng);
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

/**
 * Top-k first (the tokens at or above the k-th largest logit), then temperature softmax over
 * them and the nucleus of that renormalised distribution — transformers' order. The kept tokens
 * are few (k, plus ties), so they are sorted outright.
 */
function sampleTopK(logits: ArrayLike<number>, p: SamplingParams, k: number, rng: Rng): number {
  const threshold = kthLargest(logits, k);
  const kept: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] >= threshold) kept.push(i);
  kept.sort((a, b) => logits[b] - logits[a] || a - b);
  const max = logits[kept[0]];
  const probs = kept.map((i) => Math.exp((logits[i] - max) / p.temperature));
  const sum = probs.reduce((a, b) => a + b, 0);
  let last = kept.length - 1;
  if (p.topP < 1) {
    let mass = 0;
    for (let j = 0; j < kept.length; j++) {
      mass += probs[j] / sum;
      if (mass >= p.topP) {
        last = j;
        break;
      }
    }
  }
  let total = 0;
  for (let j = 0; j <= last; j++) total += probs[j];
  const target = rng.next() * total;
  let acc = 0;
  for (let j = 0; j <= last; j++) {
    acc += probs[j];
    if (target < acc) return kept[j];
  }
  return kept[last];
}
