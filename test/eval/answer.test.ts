// Answer extraction, normalisation and equivalence (spec §8), against hand-written tables and
// every gold answer shipped in ../shared/datasets. Equivalent writings of the LaTeX golds are
// worked out by hand below; big exact values (26!, C(4048, 2024)) are checked against literals
// and an independent float product.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { answersEquivalent, extractAnswer, normalizeAnswer } from "../../src/eval/answer.js";
import { evaluateLatex, toComplexFloat } from "../../src/eval/latex-eval.js";
import { DATASETS_DIR } from "../helpers.js";

// ---- gold answers ----

/** Minimal RFC 4180 reader: quoted fields, doubled quotes, CRLF, no final newline. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') field += text[++i];
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field !== "" || row.length > 0) rows.push([...row, field]);
  return rows.filter((r) => r.some((f) => f !== ""));
}

/** Every (`<subset>.<id>`, answer) in DATASETS_DIR/<bench>/<subset>/answers.csv. */
function readGoldAnswers(): { key: string; answer: string }[] {
  const out: { key: string; answer: string }[] = [];
  for (const bench of fs.readdirSync(DATASETS_DIR).sort()) {
    const benchDir = path.join(DATASETS_DIR, bench);
    if (!fs.statSync(benchDir).isDirectory()) continue;
    for (const subset of fs.readdirSync(benchDir).sort()) {
      const file = path.join(benchDir, subset, "answers.csv");
      if (!fs.existsSync(file)) continue;
      const [header, ...rows] = parseCsv(fs.readFileSync(file, "utf8"));
      assert.deepEqual(header, ["id", "answer"], file);
      for (const [id, answer] of rows) out.push({ key: `${subset}.${id}`, answer });
    }
  }
  return out;
}

