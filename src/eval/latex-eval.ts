// A small evaluator for the LaTeX math in competition answers (spec §8: answer equivalence).
// Values stay exact — Gaussian rationals over BigInt — while integers, fractions, integer
// powers, perfect roots, factorials and binomials allow it; anything else (√2, π) falls back to
// complex float64. Input is expected already normalised (see normalizeAnswer in answer.ts).

import { PmkvqError } from "../errors.js";

/** The expression is not one this evaluator understands (or it is undefined, like 1/0). */
export class LatexEvalError extends PmkvqError {}

/** A reduced fraction: d > 0, gcd(|n|, d) = 1. */
export interface Rational { n: bigint; d: bigint }

/** An exact Gaussian rational re + im·i. */
export interface ExactValue { exact: true; re: Rational; im: Rational }
export type LatexValue = ExactValue | { exact: false; re: number; im: number };

/** Relative tolerance when either side is a float (spec §8); the floor absorbs cancellation (√2² − 2). */
export const RELATIVE_TOLERANCE = 1e-9;
const ABSOLUTE_FLOOR = 1e-12;
/** Exact results above this many bits fall back to floats (or fail), so a pathological answer can't hang. */
const MAX_EXACT_BITS = 131072;
const MAX_FACTORIAL = 5000;
const MAX_BINOM_N = 10000;
const MAX_ROOT_INDEX = 64;

// ---- rationals ----

const abs = (x: bigint): bigint => (x < 0n ? -x : x);
function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}
function rat(n: bigint, d = 1n): Rational {
  if (d === 0n) throw new LatexEvalError("division by zero");
  if (d < 0n) [n, d] = [-n, -d];
  const g = gcd(abs(n), d);
  return g > 1n ? { n: n / g, d: d / g } : { n, d };
}
const ZERO = rat(0n), ONE = rat(1n);
const qAdd = (a: Rational, b: Rational) => rat(a.n * b.d + b.n * a.d, a.d * b.d);
const qSub = (a: Rational, b: Rational) => rat(a.n * b.d - b.n * a.d, a.d * b.d);
const qMul = (a: Rational, b: Rational) => rat(a.n * b.n, a.d * b.d);
const qDiv = (a: Rational, b: Rational) => rat(a.n * b.d, a.d * b.n);
const qEq = (a: Rational, b: Rational) => a.n === b.n && a.d === b.d;
const isInt = (a: Rational) => a.d === 1n;
const bitLength = (x: bigint) => (x === 0n ? 0 : abs(x).toString(16).length * 4);

/** m · 2^e without overflowing the intermediate power of two. */
function ldexp(m: number, e: number): number {
  for (; e > 1000; e -= 1000) m *= 2 ** 1000;
  for (; e < -1000; e += 1000) m *= 2 ** -1000;
  return m * 2 ** e;
}

/** n/d as a float, scaling so huge numerators and denominators don't turn into Infinity/NaN. */
export function rationalToNumber(q: Rational): number {
  if (q.n === 0n) return 0;
  const k = 64 - (bitLength(q.n) - bitLength(q.d)); // quotient · 2^k has ~64 significant bits
  const scaled = k >= 0 ? (abs(q.n) << BigInt(k)) / q.d : abs(q.n) / (q.d << BigInt(-k));
  const mag = ldexp(Number(scaled), -k);
  return q.n < 0n ? -mag : mag;
}

/** Integer k-th root of x ≥ 0 when x is a perfect k-th power, else null (Newton's method). */
function exactIntRoot(x: bigint, k: number): bigint | null {
  if (x < 2n) return x;
  const K = BigInt(k);
  let r = 1n << BigInt(Math.ceil(bitLength(x) / k) + 1); // above the root
  for (;;) {
    const next = ((K - 1n) * r + x / r ** (K - 1n)) / K;
    if (next >= r) break;
    r = next;
  }
  return r ** K === x ? r : null;
}

// ---- values ----

const exact = (re: Rational, im: Rational = ZERO): ExactValue => ({ exact: true, re, im });
const float = (re: number, im = 0): LatexValue => ({ exact: false, re, im });
const I = exact(ZERO, ONE);

