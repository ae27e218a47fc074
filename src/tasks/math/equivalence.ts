/**
 * Are two normalised math answers the same answer? Cheapest test first:
 *   1. the same text (white space aside);
 *   2. word answers ("Monday"): the same words, case aside; never parsed as math;
 *   3. plain numbers (integers, decimals, a/b, \frac{a}{b}): equal as exact rationals, no tolerance;
 *   4. unbracketed lists ("1, 2" or "1 or 2"): the same items in any order (sets of solutions);
 *   5. LaTeX through @cortex-js/compute-engine: tuples, lists, intervals (open/closed ends),
 *      sets (any order), matrices and relations are compared part by part; other expressions by
 *      value (relative tolerance 1e-9, absolute 1e-14; complex values too) when constant, else at 5 fixed points
 *      of their variables, which must be the same variables on both sides.
 * Deterministic: the sample points are fixed, never random, and each comparison runs in its own
 * scope of the engine, so no verdict depends on earlier ones. The engine (≈0.5 s to load) is loaded
 * on the first answer that needs it, so GSM8K-style numeric answers never load it.
 */
import { createRequire } from "node:module";
import { isTextAnswer, normalizeAnswer, parseRational, rationalsEqual, splitTopLevel } from "./normalize.js";

export type Equivalence = "same text" | "same words" | "equal numbers" | "same items" | "equal expressions";

/** The part of the compute engine's boxed expressions used here. */
interface Expr {
  readonly json: unknown;
  readonly isValid: boolean;
  readonly unknowns: readonly string[];
  readonly isNumberLiteral: boolean;
  readonly re: number;
  readonly im: number;
  isSame(other: Expr): boolean;
  N(): Expr;
  subs(values: Record<string, number>): Expr;
}

interface Engine {
  parse(latex: string): Expr;
  box(json: unknown): Expr;
  pushScope(): void;
  popScope(): void;
}

let engine: Engine | null = null;

function computeEngine(): Engine {
  if (!engine) {
    // Loaded synchronously on first use (verifiers are synchronous); the package ships a CommonJS build.
    const { ComputeEngine } = createRequire(import.meta.url)("@cortex-js/compute-engine") as {
      ComputeEngine: new () => Engine;
    };
    engine = new ComputeEngine();
  }
  return engine;
}

const REL_TOL = 1e-9;
const ABS_FLOOR = 1e-14;
/** Values for the k-th variable at sample i: SAMPLES[(i + 2k) % 5], distinct and away from 0, ±1. */
const SAMPLES = [0.5377, 1.8339, -2.2588, 0.8622, 3.1877];

/** Heads compared part by part; `Greater` and `GreaterEqual` are turned around first. */
const STRUCTURAL = new Set([
  "Tuple",
  "List",
  "Set",
  "Interval",
  "Open",
  "Matrix",
  "Equal",
  "NotEqual",
  "Less",
  "LessEqual",
  "Element",
  "Measurement",
]);
const UNORDERED = new Set(["Set"]);

type Json = unknown;

function head(j: Json): string | null {
  return Array.isArray(j) && typeof j[0] === "string" ? j[0] : null;
}

function turnAround(j: Json): Json {
  const h = head(j);
  if (h === "Greater" || h === "GreaterEqual") {
    const [, a, b] = j as Json[];
    return [h === "Greater" ? "Less" : "LessEqual", b, a];
  }
  return j;
}

function close(a: number, b: number): boolean {
  if (a === b) return true; // also ±Infinity
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  // Relative, with a floor far below any answer a problem asks for, so sin(π) ≈ 1e-16 counts as 0
  // but 10^{-12} does not.
  return Math.abs(a - b) <= Math.max(REL_TOL * Math.max(Math.abs(a), Math.abs(b)), ABS_FLOOR);
}

function sameNumber(a: Expr, b: Expr): boolean {
  return a.isNumberLiteral && b.isNumberLiteral && close(a.re, b.re) && close(a.im, b.im);
}

/** Equal values: constants evaluated, expressions in variables compared at the sample points. */
function sameValue(ce: Engine, aj: Json, bj: Json): boolean {
  const a = ce.box(aj);
  const b = ce.box(bj);
  if (a.isSame(b)) return true;
  const vars = [...new Set(a.unknowns)].sort();
  const bVars = [...new Set(b.unknowns)].sort();
  if (vars.join("\u0000") !== bVars.join("\u0000")) return false;
  if (vars.length === 0) return sameNumber(a.N(), b.N());
  let agreed = 0;
  for (let i = 0; i < SAMPLES.length; i++) {
    const at: Record<string, number> = {};
    vars.forEach((v, k) => (at[v] = SAMPLES[(i + 2 * k) % SAMPLES.length]));
    const x = a.subs(at).N();
    const y = b.subs(at).N();
    const finite = x.isNumberLiteral && Number.isFinite(x.re) && Number.isFinite(x.im);
    if (!finite) {
      if (y.isNumberLiteral && Number.isFinite(y.re) && Number.isFinite(y.im)) return false;
      continue; // both undefined here (a pole, a log of a negative): no evidence either way
    }
    if (!sameNumber(x, y)) return false;
    agreed++;
  }
  return agreed >= 3;
}