/** Other writings of each LaTeX gold answer (`alt`) and near misses that must not match (`wrong`). */
const LATEX_GOLD: Record<string, { alt: string[]; wrong: string[] }> = {
  "cmimc_2024.12": { alt: ["\\dfrac{121}{122}", "121/122"], wrong: ["\\frac{122}{121}", "0.9918"] },
  "cmimc_2024.14": { alt: ["2.890625", "185/64"], wrong: ["2.89", "\\frac{185}{46}"] },
  "cmimc_2024.15": { alt: ["41.25", "\\frac{330}{8}"], wrong: ["\\frac{165}{2}", "41.2"] },
  "cmimc_2024.16": { alt: ["\\frac{42}{92}", "\\tfrac{21}{46}"], wrong: ["\\frac{21}{45}"] },
  "cmimc_2024.17": { alt: ["0.25", "1/4", "\\frac14"], wrong: ["4", "\\frac{1}{2}"] },
  "cmimc_2024.18": { alt: ["\\tfrac{123}{53}", "$\\frac{246}{106}$"], wrong: ["\\frac{123}{35}"] },
  "cmimc_2024.21": { alt: ["\\sqrt{27}", "3 \\sqrt 3", "3^{3/2}"], wrong: ["3\\sqrt{2}", "3", "\\sqrt{3}"] },
  "cmimc_2024.22": { alt: ["\\frac{5}{6}\\pi - \\sqrt{3}", "-\\sqrt{3}+\\frac{5\\pi}{6}"], wrong: ["\\frac{5\\pi}{6}+\\sqrt{3}", "\\frac{5}{6}-\\sqrt{3}"] },
  "cmimc_2024.23": { alt: ["\\sqrt{\\frac{2}{3}}", "\\frac{2}{\\sqrt{6}}"], wrong: ["\\frac{\\sqrt{6}}{2}", "\\sqrt{6}"] },
  "cmimc_2024.24": { alt: ["\\frac{\\sqrt{3}}{2}-\\frac{3}{4}", "\\frac{-3+2\\sqrt3}{4}"], wrong: ["\\frac{2\\sqrt{3}+3}{4}"] },
  "cmimc_2024.25": { alt: ["10.5", "21/2"], wrong: ["\\frac{2}{21}", "10"] },
  "cmimc_2024.26": { alt: ["\\sqrt{4+4\\sqrt{2}}", "2\\sqrt{\\sqrt{2}+1}"], wrong: ["2\\sqrt{2+\\sqrt{2}}", "2\\sqrt{1-\\sqrt{2}}"] },
  "cmimc_2024.27": { alt: ["\\sqrt{8}", "2^{\\frac{3}{2}}", "2 \\sqrt 2"], wrong: ["2\\sqrt{3}", "\\sqrt{2}"] },
  "cmimc_2024.28": { alt: ["5.5", "11/2", "\\dfrac{11}{2}"], wrong: ["5.50001", "\\frac{2}{11}"] },
  "cmimc_2024.29": { alt: ["\\frac{37\\pi}{40}", "0.925\\pi", "\\pi\\cdot\\frac{37}{40}"], wrong: ["\\frac{37}{40}", "\\frac{37}{40\\pi}"] },
  "cmimc_2024.30": { alt: ["\\frac{2}{\\sqrt{3}}", "\\frac{4}{\\sqrt{12}}"], wrong: ["\\frac{\\sqrt{3}}{3}", "2\\sqrt{3}"] },
  "hmmt_feb_2024.4": { alt: ["\\frac{24}{17}", "24/17"], wrong: ["\\frac{17}{24}", "1.41"] },
  "hmmt_feb_2024.5": { alt: ["\\frac{13}{40}, -\\frac{13}{96}", "-13/96,13/40"], wrong: ["\\frac{13}{96}, \\frac{13}{40}", "\\frac{13}{40}", "-\\frac{13}{96}, \\frac{13}{40}, 0"] },
  "hmmt_feb_2024.9": { alt: ["-i\\sqrt{6}, 0, i\\sqrt{6}", "\\sqrt{-6},-\\sqrt{-6},0", "0, \\sqrt{6}i, -\\sqrt{6}i"], wrong: ["0,\\sqrt{6},-\\sqrt{6}", "i\\sqrt{6},-i\\sqrt{6}", "0,i\\sqrt{6},i\\sqrt{6}"] },
  "hmmt_feb_2024.16": { alt: ["\\frac{1}{512}", "2^{-9}", "\\frac{1}{2^9}"], wrong: ["\\frac{1}{256}", "512"] },
  "hmmt_feb_2024.17": { alt: ["\\frac{32}{7}", "32/7"], wrong: ["4.571428571", "\\frac{7}{32}"] },
  "hmmt_feb_2024.18": {
    alt: [
      "\\frac{4^{2024}}{\\binom{4048}{2024}}-2",
      "\\frac{2^{4048}}{\\binom{4048}{2024}} - 2",
      "\\frac{4^{2024}-2\\binom{4048}{2024}}{\\binom{4048}{2024}}",
      "-2+\\frac{4^{2024}}{\\dbinom{4048}{2024}}",
    ],
    wrong: [
      "\\frac{4^{2024}}{\\binom{4048}{2024}}",
      "\\frac{4^{2024}}{\\binom{4048}{2023}}-2",
      "\\frac{4^{2024}}{\\binom{4048}{2024}}-2+10^{-300}", // below float resolution: only exactness tells
    ],
  },
  "hmmt_feb_2024.21": { alt: ["\\frac{5}{3}", "5/3"], wrong: ["1.667", "\\frac{3}{5}"] },
  "hmmt_feb_2024.25": { alt: ["-\\sqrt{7}+4\\sqrt{5}", "\\sqrt{80}-\\sqrt{7}"], wrong: ["4\\sqrt{5}+\\sqrt{7}", "4\\sqrt{5}-\\sqrt{6}"] },
  "hmmt_feb_2024.26": { alt: ["\\frac{65}{3}", "\\frac{130}{6}"], wrong: ["21.67", "\\frac{65}{2}"] },
  "hmmt_feb_2024.27": { alt: ["\\sqrt{704}", "8 \\sqrt{11}"], wrong: ["8\\sqrt{10}", "88"] },
  "hmmt_feb_2024.28": { alt: ["128-64\\sqrt{3}", "64\\left(2-\\sqrt{3}\\right)"], wrong: ["64(2+\\sqrt{3})", "64"] },
  "hmmt_feb_2024.29": { alt: ["-3+\\sqrt{38}", "\\sqrt{38} - 3"], wrong: ["\\sqrt{38}+3", "\\sqrt{35}"] },
  "hmmt_feb_2024.30": { alt: ["\\frac{9}{5}\\sqrt{410}", "\\frac{9\\sqrt{410}}{5}", "1.8\\sqrt{410}"], wrong: ["\\frac{9\\sqrt{410}}{4}", "\\frac{9}{5}\\sqrt{401}"] },
  "hmmt_feb_2025.3": { alt: ["1/576", "\\frac{1}{24^2}", "\\dfrac1{576}"], wrong: ["576", "\\frac{1}{567}"] },
  "hmmt_feb_2025.6": { alt: ["\\dfrac{1311}{2017}", "\\frac{2622}{4034}"], wrong: ["\\frac{1311}{2016}", "0.65"] },
  "hmmt_feb_2025.7": { alt: ["\\frac{9}{\\sqrt{23}}", "\\frac{9\\sqrt{23}}{23}"], wrong: ["\\frac{9\\sqrt{23}}{32}", "9\\sqrt{23}"] },
  "hmmt_feb_2025.8": { alt: ["\\frac{\\pi-2}{\\pi}", "-\\frac{2}{\\pi}+1"], wrong: ["1-\\frac{\\pi}{2}", "1-\\frac{2}{3}"] },
  "hmmt_feb_2025.10": {
    alt: ["\\frac{-1-\\sqrt{17}}{2},\\frac{-1+\\sqrt{17}}{2}", "-\\frac{1}{2}+\\frac{\\sqrt{17}}{2}, -\\frac{1+\\sqrt{17}}{2}"],
    wrong: ["\\frac{-1+\\sqrt{17}}{2}", "\\frac{1+\\sqrt{17}}{2}, \\frac{1-\\sqrt{17}}{2}"],
  },
  "hmmt_feb_2025.17": {
    alt: ["13532215908553332190020108288000000", "2^{25}\\times 26!", "26! \\cdot 2^{25}", "33554432\\cdot403291461126605635584000000"],
    wrong: ["2^{24} \\cdot 26!", "13532215908553332190020108288000001", "2^{25} \\cdot 25!"],
  },
  "hmmt_feb_2025.18": { alt: ["\\frac{4050}{202}", "2025/101"], wrong: ["\\frac{2025}{102}", "20.05"] },
  "hmmt_feb_2025.19": { alt: ["4/9", "\\dfrac49"], wrong: ["0.444", "\\frac{9}{4}"] },
  "hmmt_feb_2025.20": { alt: ["\\frac{896}{6}", "448/3"], wrong: ["149.33", "\\frac{448}{9}"] },
  "hmmt_feb_2025.23": { alt: ["\\sqrt{640}", "8 \\sqrt{10}"], wrong: ["8\\sqrt{11}", "80"] },
  "hmmt_feb_2025.25": { alt: ["\\sqrt{23}-\\sqrt{12}", "-2\\sqrt{3}+\\sqrt{23}"], wrong: ["\\sqrt{23}-3\\sqrt{2}", "\\sqrt{23}+2\\sqrt{3}"] },
  "hmmt_feb_2025.26": { alt: ["\\sqrt{1215}", "9 \\sqrt{15}"], wrong: ["9\\sqrt{5}", "\\sqrt{135}"] },
  "hmmt_feb_2025.27": { alt: ["7/18", "\\dfrac{7}{18}"], wrong: ["0.3889", "\\frac{7}{8}"] },
  "hmmt_feb_2025.28": { alt: ["6^{1/2}", "\\sqrt6", "\\frac{6}{\\sqrt{6}}"], wrong: ["\\sqrt{5}", "i\\sqrt{6}", "6"] },
  "hmmt_feb_2025.29": { alt: ["4\\sqrt{37}+14", "2(7+2\\sqrt{37})"], wrong: ["14-4\\sqrt{37}", "18\\sqrt{37}"] },
  "hmmt_feb_2025.30": { alt: ["\\frac{\\sqrt{570}}{12}", "\\sqrt{95/24}"], wrong: ["\\frac{\\sqrt{570}}{24}", "\\frac{95}{24}"] },
};

