/**
 * The report's charts: Vega-Lite specs built from a RunData, rendered to static SVG strings on the
 * server (vega's headless "none" renderer), so the page needs no script to show them.
 *
 * Every figure has a fixed id (FIGURE_IDS) whether or not its data exist; a figure without data
 * carries a note instead of an SVG. Data are reshaped into long rows with plain field names first,
 * because metric keys such as "eval/add/avg@1" contain characters Vega-Lite treats as paths.
 * Agents keep one colour across all charts. The file is longer than style.md's ~600 lines because it
 * holds six declarative specs that share scales, colours and axes; splitting them would scatter those.
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { configValue, type AgentStageRecord, type RunData } from "./read.js";
import { evalInterval, num, primaryMetric, teamEvalNames, vacuousStages } from "./summary.js";

export const FIGURE_IDS = [
  "fig-reward",
  "fig-kl",
  "fig-beta",
  "fig-violation",
  "fig-backtracks",
  "fig-certificate",
  "fig-improvement",
] as const;
export type FigureId = (typeof FIGURE_IDS)[number];

export interface FigureSpec {
  id: FigureId;
  title: string;
  caption: string;
  /** null when the run has no data for this figure; `empty` then says what is missing. */
  spec: TopLevelSpec | null;
  empty?: string;
  /** Where the data came from, when there is a choice (violation rate: "sweep" or "stages"). */
  source?: string;
}

export interface RenderedFigure extends Omit<FigureSpec, "spec"> {
  /** The chart as an SVG element, or null for an empty figure. */
  svg: string | null;
  /** What the chart compiler or renderer complained about (empty for a clean chart). */
  warnings: string[];
}

const PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d"];
const W = 380;
const H = 210;
const BASE_CONFIG = {
  font: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  background: "white",
  view: { stroke: "#ddd" },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#eee" },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: "bottom" as const, labelLimit: 320 },
  title: { fontSize: 13, subtitleFontSize: 11, subtitleColor: "#555", anchor: "start" as const },
};

const agentLabel = (i: number) => `agent ${i}`;

/** The agent indices present anywhere in the run, for a colour scale shared by all charts. */
function agentDomain(run: RunData): string[] {
  const ids = new Set<number>();
  for (const s of run.stages)
    for (const a of s.agents ?? []) if (typeof a.agent === "number") ids.add(a.agent);
  for (const r of run.sweep ?? []) ids.add(r.agent);
  const n = num(configValue(run.config, "team.n_agents"));
  if (ids.size === 0 && n !== null) for (let i = 0; i < n; i++) ids.add(i);
  return [...ids].sort((a, b) => a - b).map(agentLabel);
}

function agentColor(run: RunData, title = "agent") {
  const domain = agentDomain(run);
  return {
    field: "agent",
    type: "nominal" as const,
    title,
    scale: { domain, range: domain.map((_, i) => PALETTE[i % PALETTE.length]) },
  };
}

const stepAxis = {
  field: "step",
  type: "quantitative" as const,
  title: "stage",
  scale: { zero: false, padding: 12 },
  axis: { tickMinStep: 1, format: "d" },
};

/** Long rows {step, agent, value, ...extra} of one per-agent key over all stages. */
function agentRows(run: RunData, key: keyof AgentStageRecord & string, extra: Record<string, string> = {}) {
  const rows: Record<string, unknown>[] = [];
  for (const s of run.stages) {
    for (const a of s.agents ?? []) {
      const value = num(a[key]);
      if (value === null || typeof a.agent !== "number") continue;
      const row: Record<string, unknown> = { step: s.step, agent: agentLabel(a.agent), value };
      for (const [field, k] of Object.entries(extra)) row[field] = num(a[k]);
      rows.push(row);
    }
  }
  return rows;
}

