/**
 * Small ones of issue 11 (point 8) and `sat eval --checkpoint <run>` (point 7), through the real CLI:
 * an empty or comment-only config says that defaults are used; a bad dataset line is one clear line,
 * not an "unexpected error"; a read-only file system is named as such (not ENOENT); a stage whose
 * updates were all rejected, or whose groups all had equal rewards, is announced on the console and
 * kept in its record; `sat eval` on a run uses that run's config unless told otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readJsonl } from "../src/io/jsonl.js";
import { RUN_FILES } from "../src/io/rundir.js";
import { completes, errorLines, sets, startSat, TINY, withoutTiming } from "./sat-process.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-input-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const sat = (argv: string[]) => startSat(argv, tmp).done;
const TRAIN = ["train", "-q", "--threads", "1", "--max-steps", "2", ...sets(TINY)];

test("safety 8 input: an empty or comment-only config file says every key takes its default", async () => {
  for (const [name, text] of [
    ["empty.yaml", ""],
    ["comments.yaml", "# my settings\n# (none yet)\n"],
  ]) {
    const file = join(tmp, name);
    writeFileSync(file, text);
    const r = await sat(["config", "--config", file]);
    assert.equal(r.code, 0);
    assert.deepEqual(errorLines(r), [
      `sat: warning: ${file} sets no keys (it is empty or holds only comments): every key takes its default (sat config --print-defaults lists them)`,
    ]);
  }
  const file = join(tmp, "one.yaml");
  writeFileSync(file, "run:\n  seed: 3\n");
  assert.deepEqual(errorLines(await sat(["config", "--config", file])), []);
});

test("safety 8 input: a bad dataset line is one line naming file:line, exit 2, no run directory", async () => {
  const { "tasks.difficulty": _difficulty, ...noDifficulty } = TINY;
  const train = ["train", "-q", "--threads", "1", "--max-steps", "2", ...sets(noDifficulty)];
  const data = join(tmp, "problems.jsonl");
  writeFileSync(data, '{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2="}\n');
  const out = join(tmp, "dataset-run");
  const r = await sat([...train, "--output-dir", out, "--set", `tasks.dataset=${data}`]);
  assert.equal(r.code, 2);
  assert.deepEqual(errorLines(r), [`sat: ${data}:2: missing field "answer"`]);
  const missing = await sat([
    ...train,
    "--output-dir",
    out,
    "--set",
    `tasks.dataset=${join(tmp, "nope.jsonl")}`,
  ]);
  assert.equal(missing.code, 2);
  assert.deepEqual(errorLines(missing), [`sat: ${join(tmp, "nope.jsonl")}: cannot read (ENOENT)`]);
  assert.ok(!existsSync(out));
});

test("safety 8 input: an output dir on a read-only file system is named as read-only, not as a missing file", async (t) => {
  const mnt = join(tmp, "ro");
  mkdirSync(mnt);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", mnt], { stdio: "pipe" });
  } catch (err) {
    t.skip(`needs root to mount a read-only tmpfs (${String((err as Error).message).split("\n")[0]})`);
    return;
  }
  try {
    for (const dir of [join(mnt, "run"), join(mnt, "a", "b")]) {
      const r = await sat([...TRAIN, "--output-dir", dir]);
      assert.equal(r.code, 1);
      const first = dir === join(mnt, "run") ? dir : join(mnt, "a");
      assert.deepEqual(errorLines(r), [
        `sat: mkdir ${first}: the file system is read-only; choose another --output-dir`,
      ]);
    }
  } finally {
    execFileSync("umount", [mnt]);
  }
});

test("safety 8 input: all updates rejected, or equal rewards in every group: a console warning per stage, kept in the stage record", async () => {
  const rejected = join(tmp, "rejected");
  const r = await completes(
    startSat(
      [...TRAIN, "--output-dir", rejected, "--set", "algo.kl_radius=1e-9", "--set", "rollout.n=8"],
      tmp,
    ),
  );
  const warning = (k: number) =>
    `stage ${k}: every agent update was rejected by the trust region (null updates, the team is unchanged); lower optim.lr or raise algo.kl_radius`;
  assert.deepEqual(
    r.stderr.trimEnd().split("\n"),
    [1, 2].map((k) => `sat: warning: ${warning(k)}`),
  );
  assert.deepEqual(
    readJsonl(join(rejected, RUN_FILES.stages)).map((s) => s.warnings),
    [[warning(1)], [warning(2)]],
  );
  // A fresh (untrained) agent never answers right: every group's rewards are equal.
  const flat = join(tmp, "flat");
  const f = await completes(
    startSat(
      [
        ...["train", "-q", "--threads", "1", "--max-steps", "1", "--output-dir", flat],
        ...sets({
          ...TINY,
          "team.agent_checkpoints": [],
          "model.max_seq_len": 64,
          "eval.before_train": false,
        }),
      ],
      tmp,
    ),
  );
  const zero =
    "stage 1: every prompt group had the same reward for all its samples, so every advantage is zero and nothing was learned; change tasks.difficulty or raise rollout.n";
  assert.deepEqual(f.stderr.trimEnd().split("\n"), [`sat: warning: ${zero}`]);
  const [row] = readJsonl(join(flat, RUN_FILES.stages));
  assert.equal(row["reward/frac_zero_std"], 1);
  assert.deepEqual(row.warnings, [zero]);
});

test("safety 7 eval-config: sat eval --checkpoint <run> uses the run's resolved config unless overridden", async () => {
  const run = join(tmp, "trained");
  await completes(startSat([...TRAIN, "--output-dir", run], tmp));
  const withRun = join(tmp, "eval-run-config");
  const r = await completes(startSat(["eval", "--checkpoint", run, "--output-dir", withRun], tmp));
  assert.match(
    r.stdout,
    new RegExp(`using the config of ${run} \\(config\\.resolved\\.yaml\\); --config or --set override it`),
  );
  const explicit = join(tmp, "eval-explicit-config");
  await completes(
    startSat(
      ["eval", "-q", "--checkpoint", run, "--config", join(run, RUN_FILES.config), "--output-dir", explicit],
      tmp,
    ),
  );
  const rows = (dir: string) => withoutTiming(readJsonl(join(dir, RUN_FILES.eval)));
  assert.deepEqual(rows(withRun), rows(explicit), "same as passing the run's config by hand");
  const [row] = readJsonl(join(withRun, RUN_FILES.eval));
  assert.equal(row.num_prompts, 8, "the run's eval.n_prompts, not the default 200");
  // --set still overrides; the run's own output dir is never written to.
  const overridden = join(tmp, "eval-overridden");
  await completes(
    startSat(
      ["eval", "-q", "--checkpoint", run, "--output-dir", overridden, "--set", "eval.n_prompts=4"],
      tmp,
    ),
  );
  assert.equal(readJsonl(join(overridden, RUN_FILES.eval))[0].num_prompts, 4);
  assert.equal(readJsonl(join(run, RUN_FILES.eval)).length, 2, "the trained run's eval.jsonl is untouched");
  const noOut = await completes(startSat(["eval", "-q", "--checkpoint", run], tmp));
  assert.equal(noOut.code, 0);
});
