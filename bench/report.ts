/**
 * The benchmark report: its shape (documented field by field in bench/README.md), the ratios to
 * PyTorch, a validator used by the tests and by run.ts before printing, and the human table.
 */
import type { ModelConfig } from "../src/model/config.js";
import type { EngineSpec } from "./engine.js";
import type { TrainProfile } from "./profile.js";
import type { TorchReport } from "./torch.js";
import type { BenchSettings, MatmulResult, MatmulShape, SampleResult, TrainResult } from "./workloads.js";

export const SCHEMA = "sat-llm-bench/1";

/** Targets for the bakeoff model on the most threads measured (tokens/s). */
export const TARGETS = { train_tok_s: 3000, sample_tok_s: 3000 } as const;

export interface MachineInfo {
  platform: string;
  arch: string;
  cpu_model: string;
  logical_cpus: number;
  available_parallelism: number;
  total_memory_gib: number;
  load_avg_start: number[];
  load_avg_end: number[];
}

export interface ModelReport {
  name: string;
  description: string;
  config: ModelConfig;
  params: number;
  /** Keyed by engine label ("wasm-2t"). */
  train: Record<string, TrainResult>;
  sample: Record<string, SampleResult>;
}

/** ours / PyTorch throughput per metric: > 1 means ours is faster. */
export interface Ratios {
  train_tok_s: Record<string, Record<string, number>>; // model -> engine -> ratio
  sample_tok_s: Record<string, Record<string, number>>;
  matmul_gflops: Record<string, number>; // engine -> ratio
}

export interface Summary {
  model: string;
  engine: string;
  train_tok_s: number;
  sample_tok_s: number;
  matmul_gflops: number;
  targets: typeof TARGETS;
  meets_train_target: boolean;
  meets_sample_target: boolean;
  torch_train_tok_s: number | null;
  torch_sample_tok_s: number | null;
  torch_matmul_gflops: number | null;
}

export interface BenchReport {
  schema: typeof SCHEMA;
  mode: "full" | "quick";
  command: string;
  started_at: string;
  finished_at: string;
  duration_s: number;
  git: { commit: string; dirty: boolean } | null;
  machine: MachineInfo;
  node: { version: string; v8: string };
  settings: BenchSettings;
  engines: Array<EngineSpec & { label: string }>;
  models: ModelReport[];
  matmul: { shape: MatmulShape; flops: number; results: Record<string, MatmulResult> };
  profile: TrainProfile | null;
  torch: TorchReport | null;
  torch_reason: string | null;
  ratios: Ratios | null;
  /** As `ratios`, from the fastest run of each side instead of the medians. */
  ratios_min: Ratios | null;
  summary: Summary | null;
}

/**
 * Ratios from the medians (`"median"`, the headline) or from the fastest run of each side
 * (`"min"`: on a shared machine the least disturbed run, closer to what a quiet machine gives).
 */
export function computeRatios(
  models: ModelReport[],
  matmul: Record<string, MatmulResult>,
  torch: TorchReport,
  stat: "median" | "min" = "median",
): Ratios {
  const best = (ms: number[]): number => Math.min(...ms);
  const trainRate = (x: TrainResult): number =>
    stat === "median" ? x.tok_s : x.tokens_per_step / best(x.step_ms);
  const sampleRate = (x: SampleResult): number => (stat === "median" ? x.tok_s : x.tokens / best(x.round_ms));
  const matmulRate = (x: MatmulResult): number => (stat === "median" ? x.gflops : 1 / best(x.run_ms));
  const r: Ratios = { train_tok_s: {}, sample_tok_s: {}, matmul_gflops: {} };
  for (const m of models) {
    const t = torch.models[m.name];
    if (!t) continue;
    r.train_tok_s[m.name] = mapValues(m.train, (x) => trainRate(x) / trainRate(t.train));
    r.sample_tok_s[m.name] = mapValues(m.sample, (x) => sampleRate(x) / sampleRate(t.sample));
  }
  r.matmul_gflops = mapValues(matmul, (x) => matmulRate(x) / matmulRate(torch.matmul));
  return r;
}

/** The headline: the first model (bakeoff in a full run) on the engine measured last (most threads). */
export function summarize(rep: Pick<BenchReport, "models" | "engines" | "matmul" | "torch">): Summary | null {
  const m = rep.models[0];
  const e = [...rep.engines].reverse().find((x) => m?.train[x.label]);
  if (!m || !e) return null;
  const t = rep.torch?.models[m.name];
  const train = m.train[e.label].tok_s;
  const sample = m.sample[e.label].tok_s;
  return {
    model: m.name,
    engine: e.label,
    train_tok_s: train,
    sample_tok_s: sample,
    matmul_gflops: rep.matmul.results[e.label]?.gflops ?? NaN,
    targets: TARGETS,
    meets_train_target: train >= TARGETS.train_tok_s,
    meets_sample_target: sample >= TARGETS.sample_tok_s,
    torch_train_tok_s: t?.train.tok_s ?? null,
    torch_sample_tok_s: t?.sample.tok_s ?? null,
    torch_matmul_gflops: rep.torch?.matmul.gflops ?? null,
  };
}

