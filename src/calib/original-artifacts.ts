// The objects the Python original (thu-nics/PM-KVQ) saves with torch.save, turned into ours and
// checked: which artifact a file holds (by its shape), the sensitivity tables, the per-block
// budgets, and the per-block key tensors (max keys and rep scales have one layout), plus the √r
// the original's evaluation folds instead of its stored rep scales (spec §10).

import { UsageError } from "../errors.js";
import { bf16ToF32, f16Bits, f16Value, f32ToBf16 } from "../tensor/dtype.js";
import { PyDict, pyTypeName, PyTuple, type PyValue } from "../util/pickle.js";
import { TorchTensor, type TorchFloatDtype } from "../util/torch-pickle.js";
import { blockMemoryMB, parseSensitivity, type Sensitivity } from "./allocate.js";
import type { CalibrationStep } from "./calibrate.js";
import { REP_SCALE_MAX, REP_SCALE_MIN } from "./rep-scales.js";

/** Where the original's script of each artifact comes from, for messages. */
export const ORIGINAL_SCRIPT: Record<CalibrationStep, string> = {
  sensitivity: "get_sensitivity.py",
  allocation: "allocate_memory.py",
  "max-keys": "get_max_keys.py",
  "rep-scales": "search_rep_scales.py",
};

/** Per-block tensors of one shape, as both max keys and rep scales are. */
export interface BlockTensors {
  perBlock: Float32Array[];
  /** Each block's shape in the source file. */
  shape: readonly number[];
  heads: number;
  pairs: number;
  dtype: TorchFloatDtype;
}

/** What each script saves, in words (for "not the original's X" messages). */
export const ORIGINAL_HOLDS: Record<CalibrationStep, string> = {
  sensitivity: '{"k_sensitivity": {bits: [per block]}, "v_sensitivity": …}',
  allocation: "a list of per-block budgets in MB",
  "max-keys": "a list of per-block tensors",
  "rep-scales": "a list of per-block tensors",
};

/** What a torch.save object is, by its shape: one of the original's artifacts, or null. */
export function classify(v: PyValue): CalibrationStep | "tensor-list" | null {
  if (v instanceof PyDict && v.get("k_sensitivity") instanceof PyDict && v.get("v_sensitivity") instanceof PyDict) return "sensitivity";
  const list = Array.isArray(v) ? v : v instanceof PyTuple ? v.items : null;
  if (!list || list.length === 0) return null;
  if (list.every((x) => typeof x === "number")) return "allocation";
  if (list.every((x) => x instanceof TorchTensor)) return "tensor-list";
  return null;
}

/** What a torch.save object holds, in words, for messages. */
export function describe(v: PyValue): string {
  if (v instanceof PyDict) return `a ${pyTypeName(v)} with keys ${[...v.items.keys()].slice(0, 6).map((k) => JSON.stringify(typeof k === "bigint" ? String(k) : k)).join(", ")}`;
  const list = Array.isArray(v) ? v : v instanceof PyTuple ? v.items : null;
  if (list) return `a ${pyTypeName(v)}${list.length ? ` (first item: ${pyTypeName(list[0])})` : ""}`;
  return `a ${pyTypeName(v)}`;
}

/** {"k_sensitivity": {16: [L numbers], …}, "v_sensitivity": …} → ours, checked by the same rules `pmkvq allocate` reads with. */
export function sensitivityFromOriginal(v: PyValue, file: string): Sensitivity {
  if (!(v instanceof PyDict)) throw new UsageError(`${file}: holds ${describe(v)}, not the original's sensitivity`);
  const ours: Record<string, Record<string, number[]>> = {};
  for (const [theirs, name] of [["k_sensitivity", "kSensitivity"], ["v_sensitivity", "vSensitivity"]] as const) {
    const table = v.get(theirs);
    if (!(table instanceof PyDict)) throw new UsageError(`${file}: "${theirs}" is ${describe(table ?? null)}, not a dict of bit-width → per-block list`);
    const out: Record<string, number[]> = {};
    for (const [bits, list] of table.items) {
      const key = typeof bits === "number" ? String(bits) : typeof bits === "string" ? bits : "";
      if (!/^[1-9][0-9]?$/.test(key)) throw new UsageError(`${file}: ${theirs} has the key ${typeof bits === "bigint" ? String(bits) : JSON.stringify(bits)}, not a bit-width`);
      if (!Array.isArray(list)) throw new UsageError(`${file}: ${theirs}[${key}] is a ${pyTypeName(list)}, not a list`);
      list.forEach((x, i) => {
        if (typeof x !== "number" || !Number.isFinite(x)) throw new UsageError(`${file}: ${theirs}[${key}][${i}] is ${typeof x === "number" ? x : `a ${pyTypeName(x)}`}, not a finite number`);
      });
      out[key] = list as number[];
    }
    ours[name] = out;
  }
  return parseSensitivity({ kSensitivity: ours.kSensitivity, vSensitivity: ours.vSensitivity }, file);
}

