/**
 * The run directory: creating or refusing it, one writer at a time (run.lock), the resolved config
 * and the overrides as given, the JSONL logs, and checkpoints that a crash can never leave
 * half-published and whose damage is always detected.
 *
 *   <output_dir>/run.lock               the writer's pid, host, start time (while a command runs)
 *               config.resolved.yaml   the full config (reloadable with --config)
 *               overrides.json         every invocation's flags and --set values, as given, and
 *                                      every config change accepted on resume, with its stage
 *               stages.jsonl           one record per (stage, agent), fsynced
 *               eval.jsonl             one record per evaluation, fsynced
 *               checkpoints/stage-K/   published by rename; holds checkpoint.json (its manifest:
 *                                      every file's size and SHA-256)
 *               checkpoints/latest     "stage-K", written last, for other tools
 *
 * Listing checks the manifest and file sizes. Resuming and loading verify every file's SHA-256:
 * a damaged checkpoint is named with its damaged file and the next older intact one is used (the
 * user is told which). Temp dirs (".stage-K.tmp-…") are never read, and a resume removes those a
 * killed run left. Resume trusts stage dirs only, not `latest`.
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
import { fsyncDir, fsyncTree, makeDir, sha256File, writeFileAtomic } from "./atomic.js";
import { filterJsonl, JsonlWriter, type Warn } from "./jsonl.js";
import { LOCK_FILE, lockRunDir, type RunLock } from "./lock.js";

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
  lock: LOCK_FILE,
} as const;

const MANIFEST_FORMAT = "sat-llm-checkpoint";
/** The per-step log of `sat pretrain` (rewound on resume like the others). */
export const PRETRAIN_LOG = "pretrain.jsonl";
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

interface ManifestFile {
  path: string;
  bytes: number;
  /** Hex SHA-256 of the file (manifest version 2; version 1 has sizes only). */
  sha256?: string;
}

interface Manifest {
  format: string;
  version: number;
  step: number;
  time: number;
  files: ManifestFile[];
}

function listFiles(dir: string, base = dir): ManifestFile[] {
  const out: ManifestFile[] = [];
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
 * What is wrong with checkpoint dir `dir` (one line naming the damaged file), or null when every
 * file the manifest lists is there with its size and SHA-256.
 */
export function checkpointProblem(dir: string, step?: number): string | null {
  const manifestPath = join(dir, RUN_FILES.manifest);
  if (!existsSync(manifestPath)) return `${manifestPath}: missing (the checkpoint was never completed)`;
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
  } catch (err) {
    return `${manifestPath}: unreadable (${(err as Error).message.split("\n")[0]})`;
  }
  if (m?.format !== MANIFEST_FORMAT || !Number.isInteger(m.step) || !Array.isArray(m.files))
    return `${manifestPath}: not a sat-llm checkpoint manifest`;
  if (step !== undefined && m.step !== step)
    return `${manifestPath}: says stage ${m.step}, the directory name stage ${step}`;
  for (const f of m.files) {
    const p = join(dir, f.path);
    let bytes: number;
    try {
      bytes = statSync(p).size;
    } catch {
      return `${p}: missing`;
    }
    if (bytes !== f.bytes)
      return `${p}: ${bytes} bytes, the manifest says ${f.bytes} (truncated or overwritten)`;
    if (f.sha256 !== undefined && sha256File(p) !== f.sha256)
      return `${p}: SHA-256 differs from the manifest (the file is damaged)`;
  }
  return null;
}

/** Stage dirs under <runDir>/checkpoints by name (complete or not), newest first. */
function stageDirs(runDir: string): CheckpointInfo[] {
  const root = join(runDir, RUN_FILES.checkpoints);
  if (!existsSync(root)) return [];
  const out: CheckpointInfo[] = [];
  for (const name of readdirSync(root)) {
    const match = STAGE_DIR.exec(name);
    if (match && statSync(join(root, name)).isDirectory())
      out.push({ step: Number(match[1]), dir: join(root, name) });
  }
  return out.sort((a, b) => b.step - a.step);
}

