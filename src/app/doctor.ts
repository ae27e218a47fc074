/**
 * `sat doctor`: what this machine offers the two backends — the engine's kernels, and for
 * model.backend = torch the Python interpreter, the versions of its packages against the pins in
 * python/requirements.txt, CUDA and the GPUs torch sees — and, for each missing piece, the command
 * that installs it.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { engineOf, threadsOf } from "./setup.js";
import { pythonCandidates, lastLine } from "../io/python.js";
import { PYTHON_DIR } from "../backend/torch/client.js";
import type { ResolvedConfig } from "../config/schema.js";

const REQUIREMENTS = `${PYTHON_DIR}/requirements.txt`;
/** What the torch backend needs, and what two of its options need on top. */
const NEEDED = ["torch", "transformers", "safetensors", "numpy"];
const OPTIONAL: Record<string, string> = {
  peft: "LoRA (backend.torch_lora_rank)",
  ray: "Ray (backend.torch_launcher=ray)",
};

export interface PackageStatus {
  name: string;
  installed: string | null;
  pinned: string | null;
  /** What it is for when it is not always needed. */
  for: string | null;
}

export interface DoctorReport {
  node: string;
  engine: { kernels: string; threads: number };
  python: { path: string; version: string } | null;
  /** Why other interpreters were not taken. */
  tried: string[];
  packages: PackageStatus[];
  cuda: string | null;
  gpus: { name: string; memory_gb: number }[];
  /** The torch backend can run here (the needed packages are installed). */
  torchReady: boolean;
  /** One line per missing or mismatched piece, with the command that fixes it. */
  fixes: string[];
}

/** name → pinned version from python/requirements.txt. */
export function pinnedVersions(path = REQUIREMENTS): Record<string, string> {
  if (!existsSync(path)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const m = /^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s#;]+)/.exec(line);
    if (m) out[m[1].toLowerCase()] = m[2];
  }
  return out;
}

interface Probe {
  python: string;
  version: string;
  packages: Record<string, string | null>;
  cuda: string | null;
  gpus: { name: string; memory_gb: number }[];
}

function probe(python: string): Probe | string {
  const r = spawnSync(python, ["-m", "sat_worker.doctor"], {
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, PYTHONPATH: [PYTHON_DIR, process.env.PYTHONPATH].filter(Boolean).join(":") },
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return `${python}: ${code === "ENOENT" ? "not found" : r.error.message}`;
  }
  if (r.status !== 0) return `${python}: ${lastLine(r.stderr) || `exit code ${r.status}`}`;
  const j = JSON.parse(r.stdout) as Omit<Probe, "version" | "python"> & { python: string };
  return { python, version: j.python, packages: j.packages, cuda: j.cuda, gpus: j.gpus };
}

export async function doctorReport(cfg: ResolvedConfig, candidates?: string[]): Promise<DoctorReport> {
  const engine = await engineOf(cfg);
  const kernels = { kernels: engine.kernels.name, threads: threadsOf(cfg) };
  await engine.close();
  const list = candidates ?? (cfg.backend.torch_python ? [cfg.backend.torch_python] : pythonCandidates());
  const tried: string[] = [];
  let chosen: Probe | null = null;
  for (const python of list) {
    const p = probe(python);
    if (typeof p === "string") {
      tried.push(p);
      continue;
    }
    // The backend takes the first interpreter that has torch; report that one if any has it.
    chosen ??= p;
    if (p.packages.torch) {
      chosen = p;
      break;
    }
    tried.push(`${python}: no torch`);
  }
  const pins = pinnedVersions();
  const names = [...new Set([...NEEDED, ...Object.keys(OPTIONAL), ...Object.keys(chosen?.packages ?? {})])];
  const packages: PackageStatus[] = names.map((name) => ({
    name,
    installed: chosen?.packages[name] ?? null,
    pinned: pins[name] ?? null,
    for: OPTIONAL[name] ?? null,
  }));
  const install = "pip install -r python/requirements.txt";
  const fixes: string[] = [];
  if (!chosen)
    fixes.push(
      `Python 3 with the backend's packages: python3 -m venv .venv && .venv/bin/${install} (or set SAT_PYTHON to an interpreter that has them)`,
    );
  else
    for (const p of packages) {
      const pin = p.pinned ? `${p.name}==${p.pinned}` : p.name;
      if (p.installed === null && (NEEDED.includes(p.name) || OPTIONAL[p.name]))
        fixes.push(
          `${p.name} missing${p.for ? ` (needed for ${p.for})` : ""}: ${install} (or pip install ${pin})`,
        );
      else if (p.installed && p.pinned && p.installed.split("+")[0] !== p.pinned)
        fixes.push(`${p.name} ${p.installed} differs from the tested ${p.pinned}: pip install ${pin}`);
    }
  return {
    node: process.version,
    engine: kernels,
    python: chosen ? { path: chosen.python, version: chosen.version } : null,
    tried,
    packages,
    cuda: chosen?.cuda ?? null,
    gpus: chosen?.gpus ?? [],
    torchReady: chosen !== null && NEEDED.every((n) => chosen!.packages[n]),
    fixes,
  };
}

export function formatDoctor(r: DoctorReport): string {
  const rows: [string, string][] = [
    ["node", r.node],
    ["engine", `${r.engine.kernels} kernels, ${r.engine.threads} thread(s) (run.kernels, run.threads)`],
    ["python", r.python ? `${r.python.path} (${r.python.version})` : `not found (${r.tried.join("; ")})`],
  ];
  for (const p of r.packages) {
    const pin = p.pinned && p.installed?.split("+")[0] !== p.pinned ? ` (tested: ${p.pinned})` : "";
    rows.push([p.name, `${p.installed ?? "missing"}${pin}${p.for ? ` — ${p.for}` : ""}`]);
  }
  rows.push(["CUDA", r.cuda ?? "not available (torch runs on the CPU)"]);
  rows.push(["GPUs", r.gpus.length ? r.gpus.map((g) => `${g.name} (${g.memory_gb} GB)`).join(", ") : "none"]);
  rows.push(["model.backend=torch", r.torchReady ? "ready" : "not ready"]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  if (r.fixes.length) lines.push("", "to fix:", ...r.fixes.map((f) => `  ${f}`));
  return lines.join("\n");
}
