// Compares the two symbolic-math libraries considered for the math verifier on the verifier's own
// table (test/fixtures/math-verifier-table.jsonl): install size, how many of the table's answers each
// parses, whether its equality agrees with the table, and time. Only the pairs that reach the
// symbolic stage are used (after normalisation, not the same text, not plain numbers, not words,
// not unbracketed lists): those are the ones a library decides. Agreement is with `expected`, the
// right verdict (so the known limitations count against the verifier too).
//
//   npm run build
//   npm install --prefix /tmp/mathlibs/ce @cortex-js/compute-engine@0.140.0
//   npm install --prefix /tmp/mathlibs/mathjs mathjs@15.2.0
//   node scripts/compare-math-libs.mjs /tmp/mathlibs
//
// mathjs reads no LaTeX, so it is also given the answers after a small LaTeX-to-mathjs rewrite
// (below: \frac, \sqrt, \cdot, \times, \pi, \infty, \left/\right, braces), which a verifier built on
// it would have to grow and maintain. "compute-engine in the verifier" is the shipped comparison
// (src/tasks/math/equivalence.ts: part-by-part tuples, intervals, sets, relations; sampled variables).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { referenceAnswer, extractMathAnswer } from "../dist/src/tasks/math/extract.js";
import {
  isTextAnswer,
  normalizeAnswer,
  parseRational,
  splitTopLevel,
} from "../dist/src/tasks/math/normalize.js";
import { mathEquivalent } from "../dist/src/tasks/math/equivalence.js";

const root = process.argv[2];
if (!root) {
  console.error("usage: node scripts/compare-math-libs.mjs <dir with ce/ and mathjs/ npm prefixes>");
  process.exit(2);
}
const table = readFileSync(new URL("../test/fixtures/math-verifier-table.jsonl", import.meta.url), "utf8")
  .split("\n")
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));

const pairs = [];
for (const row of table) {
  const found = extractMathAnswer(row.prediction);
  const ref = referenceAnswer(row.reference);
  if (!found.ok || ref === null) continue;
  const p = normalizeAnswer(found.answer);
  const r = normalizeAnswer(ref);
  const symbolic =
    p.replace(/\s+/g, "") !== r.replace(/\s+/g, "") &&
    !isTextAnswer(p) &&
    !isTextAnswer(r) &&
    !(parseRational(p) && parseRational(r)) &&
    splitTopLevel(p).length === 1 &&
    splitTopLevel(r).length === 1;
  if (symbolic) pairs.push({ p, r, expected: row.expected });
}

const du = (dir) =>
  execFileSync("du", ["-sk", join(dir, "node_modules")], { encoding: "utf8" }).split("\t")[0];

function time(f) {
  const t0 = performance.now();
  const v = f();
  return [v, performance.now() - t0];
}

// --- @cortex-js/compute-engine: LaTeX in, structural + numeric equality.
const ceReq = createRequire(join(root, "ce", "package.json"));
const [CE, ceLoad] = time(() => ceReq("@cortex-js/compute-engine"));
const ce = new CE.ComputeEngine();
function ceEqual(a, b) {
  ce.pushScope(); // parsing declares symbols; keep each comparison independent
  try {
    return ceEqualInScope(a, b);
  } finally {
    ce.popScope();
  }
}
function ceEqualInScope(a, b) {
  const x = ce.parse(a);
  const y = ce.parse(b);
  if (!x.isValid || !y.isValid) return null;
  if (x.isSame(y)) return true;
  const vars = [...new Set([...x.unknowns, ...y.unknowns])];
  if (vars.length === 0) {
    const u = x.N();
    const v = y.N();
    return Math.abs(u.re - v.re) <= 1e-9 * Math.max(1, Math.abs(u.re)) && Math.abs(u.im - v.im) <= 1e-9;
  }
  return x.is(y);
}

// --- mathjs: its own syntax; raw LaTeX, then a small rewrite.
const mjReq = createRequire(join(root, "mathjs", "package.json"));
const [math, mjLoad] = time(() => mjReq("mathjs"));
function latexToMathjs(s) {
  let t = s.replace(/\\left|\\right/g, "");
  for (let i = 0; i < 5; i++) {
    t = t
      .replace(/\\frac\{([^{}]*)\}\{([^{}]*)\}/g, "(($1)/($2))")
      .replace(/\\sqrt\[([^\]]*)\]\{([^{}]*)\}/g, "nthRoot($2,$1)")
      .replace(/\\sqrt\{([^{}]*)\}/g, "sqrt($1)")
      .replace(/\^\{([^{}]*)\}/g, "^($1)");
  }
  return t
    .replace(/\\cdot|\\times/g, "*")
    .replace(/\\pi/g, "pi")
    .replace(/\\infty/g, "Infinity")
    .replace(/[{}]/g, "");
}
function mjEqual(a, b) {
  let x, y;
  try {
    x = math.parse(a);
    y = math.parse(b);
  } catch {
    return null;
  }
  try {
    const vars = new Set();
    for (const n of [x, y])
      n.traverse((node) => node.isSymbolNode && !(node.name in math) && vars.add(node.name));
    const points =
      vars.size === 0
        ? [{}]
        : [0.5377, 1.8339, -2.2588].map((v) => Object.fromEntries([...vars].map((k) => [k, v])));
    return points.every((scope) => {
      const u = math.complex(x.evaluate(scope));
      const v = math.complex(y.evaluate(scope));
      return Math.abs(u.re - v.re) <= 1e-9 * Math.max(1, Math.abs(u.re)) && Math.abs(u.im - v.im) <= 1e-9;
    });
  } catch {
    return null;
  }
}

function run(name, equal, rewrite = (s) => s, countParses = true) {
  const answers = new Set(pairs.flatMap(({ p, r }) => [p, r]));
  let parsed = 0;
  for (const a of answers) if (equal(rewrite(a), rewrite(a)) !== null) parsed++;
  let agree = 0;
  for (const { p, r, expected } of pairs)
    if ((equal(rewrite(p), rewrite(r)) === true ? 1 : 0) === expected) agree++;
  // The machine is shared: the fastest of 5 passes is the steady state a training run sees.
  let best = Infinity;
  for (let pass = 0; pass < 5; pass++) {
    const t0 = performance.now();
    for (const { p, r } of pairs) equal(rewrite(p), rewrite(r));
    best = Math.min(best, (performance.now() - t0) / pairs.length);
  }
  const parses = countParses
    ? `parses ${String(parsed).padStart(3)}/${answers.size} answers`
    : "parses    —        ";
  console.log(
    `${name.padEnd(32)} ${parses}, agrees with the table on ${agree}/${pairs.length} pairs, ${best.toFixed(2)} ms per pair`,
  );
}

console.log(`${pairs.length} of ${table.length} table pairs reach the symbolic stage`);
console.log(
  `@cortex-js/compute-engine ${CE.version}: ${du(join(root, "ce"))} KiB installed, first require ${ceLoad.toFixed(0)} ms`,
);
console.log(
  `mathjs ${math.version}: ${du(join(root, "mathjs"))} KiB installed, first require ${mjLoad.toFixed(0)} ms`,
);
run("compute-engine (LaTeX)", ceEqual);
run("compute-engine in the verifier", (a, b) => mathEquivalent(a, b).equal, undefined, false);
run("mathjs (LaTeX as given)", mjEqual);
run("mathjs (after a LaTeX rewrite)", mjEqual, latexToMathjs);