/** Other writings of an integer gold, by rule: no leading zeros, thousands separators, sign, padding. */
function integerVariants(gold: string): { alt: string[]; wrong: string[] } {
  const n = BigInt(gold), digits = gold.replace(/^-/, "");
  const alt = [`x = ${gold}`];
  if (/^0\d/.test(digits)) alt.push(String(n));
  else if (n >= 1000n) alt.push(digits.replace(/\B(?=(\d{3})+$)/g, ","));
  else if (n < 0n) alt.push(`-\\left(${digits}\\right)`);
  else alt.push(digits.padStart(3, "0"));
  return { alt, wrong: [String(n + 1n), `${gold}0`, String(-n)] };
}

const GOLD = readGoldAnswers();

test("the datasets ship gold answers and every table key names one", () => {
  assert.ok(GOLD.length >= 150, `found ${GOLD.length} gold answers`);
  const keys = new Set(GOLD.map((g) => g.key));
  for (const key of Object.keys(LATEX_GOLD)) assert.ok(keys.has(key), `table key ${key} is not a gold answer`);
});

for (const { key, answer } of GOLD) {
  test(`gold ${key}: ${answer}`, () => {
    const variants = /^-?\d+$/.test(answer) ? integerVariants(answer) : LATEX_GOLD[key];
    assert.ok(variants, `no hand-written equivalents for LaTeX gold ${key}`);
    assert.ok(answersEquivalent(answer, answer), "itself");
    assert.ok(answersEquivalent(`$${answer}$`, answer) && answersEquivalent(answer, `$${answer}$`), "in $…$");
    const extracted = extractAnswer(`Putting it together, the answer is\n$$\\boxed{${answer}}.$$`);
    assert.equal(extracted, answer, "extracted from \\boxed{}");
    assert.ok(answersEquivalent(extracted!, answer), "extracted matches");
    assert.equal(normalizeAnswer(normalizeAnswer(answer)), normalizeAnswer(answer), "normalisation is idempotent");
    for (const alt of variants.alt) {
      assert.ok(answersEquivalent(alt, answer) && answersEquivalent(answer, alt), `equivalent: ${alt}`);
    }
    for (const wrong of variants.wrong) {
      assert.ok(!answersEquivalent(wrong, answer) && !answersEquivalent(answer, wrong), `not equivalent: ${wrong}`);
    }
  });
}

