/**
 * `sat report`: one self-contained HTML page built only from a run directory (style.md §10).
 * Inline CSS and inline SVG charts; no scripts, fonts or other external assets, so the file can be
 * mailed or opened offline. Every string that comes from the run's files is HTML-escaped; the SVG
 * comes from vega's renderer, which escapes the text it draws.
 */
import { join } from "node:path";
import YAML from "yaml";
import { writeFileAtomic } from "../io/atomic.js";
import { renderFigures, type RenderedFigure } from "./charts.js";
import { evalInterval, evalMetricKeys, num, primaryMetric, teamEvalNames, vacuousStages } from "./summary.js";
import { configValue, readRun, type EvalRecord, type RunData, type StageRecord } from "./read.js";

export const REPORT_FILE = "report.html";

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

/** A number for a table cell: integers as they are, large values grouped, small ones to ~3 significant digits. */
export function formatNumber(v: unknown): string {
  const x = num(v);
  if (x === null) return "–";
  if (Number.isInteger(x) && Math.abs(x) < 1e6) return String(x);
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString("en-US");
  if (a >= 1) return String(Number(x.toFixed(3)));
  if (a >= 1e-4) return String(Number(x.toPrecision(3)));
  return x.toExponential(2);
}

const cell = (v: unknown) => `<td class="num">${escapeHtml(formatNumber(v))}</td>`;

function table(id: string, headers: string[], rows: string[][], caption: string): string {
  const head = headers.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.join("")}</tr>`).join("\n");
  return `<table id="${id}"><caption>${escapeHtml(caption)}</caption><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

// ---------------------------------------------------------------------------------------------
// Header: the run's name and the settings that matter for reading the charts.

function radiusText(config: Record<string, unknown> | null): string {
  const base = configValue(config, "algo.kl_radius");
  const perAgent = configValue(config, "team.kl_radius");
  let text = base === undefined ? "–" : String(base);
  if (Array.isArray(perAgent)) {
    const overrides = perAgent
      .map((d, i) => (d === null || d === undefined ? null : `agent ${i}: ${d}`))
      .filter((x) => x);
    if (overrides.length > 0) text += ` (${overrides.join(", ")})`;
  }
  return text;
}

function summary(run: RunData): string {
  const c = run.config;
  const v = (path: string) => {
    const x = configValue(c, path);
    return x === undefined || x === null ? "–" : String(x);
  };
  const dataset = configValue(c, "tasks.dataset");
  const maxSteps = configValue(c, "run.max_steps");
  const items: [string, string][] = [
    ["task", typeof dataset === "string" && dataset !== "" ? `dataset ${dataset}` : v("tasks.name")],
    [
      "agents",
      `${v("team.n_agents")} (${v("team.protocol")}, ${v("team.rounds")} round${v("team.rounds") === "1" ? "" : "s"})`,
    ],
    ["algorithm", `${v("algo.name")}, order ${v("algo.order")}`],
    ["seed", v("run.seed")],
    ["trust region δ", radiusText(c)],
    ["KL quantile level", v("algo.kl_quantile")],
    ["model", `${v("model.preset")} (${v("model.arch")})`],
    ["group size G × prompts", `${v("rollout.n")} × ${v("rollout.prompts_per_step")}`],
    ["stages recorded", `${run.stages.length}${typeof maxSteps === "number" ? ` of ${maxSteps}` : ""}`],
  ];
  return `<dl class="summary">${items.map(([k, x]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(x)}</dd></div>`).join("")}</dl>`;
}

/** The plain-language verdict on the certificate and on monotonicity. */
function statements(run: RunData): string {
  const out: string[] = [];
  const { vacuous, withBound } = vacuousStages(run.stages);
  const gamma = run.stages.map((s) => num(s["cert/gamma"])).find((g) => g !== null);
  const g = gamma != null ? ` (γ = ${formatNumber(gamma)})` : "";
  if (withBound > 0 && vacuous > 0) {
    const share =
      vacuous === withBound
        ? `in every stage (${vacuous} of ${withBound})`
        : `in ${vacuous} of ${withBound} stages`;
    out.push(
      `<p class="verdict vacuous" id="certificate-vacuous"><strong>The certificate was vacuous ${share}${escapeHtml(g)}:</strong> ` +
        "its lower bound on the team's improvement was not positive, so for those stages it guarantees nothing. " +
        "The held-out improvement measured below is the evidence that counts.</p>",
    );
  } else if (withBound > 0) {
    out.push(
      `<p class="verdict ok">The certificate's lower bound was positive in all ${withBound} stages${escapeHtml(g)}.</p>`,
    );
  }
  const measured = run.stages.filter((s) => num(s["cert/improvement"]) !== null);
  if (measured.length > 0) {
    const bad = measured.filter((s) => num(s["cert/monotonicity_violation"])).map((s) => s.step);
    out.push(
      bad.length > 0
        ? `<p class="verdict vacuous" id="monotonicity-violations"><strong>Monotonicity violated in ${bad.length} of ${measured.length} stages</strong> ` +
            `(held-out improvement significantly below zero): stage${bad.length > 1 ? "s" : ""} ${escapeHtml(bad.join(", "))}.</p>`
        : `<p class="verdict ok">No stage had a significant decrease in held-out reward (${measured.length} stages measured).</p>`,
    );
  }
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Tables.

