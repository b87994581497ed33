// Every input and output path of every command, given wrong (missing, a folder for a file, a
// file for a folder, a path under a file, not writable): one line naming the flag and the path,
// exit code 2, no stack trace — and outputs are refused before the model is loaded.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { main } from "../../src/cli/main.js";
import { REPO_ROOT, STORIES_DIR, tempDir } from "../helpers.js";

const root = tempDir("pmkvq-paths-");
const FILE = path.join(root, "a-file.txt");
const DIR = path.join(root, "a-folder");
const MISSING = path.join(root, "missing", "nothing.json");
const UNDER_FILE = path.join(FILE, "x.json");
fs.writeFileSync(FILE, "Once upon a time, there was a little dog. ".repeat(40));
fs.mkdirSync(DIR);
const DEFAULT_MODEL = path.join(REPO_ROOT, "models", "default");

/** Run the CLI in this process; returns its exit code and what it wrote to stderr. */
async function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const write = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += String(s)), true)) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return { code: await main(argv), stderr };
  } finally {
    process.stderr.write = write;
    process.stdout.write = writeOut;
  }
}

type Case = [name: string, argv: string[], flag: string, bad: string, why: RegExp];

const gen = ["generate", "--model", STORIES_DIR, "--prompt", "x", "--max-new-tokens", "2"];
const calib = ["--model", STORIES_DIR, "--n-samples", "1", "--seq-len", "16"];
const evalBase = ["eval", "--model", STORIES_DIR, "--dataset-path", root, "--benchmark", "toy", "--version", "1"];
const notFound = /no such (file or )?folder/;
const isFolder = /is a folder, not a file/;
const isFile = /is a file, not a folder|a part of the path is a file/;

