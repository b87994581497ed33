// Accuracy against KV memory: frontiers per method and the verdicts built from them, under
// the two protocols of `pmkvq frontier` (pure functions over measured results).
//
// - reserved (the paper's): a setting is charged the bytes it may hold for a max_len-token
//   answer (its peak on a max_len reference sequence), whatever the answer's length;
// - held (the strict one): a setting is charged the peak bytes it actually held, averaged
//   over the answers.
//
// A method's frontier at memory x is the best accuracy any of its settings reaches within x.

export type Protocol = "reserved" | "held";

export const PROTOCOLS: Protocol[] = ["reserved", "held"];

/** One evaluated setting of one method (e.g. KIVI at 2 bits, pm-kvq with bits {4,2} and W = 32). */
export interface SettingResult {
  /** Unique, e.g. "kivi-2", "pm-kvq-w32 4,2". */
  key: string;
  /** The line it belongs to on the chart, e.g. "kivi", "pm-kvq W=32". */
  family: string;
  /** The method it runs: original, rtn, kivi, mikv, rotatekv, turboquant, pm-kvq. */
  method: string;
  /** Bytes reserved for a max_len answer: the peak held on the max_len reference sequence. */
  reservedBytes: number;
  /** Mean over answers of the peak bytes held during the answer. */
  heldBytes: number;
  /** The largest of those peaks. */
  heldMaxBytes: number;
  correct: number;
  problems: number;
  /** 0–100. */
  accuracy: number;
  meanOutputTokens: number;
  kvBudgetStops: number;
  tokensPerS: number;
  /** pm-kvq: final body bits per block and the window. */
  bits?: number[];
  window?: number;
}

/** pm-kvq (any window, not the rotated variant) is "the method"; the rest are compared with it. */
export function isPmKvq(r: SettingResult): boolean {
  return r.method === "pm-kvq" && !r.family.includes("hadamard");
}

/** Fixed-bit methods: every token at the same precision for the whole answer. */
export function isFixedBit(r: SettingResult): boolean {
  return r.method !== "pm-kvq" && r.method !== "original";
}

export function memoryOf(r: SettingResult, p: Protocol): number {
  return p === "reserved" ? r.reservedBytes : r.heldBytes;
}

export interface FrontierPoint {
  key: string;
  bytes: number;
  accuracy: number;
}

/**
 * The Pareto frontier of a set of settings: ascending memory, each point strictly more
 * accurate than every point at less or equal memory (ties in memory: the more accurate).
 */
export function frontier(results: SettingResult[], p: Protocol): FrontierPoint[] {
  const pts = results.map((r) => ({ key: r.key, bytes: memoryOf(r, p), accuracy: r.accuracy })).sort((a, b) => a.bytes - b.bytes || b.accuracy - a.accuracy);
  const out: FrontierPoint[] = [];
  for (const q of pts) if (out.length === 0 || q.accuracy > out[out.length - 1].accuracy) out.push(q);
  return out;
}

/** Best accuracy within `bytes` on a frontier (null when nothing fits). */
export function bestWithin(f: FrontierPoint[], bytes: number): FrontierPoint | null {
  let best: FrontierPoint | null = null;
  for (const q of f) if (q.bytes <= bytes) best = q;
  return best;
}

/** Settings grouped by family, in first-seen order. */
export function families(results: SettingResult[]): Map<string, SettingResult[]> {
  const m = new Map<string, SettingResult[]>();
  for (const r of results) {
    if (!m.has(r.family)) m.set(r.family, []);
    m.get(r.family)!.push(r);
  }
  return m;
}

/** One memory level of the reserved verdict: pm-kvq's best against every fixed-bit method's. */
export interface LevelComparison {
  bytes: number;
  pm: FrontierPoint | null;
  /** Per fixed-bit method (rtn, kivi, …): its best within the level. */
  others: { method: string; best: FrontierPoint | null }[];
  /** pm-kvq at or above every fixed-bit method at this level. */
  atOrAbove: boolean;
  /** The strongest fixed-bit point at this level. */
  strongest: { method: string; best: FrontierPoint } | null;
}

/** Accuracy of a frontier point; a method with no setting that fits answers nothing (0%). */
const acc = (q: FrontierPoint | null) => (q ? q.accuracy : 0);