function valueWithInterval(row: Record<string, unknown> | undefined, metric: string): string {
  if (!row || num(row[metric]) === null) return `<td class="num">–</td>`;
  const ci = evalInterval(row, metric);
  const ciText = ci
    ? ` <span class="ci">[${escapeHtml(formatNumber(ci[0]))}, ${escapeHtml(formatNumber(ci[1]))}]</span>`
    : "";
  return `<td class="num">${escapeHtml(formatNumber(row[metric]))}${ciText}</td>`;
}

/** Latest evaluation of every (name, task), one column per name (team first, baselines beside it). */
function evalTable(run: RunData): string {
  if (run.evals.length === 0)
    return `<p class="empty">No evaluations recorded (eval.jsonl is missing or empty).</p>`;
  const latest = new Map<string, EvalRecord>();
  for (const r of run.evals) {
    const key = `${r.name ?? "?"}\u0000${r.task ?? ""}`;
    const old = latest.get(key);
    if (!old || (r.step ?? -1) >= (old.step ?? -1)) latest.set(key, r);
  }
  const team = teamEvalNames(run);
  const names = [...new Set(run.evals.map((r) => r.name ?? "?"))].sort((a, b) => {
    const order = (n: string) => (n === "start" ? 0 : team.has(n) ? 1 : 2);
    return order(a) - order(b);
  });
  const tasks = [...new Set(run.evals.map((r) => r.task ?? ""))];
  const metrics = evalMetricKeys(run.evals);
  const stepOf = (name: string) => {
    const steps = [...latest.values()].filter((r) => (r.name ?? "?") === name).map((r) => r.step);
    return steps.length > 0 && steps.every((s) => s === steps[0]) && steps[0] !== undefined
      ? ` (step ${steps[0]})`
      : "";
  };
  const rows: string[][] = [];
  for (const task of tasks) {
    for (const metric of metrics) {
      const values = names.map((n) => latest.get(`${n}\u0000${task}`));
      if (values.every((r) => !r || num(r[metric]) === null)) continue;
      rows.push([
        `<th scope="row">${escapeHtml(task || "–")}</th>`,
        `<td class="metric">${escapeHtml(metric)}</td>`,
        ...values.map((r) => valueWithInterval(r, metric)),
      ]);
    }
  }
  const main = table(
    "eval-table",
    ["task", "metric", ...names.map((n) => n + stepOf(n))],
    rows,
    "Latest evaluation of the team and each baseline, with 95% intervals where logged",
  );
  // Every row as logged, for the history and the per-agent scores.
  const allRows = run.evals.map((r) => {
    const perAgent = Array.isArray(r.per_agent)
      ? r.per_agent
          .map((a, i) => {
            const o = (a ?? {}) as Record<string, unknown>;
            const m = primaryMetric(o);
            return m ? `${num(o.agent) ?? i}: ${formatNumber(o[m])}` : null;
          })
          .filter((x) => x !== null)
          .join(" · ")
      : "";
    return [
      cell(r.step),
      `<td>${escapeHtml(r.name ?? "–")}</td>`,
      `<td>${escapeHtml(r.task ?? "–")}</td>`,
      cell(r.n),
      ...metrics.map((m) => valueWithInterval(r, m)),
      `<td>${escapeHtml(perAgent)}</td>`,
    ];
  });
  const history = table(
    "eval-history",
    ["step", "name", "task", "n", ...metrics, "per agent (headline metric)"],
    allRows,
    "Every evaluation in eval.jsonl",
  );
  return `${main}\n<details><summary>All evaluation rows (${run.evals.length})</summary>${history}</details>`;
}

