/**
 * Runs the result experiments' --quick variants into a temporary directory and reads what they
 * wrote (shared by the experiments-quick-* tests).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkResults, type ExperimentResults } from "../src/report/experiment.js";

export const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "../..");

export type Row = Record<string, unknown>;

export function quickDir(): { dir: string; results: string; runs: string } {
  const dir = mkdtempSync(join(tmpdir(), "sat-experiments-"));
  return { dir, results: join(dir, "results"), runs: join(dir, "runs") };
}

export function experiment(d: { results: string; runs: string }, name: string): void {
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, "dist/experiments", `${name}.js`),
      "--quick",
      "--results-dir",
      d.results,
      "--runs-dir",
      d.runs,
    ],
    { cwd: ROOT, encoding: "utf8" },
  );
  assert.equal(r.status, 0, `${name} --quick failed: ${r.stderr}`);
}

export const readJson = (results: string, file: string) =>
  JSON.parse(readFileSync(join(results, file), "utf8")) as Row;

export const readLines = (results: string, file: string) =>
  readFileSync(join(results, file), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Row);

/** The results file passes `sat report`'s checks and holds these tables, each with rows. */
export function checkShape(results: string, file: string, tableIds: string[]): ExperimentResults {
  const r = checkResults(readJson(results, file), file);
  assert.deepEqual(
    r.tables.map((t) => t.id),
    tableIds,
  );
  for (const t of r.tables) assert.ok(t.rows.length > 0, `${file}: table ${t.id} has no rows`);
  assert.ok(typeof r.seconds === "number" && r.seconds >= 0);
  assert.equal(r.scale, "quick");
  assert.match(String(r.build_hash), /^[0-9a-f]{16}$/);
  return r;
}
