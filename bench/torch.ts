/**
 * Runs the PyTorch reference (scripts/bench/torch_bench.py): finds a Python that can import torch,
 * pipes it the same models and settings, one model per process (so each reports its own peak
 * memory; the first also runs the matmul), and merges the JSON they print. Absence of torch is a
 * normal outcome (the report then says why), not an error.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ModelConfig } from "../src/model/config.js";
import { findPython, lastLine, pythonCandidates } from "../src/io/python.js";
import type { BenchSettings, MatmulResult, SampleResult, TrainResult } from "./workloads.js";

// Compiled to dist/bench/torch.js: the package root is two levels up.
export const TORCH_SCRIPT = fileURLToPath(new URL("../../scripts/bench/torch_bench.py", import.meta.url));

export interface TorchReport {
  torch_version: string;
  python: string;
  /** The interpreter that ran the script. */
  executable: string;
  threads: number;
  cpu_capability: string;
  mkl: boolean;
  mkldnn: boolean;
  attention: string;
  optimizer: string;
  /** $OMP_WAIT_POLICY as the script saw it ("default" when unset). */
  omp_wait_policy: string;
  models: Record<
    string,
    {
      params: number;
      train: TrainResult & { phases_ms: Record<string, number> };
      sample: SampleResult;
      /** Peak resident memory of the process that ran this model (MiB). */
      peak_rss_mib: number;
    }
  >;
  matmul: MatmulResult;
}

export type TorchProbe = { ok: true; python: string; version: string } | { ok: false; reason: string };

/** The first candidate that has torch, or why none did. */
export function findTorchPython(candidates: readonly string[]): TorchProbe {
  const p = findPython(["torch"], candidates);
  return p.ok ? { ok: true, python: p.python, version: p.versions.torch } : p;
}

/** The candidates: $SAT_BENCH_PYTHON alone when set, else the project's (src/io/python.ts). */
export function benchPythonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const chosen = env.SAT_BENCH_PYTHON?.trim();
  return chosen ? [chosen] : pythonCandidates(env);
}

export interface TorchSpec {
  threads: number;
  settings: BenchSettings;
  /** `settings`: the model's own settings (batch and step counts), merged over the common ones. */
  models: Array<{ name: string; config: ModelConfig; settings?: Partial<BenchSettings> }>;
}

/** Runs the reference, one process per model; throws with the script's last stderr line when one fails. */
export function runTorchBench(python: string, spec: TorchSpec, timeoutMs = 30 * 60_000): TorchReport {
  let merged: TorchReport | null = null;
  spec.models.forEach((m, i) => {
    const r = runTorchProcess(python, { ...spec, models: [m], matmul: i === 0 }, timeoutMs);
    if (merged === null) merged = r;
    else merged.models[m.name] = r.models[m.name];
  });
  if (merged === null) throw new Error("torch reference: no models to run");
  return merged;
}

function runTorchProcess(
  python: string,
  spec: TorchSpec & { matmul: boolean },
  timeoutMs: number,
): TorchReport {
  const threads = String(spec.threads);
  const r = spawnSync(python, [TORCH_SCRIPT, "--spec", "-"], {
    input: JSON.stringify(spec),
    encoding: "utf8",
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
    // Pin the thread pools of every BLAS torch might use, not only torch's own.
    env: {
      ...process.env,
      OMP_NUM_THREADS: threads,
      MKL_NUM_THREADS: threads,
      OPENBLAS_NUM_THREADS: threads,
    },
  });
  if (r.error) throw new Error(`torch reference (${python} ${TORCH_SCRIPT}): ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(
      `torch reference (${python} ${TORCH_SCRIPT}) exited with ${r.status}: ${lastLine(r.stderr)}`,
    );
  }
  let parsed: Omit<TorchReport, "executable">;
  try {
    parsed = JSON.parse(r.stdout) as Omit<TorchReport, "executable">;
  } catch {
    throw new Error(`torch reference (${TORCH_SCRIPT}) printed no valid JSON: ${r.stdout.slice(0, 200)}`);
  }
  return { ...parsed, executable: python };
}
