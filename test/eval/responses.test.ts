// Reading response files and folders: one JSON object (ours, and the original's `.jsonl` written
// by `json.dump(…, indent=4)`), JSON lines (keyed objects or records carrying their key), errors
// that name file and line, and a folder whose every entry is either read or reported.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseResponses, readResponseFile, readResponsesDir } from "../../src/eval/responses.js";
import { tempDir } from "../helpers.js";

const rec = (response: string, gold: string) => ({
  seed: 0, response, response_answer: null, gold, judgement: null, input_len: 1, output_len: 2,
});

// As the original writes it: json.dump(json_data, f, indent=4), no trailing newline, ASCII escapes.
const ORIGINAL_JSONL = `{
    "toy_1.1.0": {
        "seed": 0,
        "response": "x = 5, so x\\u00b2 = \\\\boxed{25}",
        "response_answer": "25",
        "gold": "25",
        "judgement": true,
        "input_len": 10,
        "output_len": 20
    },
    "toy_1.1.1": {
        "seed": 1,
        "response": "\\\\boxed{24}",
        "response_answer": "24",
        "gold": "25",
        "judgement": false,
        "input_len": 10,
        "output_len": 30
    }
}`;

test("the original's .jsonl (one object, indent 4) is read as one object", () => {
  const p = parseResponses(ORIGINAL_JSONL, "orig.jsonl");
  assert.equal(p.format, "object");
  assert.deepEqual(Object.keys(p.records), ["toy_1.1.0", "toy_1.1.1"]);
  assert.equal(p.records["toy_1.1.0"].response, "x = 5, so x² = \\boxed{25}");
  assert.equal(p.records["toy_1.1.1"].output_len, 30);
});

test("JSON lines: keyed objects, records with \"key\" or \"id\", blank and CRLF lines", () => {
  const text = [
    JSON.stringify({ "p.0": rec("a", "1"), "p.1": rec("b", "1") }),
    "",
    JSON.stringify({ key: "p.2", ...rec("c", "1") }),
    JSON.stringify({ id: "q.0", ...rec("d", "2") }) + "\r",
    JSON.stringify({ key: "p.0", ...rec("again", "1") }),
    "",
  ].join("\n");
  const p = parseResponses(text, "lines.jsonl");
  assert.equal(p.format, "json-lines");
  assert.deepEqual(Object.keys(p.records), ["p.0", "p.1", "p.2", "q.0"]);
  assert.deepEqual(p.records["p.2"], rec("c", "1"));
  assert.deepEqual(p.records["q.0"], rec("d", "2"));
  assert.equal(p.records["p.0"].response, "a");
  assert.deepEqual(p.duplicates, ["p.0"]);
  // a single line holding one keyed record
  const one = parseResponses(JSON.stringify({ key: "p.3", ...rec("e", "1") }) + "\n", "one.jsonl");
  assert.deepEqual(one.records, { "p.3": rec("e", "1") });
});

test("malformed files and lines are errors naming the file (and line)", () => {
  const good = JSON.stringify({ "p.0": rec("a", "1") });
  const cases: [string, RegExp][] = [
    [`${good}\n${good.replace("p.0", "p.1")}\n{"p.2": {"response": "x"\n`, /^f\.jsonl:3: not valid JSON/],
    [`${good}\n[1, 2]\n`, /^f\.jsonl:2: a line must be a JSON object/],
    [`${good}\n${JSON.stringify(rec("no key", "1"))}\n`, /^f\.jsonl:2: a record on its own line needs a string "key"/],
    [`${good}\n${JSON.stringify({ key: "p", ...rec("bad key", "1") })}\n`, /^f\.jsonl:2: key "p" is not of the form/],
    [`${good}\n${JSON.stringify({ "p.3": { text: "no response" } })}\n`, /^f\.jsonl:2: entry "p\.3" is not a response record/],
    [ORIGINAL_JSONL.slice(0, 200), /^f\.jsonl(:\d+)?: not valid JSON/],
    // the comma missing at the end of line 7 shows where the next property starts
    [ORIGINAL_JSONL.replace('"judgement": true,', '"judgement": true'), /^f\.jsonl:8: not valid JSON/],
    ["", /^f\.jsonl: empty file/],
    // JSON.parse would keep the second silently; across lines a repeat is a reported duplicate instead
    ['{"p.0": {"response": "a"}, "p.0": {"response": "b"}}', /^f\.jsonl: duplicate key "p\.0" at \$/],
    [`${good}\n{"p.1": {"response": "a", "response": "b"}}\n`, /^f\.jsonl:2: duplicate key "response" at \$\["p\.1"\]/],
    ["[]", /^f\.jsonl: expected a JSON object/],
    [JSON.stringify({ "p.0": { ...rec("a", "1"), settings: { nested: { no: 1 } } } }), /^f\.jsonl: entry "p\.0" has "settings" that are not a flat object/],
  ];
  // the error class is part of the contract: UsageError, one line
  for (const [text, re] of cases) assert.throws(() => parseResponses(text, "f.jsonl"), new RegExp(`^UsageError: ${re.source.slice(1)}[^\n]*$`), text.slice(0, 60));
});