/**
 * The newest checkpoint of a run whose every file verifies (null if none) and the problems of the
 * damaged ones newer than it, one line each naming the damaged file.
 */
export function scanCheckpoints(runDir: string): { intact: CheckpointInfo | null; damaged: string[] } {
  const damaged: string[] = [];
  for (const c of stageDirs(runDir)) {
    const problem = checkpointProblem(c.dir, c.step);
    if (problem === null) return { intact: { step: c.step, dir: c.dir }, damaged };
    damaged.push(problem);
  }
  return { intact: null, damaged };
}

/**
 * The newest intact checkpoint of a run, or null when it has none at all. Damaged newer ones are
 * reported through `warn`, naming the damaged file and the stage used instead; when every
 * checkpoint is damaged, this refuses (exit 1) rather than start the run over.
 */
export function findIntactCheckpoint(
  runDir: string,
  warn: Warn = () => {},
  flag = "--resume",
): CheckpointInfo | null {
  const { intact, damaged } = scanCheckpoints(runDir);
  if (!intact && damaged.length > 0) {
    const more = damaged.length > 1 ? ` (and ${damaged.length - 1} older damaged checkpoint(s))` : "";
    throw new RunDirError(
      `${flag} ${runDir}: no intact checkpoint there: ${damaged[0]}${more}; restore the file, or start over with --force`,
      1,
    );
  }
  for (const problem of damaged) warn(`${problem}; using stage-${intact!.step} instead`);
  return intact;
}

/**
 * A checkpoint path given on the command line (`flag` names it in errors): a checkpoint dir
 * itself, which must verify, or a run dir (its newest intact checkpoint; damaged newer ones are
 * reported through `warn`).
 */
