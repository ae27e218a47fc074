/**
 * The layering of src/ as a test: every relative import of a source file must point to its own
 * folder or to a folder below it. Bottom up: contracts and config (interfaces and the config table,
 * importing nothing of ours) → engine → io → model → tasks, team → algorithm (and its exact test
 * bed) → swap, eval, train, backend → app, report → cli. A forbidden arrow fails with its file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

/** What each top-level folder of src/ may import besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  contracts: [],
  config: [],
  engine: ["contracts"],
  io: ["contracts", "engine"],
  model: ["contracts", "engine", "io"],
  tasks: ["contracts", "engine"],
  team: ["contracts", "engine", "io", "model", "tasks"],
  algorithm: ["contracts", "config", "engine"],
  testbed: ["contracts", "engine", "algorithm"],
  swap: ["contracts", "engine", "model", "team", "algorithm"],
  eval: ["contracts", "engine", "model", "tasks", "team"],
  train: ["contracts", "engine", "model", "tasks", "team", "algorithm", "eval"],
  backend: ["contracts", "config", "engine", "io", "model", "tasks", "team", "algorithm"],
  report: ["contracts", "config", "io"],
  app: [
    "contracts",
    "config",
    "engine",
    "io",
    "model",
    "tasks",
    "team",
    "algorithm",
    "testbed",
    "swap",
    "eval",
    "train",
    "backend",
    "report",
  ],
  cli: [
    "contracts",
    "config",
    "engine",
    "io",
    "model",
    "tasks",
    "team",
    "algorithm",
    "swap",
    "eval",
    "train",
    "backend",
    "app",
    "report",
  ],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : name.endsWith(".ts") ? [p] : [];
  });
}

/** Top-level folder of a path under src/ ("" for src/index.ts and other files at the root). */
const folderOf = (path: string) => {
  const rel = relative(SRC, path).split(sep);
  return rel.length > 1 ? rel[0] : "";
};

test("import rule: no source file imports from a layer above its own", () => {
  const bad: string[] = [];
  let edges = 0;
  for (const file of sourceFiles(SRC)) {
    const from = folderOf(file);
    if (from === "") continue; // src/index.ts is the public API: it may re-export anything.
    const allowed = ALLOWED[from];
    assert.ok(allowed, `src/${from}/ is not in the layer table of this test; add it where it belongs`);
    const code = readFileSync(file, "utf8");
    for (const m of code.matchAll(
      /\bfrom\s+["'](\.{1,2}\/[^"']+)["']|\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g,
    )) {
      const target = folderOf(resolve(dirname(file), m[1] ?? m[2]));
      edges++;
      if (target !== from && !allowed.includes(target))
        bad.push(`${relative(SRC, file)} imports ${m[1] ?? m[2]} (${from} → ${target || "src root"})`);
    }
  }
  assert.ok(edges > 100, `only ${edges} imports seen: the scan is broken`);
  assert.deepEqual(bad, [], "upward imports");
});

test("import rule: the scan sees a forbidden arrow", () => {
  const code = 'import { runStage } from "../algorithm/index.js";\nconst x = await import("../cli/main.js");';
  const targets = [
    ...code.matchAll(/\bfrom\s+["'](\.{1,2}\/[^"']+)["']|\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g),
  ].map((m) => folderOf(resolve(join(SRC, "team"), m[1] ?? m[2])));
  assert.deepEqual(targets, ["algorithm", "cli"]);
  assert.ok(!ALLOWED.team.includes("algorithm") && !ALLOWED.team.includes("cli"));
});
