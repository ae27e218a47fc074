/**
 * Crash protection by default (issue 11, point 3), with real processes: with no save settings at
 * all, Ctrl-C writes a checkpoint of the last finished stage and `--resume` continues from it, ending
 * bit-identical to an uninterrupted run; time-based checkpoints (run.save_interval_s) appear without
 * run.save_steps, survive a SIGKILL, and run.save_total_limit (default 3) keeps the newest ones.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../src/config/index.js";
import { readJsonl } from "../src/io/jsonl.js";
import { listCheckpoints, RUN_FILES } from "../src/io/rundir.js";
import {
  completes,
  errorLines,
  hashTree,
  killed,
  read,
  sets,
  startSat,
  TINY,
  waitUntil,
  withoutTiming,
} from "./sat-process.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-autosave-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const STAGES = 4;
const TRAIN = ["train", "-q", "--threads", "1", "--max-steps", String(STAGES), ...sets(TINY)];
const lines = (path: string) =>
  read(path)
    .split("\n")
    .filter((l) => l !== "").length;

/** The final checkpoint's files (manifest aside: it holds a time) and the logs without timing. */
function outcome(dir: string) {
  const last = listCheckpoints(dir).at(-1)!;
  const files = hashTree(last.dir);
  delete files[RUN_FILES.manifest];
  return {
    step: last.step,
    files,
    stages: withoutTiming(readJsonl(join(dir, RUN_FILES.stages))),
    evals: readJsonl(join(dir, RUN_FILES.eval)),
  };
}

let reference: ReturnType<typeof outcome>;

test("safety 3 autosave: the defaults checkpoint on a timer and keep 3", () => {
  const run = defaultConfig().run;
  assert.ok(run.save_interval_s > 0, "a time-based checkpoint is on by default");
  assert.ok(
    run.save_total_limit !== null && run.save_total_limit >= 2,
    "old checkpoints are pruned by default",
  );
});

test("safety 3 autosave: Ctrl-C with the default save settings writes a checkpoint; --resume continues from it, bit-identical", async () => {
  const refDir = join(tmp, "reference");
  await completes(startSat([...TRAIN, "--output-dir", refDir], tmp));
  reference = outcome(refDir);
  assert.equal(reference.step, STAGES);
  const dir = join(tmp, "interrupted");
  const run = startSat([...TRAIN, "--output-dir", dir], tmp);
  await waitUntil(run, () => lines(join(dir, RUN_FILES.stages)) >= 2, "two stage records");
  run.child.kill("SIGINT");
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  const saved = listCheckpoints(dir).map((c) => c.step);
  assert.equal(saved.length, 1, `one checkpoint, written by Ctrl-C: ${saved}`);
  const k = saved[0];
  assert.ok(k >= 2 && k < STAGES, `stopped after stage ${k}`);
  assert.equal(lines(join(dir, RUN_FILES.stages)), k, "every logged stage is in the checkpoint");
  assert.ok(
    errorLines(r).includes(
      `sat: interrupted after stage ${k}; checkpoint ${join(dir, RUN_FILES.checkpoints, `stage-${k}`)} is complete; continue with sat train --resume --output-dir ${dir}`,
    ),
    r.stderr,
  );
  const resumed = startSat(["train", "--resume", "--output-dir", dir], tmp);
  const rr = await completes(resumed);
  assert.match(rr.stdout, new RegExp(`resuming from .*stage-${k} \\(stage ${k}\\)`));
  assert.deepEqual(outcome(dir), reference);
});

test("safety 3 autosave: run.save_interval_s alone checkpoints as stages end; a SIGKILL loses only the stage in progress; 3 kept", async () => {
  const dir = join(tmp, "timed");
  const timed = [...TRAIN, "--output-dir", dir, "--set", "run.save_interval_s=0.001"];
  const run = startSat(timed, tmp);
  const latest = join(dir, RUN_FILES.checkpoints, RUN_FILES.latest);
  await waitUntil(run, () => read(latest).trim() === "stage-2", "checkpoint stage-2");
  await killed(run);
  const before = listCheckpoints(dir).map((c) => c.step);
  assert.ok(before.includes(2), `${before}`);
  const resumed = await completes(startSat(["train", "--resume", "--output-dir", dir, "-q"], tmp));
  assert.doesNotMatch(resumed.stderr, /starting at step 0/);
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [2, 3, 4],
    "save_total_limit 3 keeps the newest three",
  );
  assert.deepEqual(outcome(dir), reference);
  assert.ok(!existsSync(join(dir, RUN_FILES.lock)));
  assert.match(readFileSync(join(dir, RUN_FILES.config), "utf8"), /save_interval_s: 0\.001/);
});
