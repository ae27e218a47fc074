/**
 * The power, ablations and certificate experiments' --quick variants run end to end through the
 * compiled scripts; their summaries agree with the per-stage records they were reduced from, the
 * verdicts follow the rules, the verdict table has a row per claim, and `sat report` renders a
 * chart per table.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { VERDICTS, directional } from "../experiments/stats.js";
import {
  checkShape,
  experiment,
  quickDir,
  readJson,
  readLines,
  ROOT,
  type Row,
} from "./experiments-quick.js";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chartSpec, type ExperimentResults } from "../src/report/experiment.js";
import { verdictOf as ablationVerdict, monotonicity } from "../experiments/ablations.js";
import { verdictOf as certVerdict } from "../experiments/certificate.js";

const d = quickDir();
test.after(() => rmSync(d.dir, { recursive: true, force: true }));

test("experiments: power, ablations and certificate --quick agree with the stage records; verdict table and report", () => {
  experiment(d, "power");
  const p = checkShape(d.results, "power.json", ["designs"]);
  const choice = p.choice as Row;
  experiment(d, "ablations");
  const a = checkShape(d.results, "ablations.json", [
    "accuracy",
    "monotonicity",
    "trust-region",
    "order",
    "intermediate",
    "violation-by-position",
    "position-trend",
    "radius",
  ]);
  const { arms: tested, ...design } = (a.settings as Row).held_out_per_stage as Row;
  assert.deepEqual(design, choice, "the ablations use the power analysis' design");
  assert.deepEqual(tested, ["sat", "sat, no trust region", "joint", "joint + trust region"]);
  const stages = readLines(d.results, "ablations-stages.jsonl");
  const agents = readLines(d.results, "ablations-agents.jsonl");
  const rs = a.runs as Row[];
  assert.equal(rs.length, 12 * 2, "12 arms × 2 seeds");
  for (const run of rs) {
    const own = stages.filter((s) => s.arm === run.arm && s.seed === run.seed);
    assert.equal(own.length, run.stages);
    assert.deepEqual(monotonicity(own), run.monotonicity);
    const measured = own.filter((s) => s.improvement !== null).length;
    assert.equal(
      measured,
      (tested as string[]).includes(run.arm as string) ? own.length : 0,
      `${run.arm}: held-out test`,
    );
  }
  for (const seed of [1, 2]) {
    const sat = rs.find((x) => x.arm === "sat" && x.seed === seed)!;
    const res = rs.find((x) => x.arm === "resample" && x.seed === seed)!;
    assert.ok((res.tokens as number) >= (sat.tokens as number), "resample runs until the sat run's tokens");
  }
  const v = ablationVerdict(rs, agents);
  assert.deepEqual(JSON.parse(JSON.stringify(v)), a.verdict);
  for (const x of v)
    assert.equal(x.verdict, directional((x.estimate as { ci: [number, number] | null }).ci, 1));

  experiment(d, "certificate");
  const c = checkShape(d.results, "certificate.json", ["non-vacuous", "measured", "terms", "per-stage"]);
  const cst = readLines(d.results, "certificate-stages.jsonl");
  const cv = c.verdict as Record<string, Row>;
  assert.equal(cv.paper_non_vacuous.k, cst.filter((s) => (s.lower_bound as number) > 0).length);
  assert.equal(cv.cpo_non_vacuous.k, cst.filter((s) => (s.cpo_bound as number) > 0).length);
  assert.deepEqual(JSON.parse(JSON.stringify(certVerdict(cst))), c.verdict);
  for (const s of cst) assert.equal(s.a_max, 1, "reward units: A_max = 1");

  experiment(d, "verdict");
  const table = readJson(d.results, "verdict.json");
  const rows = table.rows as Row[];
  assert.equal(rows.length, 5);
  for (const row of rows)
    if (["ablations", "certificate"].includes(row.experiment as string))
      assert.ok(VERDICTS.includes(row.verdict as never), `${row.claim}: ${row.verdict}`);
    else
      assert.deepEqual([row.measured, row.verdict], ["not run", "–"], `${row.experiment} did not run here`);

  const out = join(d.dir, "report.html");
  const rep = spawnSync(process.execPath, [join(ROOT, "bin/sat.js"), "report", d.results, "--out", out], {
    encoding: "utf8",
  });
  assert.equal(rep.status, 0, rep.stderr);
  const html = readFileSync(out, "utf8");
  for (const name of ["power", "ablations", "certificate", "verdict"]) {
    const r = readJson(d.results, `${name}.json`) as unknown as ExperimentResults;
    for (const t of r.tables) {
      const at = html.indexOf(`<figure id="fig-${t.id}"`, html.indexOf(`<section id="experiment-${name}"`));
      assert.ok(at >= 0, `${name}: figure for table ${t.id}`);
      const fig = html.slice(at, html.indexOf("</figure>", at));
      if (chartSpec(t)) assert.match(fig, /<svg/, `${name}: table ${t.id} has its chart`);
      else assert.match(fig, /No chart/, `${name}: table ${t.id} says why it has no chart`);
    }
  }
  assert.doesNotMatch(html, /<script/i);
});