const CASES: Case[] = [
  // inputs
  ["generate --model missing", ["generate", "--model", MISSING, "--prompt", "x"], "", MISSING, /not a model folder/],
  ["generate --model a file", ["generate", "--model", FILE, "--prompt", "x"], "", FILE, /not a model folder/],
  ["generate --prompt-file missing", [...gen.filter((a) => a !== "--prompt" && a !== "x"), "--prompt-file", MISSING], "--prompt-file", MISSING, notFound],
  ["generate --prompt-file a folder", [...gen.filter((a) => a !== "--prompt" && a !== "x"), "--prompt-file", DIR], "--prompt-file", DIR, isFolder],
  ["generate --kv-budgets a folder", [...gen, "--method", "pm-kvq", "--kv-budgets", DIR], "--kv-budgets", DIR, isFolder],
  ["generate --kv-budgets missing", [...gen, "--method", "pm-kvq", "--kv-budgets", MISSING], "--kv-budgets", MISSING, notFound],
  ["generate --rep-scales missing", [...gen, "--rep-scales", MISSING], "--rep-scales", MISSING, notFound],
  ["generate --rep-scales under a file", [...gen, "--rep-scales", UNDER_FILE], "--rep-scales", UNDER_FILE, /a part of the path is a file/],
  ["generate --reorder a folder", [...gen, "--method", "rotatekv", "--reorder", DIR], "--reorder", DIR, isFolder],
  ["sensitivity --dataset missing", ["sensitivity", ...calib, "--dataset", MISSING, "--out", path.join(root, "s.json")], "--dataset", MISSING, notFound],
  ["search-scales --max-keys-path a folder", ["search-scales", ...calib, "--dataset", FILE, "--max-keys-path", DIR, "--out", path.join(root, "r.st")], "--max-keys-path", DIR, isFolder],
  ["allocate --sensitivity-path missing", ["allocate", "--sensitivity-path", MISSING, "--memory-budget", "1", "--kv-hidden", "64", "--out", path.join(root, "a.json")], "--sensitivity-path", MISSING, notFound],
  ["allocate --model a file", ["allocate", "--sensitivity-path", FILE, "--memory-budget", "1", "--model", FILE, "--out", path.join(root, "a.json")], "--model", FILE, isFile],
  ["eval --dataset-path a file", ["eval", "--model", STORIES_DIR, "--dataset-path", FILE, "--benchmark", "toy", "--version", "1"], "--dataset-path", FILE, isFile],
  ["eval --dataset-path missing", ["eval", "--model", STORIES_DIR, "--dataset-path", MISSING, "--benchmark", "toy", "--version", "1"], "--dataset-path", MISSING, notFound],
  ["judge --responses-dir a file", ["judge", "--responses-dir", FILE], "", FILE, isFile],
  ["judge --responses-dir missing", ["judge", "--responses-dir", MISSING], "", MISSING, notFound],
  ["demo --model a file", ["demo", "--model", FILE, "--out", path.join(root, "demo-out")], "--model", FILE, isFile],
  // outputs: refused before anything is loaded or computed
  ["generate --kv-trace a folder", [...gen, "--kv-trace", DIR], "--kv-trace", DIR, isFolder],
  ["generate --kv-trace under a file", [...gen, "--kv-trace", UNDER_FILE], "--kv-trace", UNDER_FILE, isFile],
  ["chat --kv-trace a folder", ["chat", "--model", STORIES_DIR, "--kv-trace", DIR], "--kv-trace", DIR, isFolder],
  ["sensitivity --out a folder", ["sensitivity", ...calib, "--dataset", FILE, "--out", DIR], "--out", DIR, isFolder],
  ["sensitivity --out under a file", ["sensitivity", ...calib, "--dataset", FILE, "--out", UNDER_FILE], "--out", UNDER_FILE, isFile],
  ["max-keys --out a folder", ["max-keys", ...calib, "--dataset", FILE, "--out", DIR], "--out", DIR, isFolder],
  ["search-scales --out under a file", ["search-scales", ...calib, "--dataset", FILE, "--max-keys-path", FILE, "--out", UNDER_FILE], "--out", UNDER_FILE, isFile],
  ["rotatekv-calib --out a folder", ["rotatekv-calib", ...calib, "--dataset", FILE, "--out", DIR], "--out", DIR, isFolder],
  ["calibrate --out a file", ["calibrate", ...calib, "--dataset", FILE, "--memory-budget", "1", "--out", FILE], "--out", FILE, isFile],
  ["calibrate --out under a file", ["calibrate", ...calib, "--dataset", FILE, "--memory-budget", "1", "--out", UNDER_FILE], "--out", UNDER_FILE, isFile],
  ["allocate --out a folder", ["allocate", "--sensitivity-path", FILE, "--memory-budget", "1", "--kv-hidden", "64", "--out", DIR], "--out", DIR, isFolder],
  ["eval --output a folder", [...evalBase, "--output", DIR], "--output", DIR, isFolder],
  ["eval --output under a file", [...evalBase, "--output", UNDER_FILE], "--output", UNDER_FILE, isFile],
  ["train --out a file", ["train", "--out", FILE, "--steps", "1"], "--out", FILE, isFile],
  ["demo --out a file", ["demo", "--model", DEFAULT_MODEL, "--out", FILE], "--out", FILE, isFile],
];

// a tiny benchmark so that eval's output checks are reached
fs.mkdirSync(path.join(root, "toy", "toy_1", "problems"), { recursive: true });
fs.writeFileSync(path.join(root, "toy", "toy_1", "answers.csv"), "id,answer\n1,3\n");
fs.writeFileSync(path.join(root, "toy", "toy_1", "problems", "1.tex"), "Lily had 3 apples.");

for (const [name, argv, flag, bad, why] of CASES) {
  test(`${name}: one line naming it, exit 2, nothing loaded`, async () => {
    const r = await run(argv);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
    assert.match(lines[0], /^pmkvq: /);
    assert.ok(lines[0].includes(bad), `names the path: ${lines[0]}`);
    if (flag) assert.ok(lines[0].includes(flag), `names the flag: ${lines[0]}`);
    assert.match(lines[0], why);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
    assert.doesNotMatch(r.stderr, /^loaded /m, "refused before the model was loaded");
  });
}

test("outputs that cannot be written because of permissions are refused up front", { skip: process.getuid?.() === 0 ? "running as root: permissions do not apply" : false }, async () => {
  const ro = path.join(root, "read-only");
  fs.mkdirSync(ro);
  fs.chmodSync(ro, 0o555);
  const r = await run([...evalBase, "--output", path.join(ro, "r.json")]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--output .*read-only.*permission denied/);
});
