/**
 * `sat report` on the synthetic run in test/fixtures/run-example: every figure is drawn from the
 * run's own numbers, tables hold the expected rows, text from the files is escaped, and damaged or
 * missing files degrade as documented (torn last line tolerated, bad middle line = file:line error).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cpSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  appendFileSync,
  existsSync,
  readdirSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FIGURE_IDS, renderFigures } from "../src/report/charts.js";
import { escapeHtml, formatNumber, renderReport, renderRunReport, writeReport } from "../src/report/html.js";
import { evalInterval, evalMetricKeys } from "../src/report/summary.js";
import { readRun, type StageRecord } from "../src/report/read.js";

const FIXTURE = fileURLToPath(new URL("../../test/fixtures/run-example", import.meta.url));

function jsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}

/** A scratch copy of the fixture, changed by `edit(dir)`. */
function copyFixture(edit: (dir: string) => void = () => {}): string {
  const dir = join(mkdtempSync(join(tmpdir(), "sat-report-")), "run");
  cpSync(FIXTURE, dir, { recursive: true });
  edit(dir);
  return dir;
}

function figure(html: string, id: string): string {
  const start = html.indexOf(`<figure id="${id}"`);
  assert.ok(start >= 0, `figure ${id} missing`);
  return html.slice(start, html.indexOf("</figure>", start));
}

/** Data-mark items (points, lines, bars, rules) inside role-mark groups, i.e. not axes or legends. */
function dataMarks(svg: string): number {
  let n = 0;
  for (const chunk of svg.split('<g class="').slice(1)) {
    if (/^mark-\w+ role-mark/.test(chunk)) n += (chunk.match(/role="graphics-symbol"/g) ?? []).length;
  }
  return n;
}

/** Body rows of the table with this id, as lists of cell texts. */
function tableRows(html: string, id: string): string[][] {
  const start = html.indexOf(`<table id="${id}"`);
  assert.ok(start >= 0, `table ${id} missing`);
  const body = html.slice(html.indexOf("<tbody>", start), html.indexOf("</tbody>", start));
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) =>
    [...m[1].matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((c) => c[1].replace(/<[^>]+>/g, "")),
  );
}

const stagesFile = jsonl(join(FIXTURE, "stages.jsonl")) as StageRecord[];
const evalFile = jsonl(join(FIXTURE, "eval.jsonl"));

// One render of the fixture, shared by the tests below (rendering is the slow part).
const fixtureRun = readRun(FIXTURE);
const fixtureFigures = renderFigures(fixtureRun);
const fixtureHtml = fixtureFigures.then((f) => renderRunReport(fixtureRun, f));

test("fixture: every figure has an <svg> with drawn marks and the chart compiler had nothing to complain about", async () => {
  const html = await fixtureHtml;
  for (const id of FIGURE_IDS) {
    const fig = figure(html, id);
    assert.match(fig, /<svg\b/, `${id} has no svg`);
    assert.ok(dataMarks(fig) >= 6, `${id} has only ${dataMarks(fig)} data marks`);
    assert.match(fig, /<figcaption>[^<]{20,}<\/figcaption>/, `${id} has no caption`);
  }
  for (const f of await fixtureFigures) assert.deepEqual(f.warnings, [], `${f.id} chart warnings`);
  assert.deepEqual(fixtureRun.warnings, []);
});

