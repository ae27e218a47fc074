/**
 * `sat report` on an experiment's results (experiments/results/<name>.json, or the directory of
 * them): one self-contained page with, for every table the experiment wrote, a chart and the table.
 *
 * A results file holds `tables`, each a list of columns and rows of numbers or text, and an optional
 * chart spec naming the columns to draw. A column `X` followed by `X lo` and `X hi` is a value with
 * its 95% interval: the table shows it as one cell "x [lo, hi]" and the chart as a point with an
 * error bar. `displayRows` is also how the experiment scripts write their markdown tables, so the
 * page and the markdown show the same numbers.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { TopLevelSpec } from "vega-lite";
import { JsonlError } from "../io/jsonl.js";
import { writeFileAtomic } from "../io/atomic.js";
import { renderSvg } from "./charts.js";
import { escapeHtml } from "./html.js";

export type Cell = string | number | null;

export interface ExperimentChart {
  /** bar: a bar per x; point: a point (with its interval) per x; line: a line per colour over a numeric x. */
  mark: "bar" | "point" | "line";
  x: string;
  y: string;
  /** The column whose values colour the marks (one series per value). */
  color?: string;
  /** Horizontal reference line, e.g. 0 for a change or the start's accuracy. */
  rule?: number;
  /** Log scale on x (line charts over δ). */
  xLog?: boolean;
}

export interface ExperimentTable {
  id: string;
  title: string;
  caption?: string;
  columns: string[];
  rows: Cell[][];
  chart?: ExperimentChart | null;
}

export interface ExperimentResults {
  experiment: string;
  seconds?: number;
  command?: string;
  tables: ExperimentTable[];
  [key: string]: unknown;
}

const LO = " lo";
const HI = " hi";

function fail(where: string, what: string): never {
  throw new JsonlError(`${where}: ${what}`);
}

/** Checks the parts `sat report` reads; every problem names the file and the table. */
export function checkResults(value: unknown, where: string): ExperimentResults {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    fail(where, "expected a JSON object with an experiment's results");
  const r = value as Record<string, unknown>;
  if (typeof r.experiment !== "string") fail(where, `"experiment" must be a string (the experiment's name)`);
  if (!Array.isArray(r.tables)) fail(where, `"tables" must be a list (not an experiment's results file?)`);
  const ids = new Set<string>();
  r.tables.forEach((t: unknown, i: number) => {
    const at = `${where}: tables[${i}]`;
    if (typeof t !== "object" || t === null) fail(at, "must be an object");
    const tb = t as Record<string, unknown>;
    if (typeof tb.id !== "string" || !/^[a-z0-9][a-z0-9-]*$/.test(tb.id))
      fail(at, `"id" must be lower-case letters, digits and dashes, got ${JSON.stringify(tb.id)}`);
    if (ids.has(tb.id)) fail(at, `"id" ${tb.id} appears twice`);
    ids.add(tb.id);
    if (typeof tb.title !== "string") fail(at, `"title" must be a string`);
    if (!Array.isArray(tb.columns) || !tb.columns.every((c) => typeof c === "string"))
      fail(at, `"columns" must be a list of strings`);
    if (!Array.isArray(tb.rows)) fail(at, `"rows" must be a list`);
    const width = tb.columns.length;
    tb.rows.forEach((row: unknown, j: number) => {
      if (!Array.isArray(row) || row.length !== width)
        fail(at, `rows[${j}] must have ${width} cells (one per column)`);
      for (const c of row)
        if (!(c === null || typeof c === "string" || (typeof c === "number" && Number.isFinite(c))))
          fail(at, `rows[${j}] holds ${JSON.stringify(c)}; cells are text, finite numbers or null`);
    });
    const chart = tb.chart as Record<string, unknown> | null | undefined;
    if (chart) {
      if (!["bar", "point", "line"].includes(chart.mark as string))
        fail(at, `chart.mark must be bar, point or line, got ${JSON.stringify(chart.mark)}`);
      for (const key of ["x", "y", "color"] as const) {
        const col = chart[key];
        if (col === undefined && key === "color") continue;
        if (typeof col !== "string" || !(tb.columns as string[]).includes(col))
          fail(at, `chart.${key} names no column: ${JSON.stringify(col)}`);
      }
    }
  });
  return r as ExperimentResults;
}

/** Formats a number for a table: up to 3 decimals, integers as they are. */
export function formatCell(c: Cell): string {
  if (c === null) return "–";
  if (typeof c === "string") return c;
  if (Number.isInteger(c)) return String(c);
  const a = Math.abs(c);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return c.toExponential(2);
  return c.toFixed(3);
}

