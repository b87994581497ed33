// The original's judging rules (thu-nics/PM-KVQ, pm_kvq/evaluation/eval_aime.py and judge.py),
// reproduced rule for rule so `pmkvq judge --rules original` quotes the number the original
// would print for the same responses. Strings only — no numeric equivalence:
//   answer    math_postprocess: the last balanced \boxed{…} (or \fbox), one pair of outer braces
//             stripped; else the FIRST "."-separated sentence matching /final answer|answer is/
//             (lower-cased), normalised; else the first sentence, normalised.
//   judgement judge(answer, gold): equal after Hendrycks' _strip_string, or after
//             _strip_string + Minerva's normalize_final_answer, or after normalize_final_answer
//             alone, or as raw strings. An exception inside the first attempt (Python's int()
//             failing in _fix_a_slash_b, e.g. "x/2") abandons it, as the original's try/except.
//   voting    the mode of the raw answer strings (Python's max(list, key=list.count): the first
//             of the most frequent), correct when it equals gold as a string.
//   gold      read through pandas.read_csv and str(): a column of integers loses leading zeros
//             ("025" → "25"), a column mixing integers and decimals prints floats ("3" → "3.0").
// Python's "." matches anything but "\n" (written [^\n] here); its \w, \d and str.isdigit() are Unicode-aware; here \w and \d are Unicode letters,
// digits and "_" (u-flag classes), and isdigit also accepts superscript and subscript digits.

/** Python's ValueError from int(): in the original it escapes _strip_string to judge's try/except. */
class PythonValueError extends Error {}

const isDigitChar = (ch: string) => /^[\p{Nd}\u00b2\u00b3\u00b9\u2070\u2074-\u2079\u2080-\u2089]$/u.test(ch);
/** Python str.isdigit(): non-empty and every character a digit. */
const pyIsDigit = (s: string) => s.length > 0 && [...s].every(isDigitChar);

/** Python int(s) for a str: optional whitespace and sign, digits with single underscores between. */
function pyInt(s: string): bigint {
  const m = /^\s*([+-]?)(\p{Nd}+(?:_\p{Nd}+)*)\s*$/u.exec(s);
  if (!m) throw new PythonValueError(`invalid literal for int() with base 10: '${s}'`);
  const ascii = [...m[2].replace(/_/g, "")].map((ch) => String(ch.codePointAt(0)! - digitZero(ch))).join("");
  return BigInt(m[1] + ascii);
}

/** The code point of the zero of a decimal digit's script (a script's digits are contiguous). */
function digitZero(ch: string): number {
  let cp = ch.codePointAt(0)!;
  while (/\p{Nd}/u.test(String.fromCodePoint(cp - 1))) cp--;
  return cp;
}

function lastMatchGroup(re: RegExp, s: string): string | null {
  const all = [...s.matchAll(re)];
  return all.length ? all[all.length - 1][1] : null;
}

// ------------------------------------------------------------------ extraction

/** last_boxed_only_string: the last "\boxed" (else "\fbox") up to its balanced closing brace. */
export function lastBoxedOnlyString(s: string): string | null {
  let idx = s.lastIndexOf("\\boxed");
  if (idx < 0) {
    idx = s.lastIndexOf("\\fbox");
    if (idx < 0) return null;
  }
  let open = 0;
  for (let i = idx; i < s.length; i++) {
    if (s[i] === "{") open++;
    if (s[i] === "}") {
      open--;
      if (open === 0) return s.slice(idx, i + 1);
    }
  }
  return null;
}

/** remove_boxed: the inside of "\boxed{…}"; null otherwise (an \fbox{…} gives null, as the original). */
function removeBoxed(s: string): string | null {
  const left = "\\boxed{";
  if (s.slice(0, left.length) !== left || s[s.length - 1] !== "}") return null;
  return s.slice(left.length, -1);
}

function extractBoxedAnswer(pred: string): string | null {
  const boxed = lastBoxedOnlyString(pred);
  if (boxed === null) return null;
  let answer = removeBoxed(boxed);
  if (answer === null) return null;
  const m = /^\{([^\n]*)\}\n?$/.exec(answer); // re.match("^\{(.*)\}$"): "." stops at "\n", "$" may precede a final "\n"
  if (m) answer = m[1];
  return answer;
}