/** The value as complex float64 (exact values converted with rationalToNumber). */
export function toComplexFloat(v: LatexValue): { re: number; im: number } {
  return v.exact ? { re: rationalToNumber(v.re), im: rationalToNumber(v.im) } : { re: v.re, im: v.im };
}
const isExactReal = (v: LatexValue): v is ExactValue => v.exact && v.im.n === 0n;
/** The value as a BigInt when it is an exact real integer, else null. */
const intOf = (v: LatexValue): bigint | null => (isExactReal(v) && isInt(v.re) ? v.re.n : null);

function add(a: LatexValue, b: LatexValue): LatexValue {
  if (a.exact && b.exact) return exact(qAdd(a.re, b.re), qAdd(a.im, b.im));
  const x = toComplexFloat(a), y = toComplexFloat(b);
  return float(x.re + y.re, x.im + y.im);
}
function neg(a: LatexValue): LatexValue {
  return a.exact ? exact(rat(-a.re.n, a.re.d), rat(-a.im.n, a.im.d)) : float(-a.re, -a.im);
}
function mul(a: LatexValue, b: LatexValue): LatexValue {
  if (a.exact && b.exact) {
    return exact(qSub(qMul(a.re, b.re), qMul(a.im, b.im)), qAdd(qMul(a.re, b.im), qMul(a.im, b.re)));
  }
  const x = toComplexFloat(a), y = toComplexFloat(b);
  return float(x.re * y.re - x.im * y.im, x.re * y.im + x.im * y.re);
}
function div(a: LatexValue, b: LatexValue): LatexValue {
  if (a.exact && b.exact) {
    const den = qAdd(qMul(b.re, b.re), qMul(b.im, b.im));
    if (den.n === 0n) throw new LatexEvalError("division by zero");
    const re = qAdd(qMul(a.re, b.re), qMul(a.im, b.im)), im = qSub(qMul(a.im, b.re), qMul(a.re, b.im));
    return exact(qDiv(re, den), qDiv(im, den));
  }
  const x = toComplexFloat(a), y = toComplexFloat(b);
  const den = y.re * y.re + y.im * y.im;
  if (den === 0) throw new LatexEvalError("division by zero");
  return float((x.re * y.re + x.im * y.im) / den, (x.im * y.re - x.re * y.im) / den);
}

/** base^k for an integer k by repeated squaring (exact stays exact). */
function powInt(base: LatexValue, k: bigint): LatexValue {
  if (k < 0n) return div(exact(ONE), powInt(base, -k));
  let result: LatexValue = exact(ONE), sq = base;
  for (; k > 0n; k >>= 1n) {
    if (k & 1n) result = mul(result, sq);
    if (k > 1n) sq = mul(sq, sq);
  }
  return result;
}

/** Principal z^w in floats: exp(w · log z); real roots of negative reals for odd-denominator w. */
function powFloat(base: LatexValue, exponent: LatexValue): LatexValue {
  const z = toComplexFloat(base), w = toComplexFloat(exponent);
  if (z.re === 0 && z.im === 0) {
    if (w.re > 0) return float(0);
    throw new LatexEvalError("0 raised to a non-positive power");
  }
  if (z.im === 0 && w.im === 0 && (z.re > 0 || isOddRootPower(exponent))) {
    const mag = Math.abs(z.re) ** w.re; // (−8)^{1/3} = −2, the competition convention
    return float(z.re < 0 && isExactReal(exponent) && exponent.re.n % 2n !== 0n ? -mag : mag);
  }
  if (z.im === 0 && z.re < 0 && w.im === 0 && w.re === 0.5) return float(0, Math.sqrt(-z.re));
  const logAbs = Math.log(Math.hypot(z.re, z.im)), arg = Math.atan2(z.im, z.re);
  const re = w.re * logAbs - w.im * arg, im = w.im * logAbs + w.re * arg;
  return float(Math.exp(re) * Math.cos(im), Math.exp(re) * Math.sin(im));
}
const isOddRootPower = (e: LatexValue) => isExactReal(e) && e.re.d % 2n === 1n;

