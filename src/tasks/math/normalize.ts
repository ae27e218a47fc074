/**
 * Normalisation of a math answer before comparison: one canonical spelling for what graders treat
 * as the same answer. Applied to the prediction and the reference alike.
 *
 *   math delimiters  `$…$`, `\(…\)`, `\[…\]`, a whole-answer `\boxed{…}`      → removed
 *   spacing/sizing   `\,` `\;` `\!` `\ ` `~` `\quad` `\left` `\right` `\displaystyle` → removed
 *   fractions        `\dfrac`, `\tfrac` → `\frac`; `\frac12` → `\frac{1}{2}`; `\sqrt2` → `\sqrt{2}`
 *   degrees, %, $    `^\circ`, `°`, `\%`, `%`, `\$`, `$`                       → removed
 *   units            `5\text{ cm}^2` → `5`; `18 dollars` → `18` (words of ≥ 2 letters after a number)
 *   text wrappers    `\text{…}`, `\mathrm{…}`, `\textbf{…}`, `\mbox{…}`        → their content
 *   thousands        `1,234,567` and `1 234 567` (the whole answer) → `1234567`; `1{,}000` → `1000`
 *   assignments      `x = 5`, `x \in [1, 2]` (one variable on the left)        → the right side
 *   choices          `(C)`                                                     → `C`
 *   unicode          `−` `×` `÷` `·` `π` `∞` `√`                               → LaTeX
 * Left out: anything that needs the expression's meaning (the symbolic comparison does that).
 * A comma between groups of three digits is read as a thousands separator, never as a list:
 * "1,234" is 1234.
 */

const UNICODE: [RegExp, string][] = [
  [/[\u2212\u2012\u2013]/g, "-"],
  [/\u00d7/g, "\\times "],
  [/\u00f7/g, "\\div "],
  [/[\u00b7\u22c5]/g, "\\cdot "],
  [/\u03c0/g, "\\pi "],
  [/\u221e/g, "\\infty "],
  [/\u221a/g, "\\sqrt"],
  [/\u00b0/g, "^\\circ"],
  [/[\u00a0\u2009\u202f]/g, " "],
  [/\uff0c/g, ","],
];

const TEXT_WRAPPER = String.raw`\\(?:text|textrm|textnormal|textbf|textit|textsf|texttt|mathrm|mathbf|mathit|mathsf|mbox|operatorname)`;

/** A unit spelled as text right after a number, with an optional power: `5\text{ cm}^2`. */
const TEXT_UNIT = new RegExp(
  String.raw`(?<=[\d}.])\s*${TEXT_WRAPPER}\{\s*(?!(?:or|and)\s*\})[A-Za-z][A-Za-z .]*\}(?:\^\{?\d\}?)?`,
  "g",
);
const TEXT_CONTENT = new RegExp(String.raw`${TEXT_WRAPPER}\{([^{}]*)\}`, "g");

function stripDelimiters(s: string): string {
  for (;;) {
    const t = s.trim();
    let u = t;
    if (u.startsWith("$") && u.endsWith("$") && u.length >= 2) u = u.replace(/^\$+|\$+$/g, "");
    else if (/^\\[([]/.test(u) && /\\[)\]]$/.test(u)) u = u.slice(2, -2);
    else if (/^\\(?:boxed|fbox)\{/.test(u)) {
      const inner = wholeGroup(u, u.indexOf("{"));
      if (inner !== null) u = inner;
    }
    if (u === t) return t;
    s = u;
  }
}

/** The content of the `{…}` group opening at `open` when it closes exactly at the end of `s`. */
function wholeGroup(s: string, open: number): string | null {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === "\\") {
      i++;
      continue;
    }
    if (s[i] === "{") depth++;
    else if (s[i] === "}" && --depth === 0) return i === s.length - 1 ? s.slice(open + 1, i) : null;
  }
  return null;
}