function heldOutAccuracy(s: StageRecord): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(s)) {
    const m = /^eval\/(.+)\/(avg@\d+)$/.exec(k);
    if (m && num(v) !== null) parts.push(formatNumber(v));
  }
  return parts.join(", ") || "–";
}

function stageTable(run: RunData): string {
  if (run.stages.length === 0)
    return `<p class="empty">No stages recorded (stages.jsonl is missing or empty).</p>`;
  const rows = run.stages.map((s) => {
    const sigma = Array.isArray(s["order/sigma"]) ? s["order/sigma"].join(" → ") : "–";
    const lo = num(s["cert/improvement_ci_low"]);
    const hi = num(s["cert/improvement_ci_high"]);
    const imp = num(s["cert/improvement"]);
    const impText =
      imp === null
        ? "–"
        : formatNumber(imp) +
          (lo !== null && hi !== null ? ` [${formatNumber(lo)}, ${formatNumber(hi)}]` : "");
    const vac = num(s["cert/vacuous"]);
    const mono = num(s["cert/monotonicity_violation"]);
    return [
      cell(s.step),
      `<td>${escapeHtml(sigma)}</td>`,
      cell(s["reward/mean"]),
      `<td class="num">${escapeHtml(heldOutAccuracy(s))}</td>`,
      cell(s["cert/surrogate_sum"]),
      cell(s["cert/lower_bound"]),
      `<td class="${vac ? "flag" : ""}">${vac === null ? "–" : vac ? "vacuous" : "no"}</td>`,
      `<td class="num">${escapeHtml(impText)}</td>`,
      `<td class="${mono ? "flag" : ""}">${mono === null ? "–" : mono ? "violation" : "no"}</td>`,
      cell(s["timing_s/step"]),
    ];
  });
  const team = table(
    "stage-table",
    [
      "stage",
      "order σ",
      "reward",
      "held-out acc.",
      "Σ surrogate gain",
      "lower bound",
      "vacuous",
      "improvement [95%]",
      "monotonicity",
      "time (s)",
    ],
    rows,
    "Team-level record of every stage",
  );
  const agentRows: string[][] = [];
  for (const s of run.stages) {
    for (const a of s.agents ?? []) {
      const accepted = num(a["trust_region/accepted"]);
      agentRows.push([
        cell(s.step),
        cell(a.agent),
        cell(a["order/position"]),
        cell(a["trust_region/kl_quantile"]),
        cell(a["trust_region/kl_max"]),
        cell(a["trust_region/kl_radius"]),
        cell(a["trust_region/violation_rate"]),
        cell(a["trust_region/backtracks"]),
        `<td class="${accepted === 0 ? "flag" : ""}">${accepted === null ? "–" : accepted ? "yes" : "no (kept old)"}</td>`,
        cell(a["trust_region/kl_coef_next"]),
        cell(a["surrogate/gain"]),
        cell(a["is/trunc_bias"]),
      ]);
    }
  }
  const agents = table(
    "agent-table",
    [
      "stage",
      "agent",
      "position",
      "KL quantile",
      "KL max",
      "δ",
      "violation rate",
      "backtracks",
      "accepted",
      "β next",
      "surrogate gain",
      "trunc. bias ζ",
    ],
    agentRows,
    "Per-agent record of every stage (position is 0-based in the update order σ)",
  );
  return `${team}\n<details><summary>Per-agent rows (${agentRows.length})</summary>${agents}</details>`;
}

function figureHtml(f: RenderedFigure): string {
  const body = f.svg ?? `<p class="empty">No data: ${escapeHtml(f.empty ?? "nothing to draw")}.</p>`;
  const source = f.source ? ` data-source="${escapeHtml(f.source)}"` : "";
  return `<figure id="${escapeHtml(f.id)}"${source}><h3>${escapeHtml(f.title)}</h3>${body}<figcaption>${escapeHtml(f.caption)}</figcaption></figure>`;
}

