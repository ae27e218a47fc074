/**
 * The benchmark report: its shape (documented field by field in bench/README.md), the ratios to
 * PyTorch, the targets of the engine-speed work, a validator used by the tests and by run.ts
 * before printing, and the human table.
 */
import type { KernelsDescription } from "../src/engine/kernels/select.js";
import type { ModelConfig } from "../src/model/config.js";
import type { EngineSpec } from "./engine.js";
import type { LlamaCppResult } from "./llama-cpp.js";
import type { Profile } from "./profile.js";
import type { StageScaling } from "./stages.js";
import type { TorchReport } from "./torch.js";
import type { BenchSettings, MatmulResult, MatmulShape, SampleResult, TrainResult } from "./workloads.js";

export const SCHEMA = "sat-llm-bench/2";

/**
 * Ours / PyTorch throughput to reach, per model (the best engine measured), and the matmul's share
 * of the machine's FMA peak on the most threads measured.
 */
export const TARGETS = {
  train_ratio: { bakeoff: 1.5, small: 1.2, "llama-135m": 1.0 } as Record<string, number>,
  sample_ratio: 2.0,
  matmul_fraction_of_peak: 0.6,
} as const;

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

export interface FmaPeak {
  isa: string;
  /** GFLOP/s by thread count ("1", "2"). */
  gflops: Record<string, number>;
  method: string;
}

export interface ModelReport {
  name: string;
  description: string;
  config: ModelConfig;
  params: number;
  /** The settings this model ran with (the common ones plus its own). */
  settings: BenchSettings;
  /** Keyed by engine label ("native-2t"). */
  train: Record<string, TrainResult>;
  sample: Record<string, SampleResult>;
  /** Peak resident memory of the process that trained and sampled (MiB), by engine label. */
  peak_rss_mib: Record<string, number>;
  /** Engines that did not run this model, and why. */
  skipped: Record<string, string>;
}

/** ours / PyTorch throughput per metric: > 1 means ours is faster. */
export interface Ratios {
  train_tok_s: Record<string, Record<string, number>>; // model -> engine -> ratio
  sample_tok_s: Record<string, Record<string, number>>;
  matmul_gflops: Record<string, number>; // engine -> ratio
}

export interface TargetCheck {
  model: string;
  engine: string;
  train_ratio: number | null;
  train_target: number | null;
  train_met: boolean | null;
  sample_ratio: number | null;
  sample_target: number;
  sample_met: boolean | null;
}

export interface Summary {
  /** Per model, the best engine's ratios against the targets (null without torch). */
  models: TargetCheck[];
  matmul: {
    engine: string;
    gflops: number;
    peak_gflops: number | null;
    fraction_of_peak: number | null;
    target: number;
    met: boolean | null;
  } | null;
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
  /** The kernel tiers this machine has, the instruction set of the native one, why one is absent. */
  kernels: KernelsDescription;
  fma_peak: FmaPeak | null;
  fma_peak_reason: string | null;
  settings: BenchSettings;
  engines: Array<EngineSpec & { label: string; isa: string | null }>;
  models: ModelReport[];
  matmul: {
    shape: MatmulShape;
    flops: number;
    results: Record<string, MatmulResult & { fraction_of_peak: number | null }>;
  };
  profiles: Profile[];
  stage_scaling: StageScaling | null;
  stage_scaling_reason: string | null;
  torch: TorchReport | null;
  torch_reason: string | null;
  /** node-llama-cpp sampling on llama-135m (GGUF) and ours / its tok/s on our best engine. */
  llama_cpp: (LlamaCppResult & { ratio: number | null }) | null;
  /** Why it was not measured ("" when it was). */
  llama_cpp_reason: string;
  ratios: Ratios | null;
  /** As `ratios`, from the fastest run of each side instead of the medians. */
  ratios_min: Ratios | null;
  /** 1/5/15-minute load averages when each measurement started. */
  load: Array<{ at: string; load_avg: number[] }>;
  summary: Summary;
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
  if (torch.matmul) r.matmul_gflops = mapValues(matmul, (x) => matmulRate(x) / matmulRate(torch.matmul));
  return r;
}

/** The engine a model is judged on: native with the most threads, else wasm with the most threads. */
export function bestEngine(labels: string[]): string | null {
  const threads = (l: string): number => Number(/-(\d+)t$/.exec(l)?.[1] ?? 0);
  for (const tier of ["native", "wasm", "ts"]) {
    const xs = labels.filter((l) => l.startsWith(tier + "-")).sort((a, b) => threads(b) - threads(a));
    if (xs.length > 0) return xs[0];
  }
  return null;
}