export function normalizeAnswer(raw: string): string {
  let s = raw;
  for (const [re, to] of UNICODE) s = s.replace(re, to);
  s = stripDelimiters(s);
  s = s
    .replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|displaystyle|textstyle|limits)(?![A-Za-z])/g, "")
    .replace(/\\(?:qquad|quad)(?![A-Za-z])/g, " ")
    // A thin space `\,` is dropped, a row break `\\` is kept.
    .replace(/\\\\|\\[,;:! ]/g, (m) => (m === "\\\\" ? m : ""))
    .replace(/~/g, " ")
    .replace(/\{,\}/g, ",")
    .replace(/\\[dt]frac(?![A-Za-z])/g, "\\frac")
    .replace(/\\frac\s*(\d)\s*(\d)/g, "\\frac{$1}{$2}")
    .replace(/\\frac\s*(\d)\s*\{/g, "\\frac{$1}{")
    .replace(/\\frac(\{[^{}]*\})\s*(\d)/g, "\\frac$1{$2}")
    .replace(/\\sqrt\s*(\d|[A-Za-z])(?![A-Za-z])/g, "\\sqrt{$1}")
    .replace(/\^\s*\{?\s*\\circ\s*\}?/g, "")
    .replace(/\\(?:circ|degree)(?![A-Za-z])/g, "")
    .replace(/\\?%/g, "")
    .replace(/\\?\$/g, "")
    .replace(TEXT_UNIT, "")
    .replace(TEXT_CONTENT, "$1")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/[.,;]+$/, "")
    .trim();
  s = stripDelimiters(s);
  // `x = 5`, `x \in [1, 2]`: one variable on the left of the only relation.
  const assigned = /^(?:[A-Za-z]|\\[A-Za-z]+)\s*(?:=|\\in(?![A-Za-z]))\s*(.+)$/.exec(s);
  if (assigned && !/=|\\in(?![A-Za-z])/.test(assigned[1])) s = assigned[1].trim();
  // `18 dollars`, `5 apples per box`: words of two or more letters after a plain number.
  const unit = /^([-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*\/\s*\d+)?)\s+(?:[A-Za-z]{2,}\.?\s*)+$/.exec(s);
  if (unit) s = unit[1];
  if (/^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s) || /^\d{1,3}(?: \d{3})+$/.test(s))
    s = s.replace(/[, ]/g, "");
  const choice = /^\(([A-Z])\)$/.exec(s);
  if (choice) s = choice[1];
  return s.replace(/^\+(?=\d)/, "");
}

/** An exact rational (n/d, d > 0), for answers that are plain numbers. */
export interface Rational {
  n: bigint;
  d: bigint;
}

function decimal(s: string): Rational | null {
  const m = /^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/.exec(s);
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) return null;
  const frac = m[3] ?? "";
  let n = BigInt((m[2] || "0") + frac);
  let d = 10n ** BigInt(frac.length);
  const exp = m[4] ? Number(m[4]) : 0;
  if (Math.abs(exp) > 400) return null;
  if (exp > 0) n *= 10n ** BigInt(exp);
  else if (exp < 0) d *= 10n ** BigInt(-exp);
  return { n: m[1] === "-" ? -n : n, d };
}

/**
 * A normalised answer that is a plain number: an integer, a decimal (`.5`, `1.5e3`), `a/b`, or
 * `\frac{a}{b}` with such parts and an optional sign. Null for anything else.
 */
export function parseRational(s: string): Rational | null {
  const t = s.replace(/\s+/g, "");
  const frac = /^([-+]?)\\frac\{([^{}]+)\}\{([^{}]+)\}$/.exec(t) ?? /^([-+]?)([^/]+)\/([^/]+)$/.exec(t);
  if (frac) {
    const a = decimal(frac[2]);
    const b = decimal(frac[3]);
    if (!a || !b || b.n === 0n) return null;
    const r = { n: a.n * b.d, d: a.d * b.n };
    if (r.d < 0n) {
      r.n = -r.n;
      r.d = -r.d;
    }
    if (frac[1] === "-") r.n = -r.n;
    return r;
  }
  return decimal(t);
}

export function rationalsEqual(a: Rational, b: Rational): boolean {
  return a.n * b.d === b.n * a.d;
}

/**
 * Splits at commas (and the words "or"/"and") outside any bracket: `1, 2` → ["1", "2"],
 * `(1, 2)` → ["(1, 2)"]. LaTeX `\{ \}` count as brackets.
 */
export function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      if (s[i + 1] === "{") depth++;
      else if (s[i + 1] === "}") depth--;
      i++;
      continue;
    }
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    else if (depth === 0 && c === ",") {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.flatMap((p) => p.split(/\s+(?:or|and)\s+/)).map((p) => p.trim());
}

/** A word answer ("Monday", "New York"): letters and spaces only, with a word of two or more letters. */
export function isTextAnswer(s: string): boolean {
  return /^[A-Za-z][A-Za-z '-]*$/.test(s) && /[A-Za-z]{2}/.test(s);
}
