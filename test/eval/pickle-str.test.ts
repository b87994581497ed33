// The trivial-pickle reader: hand-written pickles of a str in every layout protocols 1–5 use,
// Python's own pickle.dumps as an oracle (when python3 is here), and refusal of everything else.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import zlib from "node:zlib";
import { decodeCompressedString, PickleFormatError, unpickleString } from "../../src/eval/pickle-str.js";

const bytes = (...parts: (number[] | string | Buffer)[]) =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.isBuffer(p) ? p : Buffer.from(p))));
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };

const TEXT = '[{"input": "3\\n", "output": "héllo", "testtype": "stdin"}]';
const len = Buffer.byteLength(TEXT);

test("the single-str layouts of protocols 1–5 give the str back", () => {
  const cases: [string, Buffer][] = [
    ["protocol 1: BINUNICODE, BINPUT", bytes([0x58], u32(len), TEXT, [0x71, 0], ".")],
    ["protocol 3: PROTO, BINUNICODE, BINPUT", bytes([0x80, 3, 0x58], u32(len), TEXT, [0x71, 0], ".")],
    ["protocol 4: PROTO, FRAME, SHORT_BINUNICODE, MEMOIZE", bytes([0x80, 4, 0x95], u64(len + 3), [0x8c, len], TEXT, [0x94], ".")],
    ["protocol 5: large str outside a frame", bytes([0x80, 5, 0x58], u32(len), TEXT, [0x94], ".")],
    ["BINUNICODE8 and LONG_BINPUT", bytes([0x80, 4, 0x8d], u64(len), TEXT, [0x72], u32(0), ".")],
  ];
  for (const [name, pickle] of cases) assert.equal(unpickleString(pickle), TEXT, name);
});

test("anything but one str is refused, naming what was wrong", () => {
  const refused: [string, Buffer, RegExp][] = [
    ["protocol 0 text opcodes", bytes("Vabc\np0\n."), /opcode 0x56 at offset 0/],
    ["a global (what would run code)", bytes([0x80, 4], "cos\nsystem\n."), /opcode 0x63 at offset 2/],
    ["REDUCE after a str", bytes([0x80, 4, 0x8c, 1], "x", [0x52], "."), /opcode 0x52/],
    ["protocol 6", bytes([0x80, 6, 0x8c, 1], "x."), /protocol 6/],
    ["two strings", bytes([0x8c, 1], "a", [0x8c, 1], "b."), /more than one string/],
    ["no string", bytes([0x80, 4, 0x2e]), /STOP before any string/],
    ["bytes after STOP", bytes([0x8c, 1], "a.x"), /1 bytes after STOP/],
    ["a length past the end", bytes([0x58], u32(100), "abc."), /truncated pickle/],
    ["no STOP", bytes([0x8c, 1], "a"), /truncated pickle: an opcode/],
    ["invalid UTF-8", bytes([0x8c, 2, 0xc3, 0x28, 0x2e]), /not valid UTF-8/],
    ["PROTO not first", bytes([0x8c, 1], "a", [0x80, 4], "."), /PROTO at offset 3/],
    ["a huge FRAME", bytes([0x80, 4, 0x95], u64(2 ** 40), [0x8c, 1], "a."), /FRAME of 1099511627776 bytes/],
  ];
  for (const [name, pickle, message] of refused) {
    assert.throws(() => unpickleString(pickle), (e: unknown) => e instanceof PickleFormatError && message.test(e.message), name);
  }
});

test("base64 of zlib of a pickle decodes; broken layers are refused", () => {
  const pickle = bytes([0x80, 4, 0x95], u64(len + 3), [0x8c, len], TEXT, [0x94], ".");
  assert.equal(decodeCompressedString(zlib.deflateSync(pickle).toString("base64")), TEXT);
  assert.throws(() => decodeCompressedString("not base64!"), /not base64/);
  assert.throws(() => decodeCompressedString(Buffer.from("plain").toString("base64")), /not zlib data/);
  assert.throws(() => decodeCompressedString(zlib.deflateSync(bytes("cos\nsystem\n.")).toString("base64")), /opcode 0x63/);
});

const python = spawnSync("python3", ["--version"]).status === 0;

test("pickle.dumps of strs, short and long, at protocols 1–5 (Python as the oracle)", { skip: python ? false : "python3 not found" }, () => {
  const script = "import pickle, sys, base64\nfor p in range(1, 6):\n    for s in ['é' * 3, 'x' * 300, 'y' * 70000 + '\\u2603']:\n        print(p, base64.b64encode(pickle.dumps(s, protocol=p)).decode())";
  const r = spawnSync("python3", ["-c", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const want = ["é".repeat(3), "x".repeat(300), "y".repeat(70000) + "\u2603"];
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 15);
  lines.forEach((line, i) => {
    const [protocol, b64] = line.split(" ");
    assert.equal(unpickleString(Buffer.from(b64, "base64")), want[i % 3], `protocol ${protocol}, string ${i % 3}`);
  });
});