// ---- extraction ----

const EXTRACTION: [name: string, response: string, expected: string | null][] = [
  ["nested braces", "So we get $\\boxed{\\frac{1}{\\sqrt{2}}}$.", "\\frac{1}{\\sqrt{2}}"],
  ["deeply nested", "\\boxed{\\frac{\\sqrt{\\frac{95}{24}}}{2}}", "\\frac{\\sqrt{\\frac{95}{24}}}{2}"],
  ["last box wins", "First \\boxed{3}, then corrected: \\boxed{4}.", "4"],
  ["fbox", "Answer: \\fbox{7}", "7"],
  ["last of boxed and fbox", "\\fbox{1} and later \\boxed{2}", "2"],
  ["boxed without braces", "The result is $\\boxed 5$.", "5"],
  ["boxed without braces, period", "hence \\boxed 12.", "12"],
  ["unbalanced trailing box ignored", "\\boxed{12} ... wait, maybe \\boxed{\\frac{1}{2}", "12"],
  ["escaped braces are content", "\\boxed{\\{1,2\\}}", "\\{1,2\\}"],
  ["space before the brace", "\\boxed {42}", "42"],
  ["empty box (echoed instruction) skipped", "I must answer within \\boxed{}. The answer is 6.", "6"],
  ["box beats a later sentence", "\\boxed{5}. So the final answer is 6.", "5"],
  ["\\boxedx is not a box", "\\boxedx{3}", null],
  ["fallback: final answer is", "Thus, the final answer is 42.", "42"],
  ["fallback: answer is with LaTeX", "Therefore the answer is $\\frac{3}{4}$.", "\\frac{3}{4}"],
  ["fallback: Final Answer:", "Final Answer: 17", "17"],
  ["fallback: markdown", "**Final Answer:** 3\\sqrt{2}", "3\\sqrt{2}"],
  ["fallback: decimal kept", "The answer is 3.5.", "3.5"],
  ["fallback: last sentence wins", "The answer is 3. Wait, no. The answer is 4.", "4"],
  ["fallback: answer on the next line", "Final answer:\n\n$$12$$", "12"],
  ["fallback: case-insensitive", "THE ANSWER IS 9", "9"],
  ["fallback: last line saying so", "The answer is 1.\nI checked it.\nSo the answer is 2", "2"],
  ["fallback: \\( … \\)", "The final answer is \\(x = 5\\).", "x = 5"],
  ["no answer", "I don't know how to solve this.", null],
  ["empty response", "", null],
  ["cue with nothing after it", "The answer is", null],
  ["only an empty box", "Put it in \\boxed{}", null],
];

