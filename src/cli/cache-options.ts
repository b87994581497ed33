// The KV-cache flags shared by generate, chat and eval.

import { Command, Option } from "commander";
import { parseKvBudgetsMB } from "../cache/budgets.js";
import { METHODS, prepareModelForMethod, type CacheSpec, type Method } from "../cache/factory.js";
import { MIKV_DEFAULT_SINK_TOKENS } from "../cache/mikv.js";
import { STEP_ORDERS, type StepOrder } from "../cache/pending.js";
import { readReorder } from "../calib/rotatekv.js";
import type { RotateKvOrder } from "../quant/rotation.js";
import { DEFAULT_PIVOTS, PIVOT_RULES, type PivotRule } from "../cache/rotatekv.js";
import { UsageError } from "../errors.js";
import { foldRepScales, readRepScales } from "../calib/rep-scales.js";
import type { LoadedModel } from "../model/checkpoint.js";
import type { ModelConfig } from "../model/config.js";
import { fileSha256 } from "../model/fingerprint.js";
import { checkInputFile, checkOutputFile } from "../util/paths.js";
import { parseBitsArg, parseIntArg } from "./args.js";

export interface CacheFlags {
  method: Method;
  backend: "real" | "fake";
  kvBudgets?: string;
  nSinkToken: number;
  nSinkTokenBits: number;
  nWindowToken: number;
  nWindowTokenBits: number;
  nInitKvBits: number;
  groupSize?: number;
  kvTrace?: string;
  repScales?: string;
  kvDtype: "f32" | "f16";
  kBits: number;
  vBits: number;
  nSinkTokens: number;
  kHadDim?: number;
  nPivotToken: number;
  pivots: PivotRule;
  reorder?: string;
  rotate: "none" | "hadamard";
  stepOrder: StepOrder;
  /** The options given on the command line (not defaults), by attribute name. */
  explicit?: ReadonlySet<string>;
}

/** Bit-widths a quantized group can have (spec §2). */
export const ALL_BITS = [16, 8, 4, 2, 1] as const;
/** Window and starting body bit-widths (a body shrinks from them by halving, down to 2). */
export const STAGING_BITS = [16, 8, 4, 2] as const;

export function addCacheOptions(cmd: Command): Command {
  const bits = parseBitsArg(ALL_BITS);
  const staging = parseBitsArg(STAGING_BITS);
  return cmd
    .addOption(
      new Option("--method <name>", "KV cache: original (full precision), pm-kvq (progressive mixed precision), or a baseline: rtn, kivi, mikv, rotatekv, turboquant")
        .choices([...METHODS])
        .default("original"),
    )
    .addOption(new Option("--kv-dtype <dtype>", "original: precision of the full-precision cache").choices(["f32", "f16"]).default("f32"))
    .addOption(new Option("--backend <kind>", "pm-kvq storage: real (bit-packed codes, attention from the codes) or fake (the original's simulated floats)").choices(["real", "fake"]).default("real"))
    .option("--kv-budgets <MB|file>", "pm-kvq: per-block budget — one number of MB for every block, or a JSON file (a list of MB, or `pmkvq allocate` output)")
    .option("--n-sink-token <n>", "pm-kvq: first tokens kept at sink bits forever", parseIntArg(0), 1)
    .option("--n-sink-token-bits <b>", "pm-kvq: bit-width of sink tokens (16, 8, 4, 2, 1)", bits, 16)
    .option("--n-window-token <n>", "pm-kvq: staging window W; full chunks of W tokens move into the body", parseIntArg(0), 128)
    .option("--n-window-token-bits <b>", "pm-kvq: bit-width of window tokens (16, 8, 4, 2)", staging, 16)
    .option("--n-init-kv-bits <b>", "pm-kvq: starting bit-width of the body (16, 8, 4, 2)", staging, 16)
    .addOption(new Option("--rotate <kind>", "pm-kvq: hold K (after RoPE) and V of every head rotated by a randomized Hadamard transform (the query rotated with them, the output back)").choices(["none", "hadamard"]).default("none"))
    .option("--group-size <n>", "quantized methods: group size in channels (default: 128, or head_dim when smaller)", parseIntArg(1))
    .option("--kv-trace <file>", "write per decode step each block's body bits and bytes (JSON lines)")
    .option("--rep-scales <file>", "key reparameterization scales from `pmkvq search-scales`, folded into q_proj/k_proj at load")
    .option("--k-bits <b>", "baselines (rtn, kivi, mikv, rotatekv): key bits (16, 8, 4, 2, 1); turboquant: 8, 4, 3, 2, 1", parseBitsArg([16, 8, 4, 3, 2, 1]), 4)
    .option("--v-bits <b>", "baselines: value bits (16, 8, 4, 2, 1); turboquant: 8, 4, 3, 2, 1", parseBitsArg([16, 8, 4, 3, 2, 1]), 4)
    .option("--n-sink-tokens <n>", "mikv: most-attended tokens kept at full precision (default 0, the original's: channel balancing + RTN, each step's new tokens attended at full precision)", parseIntArg(0), MIKV_DEFAULT_SINK_TOKENS)
    .option("--k-had-dim <n>", "rotatekv: Hadamard block size over kv_hidden (a power of two; default kv_hidden)", parseIntArg(1))
    .option("--n-pivot-token <n>", `rotatekv: pivots (attention sinks) kept unquantized — with --pivots elements the tokens holding the n largest |hidden| elements of each prefill (the original's, default ${DEFAULT_PIVOTS}), with --pivots tokens the n tokens of the largest ‖hidden‖`, parseIntArg(0), DEFAULT_PIVOTS)
    .addOption(new Option("--pivots <rule>", "rotatekv: how pivots are chosen: elements (the original's) or tokens").choices([...PIVOT_RULES]).default("elements"))
    .option("--reorder <file>", "rotatekv: key channel order from `pmkvq rotatekv-calib` (default: no reordering); the file says whether it reorders the rotated keys (the original's) or the raw ones")
    .addOption(
      new Option(
        "--step-order <order>",
        "pm-kvq, rtn, kivi: original — a forward call's tokens are attended at full precision and quantized after (the original's order; " +
          "with eval's whole-prompt prefill, prefill attention is never quantized); quantize-first — quantized before any attention sees them",
      ).choices([...STEP_ORDERS]).default("original"),
    );
}

