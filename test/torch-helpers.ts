/**
 * Shared by the PyTorch-backend and Ray tests: the Python probe (tests skip with its reason), team
 * options, random transformers models written by sat_worker.random_model, and the children of a
 * process (a worker or Ray driver the CLI started). Running `sat` itself goes through sat-process.ts.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findPython } from "../src/io/python.js";
import { PYTHON_DIR } from "../src/backend/torch/client.js";
import type { TorchBackendOptions } from "../src/backend/torch/team.js";

export { fixtureAgent as charAgent } from "./sat-process.js";

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