/** [L numbers] (numpy float64 scalars in the original) → MB per block, each finite and > 0. */
export function budgetsFromOriginal(v: PyValue, file: string): number[] {
  const list = Array.isArray(v) ? v : v instanceof PyTuple ? v.items : null;
  if (!list || list.length === 0) throw new UsageError(`${file}: holds ${describe(v)}, not the original's list of per-block budgets`);
  return list.map((x, i) => {
    if (typeof x !== "number" || !Number.isFinite(x) || x <= 0) throw new UsageError(`${file}: budget of block ${i} is ${typeof x === "number" ? x : `a ${pyTypeName(x)}`}, not a finite number of MB > 0`);
    return x;
  });
}

/** Bit-widths b_i with budget_i = mem_i(b_i) (spec §4), or null if some budget is not a whole bit-width. */
export function budgetBits(budgetsMB: number[], kvHidden: number, maxLen: number): number[] | null {
  const unit = blockMemoryMB(1, kvHidden, maxLen);
  const bits = budgetsMB.map((mb) => mb / unit);
  return bits.every((b) => Math.round(b) >= 1 && Math.abs(b - Math.round(b)) <= 1e-9 * b) ? bits.map(Math.round) : null;
}

/** [L tensors (1, H, 1, d/2)] (or (H, d/2)) → per block H·d/2 values, row-major by head. */
export function blockTensorsFromOriginal(v: PyValue, file: string, step: "max-keys" | "rep-scales"): BlockTensors {
  const list = Array.isArray(v) ? v : v instanceof PyTuple ? v.items : [];
  const tensors = list.filter((t): t is TorchTensor => t instanceof TorchTensor);
  if (!tensors.length || tensors.length !== list.length) throw new UsageError(`${file}: holds ${describe(v)}, not a list of per-block tensors`);
  const first = tensors[0];
  const hd = headsAndPairs(first.shape);
  if (!hd) throw new UsageError(`${file}: block 0 has shape [${first.shape.join(", ")}], expected (1, kv_heads, 1, head_dim/2) as ${ORIGINAL_SCRIPT[step]} saves`);
  const perBlock = tensors.map((t, l) => {
    if (t.shape.join() !== first.shape.join() || t.dtype !== first.dtype) {
      throw new UsageError(`${file}: block ${l} is ${t.dtype} [${t.shape.join(", ")}], block 0 ${first.dtype} [${first.shape.join(", ")}]`);
    }
    const bad = t.data.findIndex((x) => !Number.isFinite(x) || (step === "max-keys" ? x < 0 : x <= 0));
    if (bad >= 0) {
      const rule = step === "max-keys" ? "max keys are maxima of |K|, finite and ≥ 0" : "a key scale must be a finite number > 0";
      throw new UsageError(`${file}: block ${l} value ${bad} (head ${Math.floor(bad / hd.pairs)}, pair ${bad % hd.pairs}) is ${t.data[bad]}; ${rule}`);
    }
    return t.data;
  });
  return { perBlock, shape: first.shape, heads: hd.heads, pairs: hd.pairs, dtype: first.dtype };
}

function headsAndPairs(shape: readonly number[]): { heads: number; pairs: number } | null {
  if (shape.length === 4 && shape[0] === 1 && shape[2] === 1 && shape[1] > 0 && shape[3] > 0) return { heads: shape[1], pairs: shape[3] };
  if (shape.length === 2 && shape[0] > 0 && shape[1] > 0) return { heads: shape[0], pairs: shape[1] };
  return null;
}

/** √r as the original's evaluation computes it: float32 sqrt, rounded to the stored dtype, clamped to [1e-4, 1e4]. */
export function evaluatedScales(r: Float32Array, dtype: TorchFloatDtype): Float32Array {
  const s = r.map(Math.sqrt); // Float32Array: each √ rounded once to float32, as torch's float kernel does
  if (dtype === "bfloat16") {
    const bits = new Uint16Array(s.length);
    f32ToBf16(s, bits);
    bf16ToF32(bits, s);
  } else if (dtype === "float16") {
    for (let i = 0; i < s.length; i++) s[i] = f16Value(f16Bits(s[i]));
  }
  return s.map((x) => Math.min(REP_SCALE_MAX, Math.max(REP_SCALE_MIN, x)));
}

/** "5 × bfloat16 (1, 4, 1, 4)". */
export function describeBlockTensors(t: BlockTensors): string {
  return `${t.perBlock.length} × ${t.dtype} (${t.shape.join(", ")})`;
}