/** The cache flags each method reads (the rest would be silently ignored). */
const METHOD_FLAGS: Record<Method, (keyof CacheFlags)[]> = {
  original: ["kvDtype"],
  "pm-kvq": ["kvBudgets", "backend", "nSinkToken", "nSinkTokenBits", "nWindowToken", "nWindowTokenBits", "nInitKvBits", "groupSize", "rotate", "stepOrder"],
  rtn: ["kBits", "vBits", "groupSize", "stepOrder"],
  kivi: ["kBits", "vBits", "groupSize", "stepOrder"],
  mikv: ["kBits", "vBits", "groupSize", "nSinkTokens"],
  rotatekv: ["kBits", "vBits", "groupSize", "kHadDim", "nPivotToken", "pivots", "reorder"],
  turboquant: ["kBits", "vBits"],
};

const kebab = (k: string) => "--" + k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());

/**
 * Refuse cache flags the chosen method does not read (e.g. --kv-budgets with --method rtn),
 * and check the cache's input and output files before any work starts.
 */
export function checkCacheFlags(flags: CacheFlags): void {
  const given = flags.explicit ?? new Set<string>();
  const reads = new Set<string>(METHOD_FLAGS[flags.method]);
  const methodSpecific = new Set<string>(Object.values(METHOD_FLAGS).flat());
  const ignored = [...given].filter((k) => methodSpecific.has(k) && !reads.has(k));
  if (ignored.length) {
    const owners = (k: string) => (Object.keys(METHOD_FLAGS) as Method[]).filter((m) => METHOD_FLAGS[m].includes(k as keyof CacheFlags)).join("/");
    throw new UsageError(
      `--method ${flags.method} does not read ${ignored.map((k) => `${kebab(k)} (a ${owners(k)} flag)`).join(", ")}; ` +
        `${flags.method} reads ${METHOD_FLAGS[flags.method].map(kebab).join(", ")}`,
    );
  }
  for (const [name, b] of [["--k-bits", flags.kBits], ["--v-bits", flags.vBits]] as const) {
    const ok = flags.method === "turboquant" ? b >= 1 && b <= 8 : (ALL_BITS as readonly number[]).includes(b);
    if (!ok) throw new UsageError(`${name} ${b}: ${flags.method === "turboquant" ? "turboquant's codebooks are 1 … 8 bits" : `--method ${flags.method} holds 16, 8, 4, 2 or 1-bit codes (3 bits only with --method turboquant)`}`);
  }
  if (flags.kvBudgets !== undefined && !/^\s*[0-9]*\.?[0-9]+(e[-+]?\d+)?\s*$/i.test(flags.kvBudgets)) checkInputFile(flags.kvBudgets.trim(), "--kv-budgets");
  if (flags.repScales) checkInputFile(flags.repScales, "--rep-scales");
  if (flags.reorder) checkInputFile(flags.reorder, "--reorder");
  if (flags.kvTrace) checkOutputFile(flags.kvTrace, "--kv-trace");
}

export function cacheSpecFromFlags(flags: CacheFlags, config: ModelConfig): CacheSpec {
  let reorder: Int32Array[] | null = null;
  let kHadDim = flags.kHadDim;
  let order: RotateKvOrder = "rotate-first";
  if (flags.reorder) {
    const r = readReorder(flags.reorder, config);
    reorder = r.reorder;
    order = r.order;
    if (kHadDim !== undefined && r.kHadDim !== null && r.kHadDim !== kHadDim) {
      throw new UsageError(`--reorder ${flags.reorder} was made for --k-had-dim ${r.kHadDim}, not ${kHadDim}`);
    }
    kHadDim ??= r.kHadDim ?? undefined;
  }
  return {
    method: flags.method,
    kvDtype: flags.kvDtype,
    budgetsMB: flags.kvBudgets === undefined ? undefined : parseKvBudgetsMB(flags.kvBudgets, config.numLayers),
    groupSize: flags.groupSize,
    progressive: {
      backend: flags.backend,
      nSinkTokens: flags.nSinkToken,
      sinkBits: flags.nSinkTokenBits,
      nWindowTokens: flags.nWindowToken,
      windowBits: flags.nWindowTokenBits,
      initBodyBits: flags.nInitKvBits,
    },
    kBits: flags.kBits,
    vBits: flags.vBits,
    mikvSinkTokens: flags.nSinkTokens,
    rotatekv: { kHadDim, reorder, order, nPivotTokens: flags.nPivotToken, pivotRule: flags.pivots },
    rotate: flags.rotate === "hadamard" ? "hadamard" : null,
    stepOrder: flags.stepOrder,
  };
}

/** Apply the model transforms the flags ask for: --rep-scales, and RotateKV's rotations. */
export function applyModelTransforms(flags: CacheFlags, model: LoadedModel, spec: CacheSpec): void {
  if (flags.repScales) {
    foldRepScales(model.transformer.weights, model.config, readRepScales(flags.repScales, model.config).scales);
    model.transformer.transforms.push(`rep-scales:${fileSha256(flags.repScales)}`);
  }
  prepareModelForMethod(model.transformer, spec);
}
