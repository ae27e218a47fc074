/**
 * Loading a config: a YAML or JSON file, merged over the defaults, then `--set a.b=value`
 * overrides, then dedicated flags (`--seed` …), validated once into a frozen `ResolvedConfig`.
 * Precedence: defaults < file < --set (in order) < flags. Every error is a `ConfigError` whose
 * message is one line naming where the bad value came from (file:line, the --set token or the
 * flag), the key, and what to do.
 */
import { readFileSync, statSync } from "node:fs";
import YAML, { isMap, isScalar, LineCounter, type Node as YamlNode } from "yaml";
import { closest, unknownKeyHint } from "./names.js";
import { crossFieldProblems, deriveDefaults } from "./rules.js";
import { ConfigSchema, listKeys, type KeyInfo, type ResolvedConfig } from "./schema.js";

export { listKeys, type KeyInfo, type ResolvedConfig } from "./schema.js";

/** A user-fixable configuration problem; the CLI prints its message and exits with code 2. */
export class ConfigError extends Error {
  readonly exitCode = 2;
  /** Dotted key the problem is about, when there is one. */
  readonly key: string | undefined;
  constructor(message: string, key?: string) {
    super(message);
    this.name = "ConfigError";
    this.key = key;
  }
}

/** A dedicated CLI flag standing for one config key, e.g. {flag: "--seed", path: "run.seed", value: "3"}. */
export interface FlagOverride {
  flag: string;
  path: string;
  value: unknown;
  /** Take a string value as-is instead of parsing it as JSON (paths). */
  raw?: boolean;
}

export interface LoadOptions {
  /** YAML or JSON file (`--config`). */
  file?: string | null;
  /** `a.b=value` tokens from `--set` and bare arguments, applied in order. */
  sets?: readonly string[];
  /** Bare `a.b=value` arguments (Hydra style), applied after `sets`; errors name the token itself. */
  bareSets?: readonly string[];
  /** Dedicated flags, applied last. String values are parsed like --set values. */
  flags?: readonly FlagOverride[];
  /** Values used only where the merged config leaves the key unset or null (e.g. run.output_dir). */
  fallbacks?: Readonly<Record<string, unknown>>;
  /** Told about a config file that sets nothing (empty or comments only). */
  warn?: (message: string) => void;
}

type Json = Record<string, unknown>;

/** Where each user-given value came from, by dotted path: "file.yaml:12", "--set a.b=1", "--seed". */
class Origins {
  private readonly byPath = new Map<string, string>();
  constructor(private readonly file: string | null) {}
  set(path: string, origin: string): void {
    for (const key of [...this.byPath.keys()]) if (key.startsWith(path + ".")) this.byPath.delete(key);
    this.byPath.set(path, origin);
  }
  /** The origin of `path`, else of its nearest ancestor, else of a descendant; the file as a fallback. */
  of(path: string): string | null {
    for (let p = path; p; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
      const o = this.byPath.get(p);
      if (o) return o;
    }
    for (const [key, o] of this.byPath) if (key.startsWith(path + ".")) return o;
    return this.file;
  }
}

const isPlainObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

const FORBIDDEN_SEGMENTS = new Set(["__proto__", "prototype", "constructor"]);

// ---------------------------------------------------------------------------------------------
// File reading

export interface ConfigFile {
  data: Json;
  /** Line (1-based) of each key in the file, by dotted path. */
  lines: Map<string, number>;
}

export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    if (statSync(file).isDirectory())
      throw new ConfigError(
        `${file}: is a directory, not a config file; pass a .yaml or .json file to --config`,
      );
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ConfigError(`${file}: config file not found; check the --config path`);
    throw new ConfigError(`${file}: cannot read config file (${code ?? (err as Error).message})`);
  }
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e.linePos?.[0];
    const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
    const what = e.message.split(/ at line \d+, column \d+/)[0].split("\n")[0];
    throw new ConfigError(`${where}: bad YAML/JSON: ${what}; fix the syntax there`);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(`${file}: cannot read config (${(err as Error).message.split("\n")[0]})`);
  }
  if (data === null || data === undefined) data = {};
  if (!isPlainObject(data)) {
    throw new ConfigError(
      `${file}: expected a mapping of sections (model:, algo:, run: …) at the top, got ${describeValue(data)}`,
    );
  }
  const lines = new Map<string, number>();
  const walk = (node: YamlNode | null | undefined, prefix: string) => {
    if (!isMap(node)) return;
    for (const pair of node.items) {
      if (!isScalar(pair.key) || !pair.key.range) continue;
      const path = prefix ? `${prefix}.${String(pair.key.value)}` : String(pair.key.value);
      lines.set(path, lineCounter.linePos(pair.key.range[0]).line);
      walk(pair.value as YamlNode, path);
    }
  };
  walk(doc.contents as YamlNode, "");
  return { data, lines };
}

