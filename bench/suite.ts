/**
 * Runs the whole benchmark and assembles the report: every model trained and sampled on every
 * wasm engine, the big matmul on every engine (the ts reference only does the matmul: a training
 * step on it takes seconds), a profile of the first model on the last engine, then the PyTorch
 * reference in a child process and the ratios. Measurements run one after another, never in parallel.
 */
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { createBenchEngine, engineLabel, type EngineSpec } from "./engine.js";
import { profileTrain, type TrainProfile } from "./profile.js";
import { SCHEMA, computeRatios, summarize, type BenchReport, type ModelReport } from "./report.js";
import { findTorchPython, runTorchBench, type TorchReport } from "./torch.js";
import { roundNumbers } from "./timing.js";
import {
  benchModels,
  checkSettings,
  matmulBench,
  paramCount,
  sampleBench,
  trainBench,
  type BenchSettings,
  type MatmulResult,
} from "./workloads.js";

export interface SuiteOptions {
  mode: "full" | "quick";
  /** Names from benchModels(); the first one is profiled and summarised. */
  models: string[];
  /** Engines that train and sample (and run the matmul). */
  engines: EngineSpec[];
  /** Engines that only run the matmul (the ts reference). */
  matmulOnly: EngineSpec[];
  settings: BenchSettings;
  profile: boolean;
  /** Pythons to try for the torch reference; empty = do not run it. */
  pythons: string[];
  /** Why torch is skipped when `pythons` is empty (e.g. "--no-torch"). */
  torchOffReason?: string;
  torchThreads: number;
  command: string;
  /** Progress lines (stderr in the CLI). */
  log: (line: string) => void;
}

export async function runSuite(o: SuiteOptions): Promise<BenchReport> {
  const startedAt = new Date();
  const loadStart = loadavg();
  const all = benchModels();
  const models = o.models.map((name) => {
    const m = all[name];
    if (!m) throw new Error(`bench: unknown model "${name}" (choose from ${Object.keys(all).join(", ")})`);
    checkSettings(o.settings, m.config, name);
    return m;
  });
  const s = o.settings;
  const reports: ModelReport[] = models.map((m) => ({
    name: m.name,
    description: m.description,
    config: m.config,
    params: paramCount(m.config),
    train: {},
    sample: {},
  }));
  const matmul: Record<string, MatmulResult> = {};
  let profile: TrainProfile | null = null;

  for (const spec of o.engines) {
    const be = await createBenchEngine(spec);
    try {
      for (const [i, m] of models.entries()) {
        const t = trainBench(be, m.config, s);
        reports[i].train[be.label] = t;
        o.log(
          `${m.name} ${be.label} train: ${t.median_ms.toFixed(1)} ms/step, ${t.tok_s.toFixed(0)} tok/s (loss ${t.loss_first.toFixed(3)} -> ${t.loss_last.toFixed(3)})`,
        );
        const r = sampleBench(be, m.config, s);
        reports[i].sample[be.label] = r;
        o.log(
          `${m.name} ${be.label} sample: ${r.median_ms.toFixed(1)} ms/round, ${r.tok_s.toFixed(0)} tok/s`,
        );
      }
      matmul[be.label] = runMatmul(be, s, o.log);
      if (o.profile && spec === o.engines[o.engines.length - 1]) {
        profile = profileTrain(be, models[0].name, models[0].config, s);
        o.log(
          `profile ${models[0].name} ${be.label}: step ${profile.step_ms.toFixed(1)} ms, gemm share ${(profile.gemm_share * 100).toFixed(0)}%`,
        );
      }
    } finally {
      await be.close();
    }
  }
  for (const spec of o.matmulOnly) {
    const be = await createBenchEngine(spec);
    try {
      matmul[be.label] = runMatmul(be, s, o.log);
    } finally {
      await be.close();
    }
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
      try {
        torch = runTorchBench(probe.python, {
          threads: o.torchThreads,
          settings: s,
          models: models.map((m) => ({ name: m.name, config: m.config })),
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

  const finishedAt = new Date();
  const engines = [...o.engines, ...o.matmulOnly].map((e) => ({ ...e, label: engineLabel(e) }));
  const { M, K, N } = s.matmul;
  const partial = {
    models: reports,
    engines,
    matmul: { shape: { M, K, N }, flops: 2 * M * N * K, results: matmul },
    torch,
  };
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
    settings: s,
    ...partial,
    profile,
    torch_reason: torchReason,
    ratios: torch ? computeRatios(reports, matmul, torch) : null,
    ratios_min: torch ? computeRatios(reports, matmul, torch, "min") : null,
    summary: summarize(partial),
  };
  return roundNumbers(report);
}

function runMatmul(
  be: Awaited<ReturnType<typeof createBenchEngine>>,
  s: BenchSettings,
  log: (line: string) => void,
): MatmulResult {
  // The ts reference needs seconds per run at the full size: one timed run after a small JIT warm-up.
  const slow = be.spec.impl === "ts";
  if (slow) matmulBench(be, { M: 64, K: 64, N: 64 }, 3, 1, s.seed);
  const r = matmulBench(be, s.matmul, slow ? 0 : s.matmul.warmup, slow ? 1 : s.matmul.repeats, s.seed);
  log(`matmul ${be.label}: ${r.median_ms.toFixed(1)} ms, ${r.gflops.toFixed(2)} GFLOP/s`);
  return r;
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
