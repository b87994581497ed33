// The frontier chart: accuracy against KV memory (log axis), one panel per protocol, one
// frontier line per method (a step line through its Pareto points; every setting marked),
// and one label per line placed where it overlaps no other label, marker or panel edge.

import { families, frontier, memoryOf, type Protocol, type SettingResult } from "./analysis.js";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const COLORS = ["#222222", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#ff7f0e", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22"];

/** Label text metrics (12 px sans-serif): a conservative advance per character and line box. */
export const LABEL_FONT_PX = 12;
export const LABEL_CHAR_PX = 7.2;
export const LABEL_LINE_PX = 14;

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function intersects(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/** The box of a label whose text starts at (x, baseline y), as the SVG draws it (text-anchor start). */
export function labelBox(x: number, y: number, text: string): Box {
  return { x, y: y - LABEL_FONT_PX + 1, w: text.length * LABEL_CHAR_PX, h: LABEL_LINE_PX };
}

export interface LabelRequest {
  text: string;
  /** The point the label names (its line's last frontier point). */
  ax: number;
  ay: number;
}

/**
 * Place labels near their anchors without overlaps: candidate spots around each anchor at
 * growing distances, the first whose box stays inside `area` and meets no placed label and no
 * obstacle (markers). Returns the baseline positions; a label with no free spot nearby goes to
 * the first free row of a column at the area's right edge (still without overlaps).
 */
export function placeLabels(reqs: LabelRequest[], area: Box, obstacles: Box[]): { x: number; y: number }[] {
  const placed: Box[] = [];
  const inside = (b: Box) => b.x >= area.x && b.y >= area.y && b.x + b.w <= area.x + area.w && b.y + b.h <= area.y + area.h;
  const free = (b: Box) => inside(b) && !placed.some((p) => intersects(p, b)) && !obstacles.some((o) => intersects(o, b));
  return reqs.map((r) => {
    const w = r.text.length * LABEL_CHAR_PX;
    for (let dist = 8; dist <= 160; dist += 8) {
      const spots: [number, number][] = [
        [r.ax + dist, r.ay + 4],
        [r.ax + dist * 0.7, r.ay - dist * 0.7],
        [r.ax + dist * 0.7, r.ay + dist * 0.7 + 8],
        [r.ax - w - dist, r.ay + 4],
        [r.ax - w / 2, r.ay - dist],
        [r.ax - w / 2, r.ay + dist + 10],
        [r.ax - w - dist * 0.7, r.ay - dist * 0.7],
        [r.ax - w - dist * 0.7, r.ay + dist * 0.7 + 8],
      ];
      for (const [x, y] of spots) {
        const b = labelBox(x, y, r.text);
        if (free(b)) {
          placed.push(b);
          return { x, y };
        }
      }
    }
    for (let y = area.y + LABEL_FONT_PX; y + 4 <= area.y + area.h; y += LABEL_LINE_PX + 1) {
      const x = area.x + area.w - w - 2;
      const b = labelBox(x, y, r.text);
      if (free(b)) {
        placed.push(b);
        return { x, y };
      }
    }
    // nowhere free inside: below the area, one row per label (never overlapping each other)
    const y = area.y + area.h + 30 + LABEL_LINE_PX * placed.filter((p) => p.y > area.y + area.h).length;
    placed.push(labelBox(area.x, y, r.text));
    return { x: area.x, y };
  });
}

export interface ChartOptions {
  title: string;
  maxLen: number;
}

const W = 1100, H = 460;
const PAD = { l: 64, r: 24, t: 56, b: 72 };

/** Log-axis ticks: 1-2-5 steps covering [lo, hi]. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)) + 1; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return ticks;
}

/** Two panels (reserved, held) of accuracy against KiB on a log axis. */
export function frontierChart(results: SettingResult[], o: ChartOptions): string {
  const panelW = (W - PAD.l * 2 - PAD.r * 2) / 2;
  const panelH = H - PAD.t - PAD.b;
  const fams = [...families(results)];
  const color = new Map(fams.map(([f], i) => [f, COLORS[i % COLORS.length]]));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="${LABEL_FONT_PX}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
  ];
  const protocols: [Protocol, string][] = [
    ["reserved", `reserved: KiB each cache may hold for a ${o.maxLen}-token answer (log)`],
    ["held", "held: mean peak KiB each cache held per answer (log)"],
  ];
  protocols.forEach(([p, xLabel], pi) => {
    const ox = PAD.l + pi * (panelW + PAD.l + PAD.r);
    const oy = PAD.t;
    const kibs = results.map((r) => memoryOf(r, p) / 1024).filter((v) => v > 0);
    const lo = Math.min(...kibs) / 1.25, hi = Math.max(...kibs) * 1.25;
    const x = (k: number) => ox + ((Math.log(k) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))) * panelW;
    const y = (a: number) => oy + panelH - (a / 100) * panelH;
    out.push(`<g class="panel" data-protocol="${p}">`);
    out.push(`<rect x="${ox}" y="${oy}" width="${panelW}" height="${panelH}" fill="none" stroke="#999"/>`);
    out.push(`<text x="${ox + panelW / 2}" y="${oy - 10}" text-anchor="middle" font-size="13">${p === "reserved" ? "reserved (the paper's protocol)" : "held (the strict protocol)"}</text>`);
    for (const t of logTicks(lo, hi)) {
      out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${oy}" y2="${oy + panelH}" stroke="#eee"/>`);
      out.push(`<text x="${x(t).toFixed(1)}" y="${oy + panelH + 16}" text-anchor="middle" fill="#555">${t}</text>`);
    }
    for (let i = 0; i <= 4; i++) {
      const a = i * 25;
      out.push(`<line x1="${ox}" x2="${ox + panelW}" y1="${y(a)}" y2="${y(a)}" stroke="#eee"/>`);
      out.push(`<text x="${ox - 6}" y="${y(a) + 4}" text-anchor="end" fill="#555">${a}</text>`);
    }
    out.push(`<text x="${ox + panelW / 2}" y="${oy + panelH + 36}" text-anchor="middle">${esc(xLabel)}</text>`);
    out.push(`<text transform="translate(${ox - 44},${oy + panelH / 2}) rotate(-90)" text-anchor="middle">accuracy (%)</text>`);
    const markers: Box[] = [];
    const requests: (LabelRequest & { color: string })[] = [];
    for (const [fam, rs] of fams) {
      const c = color.get(fam)!;
      const f = frontier(rs, p);
      // the step line: flat until the next Pareto point, then up
      const pts: string[] = [];
      f.forEach((q, i) => {
        pts.push(`${x(q.bytes / 1024).toFixed(1)},${y(q.accuracy).toFixed(1)}`);
        const next = f[i + 1];
        pts.push(`${(next ? x(next.bytes / 1024) : ox + panelW).toFixed(1)},${y(q.accuracy).toFixed(1)}`);
      });
      if (f.length) out.push(`<polyline class="frontier" data-family="${esc(fam)}" points="${pts.join(" ")}" fill="none" stroke="${c}" stroke-width="2" opacity="0.8"/>`);
      const onFrontier = new Set(f.map((q) => q.key));
      for (const r of rs) {
        const cx = x(memoryOf(r, p) / 1024), cy = y(r.accuracy);
        out.push(`<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="4" fill="${onFrontier.has(r.key) ? c : "white"}" stroke="${c}"><title>${esc(`${r.key}: ${r.accuracy.toFixed(1)}% at ${(memoryOf(r, p) / 1024).toFixed(1)} KiB`)}</title></circle>`);
        markers.push({ x: cx - 4, y: cy - 4, w: 8, h: 8 });
      }
      const last = f[f.length - 1];
      if (last) requests.push({ text: fam, ax: x(last.bytes / 1024), ay: y(last.accuracy), color: c });
    }
    const spots = placeLabels(requests, { x: ox, y: oy, w: panelW, h: panelH }, markers);
    requests.forEach((r, i) => out.push(`<text class="label" x="${spots[i].x.toFixed(1)}" y="${spots[i].y.toFixed(1)}" fill="${r.color}">${esc(r.text)}</text>`));
    out.push("</g>");
  });
  out.push("</svg>");
  return out.join("\n");
}