test("the runner's readResponseFile: missing is empty, JSON lines are read, malformed says how to start over", () => {
  const dir = tempDir();
  assert.deepEqual(readResponseFile(path.join(dir, "none.json")), {});
  fs.writeFileSync(path.join(dir, "l.jsonl"), `${JSON.stringify({ key: "p.0", ...rec("a", "1") })}\n${JSON.stringify({ key: "p.1", ...rec("b", "1") })}\n`);
  assert.deepEqual(Object.keys(readResponseFile(path.join(dir, "l.jsonl"))), ["p.0", "p.1"]);
  fs.writeFileSync(path.join(dir, "bad.json"), "{ half");
  assert.throws(() => readResponseFile(path.join(dir, "bad.json")), /bad\.json(:\d+)?: not valid JSON .*move it away to start over/);
});

test("a folder: .json and .jsonl are read, every other entry is reported as skipped or ignored", () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "a.json"), JSON.stringify({ "p.0": rec("a", "1"), "p.1": rec("b", "1") }));
  fs.writeFileSync(path.join(dir, "b.jsonl"), ORIGINAL_JSONL);
  fs.writeFileSync(path.join(dir, "c.jsonl"), `${JSON.stringify({ key: "p.2", ...rec("c", "1") })}\n${JSON.stringify({ key: "p.0", ...rec("dup", "1") })}\n`);
  fs.writeFileSync(path.join(dir, "notes.txt"), "hello");
  fs.mkdirSync(path.join(dir, "old"));
  fs.writeFileSync(path.join(dir, "old", "x.json"), "{}");
  fs.writeFileSync(path.join(dir, ".a.json.4242.1700000000000.tmp"), "{ half written");
  fs.writeFileSync(path.join(dir, ".a.json.lock"), "4242");
  fs.writeFileSync(path.join(dir, ".DS_Store"), "");
  const m = readResponsesDir(dir);
  assert.deepEqual(m.files.map((f) => [path.basename(f.file), f.format, f.n_responses]), [
    ["a.json", "object", 2], ["b.jsonl", "object", 2], ["c.jsonl", "json-lines", 2],
  ]);
  // 2 + 2 + 2 read, p.0 twice: 5 distinct
  assert.equal(m.records.size, 5);
  assert.equal(m.records.get("p.0")!.response, "a");
  assert.deepEqual(m.duplicates, ["p.0"]);
  assert.deepEqual(m.skipped.map((s) => [path.basename(s.file), s.hidden]), [
    [".DS_Store", true], [".a.json.4242.1700000000000.tmp", true], [".a.json.lock", true], ["notes.txt", false], ["old", false],
  ]);
  const reason = (n: string) => m.skipped.find((s) => path.basename(s.file) === n)!.reason;
  assert.match(reason(".a.json.4242.1700000000000.tmp"), /temp file/);
  assert.match(reason(".a.json.lock"), /lock file/);
  assert.match(reason("old"), /sub-folder/);
  assert.match(reason("notes.txt"), /not a response file/);
});

test("a folder without response files names what it found; a bad file stops the read, naming it", () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "notes.txt"), "hello");
  fs.writeFileSync(path.join(dir, ".x.json.1.2.tmp"), "{");
  assert.throws(() => readResponsesDir(dir), /--responses-dir .*: no response files \(\.json or \.jsonl\) \(found only: \.x\.json\.1\.2\.tmp, notes\.txt\)/);
  assert.throws(() => readResponsesDir(path.join(dir, "nope"), "--compare"), /^UsageError: --compare .*nope: no such folder/);
  fs.writeFileSync(path.join(dir, "good.json"), JSON.stringify({ "p.0": rec("a", "1") }));
  assert.throws(() => readResponsesDir(path.join(dir, "good.json")), /good\.json: is a file, not a folder/);
  fs.writeFileSync(path.join(dir, "z.jsonl"), `${JSON.stringify({ "p.1": rec("a", "1") })}\nnot json\n`);
  assert.throws(() => readResponsesDir(dir), (e: Error) => e.name === "UsageError" && e.message.startsWith(`${path.join(dir, "z.jsonl")}:2: not valid JSON`) && e.message.includes("move it out of"));
});
