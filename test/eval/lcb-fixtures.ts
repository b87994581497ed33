// A tiny LiveCodeBench release folder in the release format (code_generation_lite), written by
// the tests that need one: a stdin problem whose private tests use the compressed encoding
// (base64 of zlib of a hand-written pickle of the JSON string), a functional one, a second file.

import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

export interface RawTest {
  input: string;
  output: string;
  testtype: "stdin" | "functional";
}

/** Protocol 4 pickle of one str, byte by byte: PROTO 4, FRAME, (SHORT_)BINUNICODE, MEMOIZE, STOP. */
export function pickleStr(s: string): Buffer {
  const text = Buffer.from(s, "utf8");
  const head = text.length < 256 ? Buffer.from([0x8c, text.length]) : Buffer.concat([Buffer.from([0x58]), u32(text.length)]);
  const body = Buffer.concat([head, text, Buffer.from([0x94, 0x2e])]);
  const frame = Buffer.alloc(8);
  frame.writeBigUInt64LE(BigInt(body.length));
  return Buffer.concat([Buffer.from([0x80, 0x04, 0x95]), frame, body]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** LiveCodeBench's compressed private_test_cases. */
export function compressTests(tests: RawTest[]): string {
  return zlib.deflateSync(pickleStr(JSON.stringify(tests))).toString("base64");
}

export interface RowSpec {
  id: string;
  content: string;
  date: string;
  starter?: string;
  funcName?: string;
  publicTests: RawTest[];
  privateTests: RawTest[];
  compressed?: boolean;
  platform?: string;
}

export function lcbRow(s: RowSpec): Record<string, string> {
  return {
    question_title: `Problem ${s.id}`,
    question_content: s.content,
    platform: s.platform ?? (s.funcName ? "leetcode" : "atcoder"),
    question_id: s.id,
    contest_id: `contest-${s.id}`,
    contest_date: s.date,
    starter_code: s.starter ?? "",
    difficulty: "easy",
    public_test_cases: JSON.stringify(s.publicTests),
    private_test_cases: s.compressed ? compressTests(s.privateTests) : JSON.stringify(s.privateTests),
    metadata: JSON.stringify(s.funcName ? { func_name: s.funcName } : {}),
  };
}

const stdin = (input: string, output: string): RawTest => ({ input, output, testtype: "stdin" });
const fn = (input: string, output: string): RawTest => ({ input, output, testtype: "functional" });

export const STARTER = "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        ";

/** Problems: abc001_a (stdin, A+B, compressed private tests), 3000 (functional maxSum), in test.jsonl; 1999_B (stdin) in test2.jsonl. */
export const ROWS: Record<string, RowSpec[]> = {
  "test.jsonl": [
    {
      id: "abc001_a",
      content: "Given two integers A and B, print A+B.",
      date: "2024-08-03T00:00:00",
      publicTests: [stdin("1 2\n", "3\n")],
      privateTests: [stdin("5 7\n", "12\n"), stdin("-4 4\n", "0\n")],
      compressed: true,
    },
    {
      id: "3000",
      content: "Return the largest sum of k elements of nums.",
      date: "2024-09-10T00:00:00",
      starter: STARTER,
      funcName: "maxSum",
      publicTests: [fn("[1, 5, 3]\n2", "8")],
      privateTests: [fn("[4]\n1", "4"), fn("[-1, -2, 7, 7]\n3", "13")],
    },
  ],
  "test2.jsonl": [
    {
      id: "1999_B",
      content: "Print the numbers 1 to N on one line.",
      date: "2025-02-01T00:00:00",
      platform: "codeforces",
      publicTests: [stdin("3\n", "1 2 3\n")],
      privateTests: [stdin("1\n", "1\n")],
      compressed: true,
    },
  ],
};

/** Write the release files (ROWS by default) into dir; returns dir. */
export function writeLiveCodeBench(dir: string, rows: Record<string, RowSpec[]> = ROWS): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, specs] of Object.entries(rows)) {
    fs.writeFileSync(path.join(dir, file), specs.map((s) => JSON.stringify(lcbRow(s))).join("\n") + "\n");
  }
  return dir;
}
