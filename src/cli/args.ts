// Flag spelling and value parsing shared by every command.

import { InvalidArgumentError, type Command } from "commander";

/**
 * The original's flag names that differ from ours by more than `_` → `-`.
 * Every other `--snake_case` flag is accepted as `--kebab-case`.
 */
export const FLAG_RENAMES: Record<string, string> = {
  "--model-path": "--model",
  "--output-path": "--output",
  "--save-path": "--out",
  "--fbit-choices": "--bits",
  "--hidden-size": "--kv-hidden",
};

/** Rewrite the original's spellings (`--model_path`, `--n_sink_token=1`) to ours. */
export function normalizeArgv(argv: string[]): string[] {
  const out: string[] = [];
  let passthrough = false;
  for (const arg of argv) {
    if (passthrough || !arg.startsWith("--") || arg === "--") {
      if (arg === "--") passthrough = true;
      out.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = (eq >= 0 ? arg.slice(0, eq) : arg).replace(/_/g, "-");
    const renamed = FLAG_RENAMES[name] ?? name;
    out.push(eq >= 0 ? renamed + arg.slice(eq) : renamed);
  }
  return out;
}

export function parseIntArg(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`"${value}" is not an integer.`);
    if (n < min || n > max) throw new InvalidArgumentError(`${n} is out of range (${min} … ${max === Number.MAX_SAFE_INTEGER ? "∞" : max}).`);
    return n;
  };
}

export function parseFloatArg(min: number, max = Infinity, minExclusive = false) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`"${value}" is not a number.`);
    if ((minExclusive ? n <= min : n < min) || n > max) {
      throw new InvalidArgumentError(`${n} is out of range (${minExclusive ? "(" : "["}${min}, ${max}]).`);
    }
    return n;
  };
}

/** A comma-separated list of integers from an allowed set, e.g. "4,2". */
export function parseIntListArg(allowed?: number[]) {
  return (value: string): number[] => {
    const parts = value.split(",").map((s) => s.trim()).filter(Boolean);
    if (!parts.length) throw new InvalidArgumentError("empty list.");
    return parts.map((p) => {
      const n = Number(p);
      if (!Number.isInteger(n)) throw new InvalidArgumentError(`"${p}" is not an integer.`);
      if (allowed && !allowed.includes(n)) throw new InvalidArgumentError(`${n} is not one of ${allowed.join(", ")}.`);
      return n;
    });
  };
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(2)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** An integer that must be one of `allowed` (bit-widths: 16, 8, 4, 2, 1), checked as the flag is read. */
export function parseBitsArg(allowed: readonly number[]) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !allowed.includes(n)) throw new InvalidArgumentError(`${value} is not one of ${allowed.join(", ")}.`);
    return n;
  };
}

/** The options the user gave on the command line (not defaults), by attribute name. */
export function explicitOptions(cmd: Command): Set<string> {
  const given = new Set<string>();
  for (const o of cmd.options) {
    const key = o.attributeName();
    const source = cmd.getOptionValueSource(key);
    if (source === "cli" || source === "env") given.add(key);
  }
  return given;
}
