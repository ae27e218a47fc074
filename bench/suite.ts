/**
 * Runs the whole benchmark and assembles the report: the machine's FMA peak; every model trained
 * and sampled on every engine, each (engine, model) in a child process of its own (bench/child.ts:
 * its own peak memory, no heap left behind); the big matmul on every engine; step profiles; the
 * cost of a SAT stage against agents and rollout tokens; then the PyTorch reference (one process
 * per model) and the ratios. Measurements run one after another, never in parallel, and each
 * records the load average when it started.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { describeKernels } from "../src/engine/kernels/select.js";
import { nativeFmaPeak } from "../src/engine/kernels/native.js";
import type { ChildJob, ChildResult } from "./child.js";
import { createBenchEngine, engineLabel, type EngineSpec } from "./engine.js";
import type { Profile } from "./profile.js";
import {
  SCHEMA,
  bestEngine,
  computeRatios,
  peakFor,
  summarize,
  type BenchReport,
  type FmaPeak,
  type ModelReport,
} from "./report.js";
import { measureStageScaling, type StageScaling } from "./stages.js";
import { llamaCppSample } from "./llama-cpp.js";
import { findTorchPython, runTorchBench, type TorchReport } from "./torch.js";
import { roundNumbers } from "./timing.js";
import {
  BOS,
  benchModels,
  checkSettings,
  matmulBench,
  paramCount,
  settingsFor,
  type BenchSettings,
  type MatmulResult,
} from "./workloads.js";

const CHILD = fileURLToPath(new URL("./child.js", import.meta.url));

export interface SuiteOptions {
  mode: "full" | "quick";
  /** Names from benchModels(). */
  models: string[];
  /** Engines that train and sample (and run the matmul). */
  engines: EngineSpec[];
  /** Engines that only run the matmul (the ts reference). */
  matmulOnly: EngineSpec[];
  settings: BenchSettings;
  /** Profile every model on its best engine, and the first model on wasm with the most threads. */
  profile: boolean;
  /** Stage-scaling grid (agents × rollout lengths); null = skip. */
  stages: { agents: number[]; lengths: number[]; stages: number } | null;
  /** Pythons to try for the torch reference; empty = do not run it. */
  pythons: string[];
  /** Why torch is skipped when `pythons` is empty (e.g. "--no-torch"). */
  torchOffReason?: string;
  torchThreads: number;
  /** llama-135m as GGUF for the node-llama-cpp sampling comparison (needs node-llama-cpp). */
  gguf?: string;
  command: string;
  /** Progress lines (stderr in the CLI). */
  log: (line: string) => void;
}

function runChild(job: ChildJob): ChildResult {
  const r = spawnSync(process.execPath, [CHILD], {
    input: JSON.stringify(job),
    encoding: "utf8",
    maxBuffer: 64 << 20,
    timeout: 60 * 60_000,
  });
  if (r.status !== 0) {
    const last = (r.stderr ?? "").trim().split("\n").slice(-3).join(" | ");
    throw new Error(
      `bench child ${job.kind} ${job.model} ${engineLabel(job.engine)} failed (${r.status ?? r.signal}): ${last}`,
    );
  }
  return JSON.parse(r.stdout) as ChildResult;
}

/** The FMA peak on 1 and 2 threads (all available threads when more), or why it is not measured. */
function measurePeak(threads: number[]): { peak: FmaPeak | null; reason: string | null } {
  const gflops: Record<string, number> = {};
  let isa = "";
  for (const t of threads) {
    // Best of three: the peak is a property of the machine, other processes only lower a run.
    for (let r = 0; r < 3; r++) {
      const p = nativeFmaPeak(t, 200);
      if (!p) return { peak: null, reason: `needs the native kernels: ${describeKernels().native.reason}` };
      gflops[String(t)] = Math.max(gflops[String(t)] ?? 0, p.gflops);
      isa = p.isa;
    }
  }
  const lanes = isa === "avx512" ? 16 : 8;
  return {
    peak: {
      isa,
      gflops,
      method:
        `measured: 12 independent chains of ${isa} vfmadd (${lanes} floats each) per thread for 200 ms, ` +
        `the threads started together, best of 3 runs at the start and 3 at the end of the bench; ` +
        `GFLOP/s = chains × iterations × ${lanes} × 2 / seconds, summed over threads`,
    },
    reason: null,
  };
}

