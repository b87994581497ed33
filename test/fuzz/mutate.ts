// Mutators for the fuzz test: bytes (flip, insert, delete, truncate) and JSON (delete a key,
// set a value to an edge value, duplicate a key, truncate the text, flip bytes). Each returns
// the mutated bytes and a one-line description of what it did, for the failure report.

export type Rand = () => number;

export interface Mutated {
  bytes: Buffer;
  what: string;
  /** Set when no correct reader may accept the result: why. */
  refuse?: string;
}

export const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)];
export const int = (rand: Rand, lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

/** Bytes that mean something to the parsers: JSON punctuation, digits, high bits, zero. */
const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x2c, 0x3a, 0x20, 0x30, 0x39, 0x2d, 0x65, 0x5c];

/** One byte-level mutation somewhere in [lo, hi) of `b` (a copy is returned). */
export function mutateBytes(rand: Rand, b: Buffer, lo = 0, hi = b.length, where = ""): Mutated {
  const at = () => int(rand, lo, Math.max(lo, hi - 1));
  const kind = pick(rand, ["flip", "flip", "set", "insert", "delete", "truncate"] as const);
  const out = Buffer.from(b);
  const place = where ? ` in the ${where}` : "";
  switch (kind) {
    case "flip": {
      const n = int(rand, 1, 8);
      const spots: number[] = [];
      for (let i = 0; i < n; i++) {
        const p = at();
        out[p] ^= int(rand, 1, 255);
        spots.push(p);
      }
      return { bytes: out, what: `flipped bits of ${n} byte(s)${place} at ${spots.join(", ")}` };
    }
    case "set": {
      const p = at();
      const v = pick(rand, INTERESTING_BYTES);
      out[p] = v;
      return { bytes: out, what: `set byte ${p}${place} to 0x${v.toString(16)}` };
    }
    case "insert": {
      const p = at();
      const n = int(rand, 1, 16);
      const extra = Buffer.from(Array.from({ length: n }, () => (rand() < 0.5 ? pick(rand, INTERESTING_BYTES) : int(rand, 0, 255))));
      return { bytes: Buffer.concat([b.subarray(0, p), extra, b.subarray(p)]), what: `inserted ${n} byte(s)${place} at ${p}` };
    }
    case "delete": {
      const p = at();
      const n = int(rand, 1, 16);
      return { bytes: Buffer.concat([b.subarray(0, p), b.subarray(p + n)]), what: `deleted ${n} byte(s)${place} at ${p}` };
    }
    case "truncate": {
      const p = at();
      return { bytes: Buffer.from(b.subarray(0, p)), what: `truncated to ${p} bytes (cut${place})` };
    }
  }
}

// ---- JSON -------------------------------------------------------------------------------

/** Emitted verbatim: numbers JSON.stringify cannot write (1e999, 2^70 as digits). */
export class Raw {
  constructor(readonly text: string) {}
}
/** An object whose pairs may repeat a key. */
export class Pairs {
  constructor(readonly pairs: [string, Json][]) {}
}
export type Json = null | boolean | number | string | Raw | Pairs | Json[] | { [k: string]: Json };

export function serialize(v: Json): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Pairs) return `{${v.pairs.map(([k, x]) => `${JSON.stringify(k)}: ${serialize(x)}`).join(", ")}}`;
  if (Array.isArray(v)) return `[${v.map(serialize).join(", ")}]`;
  if (v !== null && typeof v === "object") return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${serialize(x)}`).join(", ")}}`;
  return JSON.stringify(v);
}

/** Values a careless (or hostile) edit might leave: each has tripped some reader somewhere. */
const EDGE_VALUES: [string, () => Json][] = [
  ["null", () => null],
  ["0", () => 0],
  ["1", () => 1],
  ["2", () => 2],
  ["-1", () => -1],
  ["1e999", () => new Raw("1e999")],
  ["-1e999", () => new Raw("-1e999")],
  ["a huge integer", () => new Raw("123456789012345678901234567890")],
  ["2^53 + 1", () => new Raw("9007199254740993")],
  ["2000000000", () => 2_000_000_000],
  ["0.5", () => 0.5],
  ["a string", () => "x"],
  ["an empty string", () => ""],
  ["a list", () => [1, "a"]],
  ["an empty list", () => []],
  ["an object", () => ({ a: 1 })],
  ["an empty object", () => ({})],
  ["true", () => true],
  ["a list nested 100000 deep", () => new Raw("[".repeat(100_000) + "]".repeat(100_000))],
];