export function summarize(
  rep: Pick<BenchReport, "models" | "matmul" | "fma_peak">,
  ratios: Ratios | null,
): Summary {
  const models: TargetCheck[] = [];
  for (const m of rep.models) {
    const e = bestEngine(Object.keys(m.train));
    if (!e) continue;
    const tr = ratios?.train_tok_s[m.name]?.[e] ?? null;
    const sr = ratios?.sample_tok_s[m.name]?.[e] ?? null;
    const tt = TARGETS.train_ratio[m.name] ?? null;
    models.push({
      model: m.name,
      engine: e,
      train_ratio: tr,
      train_target: tt,
      train_met: tr === null || tt === null ? null : tr >= tt,
      sample_ratio: sr,
      sample_target: TARGETS.sample_ratio,
      sample_met: sr === null ? null : sr >= TARGETS.sample_ratio,
    });
  }
  const me = bestEngine(Object.keys(rep.matmul.results).filter((l) => !l.startsWith("ts-")));
  let matmul: Summary["matmul"] = null;
  if (me) {
    const r = rep.matmul.results[me];
    const f = r.fraction_of_peak;
    matmul = {
      engine: me,
      gflops: r.gflops,
      peak_gflops: peakFor(rep.fma_peak, me),
      fraction_of_peak: f,
      target: TARGETS.matmul_fraction_of_peak,
      met: f === null ? null : f >= TARGETS.matmul_fraction_of_peak,
    };
  }
  return { models, matmul };
}