function rewardFigure(run: RunData): FigureSpec {
  const rewards = run.stages
    .filter((s) => num(s["reward/mean"]) !== null)
    .map((s) => ({ step: s.step, value: num(s["reward/mean"]) }));
  // Held-out accuracy: eval.jsonl rows of the team (with intervals), else the stage keys eval/<task>/avg@k.
  const team = teamEvalNames(run);
  const acc: Record<string, unknown>[] = [];
  const baselines: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  for (const r of run.evals) {
    const metric = primaryMetric(r);
    if (metric === null || typeof r.step !== "number") continue;
    const ci = evalInterval(r, metric);
    const row = {
      step: r.step,
      task: `${r.task ?? "held-out"} ${metric}`,
      value: num(r[metric]),
      lo: ci?.[0],
      hi: ci?.[1],
    };
    if (team.has(r.name ?? "")) {
      acc.push(row);
      seen.add(`${r.step} ${r.task ?? "held-out"}`);
    } else baselines.push({ ...row, name: r.name ?? "baseline" });
  }
  for (const s of run.stages) {
    for (const [key, v] of Object.entries(s)) {
      const m = /^eval\/(.+)\/(avg@\d+)$/.exec(key);
      if (!m || num(v) === null || seen.has(`${s.step} ${m[1]}`)) continue;
      acc.push({ step: s.step, task: `${m[1]} ${m[2]}`, value: num(v) });
    }
  }
  // A baseline is drawn as a level line at its latest evaluation.
  const latestBaseline = new Map<string, Record<string, unknown>>();
  for (const b of baselines) latestBaseline.set(`${b.name} ${b.task}`, b);
  const rewardChart = {
    title: { text: "Team reward", subtitle: "mean over the stage's rollouts" },
    width: W - 60,
    height: H,
    data: { values: rewards },
    mark: { type: "line" as const, point: true, color: "#333" },
    encoding: {
      x: stepAxis,
      y: { field: "value", type: "quantitative" as const, title: "reward/mean", scale: { zero: false } },
    },
  };
  const accLayers: object[] = [
    {
      data: { values: acc.filter((r) => r.lo !== undefined) },
      mark: { type: "errorbar", ticks: true },
      encoding: {
        x: stepAxis,
        y: { field: "lo", type: "quantitative", title: "accuracy" },
        y2: { field: "hi" },
        color: { field: "task", type: "nominal" },
      },
    },
    {
      data: { values: acc },
      mark: { type: "line", point: true },
      encoding: {
        x: stepAxis,
        y: { field: "value", type: "quantitative", title: "accuracy", scale: { domain: [0, 1] } },
        color: { field: "task", type: "nominal", title: "team" },
      },
    },
  ];
  if (latestBaseline.size > 0) {
    const values = [...latestBaseline.values()].map((b) => ({ ...b, label: `${b.name} (step ${b.step})` }));
    accLayers.push(
      {
        data: { values },
        mark: { type: "rule", strokeDash: [5, 3], color: "#888" },
        encoding: { y: { field: "value", type: "quantitative" } },
      },
      {
        data: { values },
        mark: { type: "text", align: "right", dx: -2, dy: 9, color: "#555", fontSize: 10 },
        encoding: {
          x: { value: W - 60 },
          y: { field: "value", type: "quantitative" },
          text: { field: "label" },
        },
      },
    );
  }
  const accChart = {
    title: { text: "Held-out accuracy", subtitle: "team (95% interval); dashed: baselines" },
    width: W - 60,
    height: H,
    layer: accLayers,
  };
  const has = rewards.length + acc.length > 0;
  return {
    id: "fig-reward",
    title: "Team reward and held-out accuracy",
    caption:
      "Left: mean reward of the team's training rollouts at each stage. Right: held-out accuracy of the team " +
      "(evaluations in eval.jsonl, else the stage's eval/<task>/avg@k keys) with 95% intervals where logged; " +
      "baselines appear as dashed levels at their latest evaluation.",
    spec: has ? ({ hconcat: [rewardChart, accChart], config: BASE_CONFIG } as TopLevelSpec) : null,
    empty: has ? undefined : "no reward/mean in stages.jsonl and no evaluations",
  };
}