// ---------------------------------------------------------------------------------------------
// Overrides

/** Parses a --set value: JSON if it parses (numbers, true, null, [1,4,8], {"a":1}), else the raw string. */
export function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Splits `a.b=value` into a checked key path and a parsed value. `label` names the token in errors. */
export function parseSetToken(token: string, label = `--set ${token}`): { path: string[]; value: unknown } {
  const eq = token.indexOf("=");
  if (/^[+~]/.test(token)) {
    throw new ConfigError(
      `${label}: the schema is fixed, so Hydra's + and ~ prefixes do not apply; write key=value, e.g. algo.kl_radius=0.02`,
    );
  }
  if (eq <= 0) throw new ConfigError(`${label}: expected key=value, e.g. --set algo.kl_radius=0.02`);
  const key = token.slice(0, eq).trim();
  const path = key.split(".");
  for (const seg of path) {
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg) || FORBIDDEN_SEGMENTS.has(seg)) {
      throw new ConfigError(
        `${label}: "${key}" is not a key path; use dotted snake_case names such as rollout.n`,
      );
    }
  }
  return { path, value: parseValue(token.slice(eq + 1)) };
}

function setPath(target: Json, path: readonly string[], value: unknown, label: string): void {
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const next = node[path[i]];
    if (next === undefined || next === null) node[path[i]] = {};
    else if (!isPlainObject(next)) {
      const prefix = path.slice(0, i + 1).join(".");
      throw new ConfigError(
        `${label}: ${prefix} holds a value, not a section, so ${path.join(".")} cannot be set`,
        prefix,
      );
    }
    node = node[path[i]] as Json;
  }
  const last = path[path.length - 1];
  const old = node[last];
  node[last] = isPlainObject(old) && isPlainObject(value) ? deepMerge(old, value) : structuredClone(value);
}

function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlainObject(out[k]) && isPlainObject(v) ? deepMerge(out[k] as Json, v) : v;
  }
  return out;
}

function getPath(obj: unknown, path: readonly (string | number)[]): unknown {
  let node = obj;
  for (const seg of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string | number, unknown>)[seg];
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// Validation

function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return `a list ${clip(JSON.stringify(v))}`;
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `string ${clip(JSON.stringify(v))}`;
  return `${typeof v} ${String(v)}`;
}

const clip = (s: string) => (s.length > 40 ? s.slice(0, 37) + "…" : s);

let keyIndex: Map<string, KeyInfo> | undefined;
function keyInfo(path: string): KeyInfo | undefined {
  keyIndex ??= new Map(listKeys().map((k) => [k.path, k]));
  return keyIndex.get(path);
}

interface Issue {
  code: string;
  path: PropertyKey[];
  keys?: string[];
  values?: unknown[];
  expected?: string;
  message: string;
}