/** Columns and rows as shown: `X`, `X lo`, `X hi` merged into one "x [lo, hi]" column headed "X". */
export function displayRows(t: ExperimentTable): { columns: string[]; rows: string[][] } {
  const keep: { col: number; lo: number; hi: number }[] = [];
  for (let c = 0; c < t.columns.length; c++) {
    const name = t.columns[c];
    if (name.endsWith(LO) || name.endsWith(HI)) {
      const base = name.slice(0, -LO.length);
      if (t.columns.includes(base)) continue;
    }
    keep.push({ col: c, lo: t.columns.indexOf(name + LO), hi: t.columns.indexOf(name + HI) });
  }
  return {
    columns: keep.map((k) => t.columns[k.col]),
    rows: t.rows.map((row) =>
      keep.map(({ col, lo, hi }) => {
        const v = formatCell(row[col]);
        if (lo < 0 || hi < 0 || row[lo] === null || row[hi] === null || row[col] === null) return v;
        return `${v} [${formatCell(row[lo])}, ${formatCell(row[hi])}]`;
      }),
    ),
  };
}

/** A table as GitHub markdown (the experiments' results/<name>.md). */
export function markdownOf(t: ExperimentTable): string {
  const { columns, rows } = displayRows(t);
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  return [
    `| ${columns.map(esc).join(" | ")} |`,
    `|${columns.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}

/** The Vega-Lite spec of a table's chart, or null when it has none or no numbers to draw. */
export function chartSpec(t: ExperimentTable): TopLevelSpec | null {
  const c = t.chart;
  if (!c) return null;
  const at = (name: string) => t.columns.indexOf(name);
  const [ix, iy, ilo, ihi] = [at(c.x), at(c.y), at(c.y + LO), at(c.y + HI)];
  const ic = c.color ? at(c.color) : -1;
  const values = t.rows
    .filter((r) => typeof r[iy] === "number")
    .map((r) => ({
      x: c.mark === "line" ? r[ix] : formatCell(r[ix]),
      y: r[iy],
      lo: ilo >= 0 ? r[ilo] : null,
      hi: ihi >= 0 ? r[ihi] : null,
      series: ic >= 0 ? formatCell(r[ic]) : "",
    }));
  if (values.length === 0) return null;
  const xEnc =
    c.mark === "line"
      ? { field: "x", type: "quantitative", title: c.x, scale: c.xLog ? { type: "log" } : { zero: false } }
      : { field: "x", type: "nominal", title: c.x, sort: null, axis: { labelAngle: -30, labelLimit: 220 } };
  const color = ic >= 0 ? { color: { field: "series", type: "nominal", title: c.color } } : {};
  const offset = ic >= 0 && c.mark !== "line" ? { xOffset: { field: "series", type: "nominal" } } : {};
  const hasInterval = values.some((v) => typeof v.lo === "number" && typeof v.hi === "number");
  const layers: object[] = [
    {
      mark:
        c.mark === "bar"
          ? { type: "bar", opacity: 0.85 }
          : c.mark === "line"
            ? { type: "line", point: { filled: true, size: 45 } }
            : { type: "point", filled: true, size: 60 },
      encoding: { x: xEnc, y: { field: "y", type: "quantitative", title: c.y }, ...color, ...offset },
    },
  ];
  if (hasInterval)
    layers.push({
      transform: [{ filter: "isValid(datum.lo) && isValid(datum.hi)" }],
      mark: { type: "errorbar", ticks: true },
      encoding: {
        x: xEnc,
        y: { field: "lo", type: "quantitative", title: c.y },
        y2: { field: "hi" },
        ...color,
        ...offset,
      },
    });
  if (c.rule !== undefined)
    layers.push({
      data: { values: [{ r: c.rule }] },
      mark: { type: "rule", strokeDash: [5, 3], color: "#888" },
      encoding: { y: { field: "r", type: "quantitative" } },
    });
  return {
    width: Math.max(320, Math.min(900, 60 * new Set(values.map((v) => String(v.x))).size)),
    height: 220,
    data: { values },
    layer: layers,
    config: {
      font: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
      background: "white",
      legend: { orient: "bottom", labelLimit: 320 },
    },
  } as TopLevelSpec;
}

/** The results files a path names: the file itself, or every results file in a directory. */
export function resultsFilesOf(path: string): string[] {
  if (!existsSync(path)) throw new JsonlError(`${path}: no such file or directory`);
  if (!statSync(path).isDirectory()) return [path];
  const files = readdirSync(path)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => join(path, f))
    .filter((f) => {
      try {
        const v = JSON.parse(readFileSync(f, "utf8")) as Record<string, unknown>;
        return Array.isArray(v.tables) && typeof v.experiment === "string";
      } catch {
        return false;
      }
    });
  if (files.length === 0)
    throw new JsonlError(
      `${path}: neither a run directory (no stages.jsonl, eval.jsonl or config.resolved.yaml) nor a directory of experiment results (no *.json with "tables")`,
    );
  return files;
}

/** True when `path` is an experiment results file, or a directory of them and not a run directory. */
export function isExperimentPath(path: string): boolean {
  if (!existsSync(path)) return false;
  if (!statSync(path).isDirectory()) return path.endsWith(".json");
  const run = ["stages.jsonl", "eval.jsonl", "config.resolved.yaml", "config.json"];
  return !run.some((f) => existsSync(join(path, f)));
}

export function readResults(file: string): ExperimentResults {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new JsonlError(`${file}: not valid JSON (${(err as Error).message.split("\n")[0]})`);
  }
  return checkResults(value, file);
}

const CSS = `
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:36px 0 8px;border-bottom:1px solid #e3e3e3;padding-bottom:4px}
h3{font-size:14px;margin:0 0 8px}.sub{color:#5f6368;margin:0 0 12px}
figure{margin:12px 0;padding:14px;background:#fff;border:1px solid #e3e3e3;border-radius:8px;overflow-x:auto}
figure svg{display:block;max-width:100%;height:auto}figcaption{color:#5f6368;font-size:12.5px;margin-top:8px}
table{border-collapse:collapse;background:#fff;margin:8px 0 12px;font-size:13px}
th,td{border:1px solid #e3e3e3;padding:4px 9px;text-align:left;vertical-align:top}thead th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.empty{color:#5f6368;font-style:italic}code{font:12px ui-monospace,Menlo,Consolas,monospace}
`;

async function tableHtml(t: ExperimentTable, warnings: string[]): Promise<string> {
  const spec = chartSpec(t);
  const svg = spec ? await renderSvg(spec, warnings) : null;
  const { columns, rows } = displayRows(t);
  const head = columns.map((c) => `<th scope="col">${escapeHtml(c)}</th>`).join("");
  const body = rows
    .map(
      (r, i) =>
        `<tr>${r.map((c, j) => `<td${typeof t.rows[i][t.columns.indexOf(columns[j])] === "number" ? ' class="num"' : ""}>${escapeHtml(c)}</td>`).join("")}</tr>`,
    )
    .join("\n");
  return `<figure id="fig-${escapeHtml(t.id)}"><h3>${escapeHtml(t.title)}</h3>${
    svg ?? `<p class="empty">No chart: ${t.chart ? "no numbers to draw" : "this table has no chart"}.</p>`
  }${t.caption ? `<figcaption>${escapeHtml(t.caption)}</figcaption>` : ""}</figure>
<table id="table-${escapeHtml(t.id)}"><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table>`;
}

/** The page for one or more results files (a section per experiment, a chart and a table per table). */
export async function renderExperimentReport(files: string[]): Promise<string> {
  const sections: string[] = [];
  for (const file of files) {
    const r = readResults(file);
    const warnings: string[] = [];
    const parts: string[] = [];
    for (const t of r.tables) parts.push(await tableHtml(t, warnings));
    const meta = [
      r.seconds !== undefined ? `wall time ${(r.seconds / 60).toFixed(1)} min` : null,
      r.command ? `command <code>${escapeHtml(r.command)}</code>` : null,
      typeof r.build_hash === "string" ? `build ${escapeHtml(r.build_hash)}` : null,
    ].filter((x) => x !== null);
    sections.push(
      `<section id="experiment-${escapeHtml(r.experiment)}"><h2>${escapeHtml(r.experiment)}</h2><p class="sub">${escapeHtml(basename(file))}${meta.length ? " · " + meta.join(" · ") : ""}</p>\n${parts.join("\n")}</section>`,
    );
  }
  const title = files.length === 1 ? basename(files[0], ".json") : "experiments";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sat-llm report">
<title>SAT experiments · ${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p class="sub">Built by <code>sat report</code> from ${files.length} results file${files.length > 1 ? "s" : ""}: a chart and a table for each table of each experiment (95% intervals in brackets and as error bars).</p>
${sections.join("\n")}
</main>
</body>
</html>
`;
}

/** Where the page goes by default: <file>.html beside a results file, report.html in a directory. */
export function defaultExperimentReportPath(path: string): string {
  const p = resolve(path);
  return statSync(p).isDirectory() ? join(p, "report.html") : p.replace(/\.json$/, "") + ".html";
}

/** Writes the page for a results file or directory atomically; returns the path written. */
export async function writeExperimentReport(path: string, outPath?: string): Promise<string> {
  const out = outPath ?? defaultExperimentReportPath(path);
  writeFileAtomic(out, await renderExperimentReport(resultsFilesOf(path)));
  return out;
}
