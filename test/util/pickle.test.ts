// The restricted unpickler on opcode sequences written by hand from the pickle format's
// definitions (Lib/pickletools.py documents each opcode): values, memo, marks, and refusals.

import assert from "node:assert/strict";
import { test } from "node:test";
import { FileError, RefusedGlobalError } from "../../src/errors.js";
import { PyDict, PyTuple, unpickle, type PyGlobal, type PyValue } from "../../src/util/pickle.js";

const refuseAll = (module: string, name: string): PyGlobal => {
  throw new RefusedGlobalError(`refused ${module}.${name}`, `${module}.${name}`);
};

function run(bytes: number[] | string, findGlobal: (m: string, n: string) => PyGlobal = refuseAll): PyValue {
  const b = typeof bytes === "string" ? Uint8Array.from(bytes, (c) => c.charCodeAt(0)) : Uint8Array.from(bytes);
  return unpickle(b, { where: "test", findGlobal });
}

test("ints of every width, floats, strings, None and bools", () => {
  const cases: [string, PyValue][] = [
    ["\x80\x02K\xff.", 255], // BININT1
    ["\x80\x02M\xff\xff.", 65535], // BININT2
    ["\x80\x02J\xff\xff\xff\xff.", -1], // BININT
    ["\x80\x02\x8a\x06\x00\x00\x00\x00\x00\x01.", 2 ** 40], // LONG1, little-endian two's complement
    ["\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xc0.", -(2n ** 70n)], // a LONG1 beyond 2^53: a bigint
    ["\x80\x02\x8a\x00.", 0],
    ["\x80\x02G?\xf8\x00\x00\x00\x00\x00\x00.", 1.5], // BINFLOAT is big-endian
    ["\x80\x02X\x02\x00\x00\x00\xc3\xa9.", "é"], // BINUNICODE, UTF-8
    ["\x80\x04\x8c\x01a\x94.", "a"], // SHORT_BINUNICODE + MEMOIZE (protocol 4)
    ["\x80\x02N.", null],
    ["\x80\x02\x88.", true],
    ["\x80\x02\x89.", false],
    ["\x80\x03C\x02\x00\xff.", Uint8Array.from([0, 255])], // SHORT_BINBYTES
  ];
  for (const [bytes, want] of cases) assert.deepEqual(run(bytes), want, JSON.stringify(bytes));
});

test("lists, tuples and dicts through MARK, APPEND(S), SETITEM(S); memo entries are the same object", () => {
  // [1, 2, (3,), {'a': 4, 5: None}] with the list put in memo 0 and fetched again inside a tuple
  const v = run("\x80\x02]q\x00(K\x01K\x02K\x03\x85}(X\x01\x00\x00\x00aK\x04K\x05Nue]h\x00a\x86.");
  assert.ok(v instanceof PyTuple);
  const [list, other] = v.items as [PyValue[], PyValue[]];
  assert.equal(list.length, 4);
  assert.deepEqual(list.slice(0, 2), [1, 2]);
  assert.deepEqual(list[2], new PyTuple([3]));
  const d = list[3] as PyDict;
  assert.deepEqual([...d.items.entries()], [["a", 4], [5, null]]);
  assert.equal(other[0], list); // BINGET returns the very object BINPUT stored
  assert.deepEqual(run("\x80\x02(K\x01K\x02K\x03K\x04t."), new PyTuple([1, 2, 3, 4]));
  assert.deepEqual(run("\x80\x02)."), new PyTuple([]));
  const single = run("\x80\x02}X\x01\x00\x00\x00kK\x07s.") as PyDict; // SETITEM
  assert.equal(single.get("k"), 7);
});

test("GLOBAL and STACK_GLOBAL ask the allow-list before anything else happens", () => {
  const asked: string[] = [];
  const record = (m: string, n: string): PyGlobal => {
    asked.push(`${m}.${n}`);
    return refuseAll(m, n);
  };
  assert.throws(() => run("\x80\x02cposix\nsystem\nX\x04\x00\x00\x00id >\x85R.", record), RefusedGlobalError);
  assert.throws(() => run("\x80\x04\x8c\x08builtins\x8c\x04eval\x93X\x01\x00\x00\x001\x85R.", record), RefusedGlobalError);
  assert.deepEqual(asked, ["posix.system", "builtins.eval"]);
});

test("REDUCE calls only an allowed global's own function; a name-only global cannot be called", () => {
  const calls: PyValue[][] = [];
  const allowed = (m: string, n: string): PyGlobal =>
    n === "make" ? { pyType: "global", qualname: `${m}.${n}`, call: (args) => (calls.push([...args]), "made") } : { pyType: "global", qualname: `${m}.${n}` };
  assert.equal(run("\x80\x02cm\nmake\nK\x01K\x02\x86R.", allowed), "made");
  assert.deepEqual(calls, [[1, 2]]);
  assert.throws(() => run("\x80\x02cm\nname\n)R.", allowed), /allowed as a name only/);
  assert.throws(() => run("\x80\x02K\x01)R.", allowed), /REDUCE calls a int/);
  assert.throws(() => run("\x80\x02cm\nmake\nK\x01R.", allowed), /not a tuple/);
});

test("opcodes outside the restricted set are refused by name", () => {
  for (const [bytes, name] of [
    ["\x80\x02(i__main__\nX\n.", "INST"],
    ["\x80\x02cm\nname\n)\x81.", "NEWOBJ"],
    ["\x80\x02\x82\x01.", "EXT1"],
    ["\x80\x02P0\n.", "PERSID"],
    ["\x80\x02I1\n.", "INT"],
  ] as const) {
    assert.throws(
      () => run(bytes, (m, n) => ({ pyType: "global", qualname: `${m}.${n}` })),
      (e: Error) => e instanceof FileError && e.message.includes(`opcode ${name} `),
      name,
    );
  }
  assert.throws(() => run("\x80\x06N."), /protocol 6/);
});

test("damaged pickles: truncation, underflow, leftovers, unknown memo, wrong targets", () => {
  const bad: [string, RegExp][] = [
    ["\x80\x02]K\x01", /truncated/], // no STOP
    ["\x80\x02X\xff\x00\x00\x00ab.", /truncated/], // a string longer than the pickle
    ["\x80\x02\x8a\x20ab.", /truncated/],
    ["\x80\x02\x8a\xffab.", /255 bytes is larger/],
    ["\x80\x02\x8b\x00\x00\x01\x00.", /65536 bytes is larger/],
    ["\x80\x02a.", /underflow/],
    ["\x80\x02K\x01K\x02.", /leaves 1 values/],
    ["\x80\x02h\x05.", /memo entry 5/],
    ["\x80\x02K\x01K\x02a.", /APPEND\(S\) on a int/],
    ["\x80\x02}]K\x01s.", /a list of 0 cannot be a dict key/],
    ["\x80\x02e.", /no MARK/],
    ["\x80\x02X\x01\x00\x00\x00\xff.", /not valid UTF-8/],
    ["\x80\x02QN.", /underflow/],
    ["\x80\x02NQ.", /persistent id where none is expected/],
    ["\x80\x02K\x01N\x62.", /BUILD on a int/],
  ];
  for (const [bytes, re] of bad) assert.throws(() => run(bytes), (e: Error) => e instanceof FileError && re.test(e.message), `${JSON.stringify(bytes)}`);
});