/** The FMA peak for an engine label's thread count, or null when not measured. */
export function peakFor(peak: FmaPeak | null, label: string): number | null {
  const t = /-(\d+)t$/.exec(label)?.[1];
  return peak && t ? (peak.gflops[t] ?? null) : null;
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
  const kern = obj(r.kernels, "$.kernels");
  if (kern) {
    if (kern.auto !== "native" && kern.auto !== "wasm") errs.push(`$.kernels.auto: expected native or wasm`);
    const nat = obj(kern.native, "$.kernels.native");
    if (nat && nat.available !== true) str(nat.reason, "$.kernels.native.reason");
  }
  if (r.fma_peak === null) str(r.fma_peak_reason, "$.fma_peak_reason");
  else {
    const p = obj(r.fma_peak, "$.fma_peak");
    if (p) {
      str(p.isa, "$.fma_peak.isa");
      str(p.method, "$.fma_peak.method");
      const g = obj(p.gflops, "$.fma_peak.gflops");
      if (g) for (const [t, v] of Object.entries(g)) pos(v, `$.fma_peak.gflops.${t}`);
    }
  }
  obj(r.settings, "$.settings");
  if (!Array.isArray(r.load) || r.load.length === 0) errs.push("$.load: expected a non-empty array");

  const labels: string[] = [];
  if (!Array.isArray(r.engines) || r.engines.length === 0) errs.push("$.engines: expected a non-empty array");
  else {
    r.engines.forEach((e, i) => {
      const o = obj(e, `$.engines[${i}]`);
      if (!o) return;
      str(o.label, `$.engines[${i}].label`);
      str(o.impl, `$.engines[${i}].impl`);
      pos(o.threads, `$.engines[${i}].threads`);
      if (o.impl === "native") str(o.isa, `$.engines[${i}].isa`);
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
      obj(o.settings, `${p}.settings`);
      pos(o.params, `${p}.params`);
      const tr = obj(o.train, `${p}.train`);
      const sa = obj(o.sample, `${p}.sample`);
      const rss = obj(o.peak_rss_mib, `${p}.peak_rss_mib`);
      const sk = obj(o.skipped, `${p}.skipped`) ?? {};
      // Every engine but ts trains and samples every model, unless it says why it skipped it.
      for (const label of labels.filter((l) => !l.startsWith("ts-"))) {
        if (label in sk) {
          str(sk[label], `${p}.skipped.${label}`);
          continue;
        }
        if (tr) train(tr[label], `${p}.train.${label}`);
        if (sa) sample(sa[label], `${p}.sample.${label}`);
        if (rss) pos(rss[label], `${p}.peak_rss_mib.${label}`);
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
  if (!Array.isArray(r.profiles)) errs.push("$.profiles: expected an array");
  else
    r.profiles.forEach((pr, i) => {
      const o = obj(pr, `$.profiles[${i}]`);
      if (!o) return;
      pos(o.step_ms, `$.profiles[${i}].step_ms`);
      if (!Array.isArray(o.ops) || o.ops.length === 0)
        errs.push(`$.profiles[${i}].ops: expected a non-empty array`);
      const sa = obj(o.sample, `$.profiles[${i}].sample`);
      if (sa) pos(sa.round_ms, `$.profiles[${i}].sample.round_ms`);
    });
  if (r.stage_scaling === null) str(r.stage_scaling_reason, "$.stage_scaling_reason");
  else {
    const st = obj(r.stage_scaling, "$.stage_scaling");
    if (st) {
      if (!Array.isArray(st.points) || st.points.length < 5)
        errs.push("$.stage_scaling.points: expected ≥ 5 points");
      const fit = obj(st.fit, "$.stage_scaling.fit");
      if (fit && typeof fit.r2 !== "number") errs.push("$.stage_scaling.fit.r2: expected a number");
      if (!Array.isArray(st.residuals_ms)) errs.push("$.stage_scaling.residuals_ms: expected an array");
    }
  }
  if (r.llama_cpp === null) str(r.llama_cpp_reason, "$.llama_cpp_reason");
  else {
    const lc = obj(r.llama_cpp, "$.llama_cpp");
    if (lc) sample(lc.sample, "$.llama_cpp.sample");
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
          pos(x.peak_rss_mib, `$.torch.models.${m.name}.peak_rss_mib`);
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
  obj(r.summary, "$.summary");
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
    cols.map((c, i) => (i === 0 ? c.padEnd(22) : c.padStart(i === 1 || i === 3 ? 12 : 9))).join(" ");
  lines.push(
    `sat-llm bench (${rep.mode}) ${rep.started_at}  node ${rep.node.version}  ${rep.machine.cpu_model}`,
  );
  lines.push(
    `load avg at start ${rep.machine.load_avg_start.map((x) => x.toFixed(2)).join(" ")}, at end ${rep.machine.load_avg_end.map((x) => x.toFixed(2)).join(" ")}`,
  );
  const k = rep.kernels;
  lines.push(
    `kernels: auto = ${k.auto}; native ${k.native.available ? `${k.native.isa}` : `absent (${k.native.reason})`}` +
      (rep.fma_peak
        ? `; FMA peak ${rep.fma_peak.isa} ${Object.entries(rep.fma_peak.gflops)
            .map(([t, g]) => `${t}t ${fmt(g, 0)}`)
            .join(", ")} GFLOP/s`
        : ""),
  );
  const torchLabel = rep.torch ? `torch-${rep.torch.threads}t` : null;
  lines.push(
    pad([
      "",
      "train tok/s",
      "ms/step",
      "sample tok/s",
      "×t train",
      "×t samp",
      "min:train",
      "min:samp",
      "RSS MiB",
    ]),
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
          fmt(m.peak_rss_mib[label]),
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
          fmt(t.peak_rss_mib),
        ]),
      );
  }
  const { M, K, N } = rep.matmul.shape;
  lines.push(
    `matmul ${M}x${K} @ ${K}x${N} GFLOP/s: ` +
      Object.entries(rep.matmul.results)
        .map(
          ([l, r]) =>
            `${l} ${fmt(r.gflops, 1)}${r.fraction_of_peak ? ` (${fmt(r.fraction_of_peak * 100)}% of peak)` : ""}`,
        )
        .join(", ") +
      (rep.torch?.matmul ? `, ${torchLabel} ${fmt(rep.torch.matmul.gflops, 1)}` : ""),
  );
  for (const p of rep.profiles) {
    const top = p.ops
      .slice(0, 4)
      .map((o) => `${o.op} ${fmt(o.share * 100)}%`)
      .join(", ");
    lines.push(`profile ${p.model} ${p.engine}: step ${fmt(p.step_ms, 1)} ms; ${top}`);
  }
  const st = rep.stage_scaling;
  if (st)
    lines.push(
      `stage scaling (${st.engine}): ms ≈ ${fmt(st.fit.b0, 1)} + ${fmt(st.fit.b_agents, 1)}·agents + ${fmt(st.fit.b_tokens, 3)}·tokens + ${fmt(st.fit.b_agents_tokens, 3)}·agents·tokens, R² ${fmt(st.fit.r2, 3)}, max |residual| ${fmt(st.max_abs_residual_rel * 100, 1)}%`,
    );
  if (rep.torch) {
    const t = rep.torch;
    lines.push(
      `torch ${t.torch_version} (${t.executable}), ${t.threads} threads, OMP_WAIT_POLICY ${t.omp_wait_policy}`,
    );
  } else lines.push(`torch: not measured (${rep.torch_reason})`);
  lines.push(
    rep.llama_cpp
      ? `node-llama-cpp llama-135m sampling: ${fmt(rep.llama_cpp.sample.tok_s)} tok/s; ours ×${fmt(rep.llama_cpp.ratio, 2)}`
      : `node-llama-cpp: ${rep.llama_cpp_reason}`,
  );
  for (const c of rep.summary.models) {
    lines.push(
      `target ${c.model} (${c.engine}): train ×${fmt(c.train_ratio, 2)} (≥ ${fmt(c.train_target, 1)}: ${c.train_met === null ? "-" : c.train_met ? "met" : "not met"}), sampling ×${fmt(c.sample_ratio, 2)} (≥ ${fmt(c.sample_target, 1)}: ${c.sample_met === null ? "-" : c.sample_met ? "met" : "not met"})`,
    );
  }
  const mm = rep.summary.matmul;
  if (mm)
    lines.push(
      `target matmul (${mm.engine}): ${fmt(mm.gflops, 1)} GFLOP/s = ${fmt((mm.fraction_of_peak ?? NaN) * 100, 0)}% of the ${fmt(mm.peak_gflops, 0)} GFLOP/s FMA peak (≥ ${fmt(mm.target * 100)}%: ${mm.met === null ? "-" : mm.met ? "met" : "not met"})`,
    );
  return lines.join("\n") + "\n";
}