/** math_postprocess: the original's extracted answer of a response. */
export function originalExtractAnswer(text: string): string {
  const boxed = extractBoxedAnswer(text);
  if (boxed) return boxed; // an empty \boxed{} falls through, as Python's `if cand_ans`
  for (const sentence of text.split(".")) {
    if (/final answer|answer is/.test(sentence.toLowerCase())) return normalizeFinalAnswer(sentence);
  }
  return normalizeFinalAnswer(text.split(".")[0]);
}

// ------------------------------------------------------------------ Minerva normalisation

const SUBSTITUTIONS: [string, string][] = [
  ["an ", ""], ["a ", ""], [".$", "$"], ["\\$", ""], ["\\ ", ""], [" ", ""], ["mbox", "text"],
  [",\\text{and}", ","], ["\\text{and}", ","], ["\\text{m}", "\\text{}"], ["\\le", "<"],
];
const REMOVED_EXPRESSIONS = [
  "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units", "\\ldots", "sue", "points", "feet",
  "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals", "edges", "students", "childrentickets",
  "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", "\\mathrm{th}",
  "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots", "\n", "\r", "\f",
];

/** normalize_final_answer (Minerva), as the original's copy. */
export function normalizeFinalAnswer(input: string): string {
  let s = input;
  for (const [before, after] of SUBSTITUTIONS) s = s.split(before).join(after);
  for (const expr of REMOVED_EXPRESSIONS) s = s.split(expr).join("");
  s = s.replace(/(\\text\{)\(([^\n]*?)\)(\})/g, "$2");
  s = s.replace(/(\\text\{)([^\n]*?)(\})/g, "$2");
  s = s.replace(/(\\textbf\{)([^\n]*?)(\})/g, "$2");
  s = s.replace(/(\\overline\{)([^\n]*?)(\})/g, "$2");
  s = s.replace(/(\\boxed\{)([^\n]*)(\})/g, "$2");
  // the original asserts no \n, \r, \f remain: REMOVED_EXPRESSIONS took them out
  s = lastMatchGroup(/finalansweris([^\n]*)/g, s) ?? s;
  s = lastMatchGroup(/answer?is:?([^\n]*)/g, s) ?? s;
  s = lastMatchGroup(/oxed\{([^\n]*?)\}/g, s) ?? s;
  s = lastMatchGroup(/\$([^\n]*?)\$/g, s) ?? s;
  s = pyStrip(s);
  if (s.includes("rac") && !s.includes("\\frac")) s = s.split("rac").join("\\frac");
  s = s.replace(/(frac)([^{])([^\n])/g, "frac{$2}{$3}");
  s = s.replace(/(sqrt)([^{])/g, "sqrt{$2}");
  s = s.split("$").join("");
  if (pyIsDigit(s.split(",").join(""))) s = s.split(",").join("");
  return s;
}

/** Python's str.strip() (Unicode whitespace). */
function pyStrip(s: string): string {
  return s.replace(/^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/gu, "");
}

// ------------------------------------------------------------------ Hendrycks' _strip_string

function fixFracs(string: string): string {
  const substrs = string.split("\\frac");
  let out = substrs[0];
  for (const sub of substrs.slice(1)) {
    out += "\\frac";
    if (sub.length > 0 && sub[0] === "{") out += sub;
    else {
      if (sub.length < 2) return string;
      const [a, b] = [sub[0], sub[1]];
      if (b !== "{") out += sub.length > 2 ? `{${a}}{${b}}${sub.slice(2)}` : `{${a}}{${b}}`;
      else out += sub.length > 2 ? `{${a}}${b}${sub.slice(2)}` : `{${a}}${b}`;
    }
  }
  return out;
}

function fixASlashB(string: string): string {
  const parts = string.split("/");
  if (parts.length !== 2) return string;
  const a = pyInt(parts[0]); // a ValueError escapes, as in the original
  const b = pyInt(parts[1]);
  if (string !== `${a}/${b}`) return string;
  return `\\frac{${a}}{${b}}`;
}

/** _strip_string (Hendrycks' MATH), as the original's copy; throws where Python's int() would. */
export function stripString(input: string): string {
  let s = pyStrip(String(input));
  s = s.split("\n").join("");
  s = s.replace(/\.+$/, "");
  s = s.split("\\!").join("");
  s = s.split("\\ ").join("");
  s = s.split("\\\\").join("\\");
  s = s.split("\\\\").join("\\");
  s = s.split("tfrac").join("frac");
  s = s.split("dfrac").join("frac");
  s = s.split("\\left").join("");
  s = s.split("\\right").join("");
  const noUnit = pyStrip(s.replace(/\\text\{[^\n]*?\}$/, ""));
  if (noUnit !== "" && noUnit !== s) s = noUnit;
  s = s.split("^{\\circ}").join("");
  s = s.split("^\\circ").join("");
  s = s.split("\\$").join("");
  s = s.split("$").join("");
  s = s.split("\\text").join("");
  s = s.split("x\\in").join("");
  s = s.split("\\%").join("");
  s = s.split("%").join(""); // the original's "\%" is the same two characters as "\\%"
  s = s.split(" .").join(" 0.");
  s = s.split("{.").join("{0.");
  s = s.split("\\cdot").join("");
  s = s.split("infinity").join("\\infty");
  if (!s.includes("\\infty")) s = s.split("inf").join("\\infty");
  s = s.split("+\\inity").join("\\infty");
  s = s.split("and").join("");
  s = s.split("\\mathbf").join("");
  s = s.replace(/\\mbox\{[^\n]*?\}/g, "");
  // the original's quote removal discards its result (string.replace without assignment)
  if (s.includes("j") && !s.includes("i")) s = s.split("j").join("i");
  s = s.replace(/(\p{Nd}+)\.0+([^\p{Nd}])/gu, "$1$2");
  s = s.replace(/(\p{Nd}+)\.0+$/u, "$1");
  if (s.length === 0) return s;
  if (s[0] === ".") s = "0" + s;
  const eq = s.split("=");
  if (eq.length === 2 && eq[0].length <= 2) s = eq[1];
  s = s.replace(/\\sqrt([\p{L}\p{N}_]+)/gu, "\\sqrt{$1}");
  s = s.split(" ").join("");
  s = fixFracs(s);
  s = fixASlashB(s);
  return s;
}

/** judge(str1, str2) of the original: string comparisons only. */
export function originalJudge(answer: string | null, gold: string | null): boolean {
  if (answer === null && gold === null) return true;
  if (answer === null || gold === null) return false;
  try {
    let a = stripString(answer);
    let b = stripString(gold);
    if (a === b) return true;
    a = normalizeFinalAnswer(a);
    b = normalizeFinalAnswer(b);
    if (a === b) return true;
  } catch (e) {
    if (!(e instanceof PythonValueError)) throw e;
  }
  if (normalizeFinalAnswer(answer) === normalizeFinalAnswer(gold)) return true;
  return answer === gold;
}

/** The original's vote: max(answers, key=answers.count) — the first of the most frequent strings. */
export function originalVote(answers: (string | null)[]): string | null {
  let best: string | null = null;
  let bestCount = -1;
  for (const a of answers) {
    const count = answers.filter((x) => x === a).length;
    if (count > bestCount) {
      best = a;
      bestCount = count;
    }
  }
  return best;
}

// ------------------------------------------------------------------ gold through pandas

/** Python's repr of a float (shortest round-trip digits; exponent form below 1e-4 and from 1e16). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mantissa, e] = x.toExponential().split("e"); // shortest round-trip digits, as Python's repr
  const exp = Number(e);
  if (exp < -4 || exp >= 16) return `${mantissa}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  const plain = String(x); // plain decimal notation in this range
  return plain.includes(".") ? plain : `${plain}.0`;
}

const PANDAS_NA = new Set(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]);
const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|infinity)$/i;

/**
 * str() of each value of one answers.csv column as pandas.read_csv infers its type: all
 * integers → int64 ("025" → "25"); all numbers (or missing) → float64 ("3" → "3.0", missing →
 * "nan"); otherwise strings as written.
 */
export function pandasColumnStrings(values: string[]): string[] {
  const present = values.filter((v) => !PANDAS_NA.has(v));
  const hasNa = present.length < values.length;
  if (present.length > 0 && !hasNa && present.every((v) => INT_RE.test(v))) return values.map((v) => BigInt(v).toString());
  if (present.every((v) => INT_RE.test(v) || FLOAT_RE.test(v))) return values.map((v) => (PANDAS_NA.has(v) ? "nan" : pyFloatRepr(Number(v.replace(/^([+-]?)inf(inity)?$/i, "$1Infinity")))));
  return values.map((v) => (PANDAS_NA.has(v) ? "nan" : v));
}