function mapValues<T>(o: Record<string, T>, f: (x: T) => number): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
}

/**
 * Problems with a report, one line each naming the JSON path (empty = valid). Checks presence and
 * types, and that every throughput, time and count is finite and positive.
 */
export function validateReport(rep: unknown): string[] {
  const errs: string[] = [];
  const obj = (x: unknown, path: string): Record<string, unknown> | null => {
    if (typeof x === "object" && x !== null && !Array.isArray(x)) return x as Record<string, unknown>;
    errs.push(`${path}: expected an object, got ${JSON.stringify(x)?.slice(0, 40)}`);
    return null;
  };
  const pos = (x: unknown, path: string): void => {
    if (typeof x !== "number" || !Number.isFinite(x) || x <= 0)
      errs.push(`${path}: expected a finite positive number, got ${String(x)}`);
  };
  const str = (x: unknown, path: string): void => {
    if (typeof x !== "string" || x.length === 0)
      errs.push(`${path}: expected a non-empty string, got ${JSON.stringify(x)}`);
  };
  const posList = (x: unknown, path: string): void => {
    if (!Array.isArray(x) || x.length === 0) errs.push(`${path}: expected a non-empty array`);
    else x.forEach((v, i) => pos(v, `${path}[${i}]`));
  };
  const train = (x: unknown, path: string): void => {
    const t = obj(x, path);
    if (!t) return;
    for (const k of ["tokens_per_step", "median_ms", "tok_s", "loss_first", "loss_last"])
      pos(t[k], `${path}.${k}`);
    posList(t.step_ms, `${path}.step_ms`);
  };
  const sample = (x: unknown, path: string): void => {
    const t = obj(x, path);
    if (!t) return;
    for (const k of ["tokens", "median_ms", "tok_s"]) pos(t[k], `${path}.${k}`);
    posList(t.round_ms, `${path}.round_ms`);
  };
  const matmul = (x: unknown, path: string): void => {
    const t = obj(x, path);
    if (!t) return;
    for (const k of ["median_ms", "gflops"]) pos(t[k], `${path}.${k}`);
    posList(t.run_ms, `${path}.run_ms`);
  };

  const r = obj(rep, "$");
  if (!r) return errs;
  if (r.schema !== SCHEMA) errs.push(`$.schema: expected "${SCHEMA}", got ${JSON.stringify(r.schema)}`);
  if (r.mode !== "full" && r.mode !== "quick")
    errs.push(`$.mode: expected "full" or "quick", got ${JSON.stringify(r.mode)}`);
  for (const k of ["command", "started_at", "finished_at"]) str(r[k], `$.${k}`);
  for (const k of ["started_at", "finished_at"])
    if (typeof r[k] === "string" && Number.isNaN(Date.parse(r[k] as string))) errs.push(`$.${k}: not a date`);
  pos(r.duration_s, "$.duration_s");
  const mach = obj(r.machine, "$.machine");
  if (mach) {
    for (const k of ["platform", "arch", "cpu_model"]) str(mach[k], `$.machine.${k}`);
    for (const k of ["logical_cpus", "available_parallelism", "total_memory_gib"])
      pos(mach[k], `$.machine.${k}`);
    for (const k of ["load_avg_start", "load_avg_end"]) {
      if (!Array.isArray(mach[k]) || (mach[k] as unknown[]).length !== 3)
        errs.push(`$.machine.${k}: expected 3 load averages`);
    }
  }
  const node = obj(r.node, "$.node");
  if (node) for (const k of ["version", "v8"]) str(node[k], `$.node.${k}`);
  obj(r.settings, "$.settings");

  const labels: string[] = [];
  if (!Array.isArray(r.engines) || r.engines.length === 0) errs.push("$.engines: expected a non-empty array");
  else {
    r.engines.forEach((e, i) => {
      const o = obj(e, `$.engines[${i}]`);
      if (!o) return;
      str(o.label, `$.engines[${i}].label`);
      str(o.impl, `$.engines[${i}].impl`);
      pos(o.threads, `$.engines[${i}].threads`);
      labels.push(String(o.label));
    });
  }
  if (!Array.isArray(r.models) || r.models.length === 0) errs.push("$.models: expected a non-empty array");
  else {
    r.models.forEach((m, i) => {
      const o = obj(m, `$.models[${i}]`);
      if (!o) return;
      const p = `$.models[${i}]`;
      str(o.name, `${p}.name`);
      obj(o.config, `${p}.config`);
      pos(o.params, `${p}.params`);
      const tr = obj(o.train, `${p}.train`);
      const sa = obj(o.sample, `${p}.sample`);
      // Every wasm engine trains and samples every model (ts only runs the matmul).
      for (const label of labels.filter((l) => !l.startsWith("ts-"))) {
        if (tr) train(tr[label], `${p}.train.${label}`);
        if (sa) sample(sa[label], `${p}.sample.${label}`);
      }
    });
  }
  const mm = obj(r.matmul, "$.matmul");
  if (mm) {
    const shape = obj(mm.shape, "$.matmul.shape");
    if (shape) for (const k of ["M", "K", "N"]) pos(shape[k], `$.matmul.shape.${k}`);
    pos(mm.flops, "$.matmul.flops");
    const res = obj(mm.results, "$.matmul.results");
    if (res) for (const label of labels) matmul(res[label], `$.matmul.results.${label}`);
  }
  if (r.profile !== null) {
    const pr = obj(r.profile, "$.profile");
    if (pr) {
      pos(pr.step_ms, "$.profile.step_ms");
      const ph = obj(pr.phases, "$.profile.phases");
      if (ph) {
        for (const k of ["forward", "backward", "optimizer", "loss"]) {
          const x = obj(ph[k], `$.profile.phases.${k}`);
          if (x) pos(x.ms, `$.profile.phases.${k}.ms`);
        }
        for (const k of ["forward", "backward"]) {
          const x = obj(ph[k], `$.profile.phases.${k}`);
          if (x) pos(x.gemm_ms, `$.profile.phases.${k}.gemm_ms`);
        }
      }
      const share = pr.gemm_share;
      if (typeof share !== "number" || !(share > 0 && share <= 1))
        errs.push(`$.profile.gemm_share: expected a number in (0, 1], got ${String(share)}`);
      if (!Array.isArray(pr.gemm_shapes) || pr.gemm_shapes.length === 0)
        errs.push("$.profile.gemm_shapes: expected a non-empty array");
      const sa = obj(pr.sample, "$.profile.sample");
      if (sa) {
        for (const k of ["round_ms", "decode_gemm_ms", "sampling_ms"]) pos(sa[k], `$.profile.sample.${k}`);
        if (!Array.isArray(sa.gemm_shapes) || sa.gemm_shapes.length === 0)
          errs.push("$.profile.sample.gemm_shapes: expected a non-empty array");
      }
    }
  }
  if (r.torch === null) {
    str(r.torch_reason, "$.torch_reason");
    if (r.ratios !== null) errs.push("$.ratios: expected null when torch is null");
    if (r.ratios_min !== null) errs.push("$.ratios_min: expected null when torch is null");
  } else {
    const t = obj(r.torch, "$.torch");
    if (t) {
      str(t.torch_version, "$.torch.torch_version");
      pos(t.threads, "$.torch.threads");
      matmul(t.matmul, "$.torch.matmul");
      const tm = obj(t.models, "$.torch.models");
      if (tm && Array.isArray(r.models)) {
        for (const m of r.models as Array<{ name: string }>) {
          const x = obj(tm[m.name], `$.torch.models.${m.name}`);
          if (!x) continue;
          pos(x.params, `$.torch.models.${m.name}.params`);
          train(x.train, `$.torch.models.${m.name}.train`);
          sample(x.sample, `$.torch.models.${m.name}.sample`);
        }
      }
    }
    for (const which of ["ratios", "ratios_min"]) {
      const ra = obj(r[which], `$.${which}`);
      if (!ra) continue;
      for (const k of ["train_tok_s", "sample_tok_s"]) {
        const byModel = obj(ra[k], `$.${which}.${k}`);
        if (byModel)
          for (const [mn, byEngine] of Object.entries(byModel))
            for (const [en, v] of Object.entries(byEngine as object)) pos(v, `$.${which}.${k}.${mn}.${en}`);
      }
      const mg = obj(ra.matmul_gflops, `$.${which}.matmul_gflops`);
      if (mg) for (const [en, v] of Object.entries(mg)) pos(v, `$.${which}.matmul_gflops.${en}`);
    }
  }
  return errs;
}

