// Block-wise memory allocation (spec §4): the DP against brute force over every assignment,
// the memory formula by hand, errors users can act on, and the `allocate` command's output.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { allocateBits, blockMemoryMB, readSensitivity, type Sensitivity } from "../../src/calib/allocate.js";
import { normalizeArgv } from "../../src/cli/args.js";
import { allocateCommand, runAllocate, type AllocateFlags } from "../../src/cli/allocate.js";
import { UsageError } from "../../src/errors.js";
import { seededRandom, STORIES_DIR, tempDir } from "../helpers.js";

const ALL_BITS = [16, 8, 4, 2, 1];

/** Sensitivity tables from per-block cost functions (V gets a share so both tables matter). */
function tables(n: number, bits: number[], k: (b: number, i: number) => number, v: (b: number, i: number) => number): Sensitivity {
  const kS: Record<string, number[]> = {};
  const vS: Record<string, number[]> = {};
  for (const b of bits) {
    kS[b] = Array.from({ length: n }, (_, i) => k(b, i));
    vS[b] = Array.from({ length: n }, (_, i) => v(b, i));
  }
  return { kSensitivity: kS, vSensitivity: vS };
}

interface Brute {
  /** best[w]: least objective over assignments totalling exactly w bits, with its bits (tie rule applied). */
  best: Map<number, { objective: number; bits: number[] }>;
}

/**
 * Every assignment, enumerated. Ties at one total: the lexicographically greatest bit list
 * (the rule the library documents). Sums run left to right (the library folds right to left).
 */
function bruteForce(sens: Sensitivity, choices: number[], n: number): Brute {
  const best = new Map<number, { objective: number; bits: number[] }>();
  const idx = new Array(n).fill(0);
  for (;;) {
    const bits = idx.map((c) => choices[c]);
    let objective = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      objective += sens.kSensitivity[bits[i]][i] + sens.vSensitivity[bits[i]][i];
      total += bits[i];
    }
    const cur = best.get(total);
    if (!cur || objective < cur.objective || (objective === cur.objective && lexGreater(bits, cur.bits))) best.set(total, { objective, bits });
    let i = n - 1;
    while (i >= 0 && idx[i] === choices.length - 1) idx[i--] = 0;
    if (i < 0) break;
    idx[i]++;
  }
  return { best };
}

function lexGreater(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return false;
}

function objectiveOf(sens: Sensitivity, bits: number[]): number {
  return bits.reduce((s, b, i) => s + sens.kSensitivity[b][i] + sens.vSensitivity[b][i], 0);
}

function closeRel(a: number, b: number, rel = 1e-12): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)) + 1e-300;
}

test("mem_i(b) = b × kv_hidden × 2 × max_len / 8 / 2^20, by hand", () => {
  assert.equal(blockMemoryMB(4, 256, 32768), 8); // 4·256·2·32768 / 8 = 8 388 608 bytes
  assert.equal(blockMemoryMB(2, 1024, 32768), 16); // 2·1024·2·32768 / 8 = 16 777 216 bytes
  assert.equal(blockMemoryMB(16, 32, 512), 0.0625); // 16·32·2·512 / 8 = 65 536 bytes
  assert.equal(blockMemoryMB(1, 32, 32768), 0.25);
});

