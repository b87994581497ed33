// A restricted unpickler: the opcodes of pickle protocols 2–4 that torch.save and Python's
// pickler emit for plain data (None, bools, ints, floats, strings, bytes, tuples, lists, dicts)
// plus the four that reach outside — GLOBAL/STACK_GLOBAL, REDUCE, BUILD, BINPERSID — which only
// ever go through the caller: `findGlobal` returns an entry of the caller's allow-list or throws,
// and REDUCE/BUILD run only that entry's own TypeScript (nothing of the pickle is executed).
// Every length is read against the bytes that remain, so a hostile pickle cannot make us
// allocate more than it holds; every other opcode (INST, OBJ, NEWOBJ, EXT, PERSID, …) is refused.

import { FileError } from "../errors.js";

/** A Python tuple (kept apart from lists: torch passes shapes and arguments as tuples). */
export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

export type PyKey = string | number | bigint | boolean | null | PyTuple;

/** A Python dict (or collections.OrderedDict), in insertion order. */
export class PyDict {
  readonly items = new Map<PyKey, PyValue>();
  constructor(readonly ordered = false) {}

  get(key: PyKey): PyValue | undefined {
    return this.items.get(key);
  }
}

/** An object made by an allow-listed global of the caller (a tensor, a storage, a numpy dtype). */
export interface PyObject {
  readonly pyType: string;
  /** BUILD with this state; absent: BUILD on this object is refused. */
  setState?(state: PyValue): void;
}

/** A global of the caller's allow-list, as GLOBAL/STACK_GLOBAL push it. */
export interface PyGlobal extends PyObject {
  readonly pyType: "global";
  /** "module.name", as in error messages. */
  readonly qualname: string;
  /** What REDUCE does with it; absent: it is a name only (e.g. a storage type), calling it is refused. */
  call?(args: readonly PyValue[]): PyValue;
}

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyTuple | PyValue[] | PyDict | PyObject;

export interface UnpickleOptions {
  /** The file (and entry) the pickle came from, at the start of every error message. */
  where: string;
  /** An entry of the caller's allow-list, or a thrown RefusedGlobalError. */
  findGlobal(module: string, name: string): PyGlobal;
  /** BINPERSID (torch: the id of a storage); absent: persistent ids are refused. */
  persistentLoad?(pid: PyValue): PyValue;
}

export function isPyObject(v: PyValue | undefined): v is PyObject {
  return typeof v === "object" && v !== null && !(v instanceof PyTuple) && !(v instanceof PyDict) && !Array.isArray(v) && !(v instanceof Uint8Array);
}

export function isPyGlobal(v: PyValue | undefined): v is PyGlobal {
  return isPyObject(v) && v.pyType === "global";
}

/** What a value is, in Python's words, for error messages. */
export function pyTypeName(v: PyValue | undefined): string {
  if (v === undefined) return "nothing";
  if (v === null) return "None";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "bigint") return "int";
  if (typeof v === "string") return "str";
  if (v instanceof Uint8Array) return "bytes";
  if (v instanceof PyTuple) return `tuple of ${v.items.length}`;
  if (Array.isArray(v)) return `list of ${v.length}`;
  if (v instanceof PyDict) return v.ordered ? "OrderedDict" : "dict";
  return isPyGlobal(v) ? v.qualname : v.pyType;
}

const OP_NAMES: Record<number, string> = {
  0x28: "MARK", 0x2e: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT", 0x49: "INT", 0x4c: "LONG", 0x50: "PERSID",
  0x53: "STRING", 0x55: "SHORT_BINSTRING", 0x54: "BINSTRING", 0x56: "UNICODE", 0x64: "DICT", 0x69: "INST", 0x6c: "LIST", 0x6f: "OBJ",
  0x70: "PUT", 0x67: "GET", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS",
  0x91: "FROZENSET", 0x92: "NEWOBJ_EX", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
};

/** Largest integer (in bytes) LONG1/LONG4 may carry: far above any count or shape. */
const MAX_LONG_BYTES = 64;