function klFigure(run: RunData): FigureSpec {
  const rows = agentRows(run, "trust_region/kl_quantile", {
    kl_max: "trust_region/kl_max",
    radius: "trust_region/kl_radius",
    accepted: "trust_region/accepted",
  });
  const fallback = num(configValue(run.config, "algo.kl_radius"));
  for (const r of rows) {
    if (r.radius === null) r.radius = fallback;
    r.status = r.accepted === 0 ? "rejected (old agent kept)" : "accepted";
  }
  const level = num(configValue(run.config, "algo.kl_quantile"));
  const spec = {
    data: { values: rows },
    facet: { column: { field: "agent", type: "nominal", title: null, header: { labelFontSize: 12 } } },
    spec: {
      width: 190,
      height: H,
      layer: [
        {
          mark: { type: "rule", color: "#d62728", strokeDash: [6, 3], strokeWidth: 1.5 },
          encoding: { y: { aggregate: "max", field: "radius", type: "quantitative" } },
        },
        {
          mark: { type: "point", shape: "diamond", color: "#999", size: 30 },
          encoding: { x: stepAxis, y: { field: "kl_max", type: "quantitative" } },
        },
        {
          mark: { type: "line", point: { filled: true, size: 45 } },
          encoding: {
            x: stepAxis,
            y: { field: "value", type: "quantitative", title: "exact KL(new ‖ current)" },
            color: agentColor(run),
          },
        },
        {
          transform: [{ filter: "datum.accepted === 0" }],
          mark: { type: "point", shape: "cross", size: 140, color: "#d62728", strokeWidth: 2 },
          encoding: {
            x: stepAxis,
            y: { field: "value", type: "quantitative" },
            shape: { field: "status", type: "nominal", title: null },
          },
        },
      ],
    },
    config: BASE_CONFIG,
  };
  return {
    id: "fig-kl",
    title: "Trust region: KL quantile per agent against δ",
    caption:
      `Coloured line: the ${level !== null ? `${level}-` : ""}quantile of the exact per-state KL of each agent's accepted update; ` +
      "grey diamonds: the maximum; red dashed rule: the agent's radius δ. A red cross marks a stage where every " +
      "candidate was rejected and the old agent was kept (KL 0).",
    spec: rows.length > 0 ? (spec as TopLevelSpec) : null,
    empty: rows.length > 0 ? undefined : "no trust_region/kl_quantile in stages.jsonl",
  };
}

function betaFigure(run: RunData): FigureSpec {
  const rows = agentRows(run, "actor/kl_coef");
  const spec = {
    width: W,
    height: H,
    data: { values: rows },
    mark: { type: "line", point: { filled: true, size: 40 } },
    encoding: {
      x: stepAxis,
      y: { field: "value", type: "quantitative", title: "β (log scale)", scale: { type: "log" } },
      color: agentColor(run),
    },
    config: BASE_CONFIG,
  };
  const positive = rows.length > 0 && rows.every((r) => (r.value as number) > 0);
  return {
    id: "fig-beta",
    title: "KL penalty β per agent",
    caption:
      "The penalty coefficient each agent's update used. Under the adaptive rule (algo.kl_coef_rule) β grows " +
      "after a full step outside δ and falls after one well inside it.",
    spec: positive ? (spec as TopLevelSpec) : null,
    empty: positive ? undefined : "no positive actor/kl_coef in stages.jsonl (no KL penalty in this run)",
  };
}

function violationFigure(run: RunData): FigureSpec {
  const delta = num(configValue(run.config, "algo.kl_radius"));
  if (run.sweep && run.sweep.length > 0) {
    const rows = run.sweep.map((r) => ({
      radius: r.kl_radius,
      value: r.violation_rate,
      agent: agentLabel(r.agent),
    }));
    const layers: object[] = [
      {
        mark: { type: "line", point: { filled: true, size: 45 } },
        encoding: {
          x: {
            field: "radius",
            type: "quantitative",
            title: "trust-region radius δ (log scale)",
            scale: { type: "log" },
          },
          y: { field: "value", type: "quantitative", title: "violation rate", scale: { domain: [0, 1] } },
          color: agentColor(run),
        },
      },
    ];
    if (delta !== null) {
      layers.push({
        data: { values: [{ radius: delta }] },
        mark: { type: "rule", strokeDash: [4, 3], color: "#888" },
        encoding: { x: { field: "radius", type: "quantitative" } },
      });
    }
    return {
      id: "fig-violation",
      source: "sweep",
      title: "Trust-region violation rate against δ (sweep)",
      caption:
        "Share of tried candidates that violated the trust region, per agent, over a sweep of the radius δ " +
        "(sweep.jsonl); the dashed rule is the run's own δ. The paper reports higher rates for agents later in the " +
        "update order; with a random order, agent index and position differ.",
      spec: {
        width: W + 120,
        height: H,
        data: { values: rows },
        layer: layers,
        config: BASE_CONFIG,
      } as TopLevelSpec,
    };
  }
  const rows = agentRows(run, "trust_region/violation_rate");
  return {
    id: "fig-violation",
    source: "stages",
    title: "Trust-region violation rate per stage",
    caption:
      "Share of tried candidates that violated the trust region (violating ÷ tried) per agent at each stage. The " +
      "run has no sweep.jsonl, so the rate is shown per stage at the run's δ rather than against δ.",
    spec:
      rows.length > 0
        ? ({
            width: W + 120,
            height: H,
            data: { values: rows },
            mark: { type: "line", point: { filled: true, size: 45 } },
            encoding: {
              x: stepAxis,
              y: { field: "value", type: "quantitative", title: "violation rate", scale: { domain: [0, 1] } },
              color: agentColor(run),
            },
            config: BASE_CONFIG,
          } as TopLevelSpec)
        : null,
    empty: rows.length > 0 ? undefined : "no trust_region/violation_rate in stages.jsonl and no sweep.jsonl",
  };
}