function sameJson(ce: Engine, aj: Json, bj: Json): boolean {
  aj = turnAround(aj);
  bj = turnAround(bj);
  const ha = head(aj);
  const hb = head(bj);
  const sa = ha !== null && STRUCTURAL.has(ha);
  const sb = hb !== null && STRUCTURAL.has(hb);
  if (!sa && !sb) return sameValue(ce, aj, bj);
  if (ha !== hb) {
    // `y = 2x + 3` against `2x + 3`: an equation defining one variable is its right side.
    const eq = ha === "Equal" ? (aj as Json[]) : hb === "Equal" ? (bj as Json[]) : null;
    if (eq && eq.length === 3 && typeof eq[1] === "string") {
      return ha === "Equal" ? sameJson(ce, eq[2], bj) : sameJson(ce, aj, eq[2]);
    }
    return false;
  }
  const xs = (aj as Json[]).slice(1);
  const ys = (bj as Json[]).slice(1);
  if (xs.length !== ys.length) return false;
  if (UNORDERED.has(ha!)) return sameItems(xs, ys, (x, y) => sameJson(ce, x, y));
  if (ha === "Equal" && !xs.every((x, i) => sameJson(ce, x, ys[i]))) {
    return sameJson(ce, xs[0], ys[1]) && sameJson(ce, xs[1], ys[0]);
  }
  return xs.every((x, i) => sameJson(ce, x, ys[i]));
}

/** Multiset equality under `eq`: every item of `xs` matched to its own item of `ys`. */
function sameItems<T>(xs: readonly T[], ys: readonly T[], eq: (x: T, y: T) => boolean): boolean {
  if (xs.length !== ys.length) return false;
  const used = new Array<boolean>(ys.length).fill(false);
  return xs.every((x) => {
    const j = ys.findIndex((y, k) => !used[k] && eq(x, y));
    if (j < 0) return false;
    used[j] = true;
    return true;
  });
}

function parse(ce: Engine, latex: string): Json | null {
  const e = ce.parse(latex);
  return e.isValid && e.json !== "Nothing" ? e.json : null;
}

export type EquivalenceResult = { equal: true; how: Equivalence } | { equal: false; why?: string };

/** Compares two answers already passed through normalizeAnswer (see the file header). */
export function mathEquivalent(prediction: string, reference: string): EquivalenceResult {
  const compact = (s: string) => s.replace(/\s+/g, "");
  if (compact(prediction) === compact(reference)) return { equal: true, how: "same text" };
  if (isTextAnswer(reference) || isTextAnswer(prediction)) {
    const words = (s: string) => s.toLowerCase().replace(/\s+/g, " ");
    return words(prediction) === words(reference) ? { equal: true, how: "same words" } : { equal: false };
  }
  const p = parseRational(prediction);
  const r = parseRational(reference);
  if (p && r) return rationalsEqual(p, r) ? { equal: true, how: "equal numbers" } : { equal: false };
  const pItems = splitTopLevel(prediction).map(normalizeAnswer);
  const rItems = splitTopLevel(reference).map(normalizeAnswer);
  if (pItems.length > 1 || rItems.length > 1) {
    return sameItems(pItems, rItems, (x, y) => mathEquivalent(x, y).equal)
      ? { equal: true, how: "same items" }
      : { equal: false };
  }
  const ce = computeEngine();
  // Parsing declares the symbols it meets (`a(b)` makes `a` a function, and `a + 1` then fails):
  // a scope per comparison keeps every verdict independent of the ones before it.
  ce.pushScope();
  try {
    const rj = parse(ce, reference);
    if (rj === null)
      return { equal: false, why: `the reference ${JSON.stringify(reference)} does not parse` };
    const pj = parse(ce, prediction);
    if (pj === null) return { equal: false, why: "the answer does not parse as LaTeX" };
    return sameJson(ce, pj, rj) ? { equal: true, how: "equal expressions" } : { equal: false };
  } finally {
    ce.popScope();
  }
}
