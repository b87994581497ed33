// Final-answer extraction, LaTeX normalisation and answer equivalence (spec §8).
// The numeric side (exact rationals, complex floats) lives in latex-eval.ts.

import { evaluateLatex, valuesEqual } from "./latex-eval.js";

// ---- extraction ----

const BOX_RE = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
const CUE_RE = /final answer(?:\s+is)?|answer is/gi;

/**
 * The response's final answer: the content of the last complete `\boxed{…}` / `\fbox{…}` (or
 * `\boxed 5`), else what follows "final answer" / "answer is" in the last sentence saying so.
 */
export function extractAnswer(response: string): string | null {
  return lastBoxed(response) ?? answerSentence(response);
}

/** Index of the `}` closing the `{` at `open`, or −1 when unbalanced; `\{` and `\}` are literals. */
function matchingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === "{") depth++;
    else if (s[i] === "}" && --depth === 0) return i;
  }
  return -1;
}

function lastBoxed(text: string): string | null {
  const starts = [...text.matchAll(BOX_RE)];
  for (let k = starts.length - 1; k >= 0; k--) {
    let i = starts[k].index! + starts[k][0].length;
    while (/\s/.test(text[i] ?? "")) i++;
    let content: string;
    if (text[i] === "{") {
      const close = matchingBrace(text, i);
      if (close < 0) continue; // cut off mid-answer: an earlier complete box wins
      content = text.slice(i + 1, close);
    } else {
      content = (/^[^\s$]*/.exec(text.slice(i))![0]).replace(/[.,;]+$/, ""); // `\boxed 5`
    }
    // `\boxed{}` is usually the prompt's instruction echoed back, not an answer
    if (content.trim() !== "") return content.trim();
  }
  return null;
}

/** Strip what surrounds an answer written in prose: `:`, `**`, `$`, `\(`…`\)`, a final period. */
function cleanProse(s: string): string {
  let t = s.trim();
  for (let prev = ""; prev !== t; ) {
    prev = t;
    t = t.replace(/^[\s:*$]+|[\s.*$]+$/g, "").replace(/^\\[([]|\\[)\]]$/g, "");
  }
  return t;
}

function answerSentence(text: string): string | null {
  const lines = text.split(/\r?\n/);
  for (let li = lines.length - 1; li >= 0; li--) {
    const sentences = lines[li].split(/(?<=[.!?])\s+/);
    for (let si = sentences.length - 1; si >= 0; si--) {
      const cues = [...sentences[si].matchAll(CUE_RE)];
      if (cues.length === 0) continue;
      const last = cues[cues.length - 1];
      let answer = cleanProse(sentences[si].slice(last.index! + last[0].length));
      if (answer === "" && si === sentences.length - 1) { // "Final answer:" with the answer on the next line
        const next = lines.slice(li + 1).find((l) => l.trim() !== "");
        answer = next === undefined ? "" : cleanProse(next);
      }
      if (answer !== "") return answer;
    }
  }
  return null;
}

// ---- normalisation ----

const TEXT_MACROS = /\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*\{/;
const UNITS = [
  "units?", "square units", "sq units", "cm", "mm", "km", "m", "meters?", "metres?", "centimeters?",
  "kilometers?", "inch(?:es)?", "feet", "foot", "ft", "yards?", "miles?", "seconds?", "sec",
  "minutes?", "min", "hours?", "hrs?", "days?", "degrees?", "deg", "dollars?", "cents?", "kg", "grams?",
];
const UNIT_RE = new RegExp(`([\\d})])\\s*(?:${UNITS.join("|")})(?:\\^\\{?[23]\\}?)?(?=\\s*(?:$|[,;.)\\]]))`, "g");
const SPACE_MACROS = /\\[,;: ]|\\q?quad(?![a-zA-Z])|~/g;
const THOUSANDS_RE = /(?<![\d.,])([1-9]\d{0,2})((?:,\d{3})+)(?!\d|,\d)/g;
const SIMPLE_FRACTION_RE = /(?<![\w.}^\\)])(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)(?![\d.])/g;

/** A space survives only between words ("no solution", `\pi r`) and between digits ("2 3" ≠ 23). */
function keepSpace(before: string, after: string): boolean {
  return (/[a-zA-Z\d]/.test(before) && /[a-zA-Z]/.test(after)) || (/\d/.test(before) && /\d/.test(after));
}

/** Replace each `\text{X}` (and friends) by X, innermost content kept verbatim. */
function unwrapText(s: string): string {
  for (let m = TEXT_MACROS.exec(s); m; m = TEXT_MACROS.exec(s)) {
    const open = m.index + m[0].length - 1, close = matchingBrace(s, open);
    if (close < 0) return s.slice(0, m.index) + s.slice(open + 1);
    s = s.slice(0, m.index) + s.slice(open + 1, close) + s.slice(close + 1);
  }
  return s;
}

/** One TeX argument at `i`: a {group}, a control word or one character; returns its inside. */
function readArg(s: string, i: number): { inner: string; end: number } | null {
  while (s[i] === " ") i++;
  if (i >= s.length || s[i] === "}") return null;
  if (s[i] === "{") {
    const close = matchingBrace(s, i);
    return close < 0 ? null : { inner: s.slice(i + 1, close), end: close + 1 };
  }
  const word = /^\\[a-zA-Z]+|^\\?./.exec(s.slice(i))![0];
  return { inner: word, end: i + word.length };
}