function backtracksFigure(run: RunData): FigureSpec {
  const rows = agentRows(run, "trust_region/backtracks", { accepted: "trust_region/accepted" });
  const spec = {
    width: W + 120,
    height: H,
    data: { values: rows },
    encoding: {
      x: { field: "step", type: "ordinal", title: "stage", axis: { labelAngle: 0 } },
      xOffset: { field: "agent", type: "nominal", scale: { domain: agentDomain(run) } },
    },
    layer: [
      {
        mark: { type: "bar" },
        encoding: {
          y: { field: "value", type: "quantitative", title: "backtracks j" },
          color: agentColor(run),
        },
      },
      {
        transform: [{ filter: "datum.accepted === 0" }],
        mark: { type: "text", text: "✕ kept old", dy: -8, fontSize: 10, color: "#d62728" },
        encoding: { y: { field: "value", type: "quantitative" } },
      },
    ],
    config: BASE_CONFIG,
  };
  return {
    id: "fig-backtracks",
    title: "Backtracking steps per agent and stage",
    caption:
      "Line-search steps j taken before an update passed the trust-region check; “✕ kept old” marks an agent whose every candidate was rejected.",
    spec: rows.length > 0 ? (spec as TopLevelSpec) : null,
    empty: rows.length > 0 ? undefined : "no trust_region/backtracks in stages.jsonl",
  };
}

const BOUND_LABEL = "= lower bound";
const CERT_TERMS: [string, string, number, string][] = [
  ["cert/surrogate_sum", "+ surrogate gain Σ L̂", 1, "#4c78a8"],
  ["cert/occupancy_penalty", "− occupancy penalty", -1, "#f58518"],
  ["cert/bias_penalty", "− bias penalty", -1, "#e45756"],
  ["cert/sample_penalty", "− sample penalty", -1, "#72b7b2"],
  ["cert/lower_bound", BOUND_LABEL, 1, "#111"],
  ["cert/cpo_bound", "= CPO-style bound", 1, "#9467bd"],
];
const VACUOUS = ["vacuous (≤ 0)", "non-vacuous (> 0)"];

/** Decades (both signs, and 0) spanning the data, as tick values for a symlog axis; at most ~5 per sign. */
function symlogTicks(values: number[], floor: number): number[] {
  const maxAbs = Math.max(...values.map(Math.abs), floor);
  // The first decade sits 10× above the linear zone, so its label does not collide with 0's.
  const lo = Math.min(Math.ceil(Math.log10(floor)) + 1, Math.floor(Math.log10(maxAbs)));
  const hi = Math.floor(Math.log10(maxAbs));
  const stride = Math.max(1, Math.ceil((hi - lo + 1) / 5));
  const ticks = [0];
  for (let p = hi; p >= lo; p -= stride) {
    if (values.some((v) => v > 0)) ticks.push(10 ** p);
    if (values.some((v) => v < 0)) ticks.push(-(10 ** p));
  }
  return ticks;
}

