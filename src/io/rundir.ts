/**
 * The run directory: creating or refusing it, the resolved config and the overrides as given, the
 * JSONL logs, and checkpoints that a crash can never leave half-published.
 *
 *   <output_dir>/config.resolved.yaml   the full config (reloadable with --config)
 *               overrides.json          every invocation's flags and --set values, as given
 *               stages.jsonl            one record per (stage, agent), fsynced
 *               eval.jsonl              one record per evaluation, fsynced
 *               checkpoints/stage-K/    published by rename; holds checkpoint.json (its manifest)
 *               checkpoints/latest      "stage-K", written last, for other tools
 *
 * A checkpoint counts only if its manifest exists and every file it lists has the listed size;
 * temp dirs (".stage-K.tmp-…") are never read, and a resume removes those a killed run left. Resume
 * trusts complete stage dirs only, not `latest`.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { fsyncDir, fsyncTree, writeFileAtomic } from "./atomic.js";
import { filterJsonl, JsonlWriter, type Warn } from "./jsonl.js";

export const RUN_FILES = {
  config: "config.resolved.yaml",
  overrides: "overrides.json",
  stages: "stages.jsonl",
  eval: "eval.jsonl",
  checkpoints: "checkpoints",
  /** Inside checkpoints/. */
  latest: "latest",
  /** Inside each checkpoint dir. */
  manifest: "checkpoint.json",
} as const;

const MANIFEST_FORMAT = "sat-llm-checkpoint";
const STAGE_DIR = /^stage-(\d+)$/;

/** A run-directory problem the user can fix; `exitCode` 2 for usage, 1 for a damaged run. */
export class RunDirError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 2,
  ) {
    super(message);
    this.name = "RunDirError";
  }
}

export interface CheckpointInfo {
  step: number;
  dir: string;
}

interface Manifest {
  format: string;
  version: number;
  step: number;
  time: number;
  files: { path: string; bytes: number }[];
}

function listFiles(dir: string, base = dir): { path: string; bytes: number }[] {
  const out: { path: string; bytes: number }[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...listFiles(p, base));
    else out.push({ path: relative(base, p).split(sep).join("/"), bytes: st.size });
  }
  return out;
}

/** The manifest of a complete checkpoint dir, or null (missing, unreadable, or files missing/short). */
export function readCompleteManifest(dir: string): Manifest | null {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(join(dir, RUN_FILES.manifest), "utf8")) as Manifest;
  } catch {
    return null;
  }
  if (m?.format !== MANIFEST_FORMAT || !Number.isInteger(m.step) || !Array.isArray(m.files)) return null;
  for (const f of m.files) {
    try {
      if (statSync(join(dir, f.path)).size !== f.bytes) return null;
    } catch {
      return null;
    }
  }
  return m;
}

