// Calibration data: sources, seeded shuffling, cutting into samples, interpolated positions.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { buildCalibrationSamples, interpolatedPositions, readCalibrationDocuments } from "../../src/calib/data.js";
import { UsageError } from "../../src/errors.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { STORIES_DIR, tempDir } from "../helpers.js";

const tok = TextTokenizer.fromDir(STORIES_DIR);
const dir = tempDir();
const write = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return p;
};
const docs = Array.from({ length: 12 }, (_, i) => `Story ${i}: the cat number ${i} sat on the mat and looked at the dog.`);

test("plain text, JSON lines and folders give documents", () => {
  assert.deepEqual(readCalibrationDocuments(write("a.txt", "hello world")).documents, ["hello world"]);
  const jsonl = write("b.jsonl", docs.map((t) => JSON.stringify({ text: t, meta: { x: 1 } })).join("\n") + "\n\n");
  assert.deepEqual(readCalibrationDocuments(jsonl).documents, docs);
  write("folder/z.jsonl", JSON.stringify({ text: "last" }));
  write("folder/a.txt", "first");
  write("folder/sub/m.txt", "middle");
  write("folder/skip.bin", "ignored");
  const r = readCalibrationDocuments(path.join(dir, "folder"));
  assert.deepEqual(r.documents, ["first", "middle", "last"]);
  assert.equal(r.files.length, 3);
});

test("bad sources are refused with the place of the problem", () => {
  const cases: [string, RegExp][] = [
    [path.join(dir, "nope.txt"), /no such file or folder/],
    [write("bad.jsonl", '{"text": "ok"}\n{broken'), /bad\.jsonl:2: not a JSON object per line/],
    [write("notext.jsonl", '{"title": "x"}'), /notext\.jsonl:1: no "text" string/],
    [fs.mkdirSync(path.join(dir, "empty"), { recursive: true }) ?? path.join(dir, "empty"), /holds no/],
  ];
  for (const [p, msg] of cases) assert.throws(() => readCalibrationDocuments(p), (e: Error) => e instanceof UsageError && msg.test(e.message), p);
});

test("samples: seeded shuffle of whole documents, concatenated and cut, deterministic", () => {
  const a = buildCalibrationSamples(tok, docs, { nSamples: 4, seqLen: 20, seed: 1 });
  const b = buildCalibrationSamples(tok, docs, { nSamples: 4, seqLen: 20, seed: 1 });
  const c = buildCalibrationSamples(tok, docs, { nSamples: 4, seqLen: 20, seed: 2 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.every((s) => s.length === 20));
  // the samples are consecutive pieces of the concatenation of whole documents, each with BOS
  const flat = a.flat();
  const encoded = docs.map((d) => tok.encode(d));
  let at = 0;
  while (at < flat.length) {
    const doc = encoded.find((e) => e.every((id, i) => at + i >= flat.length || flat[at + i] === id));
    assert.ok(doc, `tokens at ${at} start a document`);
    assert.equal(doc[0], 1, "BOS starts each document");
    at += doc.length;
  }
});

test("too little text names how many samples fit", () => {
  const tokens = docs.reduce((n, d) => n + tok.encode(d).length, 0);
  assert.throws(
    () => buildCalibrationSamples(tok, docs, { nSamples: 100, seqLen: 64, seed: 0 }),
    (e: Error) => e instanceof UsageError && e.message.includes(`${tokens} tokens`) && e.message.includes(`holds ${Math.floor(tokens / 64)} samples`),
  );
});

test("positional interpolation: 0, s, 2s, … with s = effective / seq; whole multiples only", () => {
  assert.deepEqual(interpolatedPositions(4, 16), [0, 4, 8, 12]);
  assert.deepEqual(interpolatedPositions(3, 3), [0, 1, 2]);
  assert.throws(() => interpolatedPositions(4, 10), /whole multiple/);
  assert.throws(() => interpolatedPositions(4, 2), /whole multiple/);
});

test("--add-bos false and --first-documents: the original's selection (no special tokens, first N documents)", () => {
  const bos = tok.encode("x")[0];
  assert.notEqual(bos, tok.encode("x", false)[0], "the stories tokenizer adds BOS by default");
  const first = docs.slice(0, 3).map((d) => tok.encode(d, false));
  const total = first.reduce((a, t) => a + t.length, 0);
  const [sample] = buildCalibrationSamples(tok, docs, { nSamples: 1, seqLen: total, seed: 5, addSpecialTokens: false, firstDocuments: 3 });
  assert.ok(!sample.includes(bos), "no BOS anywhere");
  // exactly the three documents, whole, in some order
  const perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]].map((p) => p.flatMap((i) => first[i]));
  assert.ok(perms.some((p) => p.join() === sample.join()), "the sample is the first 3 documents concatenated");
  const withBos = buildCalibrationSamples(tok, docs, { nSamples: 1, seqLen: total, seed: 5, firstDocuments: 3 })[0];
  assert.equal(withBos.filter((t) => t === bos).length, 3, "by default each document starts with BOS");
  assert.throws(() => buildCalibrationSamples(tok, docs, { nSamples: 1, seqLen: total + 1, seed: 5, addSpecialTokens: false, firstDocuments: 3 }), /in its first 3 documents, fewer than/);
  assert.throws(() => buildCalibrationSamples(tok, docs, { nSamples: 1, seqLen: 8, seed: 5, firstDocuments: 0 }), /first-documents must be an integer ≥ 1/);
});