export function resolveCheckpoint(path: string, flag = "--resume", warn: Warn = () => {}): CheckpointInfo {
  if (!existsSync(path)) throw new RunDirError(`${flag} ${path}: no such checkpoint or run directory`);
  const stageName = STAGE_DIR.exec(path.split(sep).filter(Boolean).pop() ?? "");
  if (existsSync(join(path, RUN_FILES.manifest)) || stageName) {
    const problem = checkpointProblem(path);
    if (problem) {
      const older = stageName
        ? stageDirs(join(path, "..", "..")).find(
            (c) => c.step < Number(stageName[1]) && checkpointProblem(c.dir, c.step) === null,
          )
        : undefined;
      const hint = older ? `use ${older.dir}` : "pick another checkpoint";
      throw new RunDirError(`${flag} ${path}: ${problem}; ${hint}`, 1);
    }
    const m = readCompleteManifest(path)!;
    return { step: m.step, dir: resolve(path) };
  }
  const latest = findIntactCheckpoint(path, warn, flag);
  if (!latest)
    throw new RunDirError(
      `${flag} ${path}: no intact checkpoint there (expected ${RUN_FILES.manifest} or ${RUN_FILES.checkpoints}/stage-K/); ` +
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
  /** true = the newest intact checkpoint in `dir` (none: start at 0); a path = that checkpoint or run. */
  resume?: boolean | string;
  /** Empty an existing run directory and start over. */
  force?: boolean;
  warn?: Warn;
  /** Called with the checkpoint to resume from before anything in `dir` changes; throw to refuse it. */
  onResume?: (from: CheckpointInfo) => void;
  /** What the lock file says holds the run ("sat train"). */
  command?: string;
  /**
   * Which log records a resume from `from` drops, by file name (default: records whose `step` is
   * after `from.step`). Pretraining counts steps per agent and passes its own rule.
   */
  dropAfterResume?: (file: string, record: Record<string, unknown>, from: CheckpointInfo) => boolean;
}

/** Refuses `--resume` of a directory that does not exist or holds no sat run. */
export function assertResumable(dir: string): void {
  if (!existsSync(dir))
    throw new RunDirError(
      `--resume: ${dir} does not exist, so there is no run to continue; drop --resume to start a new run there`,
    );
  if (!statSync(dir).isDirectory()) throw new RunDirError(`--resume: ${dir} is not a directory`);
  const entries = readdirSync(dir).filter(isRunContent);
  if (!entries.includes(RUN_FILES.config))
    throw new RunDirError(
      entries.length === 0
        ? `--resume: ${dir} is empty, so there is no run to continue; drop --resume to start a new run there`
        : `--resume: ${dir} does not hold a sat run (no ${RUN_FILES.config}); give the run directory to continue`,
    );
}

/** Files that do not make a directory "used": our own lock. */
const isRunContent = (name: string) => name !== LOCK_FILE && !name.startsWith(LOCK_FILE + ".");

/**
 * Creates the run directory and takes its lock, or refuses: a non-empty directory needs --resume
 * (continue) or --force (start over; only for a directory that holds a sat run); --resume needs a
 * run to continue. On resume, log records after the resumed step and newer checkpoints of the same
 * run are dropped, since they will be redone.
 */
export function openRunDir(dir: string, opts: OpenRunDirOptions = {}): RunDir {
  const warn = opts.warn ?? (() => {});
  if (opts.resume && opts.force)
    throw new RunDirError("--resume and --force contradict each other; drop one");
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new RunDirError(`output directory ${dir} exists and is not a directory`);
  if (opts.resume === true) assertResumable(dir);
  makeDir(dir);
  const lock = lockRunDir(dir, opts.command ?? "sat", warn);
  try {
    return openLocked(dir, lock, opts, warn);
  } catch (err) {
    lock.release();
    throw err;
  }
}

function openLocked(dir: string, lock: RunLock, opts: OpenRunDirOptions, warn: Warn): RunDir {
  // Checked again under the lock: the directory may have changed before we took it.
  if (opts.resume === true) assertResumable(dir);
  const entries = readdirSync(dir).filter(isRunContent);
  const isRun = entries.includes(RUN_FILES.config);
  if (entries.length > 0 && !opts.resume) {
    if (!opts.force) {
      throw new RunDirError(
        `output directory ${dir} is not empty; pass --resume to continue it, --force to start over, or choose another --output-dir`,
      );
    }
    if (!isRun) {
      throw new RunDirError(
        `refusing to empty ${dir}: it does not hold a sat run (no ${RUN_FILES.config}); choose another --output-dir`,
      );
    }
    for (const name of entries) rmSync(join(dir, name), { recursive: true, force: true });
  }
  let resumeFrom: CheckpointInfo | null = null;
  if (opts.resume === true) {
    resumeFrom = findIntactCheckpoint(dir, warn);
    if (!resumeFrom) warn(`${dir}: no intact checkpoint to resume from; starting at step 0`);
  } else if (typeof opts.resume === "string") {
    resumeFrom = resolveCheckpoint(opts.resume, "--resume", warn);
  }
  if (resumeFrom) opts.onResume?.(resumeFrom);
  const run = new RunDir(dir, resumeFrom, warn, lock);
  if (opts.resume && entries.length > 0) {
    const from = resumeFrom;
    const drop =
      from && opts.dropAfterResume
        ? (file: string, r: Record<string, unknown>) => opts.dropAfterResume!(file, r, from)
        : undefined;
    run.rewind(from ? from.step : null, drop);
  }
  return run;
}

/** One accepted difference between a resumed run's config and the new one. */
export interface ConfigChange {
  key: string;
  from: unknown;
  to: unknown;
}

export class RunDir {
  constructor(
    readonly dir: string,
    /** The checkpoint to continue from, when resuming. */
    readonly resumeFrom: CheckpointInfo | null = null,
    private readonly warn: Warn = () => {},
    private readonly lock: RunLock | null = null,
  ) {}

  /** Releases the run's lock (the files stay). */
  close(): void {
    this.lock?.release();
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /**
   * Writes config.resolved.yaml and adds this invocation to overrides.json (both atomically), with
   * the config changes accepted on resume, each tagged with the stage from which it applies.
   */
  writeConfig(configYaml: string, invocation: object, changes: readonly ConfigChange[] = []): void {
    writeFileAtomic(this.path(RUN_FILES.config), configYaml);
    let history: unknown[] = [];
    let changeLog: unknown[] = [];
    try {
      const old = JSON.parse(readFileSync(this.path(RUN_FILES.overrides), "utf8")) as {
        invocations?: unknown[];
        changes?: unknown[];
      };
      if (Array.isArray(old.invocations)) history = old.invocations;
      if (Array.isArray(old.changes)) changeLog = old.changes;
    } catch {
      // first invocation (or an unreadable file, which is rewritten)
    }
    const stage = this.resumeFrom?.step ?? 0;
    const time = (invocation as { time?: unknown }).time ?? new Date().toISOString();
    for (const c of changes) changeLog.push({ stage, key: c.key, from: c.from, to: c.to, time });
    writeFileAtomic(
      this.path(RUN_FILES.overrides),
      JSON.stringify({ invocations: [...history, invocation], changes: changeLog }, null, 2) + "\n",
    );
  }

  openStages(): JsonlWriter {
    return new JsonlWriter(this.path(RUN_FILES.stages), this.warn);
  }

  openEval(): JsonlWriter {
    return new JsonlWriter(this.path(RUN_FILES.eval), this.warn);
  }

  /** Another JSONL log of the run (e.g. pretrain.jsonl), appended to. */
  openLog(name: string): JsonlWriter {
    return new JsonlWriter(this.path(name), this.warn);
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
      const files = listFiles(tmp)
        .filter((f) => f.path !== RUN_FILES.manifest)
        .map((f) => ({ ...f, sha256: sha256File(join(tmp, f.path)) }));
      const manifest: Manifest = {
        format: MANIFEST_FORMAT,
        version: 2,
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
  rewind(step: number | null, drop?: (file: string, record: Record<string, unknown>) => boolean): void {
    const after =
      drop ??
      ((_file: string, r: Record<string, unknown>) =>
        typeof r.step === "number" && (step === null || r.step > step));
    for (const file of [RUN_FILES.stages, RUN_FILES.eval, PRETRAIN_LOG]) {
      const dropped = filterJsonl(this.path(file), (r) => !after(file, r), { warn: this.warn });
      if (dropped > 0)
        this.warn(
          `${this.path(file)}: dropped ${dropped} record(s) after step ${step ?? 0} (they will be redone)`,
        );
    }
    for (const c of stageDirs(this.dir)) {
      if (step !== null && c.step <= step) continue;
      if (checkpointProblem(c.dir, c.step) === null) {
        removeDir(c.dir);
        this.warn(`${c.dir}: removed (newer than the resumed step ${step ?? 0})`);
      } else {
        // Damaged: kept for inspection under a name no resume or listing reads.
        let aside = join(c.dir, "..", `damaged-stage-${c.step}`);
        for (let k = 2; existsSync(aside); k++) aside = join(c.dir, "..", `damaged-stage-${c.step}-${k}`);
        renameSync(c.dir, aside);
        this.warn(`${c.dir}: damaged, moved to ${aside} (delete it when you no longer need it)`);
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
    for (const dir of [this.dir, this.path(RUN_FILES.checkpoints), this.path("agents")]) {
      if (!existsSync(dir)) continue;
      for (const name of readdirSync(dir)) {
        if (LEFTOVER.test(name)) rmSync(join(dir, name), { recursive: true, force: true });
      }
    }
  }
}