export async function runSuite(o: SuiteOptions): Promise<BenchReport> {
  const startedAt = new Date();
  const loadStart = loadavg();
  const load: BenchReport["load"] = [];
  const mark = (at: string): void => void load.push({ at, load_avg: loadavg() });
  const all = benchModels();
  const models = o.models.map((name) => {
    const m = all[name];
    if (!m) throw new Error(`bench: unknown model "${name}" (choose from ${Object.keys(all).join(", ")})`);
    checkSettings(settingsFor(m, o.settings, o.mode === "quick"), m.config, name);
    return m;
  });
  const kernels = describeKernels();
  const engines = o.engines.filter((e) => e.impl !== "native" || kernels.native.available);
  if (engines.length === 0) throw new Error("bench: no engine to run (the native tier is absent here)");
  const threadCounts = [...new Set(engines.map((e) => e.threads))].sort((a, b) => a - b);
  mark("fma_peak");
  const { peak, reason: peakReason } = measurePeak(threadCounts);
  if (peak)
    o.log(
      `FMA peak (${peak.isa}): ${Object.entries(peak.gflops)
        .map(([t, g]) => `${t}t ${g.toFixed(0)}`)
        .join(", ")} GFLOP/s`,
    );

  const reports: ModelReport[] = models.map((m) => ({
    name: m.name,
    description: m.description,
    config: m.config,
    params: paramCount(m.config),
    settings: settingsFor(m, o.settings, o.mode === "quick"),
    train: {},
    sample: {},
    peak_rss_mib: {},
    skipped: {},
  }));
  const engineInfo: BenchReport["engines"] = [];
  const matmul: Record<string, MatmulResult & { fraction_of_peak: number | null }> = {};

  for (const spec of engines) {
    const label = engineLabel(spec);
    let isa: string | null = null;
    for (const [i, m] of models.entries()) {
      if (m.heavy && spec.impl === "wasm" && spec.threads === 1) {
        reports[i].skipped[label] = "large model: 1-thread WebAssembly is skipped (minutes per step)";
        continue;
      }
      mark(`${m.name} ${label}`);
      const r = runChild({ kind: "run", engine: spec, model: m.name, settings: reports[i].settings });
      if (r.kind !== "run") throw new Error("bench child: expected a run result");
      isa = r.isa;
      reports[i].train[label] = r.train;
      reports[i].sample[label] = r.sample;
      reports[i].peak_rss_mib[label] = r.peak_rss_mib;
      o.log(
        `${m.name} ${label}: train ${r.train.median_ms.toFixed(1)} ms/step, ${r.train.tok_s.toFixed(0)} tok/s (loss ${r.train.loss_first.toFixed(3)} -> ${r.train.loss_last.toFixed(3)}); sample ${r.sample.tok_s.toFixed(0)} tok/s; peak RSS ${r.peak_rss_mib.toFixed(0)} MiB`,
      );
    }
    mark(`matmul ${label}`);
    const mm = await runMatmul(spec, o.settings, o.log);
    isa ??= mm.isa;
    matmul[label] = { ...mm.result, fraction_of_peak: fraction(mm.result.gflops, peakFor(peak, label)) };
    engineInfo.push({ ...spec, label, isa });
  }
  for (const spec of o.matmulOnly) {
    const label = engineLabel(spec);
    mark(`matmul ${label}`);
    const mm = await runMatmul(spec, o.settings, o.log);
    matmul[label] = { ...mm.result, fraction_of_peak: null };
    engineInfo.push({ ...spec, label, isa: null });
  }

  const profiles: Profile[] = [];
  if (o.profile) {
    const most = (impl: string) =>
      engines.filter((e) => e.impl === impl).sort((a, b) => b.threads - a.threads)[0] as
        EngineSpec | undefined;
    const best = most("native") ?? most("wasm");
    const jobs: Array<{ spec: EngineSpec; m: number }> = [];
    const wasm = most("wasm");
    if (wasm && wasm !== best) jobs.push({ spec: wasm, m: 0 }); // the tier before the native one
    if (best) models.forEach((_, i) => jobs.push({ spec: best, m: i }));
    for (const { spec, m } of jobs) {
      mark(`profile ${models[m].name} ${engineLabel(spec)}`);
      const r = runChild({
        kind: "profile",
        engine: spec,
        model: models[m].name,
        settings: reports[m].settings,
      });
      if (r.kind !== "profile") throw new Error("bench child: expected a profile");
      profiles.push(r.profile);
      o.log(
        `profile ${r.profile.model} ${r.profile.engine}: step ${r.profile.step_ms.toFixed(1)} ms, linear layers ${(r.profile.linear_share * 100).toFixed(0)}%`,
      );
    }
  }

  let stageScaling: StageScaling | null = null;
  let stageReason: string | null = "disabled";
  if (o.stages) {
    mark("stage_scaling");
    stageScaling = await measureStageScaling(o.stages);
    stageReason = null;
    o.log(
      `stage scaling (${stageScaling.engine}): R² ${stageScaling.fit.r2.toFixed(3)}, max |residual| ${(stageScaling.max_abs_residual_rel * 100).toFixed(1)}% over ${stageScaling.points.length} stages`,
    );
  }

  let torch: TorchReport | null = null;
  let torchReason: string | null = null;
  if (o.pythons.length === 0) {
    torchReason = o.torchOffReason ?? "torch reference disabled";
  } else {
    const probe = findTorchPython(o.pythons);
    if (!probe.ok) torchReason = probe.reason;
    else {
      o.log(`torch ${probe.version} (${probe.python}): running the reference with ${o.torchThreads} threads`);
      mark("torch");
      try {
        torch = runTorchBench(probe.python, {
          threads: o.torchThreads,
          settings: o.settings,
          models: models.map((m, i) => ({ name: m.name, config: m.config, settings: reports[i].settings })),
        });
        for (const r of reports) {
          const tp = torch.models[r.name]?.params;
          if (tp !== r.params)
            o.log(`warning: torch model "${r.name}" has ${tp} parameters, ours ${r.params}`);
        }
      } catch (err) {
        torchReason = (err as Error).message;
      }
    }
    if (torchReason) o.log(`torch: not measured (${torchReason})`);
  }

  // The peak again at the end: the best of both (a busy moment can only lower a measurement).
  mark("fma_peak_end");
  const again = measurePeak(threadCounts).peak;
  if (peak && again)
    for (const [t, g] of Object.entries(again.gflops)) peak.gflops[t] = Math.max(peak.gflops[t], g);
  for (const [label, r] of Object.entries(matmul))
    if (r.fraction_of_peak !== null) r.fraction_of_peak = fraction(r.gflops, peakFor(peak, label));

  let llamaCpp: BenchReport["llama_cpp"] = null;
  let llamaCppReason =
    "not measured: needs llama-135m's weights as GGUF (--gguf FILE, from `sat export --format gguf`, which this branch does not have yet) and node-llama-cpp";
  const llamaIdx = models.findIndex((m) => m.name === "llama-135m");
  if (o.gguf && llamaIdx < 0) llamaCppReason = "not measured: --gguf needs the llama-135m model in --models";
  else if (o.gguf) {
    mark("llama_cpp");
    const r = await llamaCppSample(
      o.gguf,
      reports[llamaIdx].settings,
      threadCounts[threadCounts.length - 1],
      BOS,
    );
    if (r.result) {
      const ours = reports[llamaIdx].sample[bestEngine(Object.keys(reports[llamaIdx].sample)) ?? ""];
      llamaCpp = { ...r.result, ratio: ours ? ours.tok_s / r.result.sample.tok_s : null };
      llamaCppReason = "";
      o.log(`node-llama-cpp llama-135m: ${r.result.sample.tok_s.toFixed(0)} tok/s`);
    } else llamaCppReason = `not measured: ${r.reason}`;
  }

  const finishedAt = new Date();
  const { M, K, N } = o.settings.matmul;
  const matmulReport = { shape: { M, K, N }, flops: 2 * M * N * K, results: matmul };
  const ratios = torch ? computeRatios(reports, matmul, torch) : null;
  const report: BenchReport = {
    schema: SCHEMA,
    mode: o.mode,
    command: o.command,
    started_at: startedAt.toISOString(),
    finished_at: finishedAt.toISOString(),
    duration_s: (finishedAt.getTime() - startedAt.getTime()) / 1000,
    git: gitInfo(),
    machine: {
      platform: process.platform,
      arch: process.arch,
      cpu_model: cpus()[0]?.model.trim() ?? "unknown",
      logical_cpus: cpus().length,
      available_parallelism: availableParallelism(),
      total_memory_gib: totalmem() / 2 ** 30,
      load_avg_start: loadStart,
      load_avg_end: loadavg(),
    },
    node: { version: process.version, v8: process.versions.v8 },
    kernels,
    fma_peak: peak,
    fma_peak_reason: peakReason,
    settings: o.settings,
    engines: engineInfo,
    models: reports,
    matmul: matmulReport,
    profiles,
    stage_scaling: stageScaling,
    stage_scaling_reason: stageReason,
    torch,
    torch_reason: torchReason,
    llama_cpp: llamaCpp,
    llama_cpp_reason: llamaCppReason,
    ratios,
    ratios_min: torch ? computeRatios(reports, matmul, torch, "min") : null,
    load,
    summary: summarize({ models: reports, matmul: matmulReport, fma_peak: peak }, ratios),
  };
  return roundNumbers(report);
}

function fraction(gflops: number, peak: number | null): number | null {
  return peak === null ? null : gflops / peak;
}

async function runMatmul(
  spec: EngineSpec,
  s: BenchSettings,
  log: (line: string) => void,
): Promise<{ result: MatmulResult; isa: string | null }> {
  const be = await createBenchEngine(spec);
  try {
    // The ts reference needs seconds per run at the full size: one timed run after a small JIT warm-up.
    const slow = spec.impl === "ts";
    if (slow) matmulBench(be, { M: 64, K: 64, N: 64 }, 3, 1, s.seed);
    const r = matmulBench(be, s.matmul, slow ? 0 : s.matmul.warmup, slow ? 1 : s.matmul.repeats, s.seed);
    log(`matmul ${be.label}: ${r.median_ms.toFixed(1)} ms, ${r.gflops.toFixed(2)} GFLOP/s`);
    return { result: r, isa: be.isa };
  } finally {
    await be.close();
  }
}

/** Commit and dirty flag of the checkout this runs from, or null outside a git work tree. */
function gitInfo(): { commit: string; dirty: boolean } | null {
  const cwd = fileURLToPath(new URL("../..", import.meta.url));
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], {
      cwd,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    const status = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
      cwd,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return null;
  }
}
