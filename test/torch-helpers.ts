/**
 * Shared by the PyTorch-backend and Ray tests: the Python probe (tests skip with its reason), team
 * options, random transformers models written by sat_worker.random_model, and running the `sat`
 * CLI as a child process.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findPython } from "../src/io/python.js";
import { PYTHON_DIR } from "../src/backend/torch/client.js";
import type { TorchBackendOptions } from "../src/backend/torch/team.js";

export const repo = fileURLToPath(new URL("../../", import.meta.url));
export const satJs = join(repo, "bin", "sat.js");
export const charAgent = join(repo, "test", "fixtures", "agents", "add2-tiny");

export function probeFor(packages: string[]) {
  const probe = findPython(packages);
  return { probe, skip: probe.ok ? false : `skipped: ${probe.reason}` };
}

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const OPTIM = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };

export function torchOptions(python: string, over: Partial<TorchBackendOptions> = {}): TorchBackendOptions {
  return {
    python,
    launcher: "process",
    workers: "shared",
    device: "cpu",
    dtype: "float32",
    threads: 1,
    timeoutS: 120,
    startTimeoutS: 300,
    microBatchSize: 16,
    refCacheMb: 1024,
    lora: null,
    ray: { address: null, numCpus: 1, numGpus: 0, shipFiles: true },
    temperature: 1,
    optim: OPTIM,
    seed: 1,
    ...over,
  };
}

/** A random transformers model (llama or qwen3, 64-token vocabulary) saved in Hugging Face layout. */
export function randomModel(python: string, arch: "llama" | "qwen3", dir: string): string {
  const out = join(dir, arch);
  if (existsSync(join(out, "config.json"))) return out;
  const r = spawnSync(python, ["-m", "sat_worker.random_model", "--arch", arch, "--out", out], {
    env: { ...process.env, PYTHONPATH: PYTHON_DIR },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`random_model ${arch} failed: ${r.stderr}`);
  return out;
}

/** `--set key=value` pairs (values as JSON unless strings). */
export const sets = (o: Record<string, unknown>) =>
  Object.entries(o).flatMap(([k, v]) => ["--set", `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`]);

export interface SatResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function startSat(argv: string[], env: Record<string, string> = {}) {
  const child: ChildProcess = spawn(process.execPath, [satJs, ...argv], {
    cwd: repo,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<SatResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export const sat = (argv: string[], env: Record<string, string> = {}) => startSat(argv, env).done;

export const jsonLines = (path: string): Record<string, unknown>[] =>
  existsSync(path)
    ? readFileSync(path, "utf8")
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

/** The per-agent decisions and KL values of stages.jsonl rows. */
export function decisions(rows: Record<string, unknown>[]) {
  return rows.map((r) => ({
    sigma: r["order/sigma"],
    reward: r["reward/mean"],
    agents: (r.agents as Record<string, number>[]).map((a) => ({
      accepted: a["trust_region/accepted"],
      backtracks: a["trust_region/backtracks"],
      klQuantile: a["trust_region/kl_quantile"],
      klMax: a["trust_region/kl_max"],
    })),
  }));
}

/** Children of process `pid` (Linux /proc), for killing a worker the CLI started. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}
