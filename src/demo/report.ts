// The demo's result as a table: plain text for the terminal, Markdown for the README.

import type { DemoResult } from "./demo.js";

const kib = (b: number | null) => (b === null ? "—" : (b / 1024).toFixed(1));

export function demoTable(r: DemoResult, markdown: boolean): string {
  const full = r.methods.find((m) => m.method === "original");
  const head = ["method", "accuracy", "Δ vs full", "ref KV KiB", "mean KV KiB", "tok/s", "mean out tokens"];
  const rows = r.methods.map((m) => [
    m.method,
    `${m.accuracy.toFixed(1)}%`,
    m.method === "original" || !full ? "" : (m.accuracy - full.accuracy).toFixed(1),
    kib(m.referenceHeldBytes),
    kib(m.heldBytes),
    m.tokensPerS.toFixed(0),
    m.meanOutputTokens.toFixed(0) + (m.kvBudgetStops ? ` (${m.kvBudgetStops} stopped by the KV budget)` : ""),
  ]);
  if (markdown) {
    return [`| ${head.join(" | ")} |`, "|---|---:|---:|---:|---:|---:|---:|", ...rows.map((c) => `| ${c.join(" | ")} |`)].join("\n");
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}

export function demoSummary(r: DemoResult): string {
  const full = r.methods.find((m) => m.method === "original");
  return [
    `lookup-sum task: ${r.task.facts} facts, ${r.task.steps} steps; ${full?.problems ?? 0} held-out problems, greedy decoding.`,
    "KV memory is honest (codes + scales + zeros + the float parts each method keeps): ref = held after reading the reference answer of one probe problem, the same sequence for every method; mean = held at the end of each generated answer.",
    `pm-kvq: window ${r.window} tokens, budgets of the exact allocation with final body bits ${r.bits.join(",")} per block — the largest whose ref memory is at most 2-bit KIVI's (${kib(r.targetHeldBytes)} KiB).`,
    ...(r.atRtn4 ? [`pm-kvq@rtn-4bit: the same, at most 4-bit RTN's ref memory (${kib(r.atRtn4.targetHeldBytes)} KiB): final body bits ${r.atRtn4.bits.join(",")}.`] : []),
  ].join("\n");
}