test("extractAnswer: boxes, fallbacks, nothing", () => {
  for (const [name, response, expected] of EXTRACTION) assert.equal(extractAnswer(response), expected, name);
});

// ---- normalisation ----

const NORMALIZED: [input: string, expected: string][] = [
  ["$\\frac{1}{2}$", "\\frac{1}{2}"],
  ["  7  ", "7"],
  ["5.", "5"],
  ["\\left( 3, 4 \\right)", "(3,4)"],
  ["\\dfrac{3}{4}", "\\frac{3}{4}"],
  ["\\tfrac34", "\\frac{3}{4}"],
  ["\\frac1{2}", "\\frac{1}{2}"],
  ["\\frac{1}2", "\\frac{1}{2}"],
  ["\\dbinom{5}{2}", "\\binom{5}{2}"],
  ["\\sqrt2", "\\sqrt{2}"],
  ["2\\,\\sqrt{3}", "2\\sqrt{3}"],
  ["9 \\sqrt{23}", "9\\sqrt{23}"],
  ["\\text{5 cm}", "5"],
  ["10\\text{ inches}", "10"],
  ["12 square units", "12"],
  ["3 \\mbox{km}", "3"],
  ["45^\\circ", "45"],
  ["45^{\\circ}", "45"],
  ["45°", "45"],
  ["30 \\text{ degrees}", "30"],
  ["50\\%", "50"],
  ["50%", "50"],
  ["\\$5", "5"],
  ["\\textbf{(B)}", "(B)"],
  ["\\mathrm{no\\ solution}", "no solution"],
  ["1,000", "1000"],
  ["12,345,678", "12345678"],
  ["1\\,000", "1000"],
  ["1,2", "1,2"],
  ["0,1", "0,1"],
  ["1,0000", "1,0000"],
  ["1,000, 2,000", "1000,2000"],
  ["x = 5", "5"],
  ["y=-3", "-3"],
  ["n = 12", "12"],
  ["xy = 5", "xy=5"],
  ["3/4", "\\frac{3}{4}"],
  ["-3/4", "-\\frac{3}{4}"],
  ["\\pi/4", "\\pi/4"],
  ["2m+1", "2m+1"],
  ["\\pi r^2", "\\pi r^2"],
  ["−5", "-5"],
];

test("normalizeAnswer: table", () => {
  for (const [input, expected] of NORMALIZED) assert.equal(normalizeAnswer(input), expected, input);
});

// ---- equivalence ----

const EQUIVALENT: [a: string, b: string][] = [
  ["025", "25"],
  ["1,000", "1000"],
  ["\\frac{1}{2}", "0.5"],
  ["0.5", "\\dfrac12"],
  ["0.50", "\\frac{1}{2}"],
  ["2^{-1}", "0.5"],
  ["10^{-3}", "0.001"],
  ["2^{10}", "1024"],
  ["5!", "120"],
  ["\\binom{5}{2}", "10"],
  ["i^2", "-1"],
  ["(1+i)^2", "2i"],
  ["\\sqrt[3]{27}", "3"],
  ["\\sqrt[3]{-8}", "-2"],
  ["\\sqrt{-4}", "2i"],
  ["2\\cdot 3", "6"],
  ["2\\times3", "6"],
  ["2*3", "6"],
  ["\\frac{\\pi}{2}", "\\pi/2"],
  ["3\\pi", "\\pi\\cdot 3"],
  ["4^{1/2}", "2"],
  ["(\\sqrt{2})^2", "2"],
  ["1.4142135623730951", "\\sqrt{2}"],
  ["\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"],
  ["-\\frac{1}{2}", "\\frac{-1}{2}"],
  ["x=5", "5"],
  ["5\\text{ cm}", "5"],
  ["90^\\circ", "90"],
  ["50\\%", "50"],
  ["(1,2)", "\\left(1, 2\\right)"],
  ["3, 1, 2", "1,2,3"],
  ["1,000, 2,000", "2000,1000"],
  ["x = 1, x = 2", "2, 1"],
  ["\\text{no solution}", "no solution"],
  ["", ""],
];