/**
 * The reserved protocol at each memory level: the reservations of the fixed-bit settings
 * (the memory a user would give those methods), plus any extra levels.
 */
export function compareAtLevels(results: SettingResult[], p: Protocol, extraLevels: number[] = []): LevelComparison[] {
  const pmF = frontier(results.filter(isPmKvq), p);
  const byMethod = new Map<string, SettingResult[]>();
  for (const r of results.filter(isFixedBit)) {
    if (!byMethod.has(r.method)) byMethod.set(r.method, []);
    byMethod.get(r.method)!.push(r);
  }
  const fronts = [...byMethod].map(([method, rs]) => ({ method, f: frontier(rs, p) }));
  const levels = [...new Set([...results.filter(isFixedBit).map((r) => memoryOf(r, p)), ...extraLevels])].sort((a, b) => a - b);
  return levels.map((bytes) => {
    const pm = bestWithin(pmF, bytes);
    const others = fronts.map(({ method, f }) => ({ method, best: bestWithin(f, bytes) }));
    let strongest: LevelComparison["strongest"] = null;
    for (const o of others) if (o.best && (!strongest || o.best.accuracy > strongest.best.accuracy)) strongest = { method: o.method, best: o.best };
    return { bytes, pm, others, atOrAbove: others.every((o) => acc(pm) >= acc(o.best)), strongest };
  });
}

/** A memory range with one outcome of pm-kvq against the best other method. */
export interface HeldRange {
  from: number;
  /** Exclusive; Infinity for the last range. */
  to: number;
  /** none: nothing that fits answers anything (every setting within x scores 0%, or none fits). */
  outcome: "better" | "equal" | "worse" | "none";
  /** pm-kvq's accuracy over the range (0 where nothing of it fits): lowest and highest. */
  pmAccuracy: [number, number];
  /** The best other method's accuracy over the range, and which methods were best. */
  otherAccuracy: [number, number];
  otherMethods: string[];
}

/**
 * The held protocol over the whole memory axis: at every x, pm-kvq's best within x against
 * the best of every other method (original included) within x; consecutive x with the same
 * outcome are merged into ranges.
 */
export function heldRanges(results: SettingResult[], p: Protocol = "held"): HeldRange[] {
  const pmF = frontier(results.filter(isPmKvq), p);
  const others = results.filter((r) => r.method !== "pm-kvq");
  const byMethod = new Map<string, FrontierPoint[]>();
  for (const r of others) byMethod.set(r.method, []);
  for (const [m] of byMethod) byMethod.set(m, frontier(others.filter((r) => r.method === m), p));
  const xs = [...new Set([...pmF.map((q) => q.bytes), ...[...byMethod.values()].flat().map((q) => q.bytes)])].sort((a, b) => a - b);
  const ranges: HeldRange[] = [];
  xs.forEach((x, i) => {
    const a = acc(bestWithin(pmF, x));
    let b = 0;
    let method: string | null = null;
    for (const [m, f] of byMethod) {
      const q = bestWithin(f, x);
      if (q && (method === null || q.accuracy > b)) {
        b = q.accuracy;
        method = m;
      }
    }
    const outcome: HeldRange["outcome"] = a === 0 && b === 0 ? "none" : a > b ? "better" : a === b ? "equal" : "worse";
    const to = i + 1 < xs.length ? xs[i + 1] : Infinity;
    const last = ranges[ranges.length - 1];
    if (last && last.outcome === outcome) {
      last.to = to;
      last.pmAccuracy = [Math.min(last.pmAccuracy[0], a), Math.max(last.pmAccuracy[1], a)];
      last.otherAccuracy = [Math.min(last.otherAccuracy[0], b), Math.max(last.otherAccuracy[1], b)];
      if (method && !last.otherMethods.includes(method)) last.otherMethods.push(method);
    } else {
      ranges.push({ from: x, to, outcome, pmAccuracy: [a, a], otherAccuracy: [b, b], otherMethods: method ? [method] : [] });
    }
  });
  return ranges;
}

const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
const pct = (a: number) => `${a.toFixed(1)}%`;
const span = (r: [number, number]) => (r[0] === r[1] ? pct(r[0]) : `${pct(r[0])}–${pct(r[1])}`);

