/**
 * Reading a run directory for `sat report`: the resolved config, stages.jsonl, eval.jsonl and the
 * optional sweep.jsonl (conventions.md §2–3). Everything is optional except that what exists must
 * parse: a bad line is an error naming file:line, while a torn last line (an append cut short by a
 * crash) and missing files only add warnings, which the report shows.
 *
 * stages.jsonl may hold one object per stage with an `agents` array, or one row per (stage, agent)
 * with a team row whose `agent` is null (the layout src/io/rundir.ts writes); both are read into
 * the same StageRecord shape. Metric values must be numbers or null (NaN/Inf are logged as null).
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import YAML from "yaml";
import { JsonlError } from "../io/jsonl.js";

type Num = number | null;

/** One agent's part of a stage (keys of conventions.md §2, rows marked A). */
export interface AgentStageRecord {
  agent?: number;
  "order/position"?: Num;
  "trust_region/kl_quantile"?: Num;
  "trust_region/kl_max"?: Num;
  "trust_region/kl_mean"?: Num;
  "trust_region/kl_radius"?: Num;
  "trust_region/violation"?: Num;
  "trust_region/violation_rate"?: Num;
  "trust_region/backtracks"?: Num;
  "trust_region/accepted"?: Num;
  "trust_region/kl_coef_next"?: Num;
  "surrogate/gain"?: Num;
  "is/trunc_bias"?: Num;
  [key: string]: unknown;
}

/** One SAT stage (team-level keys, rows marked T, plus the agents). */
export interface StageRecord {
  step?: number;
  time?: Num;
  "reward/mean"?: Num;
  "reward/std"?: Num;
  "order/sigma"?: number[];
  "cert/surrogate_sum"?: Num;
  "cert/occupancy_penalty"?: Num;
  "cert/bias_penalty"?: Num;
  "cert/sample_penalty"?: Num;
  "cert/lower_bound"?: Num;
  "cert/vacuous"?: Num;
  "cert/gamma"?: Num;
  "cert/improvement"?: Num;
  "cert/improvement_ci_low"?: Num;
  "cert/improvement_ci_high"?: Num;
  "cert/monotonicity_violation"?: Num;
  "timing_s/step"?: Num;
  agents?: AgentStageRecord[];
  [key: string]: unknown;
}

/** One evaluation: a team or baseline (`name`) on one task at one step. Metric keys vary. */
export interface EvalRecord {
  step?: number;
  name?: string;
  task?: string;
  n?: number;
  per_agent?: Record<string, unknown>[];
  [key: string]: unknown;
}

/** One point of a δ sweep: the share of rejected candidates of `agent` at radius `kl_radius`. */
export interface SweepRecord {
  kl_radius: number;
  agent: number;
  violation_rate: number;
  [key: string]: unknown;
}

export interface RunData {
  dir: string;
  /** Display name: run.output_dir's last part, else the directory name. */
  name: string;
  /** The resolved config, or null when the run has none. */
  config: Record<string, unknown> | null;
  stages: StageRecord[];
  evals: EvalRecord[];
  /** null when sweep.jsonl is absent. */
  sweep: SweepRecord[] | null;
  /** Problems that did not stop the report (torn lines, missing files); shown on the page. */
  warnings: string[];
}

export const REPORT_FILES = {
  config: "config.resolved.yaml",
  configJson: "config.json",
  stages: "stages.jsonl",
  eval: "eval.jsonl",
  sweep: "sweep.jsonl",
} as const;

interface Line {
  record: Record<string, unknown>;
  line: number;
}

/** Parses JSONL text; `label` names the file in messages. A torn last line is skipped with a warning. */
export function parseJsonlLines(text: string, label: string, warnings: string[]): Line[] {
  const lines = text.split("\n");
  const terminated = text.endsWith("\n");
  const out: Line[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, "");
    if (raw.trim() === "") continue;
    let record: unknown;
    let problem: string | null = null;
    try {
      record = JSON.parse(raw);
      if (typeof record !== "object" || record === null || Array.isArray(record))
        problem = "not a JSON object";
    } catch (err) {
      problem = `not valid JSON (${(err as Error).message.split("\n")[0]})`;
    }
    if (problem === null) out.push({ record: record as Record<string, unknown>, line: i + 1 });
    else if (i === lines.length - 1 && !terminated) {
      warnings.push(`${label}:${i + 1}: ignored a torn last line (the run was interrupted while writing it)`);
    } else throw new JsonlError(`${label}:${i + 1}: ${problem}; fix or delete that line`);
  }
  return out;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "string"
    ? `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`
    : typeof v;
}

/** Every key that looks like a metric (has a "/" or "@") must be a number or null, or a list of numbers. */
function checkMetrics(rec: Record<string, unknown>, where: string): void {
  for (const [key, v] of Object.entries(rec)) {
    if (!key.includes("/") && !key.includes("@")) continue;
    if (v === null || (typeof v === "number" && Number.isFinite(v))) continue;
    if (Array.isArray(v) && v.every((x) => x === null || typeof x === "number")) continue;
    throw new JsonlError(`${where}: key "${key}" must be a number or null, got ${describe(v)}`);
  }
}

function checkStep(rec: Record<string, unknown>, where: string, required: boolean): void {
  const step = rec.step;
  if (step === undefined && !required) return;
  if (typeof step !== "number" || !Number.isInteger(step) || step < 0) {
    throw new JsonlError(`${where}: "step" must be an integer ≥ 0, got ${describe(step)}`);
  }
}

function readText(path: string): string | null {
  return existsSync(path) ? readFileSync(path, "utf8") : null;
}