function certificateFigure(run: RunData): FigureSpec {
  const rows: Record<string, unknown>[] = [];
  const bound: Record<string, unknown>[] = [];
  for (const s of run.stages) {
    for (const [key, label, sign] of CERT_TERMS) {
      const v = num(s[key]);
      // Penalties are logged as magnitudes; they enter the bound with a minus sign.
      if (v !== null) rows.push({ step: s.step, term: label, value: sign < 0 ? -Math.abs(v) : v });
    }
    const lb = num(s["cert/lower_bound"]);
    if (lb !== null) {
      const flag = num(s["cert/vacuous"]);
      bound.push({
        step: s.step,
        value: lb,
        status: (flag !== null ? flag !== 0 : lb <= 0) ? VACUOUS[0] : VACUOUS[1],
      });
    }
  }
  const all = rows.map((r) => r.value as number);
  const nonzero = all.filter((v) => v !== 0).map(Math.abs);
  // symlog is linear below `constant`; put that just under the smallest term so every term shows.
  const constant = nonzero.length > 0 ? 10 ** Math.floor(Math.log10(Math.min(...nonzero))) : 1;
  const y = {
    field: "value",
    type: "quantitative",
    title: "signed term (symlog scale)",
    scale: { type: "symlog", constant },
    axis: { values: symlogTicks(all, constant), format: ",~r", labelOverlap: "greedy" },
  };
  const { vacuous, withBound } = vacuousStages(run.stages);
  const gamma = run.stages.map((s) => num(s["cert/gamma"])).find((g) => g !== null);
  const cpoStages = run.stages.filter((s) => num(s["cert/cpo_bound"]) !== null);
  const cpoVacuous = cpoStages.filter((s) => (num(s["cert/cpo_bound"]) as number) <= 0).length;
  const spec = {
    width: W + 120,
    height: H + 60,
    title: {
      text: "Lower bound and its terms",
      subtitle:
        `lower bound vacuous in ${vacuous} of ${withBound} stages` +
        (cpoStages.length > 0 ? `, CPO-style bound in ${cpoVacuous} of ${cpoStages.length}` : "") +
        (gamma != null ? ` (γ = ${gamma})` : ""),
    },
    layer: [
      {
        data: { values: [{ value: 0 }] },
        mark: { type: "rule", color: "#999" },
        encoding: { y: { field: "value", type: "quantitative" } },
      },
      {
        data: { values: rows },
        mark: { type: "line", point: { size: 25 } },
        encoding: {
          x: stepAxis,
          y,
          color: {
            field: "term",
            type: "nominal",
            title: "term",
            legend: { orient: "right" },
            scale: { domain: CERT_TERMS.map((t) => t[1]), range: CERT_TERMS.map((t) => t[3]) },
          },
          // The bound is dashed and drawn last, so a penalty it nearly equals stays visible under it.
          strokeDash: {
            field: "term",
            type: "nominal",
            title: "term",
            legend: { orient: "right" },
            scale: {
              domain: CERT_TERMS.map((t) => t[1]),
              range: CERT_TERMS.map((t) =>
                t[1] === BOUND_LABEL ? [6, 4] : t[0] === "cert/cpo_bound" ? [2, 2] : [1, 0],
              ),
            },
          },
          strokeWidth: { condition: { test: `datum.term === '${BOUND_LABEL}'`, value: 2 }, value: 3 },
          order: { field: "term", sort: "ascending" },
        },
      },
      {
        data: { values: bound },
        mark: { type: "point", filled: true, size: 110, stroke: "white", strokeWidth: 0.5 },
        encoding: {
          x: stepAxis,
          y: { field: "value", type: "quantitative" },
          shape: {
            field: "status",
            type: "nominal",
            title: "lower bound",
            legend: { orient: "right" },
            scale: { domain: VACUOUS, range: ["triangle-down", "circle"] },
          },
          fill: {
            field: "status",
            type: "nominal",
            title: "lower bound",
            legend: { orient: "right" },
            scale: { domain: VACUOUS, range: ["#d62728", "#2ca02c"] },
          },
        },
      },
    ],
    config: BASE_CONFIG,
  };
  const has = rows.length + bound.length > 0;
  return {
    id: "fig-certificate",
    title: "Certificate terms per stage",
    caption:
      "The terms of the per-stage lower bound on the team's improvement (sat-method §4), each with the sign it " +
      "enters the bound with, on a symmetric-log scale; the dashed black line is the lower bound itself, and a red " +
      "triangle marks a stage where it was vacuous (≤ 0). The purple line is the CPO-style bound (Achiam et al. " +
      "2017): the same gain, bias and sample terms with the expected total variation of the checked steps in place " +
      "of the worst case.",
    spec: has ? (spec as TopLevelSpec) : null,
    empty: has ? undefined : "no cert/* keys in stages.jsonl",
  };
}