/** Complete checkpoints under `<runDir>/checkpoints`, oldest first. */
export function listCheckpoints(runDir: string): CheckpointInfo[] {
  const root = join(runDir, RUN_FILES.checkpoints);
  if (!existsSync(root)) return [];
  const out: CheckpointInfo[] = [];
  for (const name of readdirSync(root)) {
    const match = STAGE_DIR.exec(name);
    if (!match) continue; // temp dirs start with "." and the `latest` file does not match
    const dir = join(root, name);
    const m = readCompleteManifest(dir);
    if (m && m.step === Number(match[1])) out.push({ step: m.step, dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint of a run, or null. */
export function findLatestCheckpoint(runDir: string): CheckpointInfo | null {
  const all = listCheckpoints(runDir);
  return all.length > 0 ? all[all.length - 1] : null;
}

/**
 * A checkpoint path given on the command line (`flag` names it in errors): a checkpoint dir
 * itself, or a run dir (its newest complete checkpoint).
 */
export function resolveCheckpoint(path: string, flag = "--resume"): CheckpointInfo {
  if (!existsSync(path)) throw new RunDirError(`${flag} ${path}: no such checkpoint or run directory`);
  if (existsSync(join(path, RUN_FILES.manifest))) {
    const m = readCompleteManifest(path);
    if (!m)
      throw new RunDirError(
        `${flag} ${path}: checkpoint is incomplete (files missing or truncated); pick an older one`,
        1,
      );
    return { step: m.step, dir: resolve(path) };
  }
  const latest = findLatestCheckpoint(path);
  if (!latest)
    throw new RunDirError(
      `${flag} ${path}: no complete checkpoint there (expected ${RUN_FILES.manifest} or ${RUN_FILES.checkpoints}/stage-K/); ` +
        `give a run directory or checkpoint that has one`,
    );
  return latest;
}

/** Names of temp files and dirs an interrupted write leaves: ".<name>.tmp-<pid>-<n>", ".stage-K.del-…". */
const LEFTOVER = /^\..+\.(tmp|del)-\d+-\d+$/;

function removeDir(path: string): void {
  // Rename first, so an interrupted delete never leaves a stage dir that looks half-written.
  const trash = join(path, "..", `.${path.split(sep).pop()}.del-${process.pid}-${Date.now()}`);
  renameSync(path, trash);
  rmSync(trash, { recursive: true, force: true });
}

export interface OpenRunDirOptions {
  /** true = the newest complete checkpoint in `dir` (none: start fresh); a path = that checkpoint or run. */
  resume?: boolean | string;
  /** Empty an existing run directory and start over. */
  force?: boolean;
  warn?: Warn;
  /** Called with the checkpoint to resume from before anything in `dir` changes; throw to refuse it. */
  onResume?: (from: CheckpointInfo) => void;
}

/**
 * Creates the run directory, or refuses: a non-empty directory needs --resume (continue) or
 * --force (start over; only for a directory that holds a sat run). On resume, log records after
 * the resumed step and newer checkpoints of the same run are dropped, since they will be redone.
 */
export function openRunDir(dir: string, opts: OpenRunDirOptions = {}): RunDir {
  const warn = opts.warn ?? (() => {});
  if (opts.resume && opts.force)
    throw new RunDirError("--resume and --force contradict each other; drop one");
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new RunDirError(`output directory ${dir} exists and is not a directory`);
  const entries = existsSync(dir) ? readdirSync(dir) : [];
  if (entries.length > 0 && !opts.resume) {
    if (!opts.force) {
      throw new RunDirError(
        `output directory ${dir} is not empty; pass --resume to continue it, --force to start over, or choose another --output-dir`,
      );
    }
    if (!entries.includes(RUN_FILES.config)) {
      throw new RunDirError(
        `refusing to empty ${dir}: it does not hold a sat run (no ${RUN_FILES.config}); choose another --output-dir`,
      );
    }
    for (const name of entries) rmSync(join(dir, name), { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  let resumeFrom: CheckpointInfo | null = null;
  if (opts.resume === true) {
    resumeFrom = findLatestCheckpoint(dir);
    if (!resumeFrom && entries.length > 0)
      warn(`${dir}: no complete checkpoint to resume from; starting at step 0`);
  } else if (typeof opts.resume === "string") {
    resumeFrom = resolveCheckpoint(opts.resume);
  }
  if (resumeFrom) opts.onResume?.(resumeFrom);
  const run = new RunDir(dir, resumeFrom, warn);
  if (opts.resume && entries.length > 0) run.rewind(resumeFrom ? resumeFrom.step : null);
  return run;
}

export class RunDir {
  constructor(
    readonly dir: string,
    /** The checkpoint to continue from, when resuming. */
    readonly resumeFrom: CheckpointInfo | null = null,
    private readonly warn: Warn = () => {},
  ) {}

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Writes config.resolved.yaml and adds this invocation to overrides.json (both atomically). */
  writeConfig(configYaml: string, invocation: object): void {
    writeFileAtomic(this.path(RUN_FILES.config), configYaml);
    let history: unknown[] = [];
    try {
      const old = JSON.parse(readFileSync(this.path(RUN_FILES.overrides), "utf8")) as {
        invocations?: unknown[];
      };
      if (Array.isArray(old.invocations)) history = old.invocations;
    } catch {
      // first invocation (or an unreadable file, which is rewritten)
    }
    writeFileAtomic(
      this.path(RUN_FILES.overrides),
      JSON.stringify({ invocations: [...history, invocation] }, null, 2) + "\n",
    );
  }

  openStages(): JsonlWriter {
    return new JsonlWriter(this.path(RUN_FILES.stages), this.warn);
  }

  openEval(): JsonlWriter {
    return new JsonlWriter(this.path(RUN_FILES.eval), this.warn);
  }

  listCheckpoints(): CheckpointInfo[] {
    return listCheckpoints(this.dir);
  }

  latestCheckpoint(): CheckpointInfo | null {
    return findLatestCheckpoint(this.dir);
  }

  /**
   * Publishes checkpoints/stage-<step>/: `build` fills a temp dir, then the manifest is written,
   * the tree fsynced and renamed into place; the `latest` pointer is written last. With `keep`,
   * older checkpoints beyond that many are pruned afterwards.
   */
  async publishCheckpoint(
    step: number,
    build: (dir: string) => void | Promise<void>,
    opts: { keep?: number | null } = {},
  ): Promise<CheckpointInfo> {
    if (!Number.isInteger(step) || step < 0)
      throw new Error(`checkpoint step must be an integer ≥ 0, got ${step}`);
    const root = this.path(RUN_FILES.checkpoints);
    mkdirSync(root, { recursive: true });
    const name = `stage-${step}`;
    const final = join(root, name);
    const tmp = join(root, `.${name}.tmp-${process.pid}-${Date.now()}`);
    mkdirSync(tmp);
    try {
      await build(tmp);
      const files = listFiles(tmp).filter((f) => f.path !== RUN_FILES.manifest);
      const manifest: Manifest = {
        format: MANIFEST_FORMAT,
        version: 1,
        step,
        time: Date.now() / 1000,
        files,
      };
      writeFileSync(join(tmp, RUN_FILES.manifest), JSON.stringify(manifest, null, 1) + "\n");
      fsyncTree(tmp);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    if (existsSync(final)) removeDir(final); // re-publishing a stage after a resume
    renameSync(tmp, final);
    fsyncDir(root);
    writeFileAtomic(join(root, RUN_FILES.latest), name + "\n");
    if (opts.keep != null) this.prune(opts.keep);
    return { step, dir: final };
  }

  /** Keeps the newest `keep` complete checkpoints and removes leftover temp dirs; returns removed dirs. */
  prune(keep: number): string[] {
    if (!Number.isInteger(keep) || keep < 1)
      throw new Error(`save_total_limit must be an integer ≥ 1, got ${keep}`);
    const removed: string[] = [];
    const all = this.listCheckpoints();
    for (const c of all.slice(0, Math.max(0, all.length - keep))) {
      removeDir(c.dir);
      removed.push(c.dir);
    }
    const root = this.path(RUN_FILES.checkpoints);
    if (existsSync(root)) {
      for (const name of readdirSync(root)) {
        if (/^\.stage-\d+\.(tmp|del)-/.test(name)) rmSync(join(root, name), { recursive: true, force: true });
      }
    }
    return removed;
  }

  /**
   * Prepares a resume at `step` (null = from scratch): drops log records with a later step and
   * removes this run's checkpoints newer than `step`, which belong to the abandoned continuation.
   */
  rewind(step: number | null): void {
    const after = (r: Record<string, unknown>) =>
      typeof r.step === "number" && (step === null || r.step > step);
    for (const file of [RUN_FILES.stages, RUN_FILES.eval]) {
      const dropped = filterJsonl(this.path(file), (r) => !after(r), { warn: this.warn });
      if (dropped > 0)
        this.warn(
          `${this.path(file)}: dropped ${dropped} record(s) after step ${step ?? 0} (they will be redone)`,
        );
    }
    for (const c of this.listCheckpoints()) {
      if (step === null || c.step > step) {
        removeDir(c.dir);
        this.warn(`${c.dir}: removed (newer than the resumed step ${step ?? 0})`);
      }
    }
    this.removeLeftovers();
    // `latest` may name a checkpoint just removed; point it at the newest one left.
    const latest = this.path(join(RUN_FILES.checkpoints, RUN_FILES.latest));
    const newest = this.latestCheckpoint();
    if (newest) writeFileAtomic(latest, `stage-${newest.step}\n`);
    else rmSync(latest, { force: true });
  }

  /** Removes the temp files and dirs a killed process left in the run dir and checkpoints/. */
  removeLeftovers(): void {
    for (const dir of [this.dir, this.path(RUN_FILES.checkpoints)]) {
      if (!existsSync(dir)) continue;
      for (const name of readdirSync(dir)) {
        if (LEFTOVER.test(name)) rmSync(join(dir, name), { recursive: true, force: true });
      }
    }
  }
}
