// Strict JSON (util/json.ts) and the JSON file helpers built on it (util/atomic.ts): values
// equal JSON.parse's, duplicate keys refused with their path (checked against a tree walk of
// generated documents), file-system failures in words that name the file, atomic writes that
// leave no temp file behind.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { CheckpointError, ConfigError, FileError, PmkvqError } from "../../src/errors.js";
import { readJsonFile, readJsonObject, writeFileAtomic } from "../../src/util/atomic.js";
import { findDuplicateKey, parseJsonStrict } from "../../src/util/json.js";
import { seededRandom, tempDir } from "../helpers.js";

const dir = tempDir();

/** Asserts `fn` throws an instance of `cls` whose message contains every one of `parts`. */
function assertThrowsWith(fn: () => unknown, cls: new (...a: never[]) => Error, parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected a ${cls.name}, got ${String(e)}`);
    for (const part of parts) assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
    return true;
  });
}

test("valid JSON without duplicates parses to what JSON.parse gives", () => {
  const texts = [
    "{}", "[]", "null", "3", '"s"', '{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}',
    '{"a": "}\\",{\\"a\\": 1", "b": "\\\\", "c": "\\\\\\""}', // braces, quotes and backslashes inside strings
    '{"x\\\\": 1, "x\\\\\\\\": 2}', // keys `x\` and `x\\` differ
    '[[[{"k": [1, 2, {"k": {}}]}]], {"k": null}]', ' \n{ "a" : [ ] , "b" : { } }\t',
    '{"__proto__": {"x": 1}, "constructor": 2}',
  ];
  for (const t of texts) {
    assert.deepEqual(parseJsonStrict(t, "f.json"), JSON.parse(t), t);
    assert.equal(findDuplicateKey(t), null, t);
  }
});

test("duplicate keys are refused at any depth, naming the file, the key and where", () => {
  const cases: [string, string, string][] = [
    ['{"hidden_size": 1, "hidden_size": 2}', "hidden_size", "$"],
    ['{"model": {"vocab": {"x": 1, "y": 2, "x": 3}}}', "x", "$.model.vocab"],
    ['{"added_tokens": [{"id": 0}, {"id": 1, "id": 2}]}', "id", "$.added_tokens[1]"],
    ['[1, [2, {"a": {}, "a": {}}]]', "a", "$[1][1]"],
    ['{"a b": {"k": 1, "k": 1}}', "k", '$["a b"]'],
    ['{"a": 1, "\\u0061": 2}', "a", "$"], // the same key, spelled with an escape
    ['{"q\\"": 1, "q\\"": 2}', 'q"', "$"],
    ['{"ok": {"a": 1}, "w": {"b": 1, "c": {"d": [], "d": 0}}}', "d", "$.w.c"],
  ];
  for (const [text, key, where] of cases) {
    assert.deepEqual(findDuplicateKey(text), { key, path: where }, text);
    assertThrowsWith(() => parseJsonStrict(text, "/m/config.json", ConfigError), ConfigError, [
      `/m/config.json: duplicate key ${JSON.stringify(key)} at ${where}`,
    ]);
  }
  assertThrowsWith(() => parseJsonStrict('{"w": 1, "w": 2}', "x.safetensors", CheckpointError, "header"), CheckpointError, [
    'x.safetensors: header has a duplicate key "w" at $',
  ]);
});

test("invalid JSON is refused with the parser's own message", () => {
  for (const text of ["{oops", "", '{"a": 1,}', "[1, 2", '{"a": 1} x', "NaN"]) {
    let parserMessage = "";
    try {
      JSON.parse(text);
    } catch (e) {
      parserMessage = (e as Error).message;
    }
    assert.ok(parserMessage, text);
    assertThrowsWith(() => parseJsonStrict(text, "t.json"), PmkvqError, ["t.json: not valid JSON", parserMessage]);
  }
});

/** A random JSON tree whose objects are lists of [key, value] pairs (so a key may repeat). */
type Tree = number | string | Tree[] | { pairs: [string, Tree][] };
function randomTree(rand: () => number, depth: number): Tree {
  const r = rand();
  if (depth === 0 || r < 0.3) return r < 0.15 ? Math.floor(rand() * 100) : ["x", "}", '"', "\\", "a,b", "{[", ""][Math.floor(rand() * 7)];
  const n = Math.floor(rand() * 5);
  if (r < 0.55) return Array.from({ length: n }, () => randomTree(rand, depth - 1));
  const keys = ["a", "b", "c", 'q"', "\\", "{"];
  return { pairs: Array.from({ length: n }, () => [keys[Math.floor(rand() * keys.length)], randomTree(rand, depth - 1)] as [string, Tree]) };
}
function serialize(t: Tree): string {
  if (typeof t !== "object") return JSON.stringify(t);
  if (Array.isArray(t)) return `[${t.map(serialize).join(", ")}]`;
  return `{${t.pairs.map(([k, v]) => `${JSON.stringify(k)}: ${serialize(v)}`).join(",")}}`;
}
/** The reference: walk the tree in text order, the first object that repeats a key. */
function firstDuplicate(t: Tree, where = "$"): { key: string; path: string } | null {
  if (typeof t !== "object") return null;
  if (Array.isArray(t)) {
    for (let i = 0; i < t.length; i++) {
      const d = firstDuplicate(t[i], `${where}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  const seen = new Set<string>();
  for (const [k, v] of t.pairs) {
    if (seen.has(k)) return { key: k, path: where };
    seen.add(k);
    const d = firstDuplicate(v, /^[A-Za-z_$][\w$]*$/.test(k) ? `${where}.${k}` : `${where}[${JSON.stringify(k)}]`);
    if (d) return d;
  }
  return null;
}