/** Run the pickle in `bytes` on the restricted machine; the value STOP returns. */
export function unpickle(bytes: Uint8Array, o: UnpickleOptions): PyValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  let p = 0;
  let opAt = 0;

  const fail = (why: string): never => {
    throw new FileError(`${o.where}: pickle byte ${opAt}: ${why}`);
  };
  const need = (n: number): number => {
    if (n < 0 || p + n > bytes.length) fail(`truncated (needs ${n} more bytes, ${bytes.length - p} left)`);
    const at = p;
    p += n;
    return at;
  };
  const u8 = () => bytes[need(1)];
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const i32 = () => view.getInt32(need(4), true);
  const text = (n: number): string => {
    const at = need(n);
    try {
      return utf8.decode(bytes.subarray(at, at + n));
    } catch {
      return fail("a string is not valid UTF-8");
    }
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) fail("truncated (a GLOBAL name has no end of line)");
    const s = text(end - p);
    p += 1; // the newline
    return s;
  };
  const floor = () => (marks.length ? marks[marks.length - 1] : 0);
  const pop = (): PyValue => {
    if (stack.length <= floor()) fail("stack underflow (damaged pickle)");
    return stack.pop() as PyValue;
  };
  const top = (): PyValue => {
    if (stack.length <= floor()) fail("stack underflow (damaged pickle)");
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    if (!marks.length) fail("no MARK to pop to (damaged pickle)");
    const at = marks.pop() as number;
    return stack.splice(at);
  };
  const put = (i: number) => memo.set(i, top());
  const get = (i: number) => {
    if (!memo.has(i)) fail(`memo entry ${i} is read before it is written (damaged pickle)`);
    stack.push(memo.get(i) as PyValue);
  };
  const long = (n: number): number | bigint => {
    if (n > MAX_LONG_BYTES) fail(`an integer of ${n} bytes is larger than anything pm-kvq reads`);
    const at = need(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]);
    if (n > 0 && bytes[at + n - 1] & 0x80) v -= 1n << BigInt(8 * n); // two's complement
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const key = (k: PyValue): PyKey => {
    if (k === null || typeof k === "string" || typeof k === "number" || typeof k === "bigint" || typeof k === "boolean" || k instanceof PyTuple) return k;
    return fail(`a ${pyTypeName(k)} cannot be a dict key`);
  };
  const setItems = (d: PyValue, items: PyValue[]) => {
    if (!(d instanceof PyDict)) fail(`SETITEM(S) on a ${pyTypeName(d)}, not a dict`);
    for (let i = 0; i + 1 < items.length; i += 2) (d as PyDict).items.set(key(items[i]), items[i + 1]);
  };
  const append = (l: PyValue, items: PyValue[]) => {
    if (!Array.isArray(l)) fail(`APPEND(S) on a ${pyTypeName(l)}, not a list`);
    for (const it of items) (l as PyValue[]).push(it);
  };

  while (true) {
    opAt = p;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) fail(`pickle protocol ${v} is newer than any pm-kvq knows (≤ 5)`);
        break;
      }
      case 0x95: // FRAME (protocol 4): a length hint, the frame's bytes follow in line
        need(8);
        break;
      case 0x2e: { // STOP
        const v = pop();
        if (stack.length || marks.length) fail(`STOP leaves ${stack.length} values and ${marks.length} marks behind (damaged pickle)`);
        return v;
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x74: stack.push(new PyTuple(popMark())); break; // TUPLE
      case 0x85: stack.push(new PyTuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(new PyTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(new PyTuple([a, b, c])); break; } // TUPLE3
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x8a: stack.push(long(u8())); break; // LONG1
      case 0x8b: { const n = i32(); if (n < 0) fail("LONG4 with a negative length"); stack.push(long(n)); break; } // LONG4
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x58: stack.push(text(u32())); break; // BINUNICODE
      case 0x8c: stack.push(text(u8())); break; // SHORT_BINUNICODE
      case 0x8d: { const n = view.getBigUint64(need(8), true); if (n > BigInt(bytes.length)) fail("BINUNICODE8 longer than the pickle"); stack.push(text(Number(n))); break; }
      case 0x43: { const n = u8(); const at = need(n); stack.push(bytes.slice(at, at + n)); break; } // SHORT_BINBYTES
      case 0x42: { const n = u32(); const at = need(n); stack.push(bytes.slice(at, at + n)); break; } // BINBYTES
      case 0x8e: { const n = view.getBigUint64(need(8), true); if (n > BigInt(bytes.length)) fail("BINBYTES8 longer than the pickle"); const at = need(Number(n)); stack.push(bytes.slice(at, at + Number(n))); break; }
      case 0x71: put(u8()); break; // BINPUT
      case 0x72: put(u32()); break; // LONG_BINPUT
      case 0x94: put(memo.size); break; // MEMOIZE
      case 0x68: get(u8()); break; // BINGET
      case 0x6a: get(u32()); break; // LONG_BINGET
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); if (items.length % 2) fail("SETITEMS with an odd number of items"); setItems(top(), items); break; } // SETITEMS
      case 0x63: { const module = line(); const name = line(); stack.push(o.findGlobal(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings (module, name)");
        stack.push(o.findGlobal(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE: only an allow-listed global's own code runs
        const args = pop();
        const fn = pop();
        if (!isPyGlobal(fn)) fail(`REDUCE calls a ${pyTypeName(fn)}, not an allowed global`);
        const g = fn as PyGlobal;
        if (!g.call) fail(`${g.qualname} is allowed as a name only, not as something to call`);
        if (!(args instanceof PyTuple)) fail(`REDUCE arguments of ${g.qualname} are a ${pyTypeName(args)}, not a tuple`);
        stack.push(g.call!((args as PyTuple).items));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (!isPyObject(obj) || !obj.setState) fail(`BUILD on a ${pyTypeName(obj)}, which takes no state`);
        (obj as PyObject).setState!(state);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!o.persistentLoad) fail("a persistent id where none is expected");
        stack.push(o.persistentLoad!(pid));
        break;
      }
      default:
        fail(`opcode ${OP_NAMES[op] ?? "0x" + op.toString(16).padStart(2, "0")} is not one pm-kvq reads (torch.save's pickles never need it)`);
    }
  }
}