const NOT_EQUIVALENT: [a: string, b: string][] = [
  ["25", "250"],
  ["12", "1,2"],
  ["\\frac{1}{2}", "\\frac{2}{1}"],
  ["3\\sqrt{3}", "3\\sqrt{2}"],
  ["-90", "90"],
  ["0.333", "\\frac{1}{3}"],
  ["i\\sqrt{6}", "\\sqrt{6}"],
  ["i", "-i"],
  ["1,2,3", "1,2"],
  ["1,2,3", "1,2,4"],
  ["1,1,2", "1,2,2"],
  ["2\\pi", "2"],
  ["hello world", "5"],
  ["5", "hello world"],
  ["", "0"],
  ["0", ""],
  ["2 3", "6"],
  ["\\sqrt{2}", "1.41421356"],
  ["\\frac{1}{0}", "1"],
  ["(1,2)", "(2,1)"],
];

test("answersEquivalent: equivalent pairs, both orders", () => {
  for (const [a, b] of EQUIVALENT) assert.ok(answersEquivalent(a, b) && answersEquivalent(b, a), `${a} ≡ ${b}`);
});

test("answersEquivalent: tricky non-matches, both orders", () => {
  for (const [a, b] of NOT_EQUIVALENT) assert.ok(!answersEquivalent(a, b) && !answersEquivalent(b, a), `${a} ≢ ${b}`);
});

// ---- the evaluator on values computed another way ----

test("evaluator: exact values past float64 range convert to the right float", () => {
  // 4^n / C(2n, n) = Π_{k=1..n} 2k / (2k − 1), a product with no large intermediate
  let product = 1;
  for (let k = 1; k <= 2024; k++) product *= (2 * k) / (2 * k - 1);
  const v = evaluateLatex("\\frac{4^{2024}}{\\binom{4048}{2024}}-2");
  assert.ok(v && v.exact, "stays exact");
  const got = toComplexFloat(v!);
  assert.ok(Math.abs(got.re - (product - 2)) <= 1e-11 * (product - 2), `${got.re} vs ${product - 2}`);
  assert.equal(got.im, 0);
  const ratio = toComplexFloat(evaluateLatex("\\frac{2^{5000}}{3^{3000}}")!).re;
  const expected = Math.exp(5000 * Math.LN2 - 3000 * Math.log(3));
  assert.ok(Math.abs(ratio - expected) <= 1e-12 * expected, `${ratio} vs ${expected}`);
});

test("evaluator: exactness where it is possible, floats and null otherwise", () => {
  const cases: [src: string, exact: boolean | null, re: number, im: number][] = [
    ["025", true, 25, 0],
    ["-\\frac{13}{96}", true, -13 / 96, 0],
    ["26!", true, 403291461126605635584000000, 0],
    ["\\binom{10}{3}", true, 120, 0],
    ["\\sqrt{\\frac{9}{4}}", true, 1.5, 0],
    ["-i\\sqrt{6}", false, 0, -Math.sqrt(6)],
    ["\\frac{37}{40}\\pi", false, (37 / 40) * Math.PI, 0],
    ["64(2-\\sqrt{3})", false, 64 * (2 - Math.sqrt(3)), 0],
    ["\\frac{1}{0}", null, 0, 0],
    ["x+1", null, 0, 0],
    ["(1+2", null, 0, 0],
    ["2^{3}^{2}", null, 0, 0],
  ];
  for (const [src, exact, re, im] of cases) {
    const v = evaluateLatex(src);
    if (exact === null) {
      assert.equal(v, null, src);
      continue;
    }
    assert.ok(v, src);
    assert.equal(v.exact, exact, `${src} exact`);
    const got = toComplexFloat(v);
    assert.ok(Math.abs(got.re - re) <= 1e-12 * Math.max(1, Math.abs(re)) && Math.abs(got.im - im) <= 1e-12 * Math.max(1, Math.abs(im)), `${src}: ${got.re}+${got.im}i`);
  }
});