/** `\frac12` → `\frac{1}{2}`, `\sqrt2` → `\sqrt{2}`: every argument of \frac, \binom, \sqrt braced. */
function braceArgs(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; ) {
    const m = /^\\(frac|binom|sqrt)(?![a-zA-Z])/.exec(s.slice(i));
    if (!m) {
      out += s[i++];
      continue;
    }
    out += m[0];
    i += m[0].length;
    if (m[1] === "sqrt" && s.slice(i).trimStart().startsWith("[")) {
      const open = s.indexOf("[", i), close = s.indexOf("]", open);
      if (close < 0) continue;
      out += `[${braceArgs(s.slice(open + 1, close))}]`;
      i = close + 1;
    }
    for (let k = m[1] === "sqrt" ? 1 : 2; k > 0; k--) {
      const arg = readArg(s, i);
      if (!arg) break;
      out += `{${braceArgs(arg.inner)}}`;
      i = arg.end;
    }
  }
  return out;
}

/**
 * Canonical spelling of an answer (spec §8): no `$`, `\left`/`\right`, spacing, `\text{}`,
 * units, degrees, `%` or thousands separators; `\dfrac` → `\frac`, braced macro arguments,
 * `a/b` → `\frac{a}{b}`, no leading `x =`, no trailing period, spaces only between words.
 */
export function normalizeAnswer(s: string): string {
  let t = s.replace(/−/g, "-").replace(/×/g, "\\times ").replace(/·/g, "\\cdot ").replace(/π/g, "\\pi ");
  t = t.trim().replace(/^\\\(([\s\S]*)\\\)$|^\\\[([\s\S]*)\\\]$/, "$1$2");
  t = t.replace(/\\\$/g, "").replace(/\$/g, "");
  t = t.replace(/\\(?:left|right|[bB]igg?[lr]?)(?![a-zA-Z])\.?|\\displaystyle(?![a-zA-Z])/g, "");
  t = unwrapText(t);
  t = t.replace(/(\d)(?:\\,|\{,\})(?=\d{3}(?!\d))/g, "$1,"); // 1\,000 and 1{,}000 are 1,000
  t = t.replace(/\\!/g, "").replace(SPACE_MACROS, " ");
  t = t.replace(/\\[dt]frac(?![a-zA-Z])/g, "\\frac").replace(/\\[dt]binom(?![a-zA-Z])/g, "\\binom");
  t = braceArgs(t);
  t = t.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|°|\\degree(?![a-zA-Z])/g, "");
  t = t.replace(/\\?%/g, "");
  t = t.replace(UNIT_RE, "$1");
  t = t.replace(THOUSANDS_RE, (_m, head: string, groups: string) => head + groups.replace(/,/g, ""));
  t = t.replace(/\s+/g, " ").trim().replace(/ /g, (_m, at: number, all: string) => (keepSpace(all[at - 1], all[at + 1]) ? " " : ""));
  t = t.replace(/^[a-zA-Z]=(?!=)/, "");
  t = t.replace(SIMPLE_FRACTION_RE, "\\frac{$1}{$2}");
  return t.replace(/\.+$/, "");
}

// ---- equivalence ----

/** Split at commas outside braces, brackets and parentheses. */
function splitTopLevel(s: string): string[] {
  const items: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "{" || c === "(" || c === "[") depth++;
    else if (c === "}" || c === ")" || c === "]") depth = Math.max(0, depth - 1);
    else if (c === "," && depth === 0) {
      items.push(s.slice(start, i));
      start = i + 1;
    }
  }
  items.push(s.slice(start));
  return items;
}

/** Whether the items can be paired one-to-one so that each pair matches (Kuhn's matching). */
function multisetMatch(a: string[], b: string[], same: (x: string, y: string) => boolean): boolean {
  const owner: number[] = new Array(b.length).fill(-1);
  const tryAssign = (i: number, seen: boolean[]): boolean => {
    for (let j = 0; j < b.length; j++) {
      if (seen[j] || !same(a[i], b[j])) continue;
      seen[j] = true;
      if (owner[j] < 0 || tryAssign(owner[j], seen)) {
        owner[j] = i;
        return true;
      }
    }
    return false;
  };
  return a.every((_, i) => tryAssign(i, new Array(b.length).fill(false)));
}

function equivalentNormalized(a: string, b: string): boolean {
  if (a === b) return true;
  if (a === "" || b === "") return false;
  const itemsA = splitTopLevel(a), itemsB = splitTopLevel(b);
  if (itemsA.length > 1 || itemsB.length > 1) {
    return itemsA.length === itemsB.length &&
      multisetMatch(itemsA.map(normalizeAnswer), itemsB.map(normalizeAnswer), equivalentNormalized);
  }
  const va = evaluateLatex(a);
  if (va === null) return false;
  const vb = evaluateLatex(b);
  return vb !== null && valuesEqual(va, vb);
}

/**
 * Whether two answers denote the same thing (spec §8): equal after normalisation; or lists of
 * the same length matching item for item in any order; or numbers that are equal (exactly
 * when both are exact, else within a relative 1e-9).
 */
export function answersEquivalent(a: string, b: string): boolean {
  return equivalentNormalized(normalizeAnswer(a), normalizeAnswer(b));
}