function pow(base: LatexValue, exponent: LatexValue): LatexValue {
  const k = intOf(exponent);
  if (k !== null) {
    const bits = base.exact ? Math.max(bitLength(base.re.n), bitLength(base.re.d), bitLength(base.im.n), bitLength(base.im.d)) : 0;
    if (!base.exact || bits * Number(abs(k)) <= MAX_EXACT_BITS) {
      if (!base.exact && abs(k) > 1024n) return powFloat(base, exponent);
      return powInt(base, k);
    }
    return powFloat(base, exponent);
  }
  if (isExactReal(base) && isExactReal(exponent) && exponent.re.d <= BigInt(MAX_ROOT_INDEX)) {
    const root = exactRoot(base.re, Number(exponent.re.d));
    if (root) return pow(root, exact(rat(exponent.re.n)));
  }
  return powFloat(base, exponent);
}

/** The exact k-th root of a rational, if there is one: real for odd k, i·√|x| for k = 2, x < 0. */
function exactRoot(x: Rational, k: number): LatexValue | null {
  if (x.n < 0n && k % 2 === 0 && k !== 2) return null;
  const n = exactIntRoot(abs(x.n), k), d = exactIntRoot(x.d, k);
  if (n === null || d === null) return null;
  if (x.n >= 0n) return exact(rat(n, d));
  return k === 2 ? exact(ZERO, rat(n, d)) : exact(rat(-n, d));
}

function factorial(v: LatexValue): LatexValue {
  const n = intOf(v);
  if (n === null || n < 0n || n > BigInt(MAX_FACTORIAL)) {
    throw new LatexEvalError(`factorial needs an integer 0 … ${MAX_FACTORIAL}`);
  }
  let p = 1n;
  for (let k = 2n; k <= n; k++) p *= k;
  return exact(rat(p));
}

function binomial(nv: LatexValue, kv: LatexValue): LatexValue {
  const n = intOf(nv), k = intOf(kv);
  if (n === null || k === null || n < 0n || n > BigInt(MAX_BINOM_N)) {
    throw new LatexEvalError(`\\binom needs integers with 0 ≤ n ≤ ${MAX_BINOM_N}`);
  }
  if (k < 0n || k > n) return exact(ZERO);
  const m = k < n - k ? k : n - k;
  let c = 1n;
  for (let j = 1n; j <= m; j++) c = (c * (n - m + j)) / j; // each partial product is C(n−m+j, j)
  return exact(rat(c));
}

/** Same number: exactly when both are exact, else within RELATIVE_TOLERANCE (complex modulus). */
export function valuesEqual(a: LatexValue, b: LatexValue): boolean {
  if (a.exact && b.exact) return qEq(a.re, b.re) && qEq(a.im, b.im);
  const x = toComplexFloat(a), y = toComplexFloat(b);
  const diff = Math.hypot(x.re - y.re, x.im - y.im);
  if (!Number.isFinite(diff)) return false;
  return diff <= RELATIVE_TOLERANCE * Math.max(Math.hypot(x.re, x.im), Math.hypot(y.re, y.im)) || diff <= ABSOLUTE_FLOOR;
}

// ---- parser (recursive descent over characters) ----
// expr := term (± term)* ; term := unary ((· | × | * | / | ÷ | implicit) unary)* ;
// unary := −unary | power ; power := postfix (^ exponent)? ; postfix := primary !*

const MULTIPLY = new Set(["cdot", "times"]);
const PRIMARY_WORDS = new Set(["frac", "sqrt", "pi", "binom"]);
const CLOSING: Record<string, string> = { "(": ")", "[": "]", "{": "}" };

class Parser {
  private pos = 0;
  constructor(private readonly src: string) {}

  parseAll(): LatexValue {
    const v = this.expr();
    if (this.peek() !== "") throw this.error("unexpected");
    return v;
  }

  private error(what: string): LatexEvalError {
    return new LatexEvalError(`${what} at ${this.pos} in "${this.src}"`);
  }
  private peek(): string {
    while (/\s/.test(this.src[this.pos] ?? "")) this.pos++;
    return this.src[this.pos] ?? "";
  }
  /** The control word at the cursor (`\frac` → "frac"), without consuming it. */
  private peekWord(): string {
    return this.peek() === "\\" ? (/^\\([a-zA-Z]+)/.exec(this.src.slice(this.pos))?.[1] ?? "") : "";
  }
  private expect(c: string): void {
    if (this.peek() !== c) throw this.error(`expected "${c}"`);
    this.pos++;
  }