test("random documents: the duplicate found is the first one of a tree walk", () => {
  const rand = seededRandom(11);
  let withDuplicates = 0;
  for (let i = 0; i < 2000; i++) {
    const tree = randomTree(rand, 4);
    const text = serialize(tree);
    const want = firstDuplicate(tree);
    if (want) withDuplicates++;
    assert.deepEqual(findDuplicateKey(text), want, text);
  }
  assert.ok(withDuplicates > 200 && withDuplicates < 1800, `${withDuplicates} of 2000 documents had duplicates`);
});

test("a 5 MB tokenizer.json costs at most a few times JSON.parse", () => {
  const vocab: Record<string, number> = {};
  for (let i = 0; i < 180_000; i++) vocab[`▁tok${i.toString(36)}${i % 7 ? "" : '\\"'}`] = i;
  const merges = Array.from({ length: 120_000 }, (_, i) => `▁t${i % 977} ok${i}`);
  const text = JSON.stringify({ version: "1.0", added_tokens: [{ id: 0, content: "<unk>" }], model: { type: "BPE", vocab, merges } });
  assert.ok(text.length > 5e6, `${text.length} characters`);
  const best = (fn: () => unknown) => {
    let ms = Infinity;
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      fn();
      ms = Math.min(ms, performance.now() - t0);
    }
    return ms;
  };
  const parseMs = best(() => JSON.parse(text));
  const strictMs = best(() => parseJsonStrict(text, "tokenizer.json"));
  assert.ok(strictMs < 3 * parseMs + 30, `parseJsonStrict ${strictMs.toFixed(1)} ms, JSON.parse ${parseMs.toFixed(1)} ms`);
});

// Files: fs failures are one line in words, in the caller's error class, naming the file.
test("readJsonFile: missing, folder, path through a file, duplicate key", () => {
  const file = path.join(dir, "plain.json");
  fs.writeFileSync(file, "[1]");
  const cases: [string, string[]][] = [
    [path.join(dir, "missing.json"), ["cannot read", "no such file or folder (ENOENT)"]],
    [dir, ["cannot read", "is a folder, not a file (EISDIR)"]],
    [path.join(file, "x.json"), ["cannot read", "a part of the path is a file, not a folder (ENOTDIR)"]],
  ];
  for (const [p, parts] of cases) assertThrowsWith(() => readJsonFile(p, ConfigError), ConfigError, [p, ...parts]);
  const dup = path.join(dir, "dup.json");
  fs.writeFileSync(dup, '{"a": {"b": 1, "b": 2}}');
  assertThrowsWith(() => readJsonFile(dup, CheckpointError), CheckpointError, [`${dup}: duplicate key "b" at $.a`]);
  assert.deepEqual(readJsonFile(file), [1]);
});

test("readJsonFile: an unreadable file (permission denied) names it", { skip: process.getuid?.() === 0 ? "root reads every file" : false }, () => {
  const file = path.join(dir, "secret.json");
  fs.writeFileSync(file, "{}");
  fs.chmodSync(file, 0o000);
  assertThrowsWith(() => readJsonFile(file, ConfigError), ConfigError, [file, "permission denied (EACCES)"]);
});

test("readJsonObject refuses a top level that is not an object", () => {
  for (const [text, kind] of [["null", "null"], ["[1, 2]", "a list"], ["3", "a number"], ['"s"', "a string"], ["true", "a boolean"]]) {
    const file = path.join(dir, "top.json");
    fs.writeFileSync(file, text);
    assertThrowsWith(() => readJsonObject(file, ConfigError), ConfigError, [file, "expected a JSON object", `found ${kind}`]);
  }
  const file = path.join(dir, "obj.json");
  fs.writeFileSync(file, '{"a": [1]}');
  assert.deepEqual(readJsonObject(file), { a: [1] });
});

const tempFiles = (d: string) => fs.readdirSync(d).filter((n) => n.endsWith(".tmp"));

test("writeFileAtomic replaces a file whole and leaves no temp file", () => {
  const d = fs.mkdtempSync(path.join(dir, "w-"));
  const file = path.join(d, "sub", "out.json");
  writeFileAtomic(file, "first");
  writeFileAtomic(file, new Uint8Array([0x32, 0x6e, 0x64]));
  assert.equal(fs.readFileSync(file, "utf8"), "2nd");
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ["out.json"]);
});

test("writeFileAtomic: a folder in the way or a file as the folder is a FileError, no temp file left", () => {
  const d = fs.mkdtempSync(path.join(dir, "w-"));
  const folder = path.join(d, "taken");
  fs.mkdirSync(path.join(folder, "inside"), { recursive: true });
  assertThrowsWith(() => writeFileAtomic(folder, "x"), FileError, [`${folder}: cannot write`, "(E"]);
  assert.deepEqual(tempFiles(d), []);
  assert.ok(fs.statSync(folder).isDirectory(), "the folder is untouched");
  const plain = path.join(d, "plain");
  fs.writeFileSync(plain, "p");
  const under = path.join(plain, "out.json");
  assertThrowsWith(() => writeFileAtomic(under, "x"), FileError, [`${under}: cannot write`]);
  assert.deepEqual(tempFiles(d), []);
  assert.equal(fs.readFileSync(plain, "utf8"), "p");
});
