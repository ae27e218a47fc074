/**
 * Every config key must be read somewhere in src/ outside src/config/ — a key nobody reads is a
 * knob that silently does nothing. Keys whose consumers have not landed yet are listed in
 * NOT_YET_CONSUMED; the test prints that list and the entries that are now consumed, so the list
 * can only shrink. A key counts as read when the code (comments and strings stripped) spells
 * `section.leaf` (e.g. `cfg.algo.kl_radius`, `algo.kl_radius`), or, for a leaf name that is unique
 * in the schema and has an underscore, the bare leaf as a property (`.max_backtracks`, `{ max_backtracks }`),
 * or when the stage-config table (STAGE_KEYS) maps it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { listKeys } from "../src/config/index.js";
import { STAGE_KEYS } from "../src/algorithm/config.js";

/** Keys defined before the code that reads them. Remove an entry when its consumer lands. */
const NOT_YET_CONSUMED = new Set<string>([]);

const srcRoot = fileURLToPath(new URL("../../src/", import.meta.url));

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (relative(srcRoot, p) !== "config") out.push(...sourceFiles(p));
    } else if (name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Drops comments and string literals, so help texts and key-path strings do not count as reads. */
function codeOnly(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/\/\/[^\n]*/g, " ")
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, '""');
}

test("every config key is read outside src/config/ or explicitly listed as not yet consumed", () => {
  const code = sourceFiles(srcRoot)
    .map((f) => codeOnly(readFileSync(f, "utf8")))
    .join("\n");
  const keys = listKeys();
  const nameCount = new Map<string, number>();
  for (const k of keys) nameCount.set(k.name, (nameCount.get(k.name) ?? 0) + 1);
  // The stage-config table reads its keys by path (algorithm/config.ts).
  const tableKeys = new Set<string>(Object.values(STAGE_KEYS));
  const isRead = (section: string, name: string) => {
    if (tableKeys.has(`${section}.${name}`)) return true;
    if (new RegExp(`\\b${section}\\??\\.${name}\\b`).test(code)) return true;
    const distinctive = nameCount.get(name) === 1 && name.includes("_");
    return distinctive && new RegExp(`(\\.|\\{\\s*|,\\s*)${name}\\b`).test(code);
  };
  const unread: string[] = [];
  const nowRead: string[] = [];
  for (const k of keys) {
    const read = isRead(k.section, k.name);
    if (!read && !NOT_YET_CONSUMED.has(k.path)) unread.push(k.path);
    if (read && NOT_YET_CONSUMED.has(k.path)) nowRead.push(k.path);
  }
  const stale = [...NOT_YET_CONSUMED].filter((p) => !keys.some((k) => k.path === p));
  const pending = [...NOT_YET_CONSUMED].filter((p) => !nowRead.includes(p));
  console.log(
    `config keys not read by src/ yet (${pending.length} of ${keys.length}): ${pending.join(", ")}`,
  );
  if (nowRead.length > 0) console.log(`now read, remove from NOT_YET_CONSUMED: ${nowRead.join(", ")}`);
  assert.deepEqual(stale, [], "NOT_YET_CONSUMED names keys the schema does not have");
  assert.deepEqual(unread, [], "keys nobody reads: consume them in src/ or add them to NOT_YET_CONSUMED");
});

test("the usage check itself sees reads and ignores strings and comments", () => {
  const sample = codeOnly('const r = cfg.algo.kl_radius; // run.seed\nconst s = "eval.k";\nf(`rollout.n`);');
  assert.match(sample, /\balgo\??\.kl_radius\b/);
  assert.doesNotMatch(sample, /run\.seed|eval\.k|rollout\.n/);
});