  private expr(): LatexValue {
    let v = this.term();
    for (let c = this.peek(); c === "+" || c === "-"; c = this.peek()) {
      this.pos++;
      v = c === "+" ? add(v, this.term()) : add(v, neg(this.term()));
    }
    return v;
  }

  private term(): LatexValue {
    let v = this.unary();
    for (;;) {
      const c = this.peek(), word = this.peekWord();
      if (c === "*" || MULTIPLY.has(word)) {
        this.pos += word ? word.length + 1 : 1;
        v = mul(v, this.unary());
      } else if (c === "/" || word === "div") {
        this.pos += word ? word.length + 1 : 1;
        v = div(v, this.unary());
      } else if (c === "(" || c === "[" || c === "i" || PRIMARY_WORDS.has(word)) {
        v = mul(v, this.power()); // implicit product; never starts with a digit ("2 3" is not 6)
      } else {
        return v;
      }
    }
  }

  private unary(): LatexValue {
    const c = this.peek();
    if (c === "-" || c === "+") {
      this.pos++;
      return c === "-" ? neg(this.unary()) : this.unary();
    }
    return this.power();
  }

  private power(): LatexValue {
    const base = this.postfix();
    if (this.peek() !== "^") return base;
    this.pos++;
    const c = this.peek();
    if (c === "-" || c === "+") { // 2^-1: not TeX, but unambiguous
      this.pos++;
      const e = this.primary();
      return pow(base, c === "-" ? neg(e) : e);
    }
    return pow(base, this.primary()); // 2^{10}; a bare 2^10 takes the whole number
  }

  private postfix(): LatexValue {
    let v = this.primary();
    while (this.peek() === "!") {
      this.pos++;
      v = factorial(v);
    }
    return v;
  }

  private primary(): LatexValue {
    const c = this.peek();
    if (/[\d.]/.test(c)) return this.number(/^(?:\d+\.?\d*|\.\d+)/);
    if (c === "i") {
      this.pos++;
      return I;
    }
    const close = CLOSING[c];
    if (close) {
      this.pos++;
      const v = this.expr();
      this.expect(close);
      return v;
    }
    const word = this.peekWord();
    if (!PRIMARY_WORDS.has(word)) throw this.error(word ? `unknown \\${word}` : `unexpected "${c}"`);
    this.pos += word.length + 1;
    if (word === "pi") return float(Math.PI);
    if (word === "frac") return div(this.arg(), this.arg());
    if (word === "binom") return binomial(this.arg(), this.arg());
    let index = 2n; // \sqrt[n]{x}
    if (this.peek() === "[") {
      this.pos++;
      const n = intOf(this.expr());
      this.expect("]");
      if (n === null || n < 2n) throw this.error("root index must be an integer ≥ 2");
      index = n;
    }
    return pow(this.arg(), exact(rat(1n, index)));
  }

  /** A TeX macro argument: a {group}, one digit, or one primary (`\frac12`, `\sqrt\pi`). */
  private arg(): LatexValue {
    const c = this.peek();
    if (/\d/.test(c)) return this.number(/^\d/);
    return this.primary();
  }

  private number(re: RegExp): LatexValue {
    const text = re.exec(this.src.slice(this.pos))?.[0];
    if (text === undefined) throw this.error("expected a number");
    this.pos += text.length;
    const [whole, frac = ""] = text.split(".");
    return exact(rat(BigInt((whole || "0") + frac), 10n ** BigInt(frac.length)));
  }
}

/** Parse and evaluate; throws LatexEvalError when the text is not a number we can evaluate. */
export function parseLatexValue(src: string): LatexValue {
  return new Parser(src).parseAll();
}

/** The value of a LaTeX number expression, or null when it isn't one. */
export function evaluateLatex(src: string): LatexValue | null {
  try {
    return parseLatexValue(src);
  } catch (e) {
    if (e instanceof LatexEvalError || e instanceof RangeError) return null; // RangeError: nesting or BigInt too deep/big
    throw e;
  }
}