test("DP = brute force on 240 random instances: optimum, feasibility, tie rule, Pareto frontier", () => {
  const rand = seededRandom(20250704);
  const pickInt = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  let feasibleRuns = 0;
  let infeasibleRuns = 0;
  for (let trial = 0; trial < 240; trial++) {
    const n = pickInt(1, 12);
    const nChoices = pickInt(2, 3);
    const choices = [...ALL_BITS].sort(() => rand() - 0.5).slice(0, nChoices);
    // dyadic values (exact sums: ties and zeros are real ties) or generic floats, some zeros/duplicates
    const dyadic = trial % 2 === 0;
    const value = () => (dyadic ? pickInt(0, 6) / 4 : rand() < 0.15 ? 0 : rand() * 10 ** pickInt(-4, 1));
    const kv = new Map<string, number>();
    const draw = (t: string, b: number, i: number) => {
      const key = `${t}${b},${i}`;
      if (!kv.has(key)) kv.set(key, !dyadic && rand() < 0.1 && kv.size ? [...kv.values()][pickInt(0, kv.size - 1)] : value());
      return kv.get(key)!;
    };
    const sens = tables(n, choices, (b, i) => draw("k", b, i), (b, i) => draw("v", b, i));
    const kvHidden = pickInt(1, 64) * 8;
    const maxLen = pickInt(1, 4096);
    const unitMB = (kvHidden * 2 * maxLen) / 8 / 2 ** 20;
    const brute = bruteForce(sens, choices, n);
    const totals = [...brute.best.keys()].sort((a, b) => a - b);
    const minTotal = totals[0];
    const maxTotal = totals[totals.length - 1];

    // budgets: inside, exactly at achievable totals (also as a rounded decimal), below and above the range
    const budgets: { mb: number; capacity: number }[] = [];
    for (let j = 0; j < 3; j++) {
      const w = pickInt(minTotal, maxTotal);
      budgets.push({ mb: (w + 0.01 + 0.98 * rand()) * unitMB, capacity: w });
      budgets.push({ mb: w * unitMB, capacity: w });
      budgets.push({ mb: Number((w * unitMB).toPrecision(12)), capacity: w });
    }
    budgets.push({ mb: (minTotal - 1 + rand() * 0.99) * unitMB, capacity: minTotal - 1 });
    budgets.push({ mb: 0, capacity: -1 });
    budgets.push({ mb: (maxTotal + 5) * unitMB, capacity: maxTotal + 5 });

    const frontier: { total: number; objective: number; bits: number[] }[] = [];
    for (const t of totals) {
      const b = brute.best.get(t)!;
      if (!frontier.length || b.objective < frontier[frontier.length - 1].objective) frontier.push({ total: t, ...b });
    }

    for (const { mb, capacity } of budgets) {
      const where = `trial ${trial}: n=${n} choices=${choices} budget=${mb} MB (capacity ${capacity} bits)`;
      const opts = { bits: choices, memoryBudgetMB: mb, kvHidden, maxLen };
      if (capacity < minTotal) {
        const minMB = minTotal * unitMB;
        assert.throws(() => allocateBits(sens, opts), (e: Error) => e instanceof UsageError && e.message.includes(`${minMB} MB`), where);
        infeasibleRuns++;
        continue;
      }
      feasibleRuns++;
      const got = allocateBits(sens, opts);
      let want = frontier[0];
      for (const p of frontier) if (p.total <= capacity) want = p;
      assert.ok(closeRel(got.objective, want.objective), `${where}: objective ${got.objective} vs brute force ${want.objective}`);
      const usedBits = got.bits.reduce((s, b) => s + b, 0);
      assert.ok(usedBits <= capacity, `${where}: uses ${usedBits} bits`);
      assert.ok(closeRel(objectiveOf(sens, got.bits), got.objective), `${where}: reported objective matches its bits`);
      assert.deepEqual(got.budgetsMB, got.bits.map((b) => b * unitMB), where);
      assert.ok(closeRel(got.totalMB, usedBits * unitMB), where);
      if (dyadic) {
        // exact arithmetic: least memory among optimal, then the lexicographic rule, must agree exactly
        assert.equal(got.objective, want.objective, where);
        assert.deepEqual(got.bits, want.bits, where);
      }
      assert.equal(got.pareto.length, frontier.length, `${where}: Pareto size`);
      got.pareto.forEach((p, k) => {
        const f = frontier[k];
        assert.ok(closeRel(p.budgetMB, f.total * unitMB), `${where}: Pareto ${k} budget ${p.budgetMB} vs ${f.total * unitMB}`);
        assert.ok(closeRel(p.objective, f.objective), `${where}: Pareto ${k} objective`);
        assert.ok(closeRel(objectiveOf(sens, p.bits), p.objective), `${where}: Pareto ${k} bits`);
        assert.equal(p.bits.reduce((s, b) => s + b, 0), f.total, `${where}: Pareto ${k} bits total`);
        if (dyadic) assert.deepEqual(p.bits, f.bits, `${where}: Pareto ${k} tie rule`);
      });
    }
  }
  assert.ok(feasibleRuns > 1500 && infeasibleRuns >= 480, `${feasibleRuns} feasible, ${infeasibleRuns} infeasible`);
});