function issueMessage(issue: Issue, raw: Json, origins: Origins): { text: string; key: string } {
  const path = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  const prefix = (origin: string | null) => (origin ? `${origin}: ` : "");
  if (issue.code === "unrecognized_keys" && issue.keys && issue.keys.length > 0) {
    const key = [...path, issue.keys[0]].join(".");
    return { key, text: `${prefix(origins.of(key))}unknown key ${key}${unknownKeyHint(key)}` };
  }
  // Leaf = section.name; deeper segments index into lists (eval.k[1]).
  const leaf = path.slice(0, 2).join(".");
  const shown =
    leaf +
    path
      .slice(2)
      .map((p) => `[${String(p)}]`)
      .join("");
  const got = getPath(raw, path);
  const info = keyInfo(leaf);
  const where = prefix(origins.of(leaf));
  if (!info) {
    // A whole section has the wrong type (e.g. `model: 3`).
    return {
      key: leaf,
      text: `${where}${shown}: expected a mapping of ${leaf} keys, got ${describeValue(got)}`,
    };
  }
  let hint = "";
  if (issue.code === "invalid_value" && typeof got === "string" && issue.values) {
    const near = closest(got, issue.values.map(String));
    if (near) hint = `; did you mean "${near}"?`;
  } else if (
    issue.code === "invalid_type" &&
    issue.expected === "string" &&
    got !== null &&
    typeof got !== "object"
  ) {
    hint = `; quote it to pass a string, e.g. --set ${leaf}='"${String(got)}"'`;
  }
  return { key: leaf, text: `${where}${shown}: expected ${info.type}, got ${describeValue(got)}${hint}` };
}

const ISSUE_ORDER = ["unrecognized_keys", "invalid_type", "invalid_value"];

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Validates a raw (merged) object once: schema, then cross-field rules. Returns a frozen config. */
export function validateConfig(raw: unknown, origins: Origins = new Origins(null)): ResolvedConfig {
  if (!isPlainObject(raw))
    throw new ConfigError(`config: expected a mapping of sections, got ${describeValue(raw)}`);
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const issues = [...(result.error.issues as unknown as Issue[])];
    const rank = (c: string) => (ISSUE_ORDER.includes(c) ? ISSUE_ORDER.indexOf(c) : ISSUE_ORDER.length);
    issues.sort((a, b) => rank(a.code) - rank(b.code));
    const total = issues.reduce(
      (n, i) => n + (i.code === "unrecognized_keys" ? (i.keys?.length ?? 1) : 1),
      0,
    );
    const { text, key } = issueMessage(issues[0], raw, origins);
    throw new ConfigError(
      text + (total > 1 ? ` (${total - 1} more problem${total > 2 ? "s" : ""} after this one)` : ""),
      key,
    );
  }
  const problems = crossFieldProblems(result.data);
  if (problems.length > 0) {
    const p = problems[0];
    const origin = origins.of(p.key);
    const more =
      problems.length > 1
        ? ` (${problems.length - 1} more problem${problems.length > 2 ? "s" : ""} after this one)`
        : "";
    throw new ConfigError(`${origin ? origin + ": " : ""}${p.message}${more}`, p.key);
  }
  return deepFreeze(deriveDefaults(result.data));
}

/** The full default config, validated and frozen. */
export function defaultConfig(): ResolvedConfig {
  return validateConfig({});
}

/** File → --set → flags → fallbacks → validate once. */
export function loadConfig(opts: LoadOptions = {}): ResolvedConfig {
  const file = opts.file ?? null;
  const origins = new Origins(file);
  let raw: Json = {};
  if (file) {
    const loaded = readConfigFile(file);
    raw = loaded.data;
    if (Object.keys(raw).length === 0)
      opts.warn?.(
        `${file} sets no keys (it is empty or holds only comments): every key takes its default (sat config --print-defaults lists them)`,
      );
    for (const [path, line] of loaded.lines) origins.set(path, `${file}:${line}`);
  }
  const tokens = [
    ...(opts.sets ?? []).map((token) => ({ token, label: `--set ${token}` })),
    ...(opts.bareSets ?? []).map((token) => ({ token, label: token })),
  ];
  for (const { token, label } of tokens) {
    const { path, value } = parseSetToken(token, label);
    setPath(raw, path, value, label);
    origins.set(path.join("."), label);
  }
  for (const f of opts.flags ?? []) {
    const value = typeof f.value === "string" && !f.raw ? parseValue(f.value) : f.value;
    setPath(raw, f.path.split("."), value, f.flag);
    origins.set(f.path, `${f.flag} ${typeof f.value === "string" ? f.value : JSON.stringify(f.value)}`);
  }
  for (const [path, value] of Object.entries(opts.fallbacks ?? {})) {
    const current = getPath(raw, path.split("."));
    if (current === undefined || current === null) setPath(raw, path.split("."), value, path);
  }
  return validateConfig(raw, origins);
}