function improvementFigure(run: RunData): FigureSpec {
  const rows = run.stages
    .filter((s) => num(s["cert/improvement"]) !== null)
    .map((s) => ({
      step: s.step,
      value: num(s["cert/improvement"]),
      lo: num(s["cert/improvement_ci_low"]),
      hi: num(s["cert/improvement_ci_high"]),
      status: num(s["cert/monotonicity_violation"]) ? "significant decrease" : "no significant decrease",
    }));
  const violations = rows.filter((r) => r.status === "significant decrease").length;
  const status = { domain: ["no significant decrease", "significant decrease"] };
  const spec = {
    width: W + 120,
    height: H,
    title: {
      text: "Held-out improvement with 95% interval",
      subtitle: `${violations} of ${rows.length} stages with a significant decrease`,
    },
    data: { values: rows },
    layer: [
      {
        data: { values: [{ value: 0 }] },
        mark: { type: "rule", color: "#999", strokeDash: [4, 3] },
        encoding: { y: { field: "value", type: "quantitative" } },
      },
      {
        transform: [{ filter: "isValid(datum.lo) && isValid(datum.hi)" }],
        mark: { type: "errorbar", ticks: true },
        encoding: {
          x: stepAxis,
          y: { field: "lo", type: "quantitative", title: "J(new) − J(old), held out" },
          y2: { field: "hi" },
          color: {
            field: "status",
            type: "nominal",
            title: null,
            scale: { ...status, range: ["#4c78a8", "#d62728"] },
          },
        },
      },
      {
        mark: { type: "point", filled: true, size: 70 },
        encoding: {
          x: stepAxis,
          y: { field: "value", type: "quantitative" },
          color: {
            field: "status",
            type: "nominal",
            title: null,
            scale: { ...status, range: ["#4c78a8", "#d62728"] },
          },
          shape: {
            field: "status",
            type: "nominal",
            title: null,
            scale: { ...status, range: ["circle", "triangle-down"] },
          },
        },
      },
    ],
    config: BASE_CONFIG,
  };
  return {
    id: "fig-improvement",
    title: "Empirical improvement per stage",
    caption:
      "Change of the team's expected reward over each stage, measured on fresh held-out rollouts, with its 95% " +
      "interval. Red triangles are monotonicity violations: the whole interval lies below zero.",
    spec: rows.length > 0 ? (spec as TopLevelSpec) : null,
    empty: rows.length > 0 ? undefined : "no cert/improvement in stages.jsonl",
  };
}

/** The specs of every figure, in page order (pure; no rendering). */
export function buildFigures(run: RunData): FigureSpec[] {
  return [
    rewardFigure(run),
    klFigure(run),
    betaFigure(run),
    violationFigure(run),
    backtracksFigure(run),
    certificateFigure(run),
    improvementFigure(run),
  ];
}

/**
 * Renders one Vega-Lite spec to an SVG string (headless, no DOM). Messages of the compiler and the
 * view go to `warnings` instead of the console (library code never prints).
 */
export async function renderSvg(spec: TopLevelSpec, warnings: string[] = []): Promise<string> {
  const logger = vega.logger(
    vega.Warn,
    undefined,
    (_method: string, level: string, input: readonly unknown[]) => {
      warnings.push(`${level} ${input.map(String).join(" ")}`);
    },
  );
  const view = new vega.View(vega.parse(compile(spec, { logger }).spec), { renderer: "none", logger });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Builds and renders every figure. */
export async function renderFigures(run: RunData): Promise<RenderedFigure[]> {
  const out: RenderedFigure[] = [];
  for (const { spec, ...rest } of buildFigures(run)) {
    const warnings: string[] = [];
    out.push({ ...rest, svg: spec ? await renderSvg(spec, warnings) : null, warnings });
  }
  return out;
}
