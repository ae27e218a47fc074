/**
 * `sat report` on experiment results: a chart (inline SVG, one mark per value) and a table per
 * results table, values with their intervals merged into one cell, the same cells in markdown, a
 * directory of results in one page, and a damaged results file named in one line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  chartSpec,
  displayRows,
  isExperimentPath,
  markdownOf,
  renderExperimentReport,
  type ExperimentResults,
} from "../src/report/experiment.js";

const SAT = join(fileURLToPath(new URL(".", import.meta.url)), "../../bin/sat.js");

const RESULTS: ExperimentResults = {
  experiment: "demo",
  seconds: 90,
  command: "node dist/experiments/demo.js",
  tables: [
    {
      id: "accuracy",
      title: "Accuracy <by arm>",
      caption: "two arms",
      columns: ["arm", "avg@1", "avg@1 lo", "avg@1 hi", "tokens"],
      rows: [
        ["sat", 0.3304, 0.32, 0.34, 1000],
        ["joint", 0.1, null, null, 1200],
      ],
      chart: { mark: "point", x: "arm", y: "avg@1", rule: 0.28 },
    },
    {
      id: "by-position",
      title: "Rate by position",
      columns: ["δ", "position", "rate"],
      rows: [
        [0.01, 0, 0.4],
        [0.01, 1, 0.5],
        [0.01, 2, 0.6],
        [0.1, 0, 0.2],
        [0.1, 1, 0.2],
        [0.1, 2, 0.3],
      ],
      chart: { mark: "line", x: "position", y: "rate", color: "δ" },
    },
    { id: "notes", title: "No chart", columns: ["k", "v"], rows: [["a", "b"]], chart: null },
  ],
};

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "sat-report-exp-"));
}

/** Data-mark items inside role-mark groups (not axes or legends). */
function dataMarks(svg: string): number {
  let n = 0;
  for (const chunk of svg.split('<g class="').slice(1))
    if (/^mark-\w+ role-mark/.test(chunk)) n += (chunk.match(/role="graphics-symbol"/g) ?? []).length;
  return n;
}

test("report experiment: a value and its interval become one cell, in the page and in markdown", () => {
  const { columns, rows } = displayRows(RESULTS.tables[0]);
  assert.deepEqual(columns, ["arm", "avg@1", "tokens"]);
  assert.deepEqual(rows, [
    ["sat", "0.330 [0.320, 0.340]", "1000"],
    ["joint", "0.100", "1200"],
  ]);
  assert.equal(
    markdownOf(RESULTS.tables[0]),
    "| arm | avg@1 | tokens |\n|---|---|---|\n| sat | 0.330 [0.320, 0.340] | 1000 |\n| joint | 0.100 | 1200 |",
  );
});

test("report experiment: a chart per table with a mark per value, error bars and series, escaped text", async () => {
  const dir = scratch();
  try {
    const file = join(dir, "demo.json");
    writeFileSync(file, JSON.stringify(RESULTS));
    const html = await renderExperimentReport([file]);
    const fig = (id: string) => {
      const at = html.indexOf(`<figure id="fig-${id}"`);
      assert.ok(at >= 0, `figure ${id}`);
      return html.slice(at, html.indexOf("</figure>", at));
    };
    // 2 points + 1 error bar (the row with an interval) + the reference rule.
    assert.equal(dataMarks(fig("accuracy")), 4);
    // Two series of three points each (lines are one path per series: 2 more marks).
    assert.ok(dataMarks(fig("by-position")) >= 6, `${dataMarks(fig("by-position"))} marks`);
    assert.match(fig("notes"), /No chart: this table has no chart/);
    assert.match(html, /Accuracy &lt;by arm&gt;/);
    assert.match(html, /<td class="num">0\.330 \[0\.320, 0\.340\]<\/td>/);
    assert.doesNotMatch(html, /<script/i);
    assert.equal(chartSpec(RESULTS.tables[2]), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("report experiment: sat report takes a results file or their directory; a run directory stays a run report", () => {
  const dir = scratch();
  try {
    const results = join(dir, "results");
    mkdirSync(results);
    writeFileSync(join(results, "demo.json"), JSON.stringify(RESULTS));
    writeFileSync(join(results, "other.json"), JSON.stringify({ ...RESULTS, experiment: "other" }));
    writeFileSync(join(results, "not-results.json"), JSON.stringify({ hello: 1 }));
    const one = spawnSync(process.execPath, [SAT, "report", join(results, "demo.json")], {
      encoding: "utf8",
    });
    assert.equal(one.status, 0, one.stderr);
    assert.equal(one.stdout.trim(), `report: ${join(results, "demo.html")}`);
    const all = spawnSync(process.execPath, [SAT, "report", results], { encoding: "utf8" });
    assert.equal(all.status, 0, all.stderr);
    const page = readFileSync(join(results, "report.html"), "utf8");
    assert.ok(
      page.includes('<section id="experiment-demo">') && page.includes('<section id="experiment-other">'),
    );
    const run = join(dir, "run");
    mkdirSync(run);
    writeFileSync(join(run, "stages.jsonl"), "");
    assert.equal(isExperimentPath(run), false);
    assert.equal(isExperimentPath(results), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("report experiment: a damaged results file is one line naming the file and the table", () => {
  const dir = scratch();
  try {
    const bad = join(dir, "bad.json");
    const broken = structuredClone(RESULTS);
    broken.tables[1].rows[2] = [0.01, 2];
    writeFileSync(bad, JSON.stringify(broken));
    const r = spawnSync(process.execPath, [SAT, "report", bad], { encoding: "utf8" });
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr.trim(), `sat: ${bad}: tables[1]: rows[2] must have 3 cells (one per column)`);
    const chart = structuredClone(RESULTS);
    chart.tables[0].chart = { mark: "point", x: "arm", y: "accuracy" };
    writeFileSync(bad, JSON.stringify(chart));
    const c = spawnSync(process.execPath, [SAT, "report", bad], { encoding: "utf8" });
    assert.equal(c.stderr.trim(), `sat: ${bad}: tables[0]: chart.y names no column: "accuracy"`);
    writeFileSync(bad, "{ not json");
    const j = spawnSync(process.execPath, [SAT, "report", bad], { encoding: "utf8" });
    assert.match(
      j.stderr.trim(),
      new RegExp(`^sat: ${bad.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: not valid JSON \\(`),
    );
    const empty = join(dir, "empty");
    mkdirSync(empty);
    const e = spawnSync(process.execPath, [SAT, "report", empty], { encoding: "utf8" });
    assert.notEqual(e.status, 0);
    assert.match(e.stderr, /neither a run directory .* nor a directory of experiment results/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
