// Training the default model (issue 8): a small Llama learns the lookup-sum task from a
// seeded stream of problems, with the loss on the solution tokens only, AdamW, warm-up and
// cosine decay, gradient clipping, and a curriculum from short to full-length solutions.
// Deterministic for a seed (kernels split work the same way for any thread count).

import fs from "node:fs";
import path from "node:path";
import { INSTRUCTION } from "../eval/benchmarks.js";
import { Rng } from "../util/rng.js";
import { sequenceBackward } from "../model/backward.js";
import { parseModelConfig, type ModelConfig } from "../model/config.js";
import { Transformer } from "../model/forward.js";
import { clearGrads, gradBuffers, releaseGrads, zeroGrads, type Grads } from "../model/grads.js";
import { writeSafetensors, type TensorToWrite } from "../model/safetensors.js";
import { hfNames, type LayerWeights, type Weights } from "../model/weights.js";
import { generateProblem, taskPairs, taskWords, type LookupSumOptions } from "../task/lookup-sum.js";
import { buildTokenizerConfig, buildTokenizerJson } from "../task/tokenizer.js";
import { f32Matrix } from "../tensor/matrix.js";
import { allocF32 } from "../tensor/memory.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";
import { writeFileAtomic } from "../util/atomic.js";
import { AdamW, clipGradNorm, learningRate } from "./adamw.js";
import { growInto, type GrowSource } from "./grow.js";
import { hasTrainState, loadTrainState, saveTrainState, type TrainProgress } from "./train-state.js";

export interface ModelShape {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  maxPositions: number;
}

export const DEFAULT_SHAPE: ModelShape = { layers: 2, hidden: 128, heads: 4, kvHeads: 2, headDim: 32, intermediate: 352, maxPositions: 2048 };

export interface TrainOptions {
  outDir: string;
  seed: number;
  steps: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  shape: ModelShape;
  /** The full task; training ramps the number of steps per problem up to it. */
  task: LookupSumOptions;
  /**
   * The curriculum: problems start at 6 steps and grow to the full length by
   * 1/(steps·curriculumFraction) per step, from the first step where the running token
   * accuracy reaches curriculumGate (0 = from the start). Lookups are discovered suddenly (a
   * phase change after ~250–450 steps on the smallest problems); growing before that buries
   * them. (Gating every step instead stalled growth at ~12 facts, 90% token accuracy.)
   */
  curriculumFraction: number;
  curriculumGate?: number;
  /**
   * The facts curriculum: the largest number of facts grows with the same ramp from factsFrom
   * to task.facts (half the problems at the largest, half at 2 … largest); unset: always
   * task.facts.
   */
  factsFrom?: number;
  /**
   * The share of each batch drawn at the current longest length (the rest uniform over 3 …
   * longest steps); unset: 0.5. At 0.5 a model can read the counter off the position (half the
   * problems end at the same step); 0 gives every length the same weight.
   */
  fullFraction?: number;
  /** Start from this trained model, grown into the new shape (grow.ts) instead of from random weights. */
  growFrom?: GrowSource;
  onStep?: (s: TrainStepLog) => void;
  /** Called at every checkpoint (not at the end) with the model so far. */
  onCheckpoint?: (step: number, tf: Transformer, log: TrainStepLog[]) => void;
  /** A checkpoint every checkpointEvery steps, and whenever checkpointSeconds have passed since the last one. */
  checkpointEvery?: number;
  checkpointSeconds?: number;
  /**
   * The run's full state (train-state.ts), written at every checkpoint and at the end; with
   * resume, a run whose state file exists continues from it (same settings, or refused) and
   * ends with the weights an uninterrupted run reaches, bit for bit.
   */
  stateFile?: string;
  resume?: boolean;
}

export interface TrainStepLog {
  step: number;
  loss: number;
  tokenAccuracy: number;
  lr: number;
  gradNorm: number;
  tokensPerS: number;
  maxSteps: number;
  maxFacts: number;
  seconds: number;
}

/** Problem seeds ≥ this are training data; below are held out for evaluation. */
export const TRAIN_SEED_BASE = 1_000_000;

/** The model's tokenizer files (word-level, chat template) in dir. */
export function writeTaskTokenizer(dir: string, countdown = false): TextTokenizer {
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, "tokenizer.json"), JSON.stringify(buildTokenizerJson(taskWords(countdown), taskPairs())));
  writeFileAtomic(path.join(dir, "tokenizer_config.json"), JSON.stringify(buildTokenizerConfig(), null, 1));
  return TextTokenizer.fromDir(dir);
}