/** Stage records from either layout (one object per stage, or one row per (stage, agent)). */
function readStages(dir: string, warnings: string[]): StageRecord[] {
  const label = join(dir, REPORT_FILES.stages);
  const text = readText(label);
  if (text === null) {
    warnings.push(`${REPORT_FILES.stages} is missing: no stage charts or tables`);
    return [];
  }
  const byStep = new Map<number, StageRecord>();
  const seenTeam = new Set<number>();
  for (const { record, line } of parseJsonlLines(text, label, warnings)) {
    const where = `${label}:${line}`;
    checkStep(record, where, true);
    checkMetrics(record, where);
    const step = record.step as number;
    const agentRow = typeof record.agent === "number";
    let stage = byStep.get(step);
    if (!stage) byStep.set(step, (stage = { step, agents: [] }));
    if (agentRow) {
      stage.agents!.push(record as AgentStageRecord);
      continue;
    }
    if (record.agents !== undefined) {
      if (!Array.isArray(record.agents)) throw new JsonlError(`${where}: "agents" must be a list of objects`);
      record.agents.forEach((a: unknown, i: number) => {
        if (typeof a !== "object" || a === null || Array.isArray(a)) {
          throw new JsonlError(`${where}: agents[${i}] must be an object`);
        }
        checkMetrics(a as Record<string, unknown>, `${where}: agents[${i}]`);
        if (typeof (a as AgentStageRecord).agent !== "number") (a as AgentStageRecord).agent = i;
      });
    }
    if (seenTeam.has(step)) {
      // A resumed run that did not rewind its log: the later record is the one that counts.
      warnings.push(`${where}: stage ${step} appears again; the later record is used`);
      stage.agents = [];
    }
    seenTeam.add(step);
    const agents = (record.agents as AgentStageRecord[] | undefined) ?? [];
    Object.assign(stage, record, { agents: [...stage.agents!, ...agents] });
  }
  const stages = [...byStep.values()].sort((a, b) => a.step! - b.step!);
  for (const s of stages) {
    s.agents!.sort((a, b) => (a.agent ?? 0) - (b.agent ?? 0));
    // Keep only the last row per agent index (a repeated stage after a resume).
    const last = new Map<number | undefined, AgentStageRecord>();
    for (const a of s.agents!) last.set(a.agent, a);
    s.agents = [...last.values()];
  }
  return stages;
}

function readEvals(dir: string, warnings: string[]): EvalRecord[] {
  const label = join(dir, REPORT_FILES.eval);
  const text = readText(label);
  if (text === null) {
    warnings.push(`${REPORT_FILES.eval} is missing: no evaluation table`);
    return [];
  }
  return parseJsonlLines(text, label, warnings).map(({ record, line }) => {
    const where = `${label}:${line}`;
    checkStep(record, where, false);
    for (const key of ["name", "task"] as const) {
      if (record[key] !== undefined && typeof record[key] !== "string") {
        throw new JsonlError(`${where}: "${key}" must be a string, got ${describe(record[key])}`);
      }
    }
    if (record.per_agent !== undefined && !Array.isArray(record.per_agent)) {
      throw new JsonlError(`${where}: "per_agent" must be a list`);
    }
    checkMetrics(record, where);
    return record as EvalRecord;
  });
}

function readSweep(dir: string, warnings: string[]): SweepRecord[] | null {
  const label = join(dir, REPORT_FILES.sweep);
  const text = readText(label);
  if (text === null) return null;
  return parseJsonlLines(text, label, warnings).map(({ record, line }) => {
    for (const key of ["kl_radius", "agent", "violation_rate"]) {
      const v = record[key];
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new JsonlError(`${label}:${line}: "${key}" must be a number, got ${describe(v)}`);
      }
    }
    return record as SweepRecord;
  });
}

function readConfig(dir: string, warnings: string[]): Record<string, unknown> | null {
  const yamlPath = join(dir, REPORT_FILES.config);
  const jsonPath = join(dir, REPORT_FILES.configJson);
  const yamlText = readText(yamlPath);
  if (yamlText !== null) {
    const doc = YAML.parseDocument(yamlText);
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const line = e.linePos?.[0].line ?? 1;
      throw new JsonlError(`${yamlPath}:${line}: invalid YAML (${e.message.split("\n")[0]})`);
    }
    const value = doc.toJS() as unknown;
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new JsonlError(`${yamlPath}:1: expected a mapping of config sections`);
    }
    return value as Record<string, unknown>;
  }
  const jsonText = readText(jsonPath);
  if (jsonText !== null) {
    try {
      return JSON.parse(jsonText) as Record<string, unknown>;
    } catch (err) {
      throw new JsonlError(`${jsonPath}:1: not valid JSON (${(err as Error).message.split("\n")[0]})`);
    }
  }
  warnings.push(`${REPORT_FILES.config} is missing: the run settings are unknown`);
  return null;
}

/** A dotted config value, e.g. configValue(cfg, "algo.kl_radius"), or undefined. */
export function configValue(config: Record<string, unknown> | null, path: string): unknown {
  let node: unknown = config;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Reads a run directory. Throws JsonlError (naming file:line) on a file that exists but is damaged. */
export function readRun(runDir: string): RunData {
  if (!existsSync(runDir)) throw new JsonlError(`${runDir}: no such run directory`);
  const warnings: string[] = [];
  // Messages use the path as given, so they point where the user looked.
  const config = readConfig(runDir, warnings);
  const stages = readStages(runDir, warnings);
  const evals = readEvals(runDir, warnings);
  const sweep = readSweep(runDir, warnings);
  const dir = resolve(runDir);
  const outputDir = configValue(config, "run.output_dir");
  const name = typeof outputDir === "string" && outputDir !== "" ? basename(outputDir) : basename(dir);
  return { dir, name, config, stages, evals, sweep, warnings };
}