const fmt = (x: number | undefined | null, digits = 0): string =>
  x === undefined || x === null || !Number.isFinite(x)
    ? "-"
    : x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** A short plain-text table of the report, for stderr. */
export function formatTable(rep: BenchReport): string {
  const lines: string[] = [];
  const pad = (cols: string[]): string =>
    cols.map((c, i) => (i === 0 ? c.padEnd(18) : c.padStart(i === 1 || i === 3 ? 12 : 9))).join(" ");
  lines.push(
    `sat-llm bench (${rep.mode}) ${rep.started_at}  node ${rep.node.version}  ${rep.machine.cpu_model}`,
  );
  lines.push(
    `load avg at start ${rep.machine.load_avg_start.map((x) => x.toFixed(2)).join(" ")}, at end ${rep.machine.load_avg_end.map((x) => x.toFixed(2)).join(" ")}`,
  );
  const torchLabel = rep.torch ? `torch-${rep.torch.threads}t` : null;
  // Ratios: ours / torch throughput from the medians, then from the fastest runs ("min").
  lines.push(
    pad(["", "train tok/s", "ms/step", "sample tok/s", "×t train", "×t samp", "min:train", "min:samp"]),
  );
  for (const m of rep.models) {
    for (const [label, t] of Object.entries(m.train)) {
      const s = m.sample[label];
      lines.push(
        pad([
          `${m.name} ${label}`,
          fmt(t.tok_s),
          fmt(t.median_ms, 1),
          fmt(s?.tok_s),
          fmt(rep.ratios?.train_tok_s[m.name]?.[label], 2),
          fmt(rep.ratios?.sample_tok_s[m.name]?.[label], 2),
          fmt(rep.ratios_min?.train_tok_s[m.name]?.[label], 2),
          fmt(rep.ratios_min?.sample_tok_s[m.name]?.[label], 2),
        ]),
      );
    }
    const t = rep.torch?.models[m.name];
    if (t && torchLabel)
      lines.push(
        pad([
          `${m.name} ${torchLabel}`,
          fmt(t.train.tok_s),
          fmt(t.train.median_ms, 1),
          fmt(t.sample.tok_s),
          "1.00",
          "1.00",
          "1.00",
          "1.00",
        ]),
      );
  }
  const { M, K, N } = rep.matmul.shape;
  lines.push(
    `matmul ${M}x${K} @ ${K}x${N} GFLOP/s: ` +
      Object.entries(rep.matmul.results)
        .map(([l, r]) => `${l} ${fmt(r.gflops, 1)}`)
        .join(", ") +
      (rep.torch ? `, ${torchLabel} ${fmt(rep.torch.matmul.gflops, 1)}` : ""),
  );
  if (rep.profile) {
    const p = rep.profile;
    const ph = p.phases;
    lines.push(
      `profile ${p.model} ${p.engine}: step ${fmt(p.step_ms, 1)} ms = forward ${fmt(ph.forward.ms, 1)} (gemm ${fmt(ph.forward.gemm_ms, 1)}) + loss ${fmt(ph.loss.ms, 1)} + backward ${fmt(ph.backward.ms, 1)} (gemm ${fmt(ph.backward.gemm_ms, 1)}) + optimizer ${fmt(ph.optimizer.ms, 1)} + zero_grad ${fmt(ph.zero_grad.ms, 1)}; gemm share ${fmt(p.gemm_share * 100)}%`,
    );
    const top = [...p.ops].sort((a, b) => b.ms_per_step - a.ms_per_step).slice(0, 4);
    if (top.length > 0)
      lines.push(
        `  largest non-gemm ops (ms/step): ${top.map((o) => `${o.op} ${fmt(o.ms_per_step, 1)}`).join(", ")}`,
      );
    const dops = p.sample.ops.map((o) => `${o.op} ${fmt(o.ms_per_round, 1)}`).join(", ");
    lines.push(
      `  sampling round ${fmt(p.sample.round_ms, 1)} ms: decode gemm ${fmt(p.sample.decode_gemm_ms, 1)}, decode rest ${fmt(p.sample.decode_rest_ms, 1)}${dops ? ` (${dops})` : ""}, sampling ${fmt(p.sample.sampling_ms, 1)}`,
    );
  }
  lines.push(
    rep.torch
      ? `torch ${rep.torch.torch_version} (${rep.torch.executable}), ${rep.torch.threads} threads, OMP_WAIT_POLICY ${rep.torch.omp_wait_policy}`
      : `torch: not measured (${rep.torch_reason})`,
  );
  if (rep.summary) {
    const s = rep.summary;
    lines.push(
      `targets (${s.model} ${s.engine}): train ${fmt(s.train_tok_s)} tok/s ${s.meets_train_target ? "≥" : "<"} ${s.targets.train_tok_s}, sampling ${fmt(s.sample_tok_s)} tok/s ${s.meets_sample_target ? "≥" : "<"} ${s.targets.sample_tok_s}`,
    );
  }
  return lines.join("\n") + "\n";
}
