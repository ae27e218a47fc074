/**
 * Test helpers for running the real `sat` executable as a child process — the one place every CLI
 * test starts it from: run it to the end (async or sync), start it and wait for a file condition,
 * interrupt or kill it, and fingerprint a run directory (file hashes, logs without timing fields).
 * A tiny training setup (two copies of the add2-tiny fixture agent, 4 prompts × 4 samples) keeps
 * each stage well under a second.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { readJsonl } from "../src/io/jsonl.js";
import { listCheckpoints, RUN_FILES } from "../src/io/rundir.js";

export const repo = fileURLToPath(new URL("../../", import.meta.url));
export const satJs = join(repo, "bin", "sat.js");
export const fixtureAgent = join(repo, "test", "fixtures", "agents", "add2-tiny");

/** `--set key=value` pairs (values as JSON unless strings). */
export const sets = (o: Record<string, unknown>): string[] =>
  Object.entries(o).flatMap(([k, v]) => ["--set", `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`]);

/** The settings of a tiny two-agent team trained from the fixture agent. */
export const TINY: Record<string, unknown> = {
  "team.n_agents": 2,
  "team.agent_checkpoints": [fixtureAgent, fixtureAgent],
  "tasks.difficulty": 2,
  "rollout.max_prompt_length": 16,
  "rollout.max_completion_length": 40,
  "rollout.prompts_per_step": 4,
  "rollout.n": 4,
  "algo.ppo_mini_batch_size": 2,
  "algo.kl_radius": 0.3,
  "eval.n_prompts": 8,
  "eval.n": 1,
  "eval.k": [1],
};

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export interface Running {
  child: ChildProcess;
  done: Promise<Result>;
}

export interface SatOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export function startSat(argv: string[], cwd?: string, opts: SatOptions = {}): Running {
  const t0 = performance.now();
  const child = spawn(process.execPath, [satJs, ...argv], {
    cwd: cwd ?? opts.cwd,
    env: opts.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<Result>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({ code, signal, stdout, stderr, seconds: (performance.now() - t0) / 1000 }),
    );
  });
  return { child, done };
}

/** Runs `sat` to the end; with `sigintWhen`, sends one SIGINT as soon as it returns true (polled every few ms). */
export async function runSat(
  argv: string[],
  opts: SatOptions & { sigintWhen?: () => boolean } = {},
): Promise<Result> {
  const run = startSat(argv, undefined, opts);
  if (!opts.sigintWhen) return run.done;
  const poll = setInterval(() => {
    if (opts.sigintWhen!()) {
      clearInterval(poll);
      run.child.kill("SIGINT");
    }
  }, 3);
  const r = await run.done;
  clearInterval(poll);
  return r;
}

/** Runs `sat` synchronously (simple cases that need no signal or polling). */
export function satSync(argv: string[], opts: SatOptions = {}): Result {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [satJs, ...argv], { cwd: opts.cwd, env: opts.env, encoding: "utf8" });
  if (r.error) throw r.error;
  return {
    code: r.status,
    signal: r.signal,
    stdout: r.stdout,
    stderr: r.stderr,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Polls `ready` every few ms; fails if the process ends first. */
export async function waitUntil(run: Running, ready: () => boolean, what: string): Promise<void> {
  let ended = false;
  void run.done.then(() => (ended = true));
  while (!ready()) {
    if (ended) assert.fail(`the run ended before ${what}: ${JSON.stringify(await run.done)}`);
    await new Promise((r) => setTimeout(r, 3));
  }
}

export async function killed(run: Running): Promise<Result> {
  run.child.kill("SIGKILL");
  const r = await run.done;
  assert.equal(r.signal, "SIGKILL", `expected the run to die by SIGKILL: ${JSON.stringify(r)}`);
  return r;
}

export async function completes(run: Running): Promise<Result> {
  const r = await run.done;
  assert.equal(r.code, 0, `run failed: ${r.stderr}`);
  return r;
}

/** stderr lines, without the stage warnings a tiny run often gives (equal rewards in every group). */
export const errorLines = (r: Result): string[] =>
  r.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("sat: warning: stage "));

export const read = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "");

export function filesBelow(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesBelow(p) : [p];
  });
}

export const sha256 = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

/** sha256 of every file below `dir`, by relative path. */
export function hashTree(dir: string): Record<string, string> {
  return Object.fromEntries(
    filesBelow(dir)
      .map((p) => [relative(dir, p), sha256(p)])
      .sort(),
  );
}

const TIMING = /^time$|timing|throughput|seconds/;

/** A JSON value without its timing fields (they differ between runs), nor keys matching `also`. */
export function withoutTiming(value: unknown, also?: RegExp): unknown {
  if (Array.isArray(value)) return value.map((v) => withoutTiming(v, also));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !TIMING.test(k) && !also?.test(k))
        .map(([k, v]) => [k, withoutTiming(v, also)]),
    );
  }
  return value;
}

/**
 * What a run's results are, independent of interruptions: every checkpoint file but the manifest
 * (it holds a time), the stage log without times (nor keys matching `also`), the evaluations.
 */
export function fingerprint(dir: string, also?: RegExp) {
  const checkpoints: Record<string, string> = {};
  for (const c of listCheckpoints(dir))
    for (const [p, h] of Object.entries(hashTree(c.dir)))
      if (p !== RUN_FILES.manifest) checkpoints[`stage-${c.step}/${p}`] = h;
  return {
    checkpoints,
    stages: withoutTiming(readJsonl(join(dir, RUN_FILES.stages)), also),
    evals: readJsonl(join(dir, RUN_FILES.eval)),
  };
}