const CSS = `
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#e3e3e3;--bad:#b3261e;--bad-bg:#fdecea;--ok:#1e6b34;--ok-bg:#e8f5ec}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 2px}h2{font-size:18px;margin:32px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:14px;margin:0 0 8px}
.sub{color:var(--muted);margin:0 0 16px}
code{font:12px ui-monospace,Menlo,Consolas,monospace}
.summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:8px 20px;margin:0;padding:14px 16px;background:#fff;border:1px solid var(--line);border-radius:8px}
.summary div{min-width:0}.summary dt{color:var(--muted);font-size:12px}.summary dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.verdict{padding:10px 14px;border-radius:6px;margin:12px 0}
.verdict.vacuous{background:var(--bad-bg);border-left:4px solid var(--bad)}.verdict.ok{background:var(--ok-bg);border-left:4px solid var(--ok)}
.warnings{background:#fff8e1;border-left:4px solid #f9a825;padding:8px 14px 8px 32px;margin:12px 0}
.figures{display:grid;grid-template-columns:minmax(0,1fr);gap:18px}
figure{margin:0;padding:14px;background:#fff;border:1px solid var(--line);border-radius:8px;min-width:0;overflow-x:auto}
figure svg{display:block;max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:12.5px;margin-top:8px}
table{border-collapse:collapse;background:#fff;margin:8px 0 12px;font-size:13px}
caption{text-align:left;color:var(--muted);font-size:12.5px;padding-bottom:6px}
th,td{border:1px solid var(--line);padding:4px 9px;text-align:left;vertical-align:top}
thead th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ci{color:var(--muted);font-size:11.5px}
td.flag{color:var(--bad);font-weight:600}
.empty{color:var(--muted);font-style:italic}
details{margin:8px 0}summary{cursor:pointer;color:var(--muted)}
pre{background:#fff;border:1px solid var(--line);padding:12px;overflow:auto;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
footer{color:var(--muted);font-size:12px;margin-top:40px}
@media print{body{background:#fff}figure{break-inside:avoid}}
`;

/** Renders the report of an already-read run (`figures`: already rendered charts of that run, if any). */
export async function renderRunReport(run: RunData, figures?: RenderedFigure[]): Promise<string> {
  figures ??= await renderFigures(run);
  const lastTime = run.stages
    .map((s) => num(s.time))
    .filter((t) => t !== null)
    .pop();
  const when =
    lastTime != null
      ? ` · last stage written ${new Date(lastTime * 1000).toISOString().replace(".000Z", "Z")}`
      : "";
  const warnings =
    run.warnings.length > 0
      ? `<ul class="warnings" id="warnings">${run.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join("")}</ul>`
      : "";
  const configYaml = run.config ? YAML.stringify(run.config) : null;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sat-llm report">
<title>SAT report · ${escapeHtml(run.name)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>${escapeHtml(run.name)}</h1>
<p class="sub">SAT training report built from <code>${escapeHtml(run.dir)}</code>${escapeHtml(when)}</p>
${summary(run)}
</header>
${warnings}
${statements(run)}
<h2 id="charts">Charts</h2>
<section class="figures">
${figures.map(figureHtml).join("\n")}
</section>
<h2 id="evaluation">Evaluation</h2>
${evalTable(run)}
<h2 id="stages">Stages</h2>
${stageTable(run)}
<h2 id="config">Configuration</h2>
${configYaml ? `<details><summary>Resolved configuration</summary><pre>${escapeHtml(configYaml)}</pre></details>` : `<p class="empty">No resolved configuration in the run directory.</p>`}
<footer>Generated by <code>sat report</code> from config.resolved.yaml, stages.jsonl, eval.jsonl and sweep.jsonl only.</footer>
</main>
</body>
</html>
`;
}

/** Reads `runDir` and renders its report as one HTML string. Throws JsonlError (file:line) on a damaged file. */
export async function renderReport(runDir: string): Promise<string> {
  return renderRunReport(readRun(runDir));
}

/** Writes the report atomically to `outPath` (default <runDir>/report.html); returns the path written. */
export async function writeReport(
  runDir: string,
  outPath: string = join(runDir, REPORT_FILE),
): Promise<string> {
  const html = await renderReport(runDir);
  writeFileAtomic(outPath, html);
  return outPath;
}