test("ties: least memory first, then higher bits in earlier blocks", () => {
  const zeros = tables(3, [4, 2], () => 0, () => 0);
  assert.deepEqual(allocateBits(zeros, { bits: [4, 2], memoryBudgetMB: 1e9, kvHidden: 256, maxLen: 32768 }).bits, [2, 2, 2]);
  // 2 MB per bit per block: 17 MB fits one 4-bit block (8 + 4 + 4); every block gains the same → the first gets it
  const same = tables(3, [4, 2], (b) => (b === 4 ? 1 : 2), () => 0);
  const r = allocateBits(same, { bits: [2, 4], memoryBudgetMB: 17, kvHidden: 256, maxLen: 32768 });
  assert.deepEqual(r.bits, [4, 2, 2]);
  assert.deepEqual(r.budgetsMB, [8, 4, 4]);
  assert.equal(r.totalMB, 16);
  assert.equal(r.objective, 5);
  assert.deepEqual(r.pareto.map((p) => [p.budgetMB, p.objective]), [[12, 6], [16, 5], [20, 4], [24, 3]]);
});

test("128 blocks × 5 choices: exact at both ends of the range, monotone frontier", (t) => {
  const rand = seededRandom(7);
  const n = 128;
  // sensitivity falls as bits grow (as measured ones do), with noise
  const sens = tables(n, ALL_BITS, (b) => rand() / b ** 2, (b) => rand() / b ** 2);
  const cost = (b: number, i: number) => sens.kSensitivity[b][i] + sens.vSensitivity[b][i];
  const opts = { bits: ALL_BITS, kvHidden: 512, maxLen: 32768 };
  const u = blockMemoryMB(1, 512, 32768);
  const t0 = performance.now();
  const unlimited = allocateBits(sens, { ...opts, memoryBudgetMB: 16 * n * u });
  const ms = performance.now() - t0;
  t.diagnostic(`allocation took ${ms.toFixed(0)} ms (speed is the bench's business, not a test's)`);
  // with room for everything, each block independently takes its cheapest choice
  const independent = Array.from({ length: n }, (_, i) => ALL_BITS.reduce((m, b) => Math.min(m, cost(b, i)), Infinity));
  assert.ok(closeRel(unlimited.objective, independent.reduce((s, c) => s + c, 0)));
  const tight = allocateBits(sens, { ...opts, memoryBudgetMB: n * u });
  assert.deepEqual(tight.bits, new Array(n).fill(1));
  for (let k = 1; k < unlimited.pareto.length; k++) {
    assert.ok(unlimited.pareto[k].budgetMB > unlimited.pareto[k - 1].budgetMB);
    assert.ok(unlimited.pareto[k].objective < unlimited.pareto[k - 1].objective);
  }
});

test("infeasible budgets and unusable inputs are UsageErrors that say what would be valid", () => {
  const sens = tables(5, ALL_BITS, () => 1, () => 1);
  // 5 blocks × 2 bits × (32·2·32768/8/2^20 = 0.25 MB per bit) = 2.5 MB
  assert.throws(() => allocateBits(sens, { bits: [4, 2], memoryBudgetMB: 2.4, kvHidden: 32, maxLen: 32768 }), /smallest feasible budget 2\.5 MB/);
  assert.equal(allocateBits(sens, { bits: [4, 2], memoryBudgetMB: 2.5, kvHidden: 32, maxLen: 32768 }).totalMB, 2.5);
  const partial = { kSensitivity: { "4": [1], "2": [1] }, vSensitivity: { "4": [1] } };
  assert.throws(() => allocateBits(partial, { bits: [4, 2], memoryBudgetMB: 9, kvHidden: 32, maxLen: 32768 }), /no 2-bit entries \(it has: 4\)/);
  assert.throws(() => allocateBits(sens, { bits: [4, 4], memoryBudgetMB: 9, kvHidden: 32, maxLen: 32768 }), /repeat/);
  assert.throws(() => allocateBits(sens, { bits: [], memoryBudgetMB: 9, kvHidden: 32, maxLen: 32768 }), /no bit-width choices/);
  assert.throws(() => allocateBits(sens, { bits: [4], memoryBudgetMB: 9, kvHidden: 0, maxLen: 32768 }), /kv_hidden/);
  assert.throws(() => allocateBits(sens, { bits: [4], memoryBudgetMB: NaN, kvHidden: 32, maxLen: 32768 }), /memory budget/);
  const ragged = { kSensitivity: { "4": [1, 2] }, vSensitivity: { "4": [1] } };
  assert.throws(() => allocateBits(ragged, { bits: [4], memoryBudgetMB: 9, kvHidden: 32, maxLen: 32768 }), /vSensitivity\["4"\] has 1 blocks, expected 2/);
});

