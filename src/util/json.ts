// Strict JSON: JSON.parse accepts `{"a": 1, "a": 2}` and silently keeps the last value; a file
// edited by hand (or corrupted) that says two things about one key is refused instead, with
// the key and where it sits (`$.model.vocab`). JSON.parse does the parsing; a scanner that
// only looks at object keys finds duplicates (strings are skipped with indexOf; on a 5 MB
// tokenizer.json it costs about half of JSON.parse's own time).

import { PmkvqError } from "../errors.js";

export type ErrorClass = new (message: string) => Error;

/** A key that occurs twice in one object, and the JSON path of that object ("$", "$.model.vocab", "$.list[3]"). */
export interface DuplicateKey {
  key: string;
  path: string;
}

/**
 * Parse `text` as JSON, refusing duplicate object keys at any depth. `file` names the
 * source in errors (`config.json: duplicate key "hidden_size" at $`); `what` describes the
 * text when it is part of a file (`header` → `x.safetensors: header is not valid JSON …`).
 */
export function parseJsonStrict(text: string, file: string, ErrorClass: ErrorClass = PmkvqError, what = ""): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ErrorClass(`${file}: ${what ? `${what} is ` : ""}not valid JSON (${(e as Error).message})`);
  }
  const dup = findDuplicateKey(text);
  if (dup) {
    throw new ErrorClass(`${file}: ${what ? `${what} has a ` : ""}duplicate key ${JSON.stringify(dup.key)} at ${dup.path}`);
  }
  return value;
}

interface Frame {
  /** Keys seen so far; null for an array. */
  keys: Set<string> | null;
  /** The next string in this object is a key (after `{` or `,`). */
  expectKey: boolean;
  /** The latest key (objects) or element index (arrays): where a child container sits. */
  key: string;
  index: number;
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c;
const OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d, OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d;

/** The key of the string text[start, end) (quotes included). */
const keyOf = (text: string, start: number, end: number): string => {
  const raw = text.slice(start + 1, end - 1);
  return raw.includes("\\") ? (JSON.parse(text.slice(start, end)) as string) : raw;
};

/**
 * The first duplicate key of a text that JSON.parse accepts, in the order of the text, or null
 * (the text must be valid JSON). The reference: one set of keys per object.
 */
export function findDuplicateKey(text: string): DuplicateKey | null {
  const stack: Frame[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = keyOf(text, i, end);
        const size = top.keys.size;
        if (top.keys.add(key).size === size) return { key, path: pathOf(stack) };
        top.key = key;
        top.expectKey = false;
      }
      i = end;
      continue;
    }
    if (c === OPEN_OBJECT) stack.push({ keys: new Set(), expectKey: true, key: "", index: 0 });
    else if (c === OPEN_ARRAY) stack.push({ keys: null, expectKey: false, key: "", index: 0 });
    else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) stack.pop();
    else if (c === COMMA) {
      const top = stack[stack.length - 1];
      if (top.keys) top.expectKey = true;
      else top.index++;
    }
    // anything else is whitespace, ':' or part of a number or literal
    i++;
  }
  return null;
}

/** Index just past the closing quote of the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  let q = text.indexOf('"', start + 1);
  for (;;) {
    // a quote preceded by an odd number of backslashes is escaped
    let slashes = 0;
    while (text.charCodeAt(q - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return q + 1;
    q = text.indexOf('"', q + 1);
  }
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** "$.model.vocab" for the innermost container of `stack` (each parent's current key or index). */
function pathOf(stack: Frame[]): string {
  let p = "$";
  for (let d = 0; d < stack.length - 1; d++) {
    const f = stack[d];
    if (!f.keys) p += `[${f.index}]`;
    else p += IDENTIFIER.test(f.key) ? `.${f.key}` : `[${JSON.stringify(f.key)}]`;
  }
  return p;
}

/**
 * A value from a user's file, for an error message: short, and safe for any value JSON.parse
 * returns (JSON.stringify overflows the stack on a list nested 100 000 deep; Infinity is not "null").
 */
export function preview(v: unknown, max = 60): string {
  if (v === undefined) return "nothing";
  if (typeof v === "number") return String(v);
  let s: string;
  try {
    s = JSON.stringify(v);
  } catch {
    return Array.isArray(v) ? "a list nested too deep to show" : "an object nested too deep to show";
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
