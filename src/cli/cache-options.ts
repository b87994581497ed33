// The KV-cache flags shared by generate, chat and eval.

import { Command, Option } from "commander";
import { parseKvBudgetsMB } from "../cache/budgets.js";
import { METHODS, type CacheSpec, type Method } from "../cache/factory.js";
import { foldRepScales, readRepScales } from "../calib/rep-scales.js";
import type { LoadedModel } from "../model/checkpoint.js";
import type { ModelConfig } from "../model/config.js";
import { parseIntArg } from "./args.js";

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
}

const bitsArg = parseIntArg(1, 16);

export function addCacheOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--method <name>", "KV cache: original (full precision) or pm-kvq (progressive mixed precision)").choices([...METHODS]).default("original"))
    .addOption(new Option("--backend <kind>", "pm-kvq storage: real (bit-packed codes, attention from the codes) or fake (the original's simulated floats)").choices(["real", "fake"]).default("real"))
    .option("--kv-budgets <MB|file>", "pm-kvq: per-block budget — one number of MB for every block, or a JSON file (a list of MB, or `pmkvq allocate` output)")
    .option("--n-sink-token <n>", "pm-kvq: first tokens kept at sink bits forever", parseIntArg(0), 1)
    .option("--n-sink-token-bits <b>", "pm-kvq: bit-width of sink tokens (16, 8, 4, 2, 1)", bitsArg, 16)
    .option("--n-window-token <n>", "pm-kvq: staging window W; full chunks of W tokens move into the body", parseIntArg(0), 128)
    .option("--n-window-token-bits <b>", "pm-kvq: bit-width of window tokens (16, 8, 4, 2)", bitsArg, 16)
    .option("--n-init-kv-bits <b>", "pm-kvq: starting bit-width of the body (16, 8, 4, 2)", bitsArg, 16)
    .option("--group-size <n>", "quantization group size in channels (default: 128, or head_dim when smaller)", parseIntArg(1))
    .option("--kv-trace <file>", "write per decode step each block's body bits and bytes (JSON lines)")
    .option("--rep-scales <file>", "key reparameterization scales from `pmkvq search-scales`, folded into q_proj/k_proj at load");
}

/** Apply model transforms the cache flags ask for (folding --rep-scales into the weights). */
export function applyModelTransforms(flags: CacheFlags, model: LoadedModel): void {
  if (flags.repScales) foldRepScales(model.transformer.weights, model.config, readRepScales(flags.repScales, model.config).scales);
}

export function cacheSpecFromFlags(flags: CacheFlags, config: ModelConfig): CacheSpec {
  return {
    method: flags.method,
    budgetsMB: flags.kvBudgets === undefined ? undefined : parseKvBudgetsMB(flags.kvBudgets, config.numLayers),
    progressive: {
      backend: flags.backend,
      nSinkTokens: flags.nSinkToken,
      sinkBits: flags.nSinkTokenBits,
      nWindowTokens: flags.nWindowToken,
      windowBits: flags.nWindowTokenBits,
      initBodyBits: flags.nInitKvBits,
      groupSize: flags.groupSize ?? Math.min(128, config.headDim),
    },
  };
}