export function hfConfig(shape: ModelShape, vocab: number): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: shape.hidden, intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers, num_attention_heads: shape.heads, num_key_value_heads: shape.kvHeads, head_dim: shape.headDim,
    vocab_size: vocab, max_position_embeddings: shape.maxPositions, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: "silu",
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: "float16",
  };
}

/** Normal(0, std) by Box–Muller from a seeded stream. */
function normal(rng: Rng, n: number, std: number): Float32Array {
  const out = allocF32(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng.next(), 1e-12);
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    const a = 2 * Math.PI * rng.next();
    out[i] = r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

/** GPT-2-style initialisation: N(0, 0.02), residual projections scaled by 1/√(2·layers). */
export function initWeights(c: ModelConfig, seed: number): Weights {
  const rng = new Rng(seed);
  const std = 0.02;
  const proj = std / Math.sqrt(2 * c.numLayers);
  const mat = (rows: number, cols: number, s = std) => f32Matrix(normal(rng, rows * cols, s), rows, cols);
  const ones = (n: number) => allocF32(n).fill(1);
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const layers: LayerWeights[] = Array.from({ length: c.numLayers }, () => ({
    attnNorm: ones(c.hiddenSize), wq: mat(q, c.hiddenSize), wk: mat(kv, c.hiddenSize), wv: mat(kv, c.hiddenSize), wo: mat(c.hiddenSize, q, proj),
    bq: null, bk: null, bv: null, bo: null, qNorm: null, kNorm: null,
    ffnNorm: ones(c.hiddenSize), wGate: mat(c.intermediateSize, c.hiddenSize), wUp: mat(c.intermediateSize, c.hiddenSize), wDown: mat(c.hiddenSize, c.intermediateSize, proj),
  }));
  // untied output head: a fused word's input embedding starts as the sum of its parts (see
  // composeFusedEmbeddings); tied, fused words would then take the output probability of
  // their parts (logit e(k15)·h + e(6)·h next to e(6)·h) and copying digits never got learned
  const embed = mat(c.vocabSize, c.hiddenSize);
  return { embed, layers, finalNorm: ones(c.hiddenSize), lmHead: mat(c.vocabSize, c.hiddenSize) };
}

/** Parameters and whether weight decay applies, aligned with gradBuffers' order. */
function paramBuffers(w: Weights): { params: Float32Array[]; decay: boolean[] } {
  const params: Float32Array[] = [w.embed.data as Float32Array, w.finalNorm];
  const decay = [false, false];
  if (w.lmHead !== w.embed) {
    params.push(w.lmHead.data as Float32Array);
    decay.push(true);
  }
  for (const l of w.layers) {
    for (const v of Object.values(l)) {
      if (!v) continue;
      const isMatrix = !(v instanceof Float32Array);
      params.push(isMatrix ? (v.data as Float32Array) : v);
      decay.push(isMatrix);
    }
  }
  return { params, decay };
}

/** A training sequence: prompt (chat template) + solution + EOS, loss mask on the solution. */
export function trainingSequence(tok: TextTokenizer, seed: number, task: LookupSumOptions): { ids: number[]; mask: number[] } {
  const p = generateProblem(seed, task);
  const prompt = tok.encodeChat([{ role: "user", content: p.prompt + INSTRUCTION }]);
  const solution = [...tok.encode(p.solution, false), 2];
  const ids = [...prompt, ...solution];
  // position t predicts ids[t+1]: count the predictions of solution tokens
  const mask = ids.map((_, t) => (t >= prompt.length - 1 && t < ids.length - 1 ? 1 : 0));
  return { ids, mask };
}

export interface TrainResult {
  config: ModelConfig;
  transformer: Transformer;
  log: TrainStepLog[];
  seconds: number;
}

/**
 * A fused word's embedding starts as the sum of its parts' (e(k15=6) = e(k15) + e(6)), so a
 * lookup can be learned by circuits shared across all keys (match the key part, read the
 * value part) instead of aligning thousands of unrelated random rows one by one: with random
 * rows the lookups stayed at chance for 300 steps while everything else was learned.
 */
export function composeFusedEmbeddings(w: Weights, tok: TextTokenizer): void {
  const e = w.embed.data as Float32Array;
  const H = w.embed.cols;
  for (const [a, b] of taskPairs()) {
    const [id, ia, ib] = [`▁${a}=${b}`, `▁${a}`, `▁${b}`].map((t) => tok.tokenToId(t));
    if (id === undefined || ia === undefined || ib === undefined) throw new Error(`tokenizer lacks ${a}=${b} or its parts`);
    for (let c = 0; c < H; c++) e[id * H + c] = e[ia * H + c] + e[ib * H + c];
  }
}

export function train(o: TrainOptions): TrainResult {
  const tok = writeTaskTokenizer(o.outDir, o.task.countdown);
  const config = parseModelConfig(hfConfig(o.shape, tok.vocabSize));
  const weights = initWeights(config, o.seed);
  composeFusedEmbeddings(weights, tok);
  if (o.growFrom) growInto(o.growFrom, weights, config, tok);
  const tf = new Transformer(config, weights);
  const grads = zeroGrads(weights);
  try {
    return trainLoop(o, config, tok, tf, grads);
  } catch (e) {
    tf.dispose(); // a failed run gives its weights back too
    throw e;
  } finally {
    releaseGrads(grads);
  }
}

/** The share of each batch at the longest length unless told (the default model's stream). */
export const DEFAULT_FULL_FRACTION = 0.5;

/**
 * One training problem's size and seed from the data stream: a share (half unless told) at the
 * curriculum's current longest length, the rest uniform over 3 … maxSteps steps. The stream
 * draws facts only with a facts curriculum, so runs without one keep their stream.
 */
export function drawProblem(rng: Rng, maxSteps: number, maxFacts: number, o: Pick<TrainOptions, "fullFraction" | "factsFrom">): { steps: number; facts: number; seed: number } {
  const full = rng.next() < (o.fullFraction ?? DEFAULT_FULL_FRACTION);
  const steps = full ? maxSteps : 3 + Math.floor(rng.next() * (maxSteps - 2));
  const facts = o.factsFrom === undefined || full ? maxFacts : 2 + Math.floor(rng.next() * (maxFacts - 1));
  return { steps, facts, seed: TRAIN_SEED_BASE + Math.floor(rng.next() * 2 ** 31) };
}

/** What makes two runs the same run (a resume must match them). */
function runSettings(o: TrainOptions): Record<string, unknown> {
  return {
    seed: o.seed, steps: o.steps, batchSize: o.batchSize, lr: o.lr, warmupSteps: o.warmupSteps, shape: o.shape, task: o.task,
    curriculumFraction: o.curriculumFraction, curriculumGate: o.curriculumGate ?? 0, factsFrom: o.factsFrom ?? null,
    // recorded only when it changes the stream, so an explicit default resumes an unset one
    ...(o.fullFraction === undefined || o.fullFraction === DEFAULT_FULL_FRACTION ? {} : { fullFraction: o.fullFraction }),
    growFrom: o.growFrom ? o.growFrom.fingerprint : null,
  };
}

function trainLoop(o: TrainOptions, config: ModelConfig, tok: TextTokenizer, tf: Transformer, grads: Grads): TrainResult {
  const weights = tf.weights;
  const { params, decay } = paramBuffers(weights);
  const opt = new AdamW(params, decay);
  const settings = runSettings(o);
  let dataRng = new Rng(o.seed + 17);
  let p: TrainProgress<TrainStepLog> = { step: 0, curriculum: { ramp: 0, runningAccuracy: 0, growing: false }, tokens: 0, seconds: 0, log: [] };
  if (o.resume && o.stateFile && hasTrainState(o.stateFile)) ({ rng: dataRng, progress: p } = loadTrainState<TrainStepLog>(o.stateFile, settings, params, opt));
  const log = p.log;
  const t0 = performance.now() - p.seconds * 1000;
  let tokens = p.tokens;
  let { ramp, runningAccuracy, growing } = p.curriculum;
  let lastCheckpoint = performance.now();
  const saveState = (step: number) => {
    if (o.stateFile) saveTrainState(o.stateFile, settings, params, opt, dataRng, { step, curriculum: { ramp, runningAccuracy, growing }, tokens, seconds: (performance.now() - t0) / 1000, log });
    lastCheckpoint = performance.now();
  };
  for (let step = p.step; step < o.steps; step++) {
    // curriculum: the longest solution grows to the full task over the first part of training;
    // the number of facts stays fixed (the walk wraps at the last fact)
    const maxSteps = Math.round(6 + (o.task.steps - 6) * ramp);
    const maxFacts = o.factsFrom === undefined ? o.task.facts : Math.round(o.factsFrom + (o.task.facts - o.factsFrom) * ramp);
    const batch = Array.from({ length: o.batchSize }, () => {
      const d = drawProblem(dataRng, maxSteps, maxFacts, o);
      return trainingSequence(tok, d.seed, { ...o.task, facts: d.facts, steps: d.steps });
    });
    const counted = batch.reduce((a, b) => a + b.mask.reduce((x, y) => x + y, 0), 0);
    clearGrads(grads);
    let lossSum = 0;
    let correct = 0;
    for (const s of batch) {
      const r = sequenceBackward(tf, s.ids, s.ids.map((_, i) => i), { mask: s.mask, scale: 1 / counted, grads });
      lossSum += r.lossSum;
      correct += r.correct;
      tokens += s.ids.length;
    }
    const gradList = gradBuffers(grads);
    const gradNorm = clipGradNorm(gradList, 1);
    const lr = learningRate(step, o.steps, o.lr, o.warmupSteps);
    opt.step(gradList, lr);
    const seconds = (performance.now() - t0) / 1000;
    const entry = { step, loss: lossSum / counted, tokenAccuracy: correct / counted, lr, gradNorm, tokensPerS: tokens / seconds, maxSteps, maxFacts, seconds };
    runningAccuracy = step === 0 ? entry.tokenAccuracy : 0.9 * runningAccuracy + 0.1 * entry.tokenAccuracy;
    growing ||= runningAccuracy >= (o.curriculumGate ?? 0);
    if (growing) ramp = Math.min(1, ramp + 1 / Math.max(1, o.steps * o.curriculumFraction));
    log.push(entry);
    o.onStep?.(entry);
    const due = (o.checkpointEvery && (step + 1) % o.checkpointEvery === 0) || (o.checkpointSeconds !== undefined && performance.now() - lastCheckpoint >= o.checkpointSeconds * 1000);
    if (due && step + 1 < o.steps) {
      saveState(step + 1);
      o.onCheckpoint?.(step + 1, tf, log);
    }
  }
  saveState(o.steps);
  return { config, transformer: tf, log, seconds: (performance.now() - t0) / 1000 };
}

/** Save a trained model as a Hugging Face folder (F16 safetensors) next to its tokenizer. */
export function saveModel(dir: string, shape: ModelShape, tf: Transformer, extra: Record<string, unknown>): void {
  const w = tf.weights;
  const c = tf.config;
  const tensors: TensorToWrite[] = [{ name: "model.embed_tokens.weight", dtype: "F16", shape: [c.vocabSize, c.hiddenSize], data: w.embed.data as Float32Array }];
  w.layers.forEach((l, i) => {
    const n = hfNames(i);
    const m = (name: string, x: { rows: number; cols: number; data: ArrayBufferView }) => tensors.push({ name, dtype: "F16", shape: [x.rows, x.cols], data: x.data as Float32Array });
    tensors.push({ name: n.attnNorm, dtype: "F16", shape: [c.hiddenSize], data: l.attnNorm });
    m(n.wq, l.wq);
    m(n.wk, l.wk);
    m(n.wv, l.wv);
    m(n.wo, l.wo);
    tensors.push({ name: n.ffnNorm, dtype: "F16", shape: [c.hiddenSize], data: l.ffnNorm });
    m(n.wGate, l.wGate);
    m(n.wUp, l.wUp);
    m(n.wDown, l.wDown);
  });
  tensors.push({ name: "model.norm.weight", dtype: "F16", shape: [c.hiddenSize], data: w.finalNorm });
  if (w.lmHead !== w.embed) tensors.push({ name: "lm_head.weight", dtype: "F16", shape: [c.vocabSize, c.hiddenSize], data: w.lmHead.data as Float32Array });
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  writeFileAtomic(path.join(dir, "config.json"), JSON.stringify(hfConfig(shape, c.vocabSize), null, 1) + "\n");
  writeFileAtomic(path.join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2, do_sample: false }, null, 1) + "\n");
  writeFileAtomic(path.join(dir, "train_log.json"), JSON.stringify(extra, null, 1) + "\n");
}