test("fixture: the charts show the run's own numbers (δ rules, vacuous stages, violations, sweep)", async () => {
  const html = await fixtureHtml;
  // One δ rule per agent, at the radius the stages logged for that agent.
  const radii = [...figure(html, "fig-kl").matchAll(/aria-label="Max of radius: ([\d.]+)"/g)].map((m) =>
    Number(m[1]),
  );
  assert.deepEqual(
    radii,
    stagesFile[0].agents!.map((a) => a["trust_region/kl_radius"]),
  );
  // Vacuous stages are flagged on the lower bound; monotonicity violations on the improvement chart.
  const vacuous = stagesFile.filter((s) => s["cert/vacuous"] === 1).length;
  const cert = figure(html, "fig-certificate");
  assert.equal((cert.match(/lower bound: vacuous \(≤ 0\)"/g) ?? []).length, vacuous);
  assert.match(cert, new RegExp(`vacuous in ${vacuous} of ${stagesFile.length} stages`));
  const violations = stagesFile.filter((s) => s["cert/monotonicity_violation"] === 1);
  assert.ok(violations.length > 0, "the fixture should contain a violation");
  const imp = figure(html, "fig-improvement");
  const flagged = [...imp.matchAll(/aria-label="stage: (\d+); [^"]*status: significant decrease"/g)].map(
    (m) => Number(m[1]),
  );
  assert.deepEqual(
    flagged,
    violations.map((s) => s.step),
  );
  // With sweep.jsonl the violation chart is against δ: one point per sweep row.
  const viol = figure(html, "fig-violation");
  assert.match(viol, /data-source="sweep"/);
  const sweepRows = jsonl(join(FIXTURE, "sweep.jsonl")).length;
  assert.equal((viol.match(/aria-roledescription="point"/g) ?? []).length, sweepRows);
  // The rejected update (every candidate failed) is marked on the backtracks chart.
  const rejected = stagesFile.flatMap((s) =>
    s.agents!.filter((a) => a["trust_region/accepted"] === 0),
  ).length;
  assert.equal((figure(html, "fig-backtracks").match(/>✕ kept old<\/text>/g) ?? []).length, rejected);
});

test("fixture: evaluation table puts the latest team result beside the baselines, one row per metric", async () => {
  const html = await fixtureHtml;
  const rows = tableRows(html, "eval-table");
  const metrics = evalMetricKeys(evalFile);
  assert.deepEqual(metrics, ["avg@1", "pass@4", "pass@8", "maj@8"]);
  assert.deepEqual(
    rows.map((r) => `${r[0]} ${r[1]}`),
    metrics.map((m) => `add ${m}`),
  );
  const head = html.slice(
    html.indexOf('<table id="eval-table"'),
    html.indexOf("</thead>", html.indexOf('<table id="eval-table"')),
  );
  assert.deepEqual(
    [...head.matchAll(/<th scope="col">([^<]*)<\/th>/g)].map((m) => m[1]),
    ["task", "metric", "start (step 0)", "sat (step 6)", "single (step 6)"],
  );
  // Cells carry the latest row of each name, with its interval.
  const latestSat = evalFile
    .filter((r) => r.name === "sat")
    .sort((a, b) => (b.step as number) - (a.step as number))[0];
  const avg = rows.find((r) => r[1] === "avg@1")!;
  assert.equal(avg[3], `${latestSat["avg@1"]} [${latestSat["avg@1/ci_low"]}, ${latestSat["avg@1/ci_high"]}]`);
  assert.equal(tableRows(html, "eval-history").length, evalFile.length);
});

test("fixture: stage tables, the vacuous-certificate statement, and a page with no scripts or external assets", async () => {
  const html = await fixtureHtml;
  assert.equal(tableRows(html, "stage-table").length, stagesFile.length);
  const agentRows = stagesFile.reduce((n, s) => n + s.agents!.length, 0);
  assert.equal(tableRows(html, "agent-table").length, agentRows);
  const stage4 = tableRows(html, "stage-table").find((r) => r[0] === "4")!;
  assert.equal(stage4[8], "violation");
  assert.match(
    html,
    /id="certificate-vacuous"[^>]*><strong>The certificate was vacuous in every stage \(6 of 6\)/,
  );
  assert.match(html, /Monotonicity violated in 1 of 6 stages/);
  assert.doesNotMatch(html, /<script\b/i);
  assert.doesNotMatch(html, /\b(src|href)="(https?:)?\/\//i);
  assert.doesNotMatch(html, /url\(|@import|<link\b/i);
  // Header summary from the config.
  for (const [k, v] of [
    ["task", "add"],
    ["seed", "7"],
    ["trust region δ", "0.01 (agent 2: 0.02)"],
  ]) {
    assert.match(html, new RegExp(`<dt>${k}</dt><dd>${v.replace(/[()]/g, "\\$&")}</dd>`));
  }
});

test("text from the run's files is HTML-escaped, in the page and inside the charts", async () => {
  const dir = copyFixture((d) => {
    const cfg = join(d, "config.resolved.yaml");
    writeFileSync(
      cfg,
      readFileSync(cfg, "utf8")
        .replace(/^  name: add$/m, `  name: "<script>alert('task')</script>"`)
        .replace(/^  output_dir: .*$/m, `  output_dir: "runs/a&b<i>"`),
    );
    const ev = join(d, "eval.jsonl");
    writeFileSync(
      ev,
      readFileSync(ev, "utf8").replaceAll('"task":"add"', '"task":"<img src=x onerror=alert(1)>"'),
    );
    rmSync(join(d, "sweep.jsonl"));
  });
  try {
    const html = await renderReport(dir);
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /<img/i);
    assert.doesNotMatch(html, /<i>/);
    assert.match(html, /<dd>&lt;script&gt;alert\(&#39;task&#39;\)&lt;\/script&gt;<\/dd>/);
    assert.match(html, /<h1>a&amp;b&lt;i&gt;<\/h1>/);
    // The task name reached the accuracy chart's legend and the eval table, escaped in both.
    assert.match(figure(html, "fig-reward"), /&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.match(tableRows(html, "eval-table")[0][0], /^&lt;img/);
    // No sweep.jsonl: the violation-rate chart falls back to one point per (stage, agent).
    const viol = figure(html, "fig-violation");
    assert.match(viol, /data-source="stages"/);
    const points = stagesFile.reduce((n, s) => n + s.agents!.length, 0);
    assert.equal((viol.match(/aria-roledescription="point"/g) ?? []).length, points);
  } finally {
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
});

test("only stages.jsonl, ending in a torn line: report still renders, says what is missing, writes atomically", async () => {
  const dir = copyFixture((d) => {
    for (const f of ["config.resolved.yaml", "eval.jsonl", "sweep.jsonl", "README.md"]) rmSync(join(d, f));
    appendFileSync(join(d, "stages.jsonl"), '{"step":7,"reward/mean":0.5,"agen');
  });
  try {
    const out = await writeReport(dir);
    assert.equal(out, join(dir, "report.html"));
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes(".tmp-")),
      [],
      "temp file left behind",
    );
    const html = readFileSync(out, "utf8");
    const warnings = html.slice(html.indexOf('<ul class="warnings"'), html.indexOf("</ul>"));
    assert.match(warnings, new RegExp(`stages\\.jsonl:${stagesFile.length + 1}: ignored a torn last line`));
    assert.match(warnings, /config\.resolved\.yaml is missing/);
    assert.match(warnings, /eval\.jsonl is missing/);
    assert.equal(tableRows(html, "stage-table").length, stagesFile.length);
    assert.match(html, /No evaluations recorded/);
    assert.match(figure(html, "fig-violation"), /data-source="stages"/);
    for (const id of ["fig-kl", "fig-certificate", "fig-improvement", "fig-backtracks"])
      assert.ok(dataMarks(figure(html, id)) > 0, id);
  } finally {
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
});

test("a damaged line in the middle is an error naming file:line (and the key, for a wrong type)", async () => {
  const lines = readFileSync(join(FIXTURE, "stages.jsonl"), "utf8").split("\n");
  const broken = copyFixture((d) => {
    const copy = [...lines];
    copy[2] = copy[2].slice(0, 40); // line 3 cut short, with complete lines after it
    writeFileSync(join(d, "stages.jsonl"), copy.join("\n"));
  });
  const wrongType = copyFixture((d) => {
    const copy = [...lines];
    copy[1] = copy[1].replace('"reward/mean":', '"reward/mean":"high","x":');
    writeFileSync(join(d, "stages.jsonl"), copy.join("\n"));
    const ev = readFileSync(join(d, "eval.jsonl"), "utf8").split("\n");
    ev[1] = "not json";
    writeFileSync(join(d, "eval.jsonl"), ev.join("\n"));
  });
  try {
    assert.throws(() => readRun(broken), /run\/stages\.jsonl:3: not valid JSON/);
    await assert.rejects(renderReport(broken), /stages\.jsonl:3:/);
    assert.throws(
      () => readRun(wrongType),
      /stages\.jsonl:2: key "reward\/mean" must be a number or null, got the string "high"/,
    );
    writeFileSync(join(wrongType, "stages.jsonl"), lines.join("\n"));
    assert.throws(() => readRun(wrongType), /eval\.jsonl:2: not valid JSON/);
  } finally {
    for (const d of [broken, wrongType]) rmSync(join(d, ".."), { recursive: true, force: true });
  }
});

test("stages.jsonl written one row per (stage, agent) reads the same as one object per stage", () => {
  const dir = copyFixture((d) => {
    const rows = stagesFile.flatMap(({ agents, ...team }) => [
      team,
      ...agents!.map((a) => ({ ...a, step: team.step })),
    ]);
    writeFileSync(join(d, "stages.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  });
  try {
    assert.deepEqual(readRun(dir).stages, readRun(FIXTURE).stages);
  } finally {
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
});

test("fixture is self-consistent: lower bound = gain − penalties, surrogate sum = accepted agents' gains", () => {
  for (const s of stagesFile) {
    const lb =
      s["cert/surrogate_sum"]! -
      s["cert/occupancy_penalty"]! -
      s["cert/bias_penalty"]! -
      s["cert/sample_penalty"]!;
    assert.ok(
      Math.abs(lb - s["cert/lower_bound"]!) < 0.2,
      `stage ${s.step}: ${lb} vs ${s["cert/lower_bound"]}`,
    );
    assert.equal(s["cert/vacuous"], s["cert/lower_bound"]! <= 0 ? 1 : 0);
    const gains = s.agents!.reduce((acc, a) => acc + (a["surrogate/gain"] as number), 0);
    assert.ok(Math.abs(gains - s["cert/surrogate_sum"]!) < 1e-3);
    assert.equal(s["cert/monotonicity_violation"], s["cert/improvement_ci_high"]! < 0 ? 1 : 0);
  }
  assert.ok(existsSync(join(FIXTURE, "README.md")));
});

test("helpers: escaping, number format, metric columns and interval lookup", () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  assert.equal(formatNumber(null), "–");
  assert.equal(formatNumber(Number.NaN), "–");
  assert.equal(formatNumber(-12801.1), "-12,801");
  assert.equal(formatNumber(0.008279), "0.00828");
  assert.equal(formatNumber(104.94), "104.94");
  assert.equal(formatNumber(3), "3");
  const row = {
    step: 1,
    n: 9,
    "avg@1": 0.5,
    ci_low: 0.4,
    ci_high: 0.6,
    "pass@8": 0.7,
    "pass@8/ci_low": 0.6,
    "pass@8/ci_high": 0.8,
    "maj@4": 0.55,
    "pass@2": 0.6,
    rouge: 0.1,
  };
  assert.deepEqual(evalMetricKeys([row]), ["avg@1", "pass@2", "pass@8", "maj@4", "rouge"]);
  assert.deepEqual(evalInterval(row, "avg@1"), [0.4, 0.6]);
  assert.deepEqual(evalInterval(row, "pass@8"), [0.6, 0.8]);
  assert.equal(evalInterval(row, "maj@4"), null);
});