test("readSensitivity names the file and the field that is wrong", () => {
  const dir = tempDir();
  const write = (name: string, content: unknown) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
    return file;
  };
  const good = { kSensitivity: { "4": [1, 2], "2": [3, 4] }, vSensitivity: { "4": [0, 0], "2": [1, 1] }, meta: { nSamples: 2 } };
  const ok = readSensitivity(write("ok.json", good), [4, 2]);
  assert.deepEqual(ok, good);
  const cases: [string, unknown, number[], RegExp][] = [
    ["text.json", "{not json", [], /text\.json: not valid JSON/],
    ["list.json", [1, 2], [], /list\.json: not a JSON object/],
    ["nov.json", { kSensitivity: good.kSensitivity }, [], /nov\.json: "vSensitivity" is missing/],
    ["str.json", { ...good, kSensitivity: { "4": [1, "x"] } }, [], /str\.json: kSensitivity\["4"\]\[1\] is "x", not a finite number/],
    ["null.json", { ...good, vSensitivity: { "4": [null, 1], "2": [1, 1] } }, [], /null\.json: vSensitivity\["4"\]\[0\] is null/],
    ["len.json", { ...good, vSensitivity: { "4": [0, 0, 0], "2": [1, 1] } }, [], /len\.json: vSensitivity\["4"\] has 3 blocks, other lists have 2/],
    ["notlist.json", { ...good, kSensitivity: { "4": 3 } }, [], /notlist\.json: kSensitivity\["4"\] is not a list/],
    ["key.json", { ...good, kSensitivity: { four: [1, 2] } }, [], /key\.json: kSensitivity\["four"\]: key is not a bit-width/],
    ["empty.json", { kSensitivity: { "4": [] }, vSensitivity: { "4": [] } }, [], /empty\.json: .*no blocks/],
    ["missing.json", good, [8, 4], /missing\.json: kSensitivity has no "8" entry \(bit-widths present: 2, 4\)/],
  ];
  for (const [name, content, bits, re] of cases) {
    assert.throws(() => readSensitivity(write(name, content), bits), (e: Error) => e instanceof UsageError && re.test(e.message), name);
  }
  assert.throws(() => readSensitivity(path.join(dir, "absent.json")), /absent\.json: no such sensitivity file/);
});

