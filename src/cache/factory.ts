// Building the KV cache a run asks for, by method name.

import { UsageError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import { MB } from "./budgets.js";
import { createFullPrecisionCache } from "./full.js";
import { createProgressiveCache, defaultProgressiveOptions, type ProgressiveOptions } from "./progressive.js";
import type { KvCache } from "./types.js";

export const METHODS = ["original", "pm-kvq"] as const;
export type Method = (typeof METHODS)[number];

export interface CacheSpec {
  method: Method;
  /** pm-kvq: per-block budgets in MB. */
  budgetsMB?: number[];
  /** pm-kvq: sink/window/init bits, group size, backend (defaults: the original's). */
  progressive?: Partial<ProgressiveOptions>;
}

export function createCache(config: ModelConfig, spec: CacheSpec): KvCache {
  switch (spec.method) {
    case "original":
      return createFullPrecisionCache(config, config.numLayers);
    case "pm-kvq": {
      if (!spec.budgetsMB) throw new UsageError("--method pm-kvq needs --kv-budgets (MB per block, or a JSON file from `pmkvq allocate`)");
      if (spec.budgetsMB.length !== config.numLayers) throw new UsageError(`${spec.budgetsMB.length} KV budgets for ${config.numLayers} blocks`);
      const opts = { ...defaultProgressiveOptions(config.headDim), ...spec.progressive };
      return createProgressiveCache(config, spec.budgetsMB.map((mb) => Math.floor(mb * MB)), opts);
    }
    default:
      throw new UsageError(`unknown method ${JSON.stringify(spec.method)}; supported: ${METHODS.join(", ")}`);
  }
}
