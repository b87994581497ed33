// A small SVG chart for the demo: accuracy against honest KV memory per method, and the
// body bit-width of each block over a pm-kvq generation (the progressive schedule).

export interface MethodPoint {
  label: string;
  accuracy: number; // 0–100
  kvKiB: number;
}

export interface BitsTrace {
  /** bits[step][block] */
  bits: number[][];
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"];

export function demoChart(points: MethodPoint[], trace: BitsTrace, title: string): string {
  const W = 900;
  const H = 380;
  const pad = { l: 60, r: 20, t: 40, b: 50 };
  const panelW = (W - 3 * pad.l) / 2;
  const panelH = H - pad.t - pad.b;
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15">${esc(title)}</text>`];
  // panel 1: accuracy vs memory
  const maxKiB = Math.max(...points.map((p) => p.kvKiB)) * 1.1 || 1;
  const x1 = (kib: number) => pad.l + (kib / maxKiB) * panelW;
  const y1 = (acc: number) => pad.t + panelH - (acc / 100) * panelH;
  out.push(axes(pad.l, pad.t, panelW, panelH, "honest KV memory after a reference answer (KiB)", "accuracy (%)", [0, maxKiB], [0, 100]));
  points.forEach((p, i) => {
    const c = COLORS[i % COLORS.length];
    out.push(`<circle cx="${x1(p.kvKiB).toFixed(1)}" cy="${y1(p.accuracy).toFixed(1)}" r="6" fill="${c}"/>`);
    out.push(`<text x="${(x1(p.kvKiB) + 9).toFixed(1)}" y="${(y1(p.accuracy) + 4 + (i % 2 ? 10 : 0)).toFixed(1)}" fill="${c}">${esc(p.label)} ${p.accuracy.toFixed(0)}%</text>`);
  });
  // panel 2: body bits over time
  const ox = 2 * pad.l + panelW;
  const steps = Math.max(1, trace.bits.length - 1);
  const blocks = trace.bits[0]?.length ?? 0;
  const x2 = (s: number) => ox + (s / steps) * panelW;
  const y2 = (b: number) => pad.t + panelH - (Math.log2(b) / 4) * panelH; // 1 … 16 bits on a log scale
  out.push(axes(ox, pad.t, panelW, panelH, "decode step", "pm-kvq body bits", [0, steps], [1, 16], true));
  for (let k = 0; k < blocks; k++) {
    const pts = trace.bits.map((row, s) => `${x2(s).toFixed(1)},${(y2(row[k]) + (k - blocks / 2) * 1.5).toFixed(1)}`).join(" ");
    out.push(`<polyline points="${pts}" fill="none" stroke="${COLORS[k % COLORS.length]}" stroke-width="2"/>`);
    out.push(`<text x="${ox + panelW - 50}" y="${pad.t + 14 + 13 * k}" fill="${COLORS[k % COLORS.length]}">block ${k}</text>`);
  }
  out.push("</svg>");
  return out.join("\n");
}

function axes(x: number, y: number, w: number, h: number, xLabel: string, yLabel: string, xr: [number, number], yr: [number, number], log2y = false): string {
  const parts = [`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="#999"/>`];
  parts.push(`<text x="${x + w / 2}" y="${y + h + 35}" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(`<text transform="translate(${x - 42},${y + h / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const xv = xr[0] + ((xr[1] - xr[0]) * i) / 4;
    parts.push(`<text x="${x + (w * i) / 4}" y="${y + h + 16}" text-anchor="middle" fill="#555">${Math.round(xv)}</text>`);
    const yv = log2y ? 2 ** i : yr[0] + ((yr[1] - yr[0]) * i) / 4;
    parts.push(`<text x="${x - 6}" y="${y + h - (h * i) / 4 + 4}" text-anchor="end" fill="#555">${Math.round(yv)}</text>`);
    parts.push(`<line x1="${x}" x2="${x + w}" y1="${y + h - (h * i) / 4}" y2="${y + h - (h * i) / 4}" stroke="#eee"/>`);
  }
  return parts.join("\n");
}