/** Run with stdout captured (runAllocate prints). */
function captureStdout(fn: () => void): string {
  let out = "";
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }) as typeof process.stdout.write;
  try {
    fn();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

test("runAllocate on stories260K writes the budgets JSON and prints a summary", () => {
  const dir = tempDir();
  const sensFile = path.join(dir, "sens.json");
  // 2-bit penalty over 4 bits per block (K + V): 0.5, 0.1, 0.9, 0.05, 0.3
  const gain = [0.5, 0.1, 0.9, 0.05, 0.3];
  const sens = tables(5, ALL_BITS, (b, i) => (b >= 4 ? 0.01 : b === 2 ? 0.01 + gain[i] / 2 : 5), (b, i) => (b >= 4 ? 0 : b === 2 ? gain[i] / 2 : 5));
  fs.writeFileSync(sensFile, JSON.stringify({ ...sens, meta: { nSamples: 1 } }));
  const out = path.join(dir, "sub", "alloc.json");
  // kv_hidden = 4 heads × 8 = 32 → 0.25 MB per bit per block at 32768 tokens: 4 bits = 1 MB, 2 bits = 0.5 MB;
  // 3.6 MB fits two 4-bit blocks (3.5 MB) → the two largest gains, blocks 2 and 0
  const flags: AllocateFlags = { sensitivityPath: sensFile, memoryBudget: 3.6, bits: [4, 2], model: STORIES_DIR, maxLen: 32768, out };
  const printed = captureStdout(() => runAllocate(flags));
  const json = JSON.parse(fs.readFileSync(out, "utf8"));
  assert.deepEqual(json.bits, [4, 2, 4, 2, 2]);
  assert.deepEqual(json.budgetsMB, [1, 0.5, 1, 0.5, 0.5]);
  assert.equal(json.totalMB, 3.5);
  assert.ok(closeRel(json.objective, 0.05 + 0.1 + 0.05 + 0.3));
  assert.deepEqual(json.pareto.map((p: { budgetMB: number }) => p.budgetMB), [2.5, 3, 3.5, 4, 4.5, 5]);
  assert.deepEqual(json.pareto[5].bits, [4, 4, 4, 4, 4]);
  assert.deepEqual(json.meta, { sensitivityPath: sensFile, model: STORIES_DIR, memoryBudgetMB: 3.6, bitChoices: [4, 2], kvHidden: 32, maxLen: 32768 });
  assert.match(printed, /bits {7}4 2 4 2 2\n/);
  assert.match(printed, /memory {5}3\.5 MB of 3\.6 MB budget/);
  assert.match(printed, /\* {8}3\.5 .* 4b×2 2b×3/);
  assert.ok(printed.includes(`wrote ${out}`));

  // --json prints exactly what was written; --kv-hidden instead of --model gives the same bits
  const printedJson = captureStdout(() => runAllocate({ ...flags, model: undefined, kvHidden: 32, json: true }));
  assert.deepEqual(JSON.parse(printedJson).bits, json.bits);
  assert.equal(printedJson, fs.readFileSync(out, "utf8"));

  assert.throws(() => runAllocate({ ...flags, kvHidden: 32 }), /exactly one of --model DIR or --kv-hidden N/);
  assert.throws(() => runAllocate({ ...flags, model: undefined }), /exactly one of/);
  assert.throws(() => runAllocate({ ...flags, memoryBudget: 2 }), /smallest feasible budget 2\.5 MB/);
  assert.throws(() => runAllocate({ ...flags, bits: [8, 3] }), /no "3" entry/);
  const fourBlocks = path.join(dir, "four.json");
  fs.writeFileSync(fourBlocks, JSON.stringify(tables(4, [4, 2], () => 1, () => 1)));
  assert.throws(() => runAllocate({ ...flags, sensitivityPath: fourBlocks }), /has 4 blocks but .*config\.json has 5/);
  assert.throws(() => runAllocate({ ...flags, model: dir }), /no config\.json/);
});

test("allocate flags: ours and the original's spellings, defaults, choices, --help", async () => {
  const parse = async (argv: string[]) => {
    let got: AllocateFlags | null = null;
    const cmd = allocateCommand((f) => {
      got = f;
    })
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    await cmd.parseAsync(normalizeArgv(argv), { from: "user" });
    return got as AllocateFlags | null;
  };
  const original = await parse(["--sensitivity_path", "s.json", "--memory_budget", "1024", "--fbit_choices", "8,4,2", "--hidden_size", "256", "--max_len", "8192", "--save_path", "o.json"]);
  assert.deepEqual({ ...original }, { sensitivityPath: "s.json", memoryBudget: 1024, bits: [8, 4, 2], kvHidden: 256, maxLen: 8192, out: "o.json" });
  const defaults = await parse(["--sensitivity-path", "s", "--memory-budget", "1.5", "--model", "m", "--out", "o"]);
  assert.deepEqual(defaults?.bits, [4, 2]);
  assert.equal(defaults?.maxLen, 32768);
  for (const bad of [["--bits", "3,2"], ["--memory-budget", "0"], ["--memory-budget", "x"], ["--max-len", "0"], ["--kv-hidden", "1.5"]]) {
    await assert.rejects(parse(["--sensitivity-path", "s", "--memory-budget", "9", "--kv-hidden", "8", "--out", "o", ...bad]), bad.join(" "));
  }
  await assert.rejects(parse(["--memory-budget", "9", "--kv-hidden", "8", "--out", "o"]), /sensitivity-path/);
  await assert.rejects(parse(["--sensitivity-path", "s", "--kv-hidden", "8", "--out", "o"]), /memory-budget/);
  await assert.rejects(parse(["--sensitivity-path", "s", "--memory-budget", "9", "--kv-hidden", "8"]), /--out/);
  const help = allocateCommand(() => {}).helpInformation();
  for (const flag of ["--sensitivity-path", "--memory-budget", "--bits", "--model", "--kv-hidden", "--max-len", "--out", "--json"]) assert.ok(help.includes(flag), flag);
});
