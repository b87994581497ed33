// Run settings: everything that changes a response (model identity, KV method and its flags,
// sampling, token limits, prompt template, package version), recorded in every response
// record as `settings` with its id `settings_id`. Resume and judge compare them, so responses
// made under different settings are never mixed silently.
//
// Settings are a flat object: dotted keys → JSON scalars or lists. The id is the first 16 hex
// digits of the sha256 of the canonical JSON (keys sorted).

import crypto from "node:crypto";

export type SettingValue = string | number | boolean | null | number[] | string[];
export type RunSettings = Record<string, SettingValue>;

/** Canonical JSON: keys sorted, no spaces. */
export function canonicalSettings(s: RunSettings): string {
  const sorted: RunSettings = {};
  for (const k of Object.keys(s).sort()) sorted[k] = s[k];
  return JSON.stringify(sorted);
}

export function settingsId(s: RunSettings): string {
  return crypto.createHash("sha256").update(canonicalSettings(s)).digest("hex").slice(0, 16);
}

/** Is this a settings object as written by `settingsRecord` (flat, JSON values)? */
export function isRunSettings(v: unknown): v is RunSettings {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  return Object.values(v as Record<string, unknown>).every(
    (x) =>
      x === null || ["string", "number", "boolean"].includes(typeof x) ||
      (Array.isArray(x) && (x.every((e) => typeof e === "number") || x.every((e) => typeof e === "string"))),
  );
}

export interface SettingsDifference {
  key: string;
  a: SettingValue | undefined;
  b: SettingValue | undefined;
}

/** The keys whose values differ between two settings (a key missing on one side counts). */
export function diffSettings(a: RunSettings, b: RunSettings): SettingsDifference[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => ({ key: k, a: a[k], b: b[k] }));
}

export function formatSettingValue(v: SettingValue | undefined): string {
  if (v === undefined) return "(not set)";
  if (Array.isArray(v)) return v.length > 6 ? `[${v.slice(0, 6).join(",")},… ${v.length} values]` : `[${v.join(",")}]`;
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** "key: a → b; key2: …" for error messages. */
export function formatDifferences(diffs: SettingsDifference[], max = 8): string {
  const shown = diffs.slice(0, max).map((d) => `${d.key}: ${formatSettingValue(d.a)} → ${formatSettingValue(d.b)}`);
  if (diffs.length > max) shown.push(`… ${diffs.length - max} more`);
  return shown.join("; ");
}

/** One line a person can read: model, method, sampling, limits, version. */
export function describeSettings(s: RunSettings): string {
  const get = (k: string) => (s[k] === undefined || s[k] === null ? null : formatSettingValue(s[k]));
  const parts: string[] = [];
  const model = [get("model.architecture"), get("model.shape"), get("model.fingerprint")?.slice(0, 12)].filter(Boolean).join(" ");
  if (model) parts.push(`model ${model}`);
  const method = get("method");
  if (method) {
    const flags = Object.keys(s)
      .filter((k) => k.startsWith("kv.") && s[k] !== null)
      .sort()
      .map((k) => `${k.slice(3)}=${formatSettingValue(s[k])}`);
    parts.push(`method ${method}${flags.length ? ` (${flags.join(", ")})` : ""}`);
  }
  const sampling = ["sampling.temperature", "sampling.top_p", "sampling.top_k", "sampling.seed"].map((k) => (get(k) === null ? null : `${k.slice(9)} ${get(k)}`)).filter(Boolean);
  if (sampling.length) parts.push(sampling.join(", "));
  if (get("max_new_tokens")) parts.push(`max ${get("max_new_tokens")} new tokens`);
  if (get("pmkvq.version")) parts.push(`pm-kvq ${get("pmkvq.version")}`);
  return parts.join(" · ") || "(empty settings)";
}