/** The smallest memory at which a method's frontier reaches `accuracy` (null: never). */
export function memoryFor(results: SettingResult[], method: string, accuracy: number, p: Protocol): FrontierPoint | null {
  return frontier(results.filter((r) => r.method === method && !isPmKvq(r)), p).find((q) => q.accuracy >= accuracy) ?? null;
}

/** The paper's baselines (spec §7); TurboQuant is ours, newer than the paper. */
export const PAPER_BASELINES = ["rtn", "kivi", "mikv", "rotatekv"];

/**
 * Sentences on the reserved protocol, from the numbers: the level where pm-kvq leads the
 * paper's baselines most (every fixed-bit method's accuracy there), what each method needs to
 * match pm-kvq's accuracy at that level, and whether pm-kvq's frontier is at or above every
 * fixed-bit method's (TurboQuant included) at every level measured — with the levels where not.
 */
export function reservedVerdict(results: SettingResult[], maxLen: number): string {
  const levels = compareAtLevels(results, "reserved");
  if (levels.length === 0 || !results.some(isPmKvq)) return `reserved for ${maxLen} tokens: nothing to compare (no fixed-bit or no pm-kvq settings)`;
  const paper = (l: LevelComparison) => {
    const ps = l.others.filter((o) => PAPER_BASELINES.includes(o.method));
    return ps.length ? Math.max(...ps.map((o) => acc(o.best))) : acc(l.strongest?.best ?? null);
  };
  let show: LevelComparison | null = null;
  let lead = -Infinity;
  for (const l of levels) {
    if (!l.pm) continue;
    const d = l.pm.accuracy - paper(l);
    if (d > lead) {
      lead = d;
      show = l;
    }
  }
  const parts: string[] = [];
  if (show?.pm) {
    const others = show.others.map((o) => `${o.method} ${o.best ? pct(o.best.accuracy) : "does not fit"}`).join(", ");
    parts.push(`at ${kib(show.bytes)} reserved for ${maxLen} tokens pm-kvq answers ${pct(show.pm.accuracy)} (${others})`);
    const needs = [...new Set(results.filter(isFixedBit).map((r) => r.method))].map((m) => {
      const q = memoryFor(results, m, show!.pm!.accuracy, "reserved");
      return q ? `${m} ${kib(q.bytes)}` : `${m} never`;
    });
    if (needs.length) parts.push(`to answer ≥ ${pct(show.pm.accuracy)} ${needs.join(", ")}`);
  }
  const below = levels.filter((l) => !l.atOrAbove);
  parts.push(
    below.length === 0
      ? `pm-kvq's frontier is at or above every fixed-bit method's at all ${levels.length} levels measured`
      : `pm-kvq's frontier is below a fixed-bit method's at ${below.length} of ${levels.length} levels (${below
          .slice(0, 3)
          .map((l) => `${kib(l.bytes)}: ${l.strongest!.method} ${pct(l.strongest!.best.accuracy)} vs ${l.pm ? pct(l.pm.accuracy) : "nothing fits"}`)
          .join("; ")}${below.length > 3 ? "; …" : ""})`,
  );
  return `reserved: ${parts.join("; ")}.`;
}

/** One sentence on the held protocol: the ranges where pm-kvq is strictly better, and where not. */
export function heldVerdict(results: SettingResult[]): string {
  const ranges = heldRanges(results).filter((r) => r.outcome !== "none");
  if (ranges.length === 0 || !results.some(isPmKvq)) return "held: nothing to compare";
  const where = (r: HeldRange) => (r.to === Infinity ? `from ${kib(r.from)} up` : `${kib(r.from)}–${kib(r.to)}`);
  const vs = (r: HeldRange) => `pm-kvq ${span(r.pmAccuracy)} vs ${r.otherMethods.join("/") || "nothing"} ${span(r.otherAccuracy)}`;
  const better = ranges.filter((r) => r.outcome === "better");
  const rest = ranges.filter((r) => r.outcome !== "better");
  const b = better.length ? `pm-kvq is strictly better ${better.map((r) => `${where(r)} (${vs(r)})`).join(", ")}` : "pm-kvq is strictly better nowhere";
  const n = rest.length ? `; not ${rest.slice(0, 4).map((r) => `${where(r)} (${r.outcome === "equal" ? "equal" : "behind"}: ${vs(r)})`).join(", ")}${rest.length > 4 ? ", …" : ""}` : "";
  return `held (mean peak per answer): ${b}${n}.`;
}