type Path = (string | number)[];

const isContainer = (v: unknown): v is Json[] | { [k: string]: Json } => v !== null && typeof v === "object" && !(v instanceof Raw) && !(v instanceof Pairs);
const childKeys = (v: Json[] | { [k: string]: Json }): (string | number)[] => (Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v));

/** A random node: from the root, descend into a random child until a leaf or a random stop. */
function randomPath(rand: Rand, root: Json): Path {
  const path: Path = [];
  let v = root;
  for (let depth = 0; isContainer(v); depth++) {
    const keys = childKeys(v);
    if (keys.length === 0 || rand() < (depth === 0 ? 0.04 : 0.25)) break;
    const k = pick(rand, keys);
    path.push(k);
    v = (v as Record<string | number, Json>)[k];
  }
  return path;
}

const show = (p: Path) => "$" + p.map((k) => (typeof k === "number" ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`)).join("");

/** Replace (or with `value` undefined, delete) the node at `path`; the root returns the new root. */
function setAt(root: Json, path: Path, value: Json | undefined): Json {
  if (path.length === 0) return value === undefined ? null : value;
  const copy = structuredClone(root) as Record<string | number, Json>;
  let parent = copy as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, Json>;
  const last = path[path.length - 1];
  if (value !== undefined) parent[last] = value;
  else if (Array.isArray(parent)) parent.splice(last as number, 1);
  else delete parent[last];
  return copy;
}

const getAt = (root: Json, path: Path): Json => path.reduce<Json>((v, k) => (v as Record<string | number, Json>)[k], root);

/** One JSON-level mutation of `text` (which must parse). */
export function mutateJson(rand: Rand, text: string): Mutated {
  const root = JSON.parse(text) as Json;
  const kind = pick(rand, ["delete", "set", "set", "set", "nudge", "duplicate", "truncate", "bytes"] as const);
  const out = (json: Json, what: string): Mutated => ({ bytes: Buffer.from(serialize(json)), what });
  if (kind === "truncate") {
    const n = int(rand, 0, text.length - 1);
    return { bytes: Buffer.from(text.slice(0, n)), what: `truncated the text to ${n} characters` };
  }
  if (kind === "bytes") {
    const m = mutateBytes(rand, Buffer.from(text));
    return { bytes: m.bytes, what: `bytes: ${m.what}` };
  }
  const path = randomPath(rand, root);
  if (kind === "delete") {
    if (path.length === 0) return out({}, "replaced the whole document by {}");
    return out(setAt(root, path, undefined), `deleted ${show(path)}`);
  }
  if (kind === "nudge") {
    const v = getAt(root, path);
    if (typeof v === "number") {
      const [name, f] = pick(rand, [["+1", (x: number) => x + 1], ["-1", (x: number) => x - 1], ["×2", (x: number) => x * 2], ["÷2", (x: number) => x / 2], ["negated", (x: number) => -x]] as const);
      return out(setAt(root, path, f(v)), `${show(path)} ${v} ${name}`);
    }
  }
  if (kind === "duplicate") {
    // the nearest object on the path gets one of its keys twice, the second time with an edge value
    for (let d = path.length; d >= 0; d--) {
      const obj = getAt(root, path.slice(0, d));
      if (!isContainer(obj) || Array.isArray(obj) || Object.keys(obj).length === 0) continue;
      const keys = Object.keys(obj);
      const key = (d < path.length ? path[d] : pick(rand, keys)) as string;
      const [name, make] = pick(rand, EDGE_VALUES);
      const pairs: [string, Json][] = Object.entries(obj);
      pairs.splice(int(rand, 0, pairs.length), 0, [key, rand() < 0.5 ? structuredClone(obj[key]) : make()]);
      const what = `duplicated key ${JSON.stringify(key)} at ${show(path.slice(0, d))} (second value ${name} or a copy)`;
      return { ...out(setAt(root, path.slice(0, d), new Pairs(pairs)), what), refuse: "a key given twice" };
    }
  }
  const [name, make] = pick(rand, EDGE_VALUES);
  return out(setAt(root, path, make()), `set ${show(path)} to ${name}`);
}
