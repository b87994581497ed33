// A training run's full state in one file, so a run that stops (killed, machine restarted)
// resumes to the very weights an uninterrupted run reaches: float32 parameters, AdamW's
// moments and step count, the data stream's generator, the curriculum and the log. One
// safetensors file (F32 tensors, the rest as JSON in its metadata), written atomically.

import fs from "node:fs";
import { CheckpointError, SettingsMismatchError } from "../errors.js";
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from "../model/safetensors.js";
import { Rng } from "../util/rng.js";
import type { AdamW } from "./adamw.js";

/** Where a run keeps its state, inside its --out folder. */
export const TRAIN_STATE_FILE = "train-state.safetensors";
const META_KEY = "pmkvq_train_state";
const VERSION = 1;

/** Everything besides the tensors that the loop needs to continue. */
export interface TrainProgress<Log> {
  /** Optimizer steps done. */
  step: number;
  curriculum: { ramp: number; runningAccuracy: number; growing: boolean };
  tokens: number;
  seconds: number;
  log: Log[];
}

interface StoredState<Log> extends TrainProgress<Log> {
  version: number;
  adamT: number;
  rng: number[];
  /** The settings the run was started with; a resume with others is refused. */
  settings: Record<string, unknown>;
  tensors: number;
}

export function saveTrainState<Log>(file: string, settings: Record<string, unknown>, params: Float32Array[], opt: AdamW, rng: Rng, p: TrainProgress<Log>): void {
  const tensors: TensorToWrite[] = [];
  params.forEach((x, i) => {
    tensors.push({ name: `param.${i}`, dtype: "F32", shape: [x.length], data: x });
    tensors.push({ name: `adam_m.${i}`, dtype: "F32", shape: [x.length], data: opt.m[i] });
    tensors.push({ name: `adam_v.${i}`, dtype: "F32", shape: [x.length], data: opt.v[i] });
  });
  const state: StoredState<Log> = { version: VERSION, ...p, adamT: opt.t, rng: rng.state(), settings, tensors: params.length };
  writeSafetensors(file, tensors, { [META_KEY]: JSON.stringify(state) });
}

/**
 * Restore a saved state into params and opt (same shapes, in the same order), after checking
 * that it was made with the same settings; returns the data stream and the progress.
 */
export function loadTrainState<Log>(file: string, settings: Record<string, unknown>, params: Float32Array[], opt: AdamW): { rng: Rng; progress: TrainProgress<Log> } {
  const f = new SafetensorsFile(file);
  try {
    const raw = f.header.metadata[META_KEY];
    if (raw === undefined) throw new CheckpointError(`${file}: not a pmkvq training state (no ${META_KEY} in its metadata)`);
    const s = JSON.parse(raw) as StoredState<Log>;
    if (s.version !== VERSION) throw new CheckpointError(`${file}: training state version ${s.version}, this pmkvq reads ${VERSION}`);
    const diff = Object.keys({ ...s.settings, ...settings }).filter((k) => JSON.stringify(s.settings[k]) !== JSON.stringify(settings[k]));
    if (diff.length) {
      throw new SettingsMismatchError(
        `${file}: the run was started with other settings (${diff.map((k) => `${k}: ${JSON.stringify(s.settings[k])} → ${JSON.stringify(settings[k])}`).join("; ")}); resume with the same flags, or use another --out`,
      );
    }
    if (s.tensors !== params.length) throw new CheckpointError(`${file}: ${s.tensors} parameter tensors, the model has ${params.length}`);
    params.forEach((x, i) => {
      for (const [name, dest] of [[`param.${i}`, x], [`adam_m.${i}`, opt.m[i]], [`adam_v.${i}`, opt.v[i]]] as const) {
        const n = f.info(name).shape[0];
        if (n !== dest.length) throw new CheckpointError(`${file}: ${name} holds ${n} values, the model's has ${dest.length}`);
        f.readF32(name, dest);
      }
    });
    opt.t = s.adamT;
    return { rng: Rng.fromState(s.rng), progress: { step: s.step, curriculum: s.curriculum, tokens: s.tokens, seconds: s.seconds, log: s.log } };
  } finally {
    f.close();
  }
}

export function hasTrainState(file: string): boolean {
  return fs.existsSync(file);
}
