// The frontier chart: one polyline per method and panel, every setting marked, and labels
// that never overlap each other or a marker and stay inside their panel — checked on the SVG
// text itself, for crowded layouts (many methods ending at the same point).

import assert from "node:assert/strict";
import { test } from "node:test";
import type { SettingResult } from "../../src/frontier/analysis.js";
import { frontierChart, intersects, LABEL_CHAR_PX, LABEL_FONT_PX, LABEL_LINE_PX, placeLabels, type Box } from "../../src/frontier/chart.js";
import { seededRandom } from "../helpers.js";

function setting(key: string, family: string, reservedKiB: number, heldKiB: number, accuracy: number): SettingResult {
  return {
    key, family, method: family.startsWith("pm-kvq") ? "pm-kvq" : family, reservedBytes: reservedKiB * 1024, heldBytes: heldKiB * 1024, heldMaxBytes: heldKiB * 1024,
    correct: 0, problems: 10, accuracy, meanOutputTokens: 1, kvBudgetStops: 0, tokensPerS: 1,
  };
}

interface Label {
  text: string;
  box: Box;
  panel: string;
}

/** Label boxes as the SVG draws them: text-anchor start at (x, baseline y), 12 px sans-serif. */
function labels(svg: string): Label[] {
  const out: Label[] = [];
  for (const g of svg.split('<g class="panel"').slice(1)) {
    const panel = /data-protocol="(\w+)"/.exec(g)![1];
    for (const m of g.matchAll(/<text class="label" x="([-\d.]+)" y="([-\d.]+)"[^>]*>([^<]*)<\/text>/g)) {
      const x = Number(m[1]), y = Number(m[2]);
      const text = m[3].replace(/&amp;/g, "&");
      out.push({ text, panel, box: { x, y: y - LABEL_FONT_PX + 1, w: text.length * LABEL_CHAR_PX, h: LABEL_LINE_PX } });
    }
  }
  return out;
}

function panelRect(svg: string, protocol: string): Box {
  const g = svg.split(`data-protocol="${protocol}"`)[1];
  const m = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(g)!;
  return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]) };
}

function markers(svg: string, protocol: string): Box[] {
  const g = svg.split(`data-protocol="${protocol}"`)[1].split("</g>")[0];
  return [...g.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="4"/g)].map((m) => ({ x: Number(m[1]) - 4, y: Number(m[2]) - 4, w: 8, h: 8 }));
}

function check(results: SettingResult[]): void {
  const svg = frontierChart(results, { title: "t", maxLen: 1024 });
  const families = new Set(results.map((r) => r.family));
  const ls = labels(svg);
  for (const p of ["reserved", "held"]) {
    const mine = ls.filter((l) => l.panel === p);
    assert.deepEqual(mine.map((l) => l.text).sort(), [...families].sort(), `${p}: one label per method`);
    assert.equal((svg.split(`data-protocol="${p}"`)[1].split("</g>")[0].match(/<polyline class="frontier"/g) ?? []).length, families.size);
    const ms = markers(svg, p);
    assert.equal(ms.length, results.length, `${p}: every setting marked`);
    for (let i = 0; i < mine.length; i++) {
      for (let j = i + 1; j < mine.length; j++) assert.ok(!intersects(mine[i].box, mine[j].box), `${p}: "${mine[i].text}" overlaps "${mine[j].text}"`);
      for (const m of ms) assert.ok(!intersects(mine[i].box, m), `${p}: "${mine[i].text}" covers a marker`);
    }
  }
}

test("labels of a crowded chart (every method at 100% near the same memory) never overlap", () => {
  const fams = ["original (f32)", "rtn", "kivi", "mikv", "rotatekv", "turboquant", "pm-kvq W=32", "pm-kvq W=128", "pm-kvq W=32 hadamard"];
  const rs: SettingResult[] = [];
  fams.forEach((f, i) => {
    for (const [b, acc] of [[2, 0], [4, 100], [8, 100]] as const) rs.push(setting(`${f}-${b}`, f, 60 * b + i, 30 * b + i, acc));
  });
  check(rs);
});

test("labels never overlap on random layouts", () => {
  const rand = seededRandom(5);
  for (let trial = 0; trial < 25; trial++) {
    const n = 2 + Math.floor(rand() * 9);
    const rs: SettingResult[] = [];
    for (let f = 0; f < n; f++) {
      const k = 1 + Math.floor(rand() * 5);
      for (let i = 0; i < k; i++) rs.push(setting(`f${f}-${i}`, `method-${f}${"x".repeat(Math.floor(rand() * 12))}`, 50 + rand() * 500, 20 + rand() * 300, Math.round(rand() * 4) * 25));
    }
    check(rs);
  }
});

test("placeLabels: all inside the area and disjoint, even when every anchor is the same point", () => {
  const area = { x: 0, y: 0, w: 300, h: 200 };
  const reqs = Array.from({ length: 20 }, (_, i) => ({ text: `label number ${i}`, ax: 150, ay: 100 }));
  const spots = placeLabels(reqs, area, []);
  const boxes = spots.map((p, i) => ({ x: p.x, y: p.y - LABEL_FONT_PX + 1, w: reqs[i].text.length * LABEL_CHAR_PX, h: LABEL_LINE_PX }));
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) assert.ok(!intersects(boxes[i], boxes[j]), `${i} and ${j}`);
  // labels that found a spot inside stay inside; the rest are listed below the area
  for (const b of boxes) assert.ok(b.x >= area.x && b.x + b.w <= area.x + area.w && (b.y + b.h <= area.y + area.h || b.y > area.y + area.h));
});

test("panel rectangles: the markers lie inside their panel", () => {
  const rs = [setting("a", "rtn", 100, 50, 0), setting("b", "rtn", 200, 100, 100), setting("c", "pm-kvq W=32", 150, 140, 50)];
  const svg = frontierChart(rs, { title: "t", maxLen: 1024 });
  for (const p of ["reserved", "held"]) {
    const r = panelRect(svg, p);
    for (const m of markers(svg, p)) assert.ok(m.x + 4 >= r.x && m.x + 4 <= r.x + r.w && m.y + 4 >= r.y && m.y + 4 <= r.y + r.h);
  }
});
