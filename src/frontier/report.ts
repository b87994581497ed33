// The frontier as text: a table of every setting (plain for the terminal, Markdown for the
// README), the level-by-level comparison of the reserved protocol, and the verdicts.

import { frontier, isPmKvq, type SettingResult } from "./analysis.js";
import { shortestSteps, type FrontierResult } from "./frontier.js";

const kib = (b: number) => (b / 1024).toFixed(1);

function table(head: string[], rows: string[][], markdown: boolean, align: ("l" | "r")[]): string {
  if (markdown) {
    return [`| ${head.join(" | ")} |`, `|${align.map((a) => (a === "r" ? "---:" : "---")).join("|")}|`, ...rows.map((c) => `| ${c.join(" | ")} |`)].join("\n");
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => (align[i] === "l" ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  ").trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

/** Every setting: accuracy, reserved and held memory, whether it is on its method's frontier. */
export function settingsTable(r: FrontierResult, markdown: boolean): string {
  const onReserved = new Set<string>();
  const onHeld = new Set<string>();
  const byFamily = new Map<string, SettingResult[]>();
  for (const s of r.settings) byFamily.set(s.family, [...(byFamily.get(s.family) ?? []), s]);
  for (const rs of byFamily.values()) {
    for (const q of frontier(rs, "reserved")) onReserved.add(q.key);
    for (const q of frontier(rs, "held")) onHeld.add(q.key);
  }
  const rows = r.settings.map((s) => [
    s.key,
    `${s.accuracy.toFixed(1)}%`,
    `${s.correct}/${s.problems}`,
    kib(s.reservedBytes) + (onReserved.has(s.key) ? " *" : ""),
    kib(s.heldBytes) + (onHeld.has(s.key) ? " *" : ""),
    kib(s.heldMaxBytes),
    s.meanOutputTokens.toFixed(0) + (s.kvBudgetStops ? ` (${s.kvBudgetStops} kv_budget)` : ""),
    s.tokensPerS.toFixed(0),
  ]);
  return table(["setting", "accuracy", "correct", "reserved KiB", "held KiB (mean peak)", "max peak KiB", "mean out tokens", "tok/s"], rows, markdown, ["l", "r", "r", "r", "r", "r", "r", "r"]);
}

/** The reserved protocol level by level: pm-kvq's best within each level against each fixed-bit method's. */
export function levelsTable(r: FrontierResult, markdown: boolean): string {
  const methods = r.levels[0]?.others.map((o) => o.method) ?? [];
  const cell = (q: { key: string; accuracy: number } | null) => (q ? `${q.accuracy.toFixed(1)}% (${q.key})` : "—");
  const rows = r.levels.map((l) => [kib(l.bytes), cell(l.pm), ...l.others.map((o) => (o.best ? `${o.best.accuracy.toFixed(1)}%` : "—")), l.atOrAbove ? "yes" : markdown ? "**no**" : "NO"]);
  return table(["reserved KiB ≤", "pm-kvq", ...methods, "pm-kvq ≥ all"], rows, markdown, ["r", "l", ...methods.map(() => "r" as const), "l"]);
}

export function frontierSummary(r: FrontierResult): string {
  const pm = r.settings.filter(isPmKvq);
  return [
    `lookup-sum: ${r.task.facts} facts, ${r.minLengthFraction < 1 ? `${shortestSteps(r.task, r.minLengthFraction)}–` : ""}${r.task.steps} steps; ${r.problems} held-out problems per setting, greedy decoding; the longest answer takes ${r.longestAnswer} tokens with its prompt, every cache is reserved for ${r.maxLen}.`,
    "Memory is honest (codes + scales + zeros + float parts + spare capacity). reserved: the peak a cache holds on a max_len sequence (what it must be given); held: the peak it held during each answer, averaged. * = on its method's frontier.",
    ...(pm.length ? [`pm-kvq: exact allocations of spec §4 over bits {16, 8, 4, 2} with budgets for max_len (sink 1, windows ${[...new Set(pm.map((s) => s.window))].join(" and ")}), rep scales calibrated on solved problems of the task.`] : []),
  ].join("\n");
}
