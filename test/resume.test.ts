/**
 * Crash safety of `sat train` through the real CLI: runs killed with SIGKILL at several moments
 * (right after the first checkpoint, in the middle of a stage, before any checkpoint, while a
 * checkpoint is being written) and continued with `--resume` end with the same checkpoints (every
 * weight, optimizer moment and trainer state, byte for byte), stage records and evaluations as an
 * uninterrupted run, and leave no temp files; the lock a killed run leaves is taken over with a
 * warning. Also: a resume takes the run's saved config; it may change what cannot alter results
 * (--max-steps extends a run), any other change is refused with the list of differences unless
 * --allow-config-change names it (and is then recorded in overrides.json with its stage), a team
 * that does not fit the checkpoint is refused with the run untouched; a used output dir without
 * --resume/--force is refused with the run untouched.
 *
 * The team is two copies of the pretrained add2-tiny agent; algo.kl_radius = 0.3 makes most updates
 * pass at the full step, so the AdamW moments carry over between stages (with the default radius
 * every update backtracks and the moments restart at zero, which would not test their resume).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  completes,
  fixtureAgent as fixture,
  hashTree,
  killed,
  read,
  sets,
  sha256,
  startSat,
  waitUntil,
  fingerprint,
} from "./sat-process.js";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listCheckpoints, RUN_FILES } from "../src/io/rundir.js";
import { readSafetensors } from "../src/model/safetensors.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-resume-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const STAGES = 4;

const TRAIN = [
  ...["train", "-q", "--threads", "1", "--max-steps", String(STAGES)],
  ...sets({
    "team.n_agents": 2,
    "team.agent_checkpoints": [fixture, fixture],
    "tasks.difficulty": 2,
    "rollout.max_prompt_length": 16,
    "rollout.max_completion_length": 40,
    "rollout.prompts_per_step": 4,
    "rollout.n": 4,
    "algo.ppo_mini_batch_size": 2,
    "algo.kl_radius": 0.3,
    "run.save_steps": 1,
    "run.save_total_limit": null,
    "eval.steps": 2,
    "eval.n_prompts": 8,
    "eval.n": 1,
    "eval.k": [1],
  }),
];

const sat = (argv: string[]) => startSat(argv, tmp).done;
const train = (dir: string, ...extra: string[]) => startSat([...TRAIN, "--output-dir", dir, ...extra], tmp);
const resume = (dir: string) => startSat(["train", "--resume", "--output-dir", dir, "-q"], tmp);

const latestOf = (dir: string) => read(join(dir, RUN_FILES.checkpoints, RUN_FILES.latest)).trim();
const lines = (path: string) =>
  read(path)
    .split("\n")
    .filter((l) => l.trim() !== "").length;

const LEFTOVER = /\.(tmp|del)-/;

function assertFinished(dir: string, reference: ReturnType<typeof fingerprint>, label: string): void {
  const fp = fingerprint(dir);
  assert.deepEqual(
    Object.keys(fp.checkpoints),
    Object.keys(reference.checkpoints),
    `${label}: checkpoint files`,
  );
  assert.deepEqual(
    fp.checkpoints,
    reference.checkpoints,
    `${label}: checkpoint bytes differ from the uninterrupted run`,
  );
  assert.deepEqual(fp.stages, reference.stages, `${label}: stages.jsonl`);
  assert.deepEqual(fp.evals, reference.evals, `${label}: eval.jsonl`);
  assert.equal(latestOf(dir), `stage-${STAGES}`, `${label}: latest`);
  const left = [...readdirSync(dir), ...readdirSync(join(dir, RUN_FILES.checkpoints))].filter((n) =>
    LEFTOVER.test(n),
  );
  assert.deepEqual(left, [], `${label}: temp files left behind`);
}

let reference: ReturnType<typeof fingerprint>;
const refDir = join(tmp, "reference");
const timings: Record<string, number> = {};

test("the uninterrupted reference run: 4 stages, a checkpoint each, optimizer moments that carry over", async () => {
  const r = await completes(train(refDir));
  timings.reference = r.seconds;
  reference = fingerprint(refDir);
  assert.deepEqual(
    listCheckpoints(refDir).map((c) => c.step),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    (reference.stages as { step: number }[]).map((s) => s.step),
    [1, 2, 3, 4],
  );
  // start, after stage 2 (eval.steps = 2), final.
  assert.deepEqual(
    reference.evals.map((e) => e.step),
    [0, 2, 4],
  );
  const opt = readSafetensors(
    join(refDir, "checkpoints", `stage-${STAGES}`, "agent-0", "optimizer.safetensors"),
  );
  assert.ok(Number(opt.metadata.step) > 0, "the optimizer state at the end is not the initial one");
  const m = opt.tensors.get("exp_avg")!.data;
  assert.ok(
    m.some((x) => x !== 0),
    "AdamW first moments are non-zero",
  );
  // The weights moved away from the starting agent.
  assert.notEqual(
    reference.checkpoints["stage-4/agent-0/model.safetensors"],
    sha256(join(fixture, "model.safetensors")),
  );
});

test("SIGKILL right after `latest` first names stage-1, then --resume: identical to the reference", async () => {
  const dir = join(tmp, "kill-after-stage-1");
  const run = train(dir);
  await waitUntil(run, () => latestOf(dir) === "stage-1", "checkpoint stage-1");
  await killed(run);
  assert.ok(lines(join(dir, RUN_FILES.stages)) < STAGES, "killed before the run finished");
  const r = await completes(resume(dir));
  timings["resume after stage-1"] = r.seconds;
  assertFinished(dir, reference, "kill after stage-1");
});

test("SIGKILL before any checkpoint and again in the middle of stage 3; each time --resume: identical", async () => {
  const dir = join(tmp, "kill-mid-stage");
  const first = train(dir);
  // The start evaluation is written, stage 1 is running, no checkpoint exists yet.
  await waitUntil(first, () => lines(join(dir, RUN_FILES.eval)) >= 1, "the start evaluation");
  await killed(first);
  assert.equal(listCheckpoints(dir).length, 0, "no checkpoint before the kill");
  const second = resume(dir);
  // Checkpoint 2 is published and stage 3 starts at once: kill then (a fixed delay overshot the
  // whole run on a quiet machine, where a stage of this tiny run takes well under 100 ms).
  await waitUntil(second, () => latestOf(dir) === "stage-2", "checkpoint stage-2");
  const secondResult = await killed(second);
  assert.match(secondResult.stderr, /no intact checkpoint to resume from; starting at step 0/);
  assert.match(
    secondResult.stderr,
    /removed the lock of a sat process that is gone \(pid \d+, started .*, sat train\); taking over the run/,
  );
  assert.deepEqual(
    listCheckpoints(dir)
      .map((c) => c.step)
      .slice(0, 2),
    [1, 2],
    "stages 1 and 2 were checkpointed before the second kill",
  );
  const third = await completes(resume(dir));
  timings["resume mid-stage 3"] = third.seconds;
  assert.doesNotMatch(third.stderr, /no intact checkpoint/);
  assertFinished(dir, reference, "kills mid-stage");
});

test("SIGKILL while checkpoint stage-3 is being written (its temp dir exists), then --resume: identical, temp dir gone", async (t) => {
  let caught = 0;
  // The write takes a few ms (fsyncs); an inotify watch on checkpoints/ sees its temp dir appear.
  for (let attempt = 0; attempt < 3 && caught === 0; attempt++) {
    const dir = join(tmp, `kill-in-checkpoint-${attempt}`);
    mkdirSync(dir); // an empty dir is a valid output dir; watching it shows when checkpoints/ appears
    const run = train(dir);
    const ckDir = join(dir, RUN_FILES.checkpoints);
    await waitUntil(run, () => existsSync(ckDir), "checkpoints/ exists");
    const tempSeen = new Promise<void>((resolve) => {
      const watcher = watch(ckDir, (_event, name) => {
        if (name && /^\.stage-3\.tmp-/.test(name.toString())) {
          run.child.kill("SIGKILL");
          watcher.close();
          resolve();
        }
      });
      void run.done.then(() => {
        watcher.close();
        resolve();
      });
    });
    await tempSeen;
    const r = await run.done;
    if (r.signal !== "SIGKILL") continue; // the run ended before stage 3's write was seen
    const temps = readdirSync(ckDir).filter((n) => /^\.stage-3\.tmp-/.test(n));
    const published = listCheckpoints(dir).map((c) => c.step);
    assert.ok(!published.includes(4), "killed before stage 4");
    if (temps.length === 1 && !published.includes(3)) {
      caught++;
      t.diagnostic(`attempt ${attempt}: killed with ${temps[0]} half-written, stages ${published} published`);
    }
    const resumed = await completes(resume(dir));
    timings["resume after a kill inside a checkpoint write"] = resumed.seconds;
    assertFinished(dir, reference, `kill inside the stage-3 write (attempt ${attempt})`);
  }
  assert.ok(caught > 0, "in 3 attempts the kill never landed while the stage-3 temp dir existed");
});

test("--resume reloads the run's saved config; a team that does not fit the checkpoint is refused, run untouched", async () => {
  // Every resume above passed no config at all: it came from config.resolved.yaml.
  const overrides = JSON.parse(read(join(tmp, "kill-after-stage-1", RUN_FILES.overrides))) as {
    invocations: { config_file: string | null; set: string[] }[];
  };
  assert.equal(overrides.invocations.length, 2);
  assert.deepEqual(overrides.invocations[1].set, []);
  assert.equal(overrides.invocations[1].config_file, join(tmp, "kill-after-stage-1", RUN_FILES.config));
  // Changing the team shape on resume: refused as a config change, before anything in the run changes.
  const before = hashTree(refDir);
  const three = JSON.stringify([fixture, fixture, fixture]);
  const grow = ["--set", "team.n_agents=3", "--set", `team.agent_checkpoints=${three}`];
  const r = await sat(["train", "--resume", "--output-dir", refDir, "-q", ...grow]);
  assert.equal(r.code, 2);
  assert.deepEqual(r.stderr.trimEnd().split("\n"), [
    `sat: --resume: the config differs from the run's (${join(refDir, RUN_FILES.config)}): team.n_agents 2 → 3, ` +
      `team.agent_checkpoints ${JSON.stringify([fixture, fixture])} → ${three}; a run resumed with other settings is no longer the run it continues; ` +
      `to accept, add --allow-config-change team.n_agents,team.agent_checkpoints`,
  ]);
  // Allowed, the checkpoint still has to fit the team.
  const allowed = await sat([
    ...["train", "--resume", "--output-dir", refDir, "-q", ...grow],
    ...["--allow-config-change", "team.n_agents,team.agent_checkpoints"],
  ]);
  assert.equal(allowed.code, 1);
  const errLines = allowed.stderr.trimEnd().split("\n");
  assert.equal(errLines.length, 1, allowed.stderr);
  assert.match(
    errLines[0],
    /^sat: .*checkpoints\/stage-4: the checkpoint holds 2 agent\(s\), the configured team 3; resume with the run's own team settings/,
  );
  assert.deepEqual(hashTree(refDir), before, "the refused resumes changed the run directory");
});

test("a resume may change what the checkpoint does not fix: --max-steps 5 extends a finished run", async () => {
  // Settings that cannot change results (run length, saving, threads) are taken as given and
  // recorded in config.resolved.yaml and overrides.json. Extending keeps stages 1-4 as they were.
  const dir = join(tmp, "extended");
  cpSync(refDir, dir, { recursive: true });
  const r = await completes(startSat(["train", "--resume", "--output-dir", dir, "-q", "--max-steps", "5"]));
  timings["extend by one stage"] = r.seconds;
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [1, 2, 3, 4, 5],
  );
  assert.equal(latestOf(dir), "stage-5");
  const fp = fingerprint(dir);
  for (const [p, h] of Object.entries(reference.checkpoints)) assert.equal(fp.checkpoints[p], h, p);
  assert.deepEqual((fp.stages as unknown[]).slice(0, STAGES), reference.stages);
  assert.deepEqual(
    (fp.stages as { step: number }[]).map((s) => s.step),
    [1, 2, 3, 4, 5],
  );
  assert.match(read(join(dir, RUN_FILES.config)), /max_steps: 5/);
  const o = JSON.parse(read(join(dir, RUN_FILES.overrides))) as { changes: Record<string, unknown>[] };
  assert.deepEqual(
    o.changes.map(({ stage, key, from, to }) => ({ stage, key, from, to })),
    [
      { stage: 4, key: "run.output_dir", from: refDir, to: dir },
      { stage: 4, key: "run.max_steps", from: 4, to: 5 },
    ],
  );
});

test("safety 4 resume: --resume of a missing directory or of one that holds no run is refused, nothing created", async () => {
  const missing = join(tmp, "never-made");
  const r1 = await sat(["train", "--resume", "--output-dir", missing, "-q"]);
  assert.equal(r1.code, 2);
  assert.deepEqual(r1.stderr.trimEnd().split("\n"), [
    `sat: --resume: ${missing} does not exist, so there is no run to continue; drop --resume to start a new run there`,
  ]);
  assert.ok(!existsSync(missing), "the refused resume created the directory");
  const notRun = join(tmp, "not-a-run");
  mkdirSync(notRun);
  const notes = join(notRun, "notes.txt");
  cpSync(join(fixture, "config.json"), notes);
  const r2 = await sat(["train", "--resume", "--output-dir", notRun, "-q"]);
  assert.equal(r2.code, 2);
  assert.deepEqual(r2.stderr.trimEnd().split("\n"), [
    `sat: --resume: ${notRun} does not hold a sat run (no ${RUN_FILES.config}); give the run directory to continue`,
  ]);
  assert.deepEqual(readdirSync(notRun), ["notes.txt"]);
  const empty = join(tmp, "empty-dir");
  mkdirSync(empty);
  const r3 = await sat(["train", "--resume", "--output-dir", empty, "-q"]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /^sat: --resume: .*empty-dir is empty, so there is no run to continue/);
});

test("safety 4 resume: a changed seed or hyperparameter is refused with the differences; --allow-config-change applies it from the resumed stage and records it", async () => {
  const dir = join(tmp, "changed");
  cpSync(refDir, dir, { recursive: true });
  const ck2 = join(dir, RUN_FILES.checkpoints, "stage-2");
  const before = hashTree(dir);
  const args = ["train", "--resume", ck2, "-q", "--seed", "7", "--set", "algo.kl_radius=0.2"];
  const refused = await sat(args);
  assert.equal(refused.code, 2);
  assert.deepEqual(refused.stderr.trimEnd().split("\n"), [
    `sat: --resume: the config differs from the run's (${join(dir, RUN_FILES.config)}): algo.kl_radius 0.3 → 0.2, run.seed 42 → 7; ` +
      "a run resumed with other settings is no longer the run it continues; to accept, add --allow-config-change algo.kl_radius,run.seed",
  ]);
  assert.deepEqual(hashTree(dir), before, "the refused resume changed the run");
  // Naming only one of the two is not enough; a key that does not exist is a usage error.
  const partly = await sat([...args, "--allow-config-change", "run.seed"]);
  assert.equal(partly.code, 2);
  assert.match(
    partly.stderr,
    /differs .*: algo\.kl_radius 0\.3 → 0\.2;.*--allow-config-change algo\.kl_radius$/m,
  );
  const typo = await sat([...args, "--allow-config-change", "algo.kl_radus"]);
  assert.equal(typo.code, 2);
  assert.match(
    typo.stderr,
    /^sat: --allow-config-change algo\.kl_radus: no such config key; did you mean algo\.kl_radius\?/,
  );
  const ok = await completes(startSat([...args, "--allow-config-change", "run.seed,algo.kl_radius"]));
  assert.match(read(join(dir, RUN_FILES.config)), /seed: 7/);
  const o = JSON.parse(read(join(dir, RUN_FILES.overrides))) as { changes: Record<string, unknown>[] };
  assert.deepEqual(
    o.changes.map(({ stage, key, from, to }) => ({ stage, key, from, to })),
    [
      { stage: 2, key: "algo.kl_radius", from: 0.3, to: 0.2 },
      // The copy continues where it is, not where the copied config says.
      { stage: 2, key: "run.output_dir", from: refDir, to: dir },
      { stage: 2, key: "run.seed", from: 42, to: 7 },
    ],
  );
  // Stages 1-2 are the reference's; from stage 3 on the new settings apply.
  const fp = fingerprint(dir);
  assert.deepEqual((fp.stages as unknown[]).slice(0, 2), (reference.stages as unknown[]).slice(0, 2));
  assert.notDeepEqual((fp.stages as unknown[])[2], (reference.stages as unknown[])[2]);
  assert.ok(ok.seconds > 0);
});

test("a used output dir without --resume or --force is refused in one line; the checkpoints stay byte-identical", async () => {
  const before = hashTree(refDir);
  const r = await sat([...TRAIN, "--output-dir", refDir]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.deepEqual(r.stderr.trimEnd().split("\n"), [
    `sat: output directory ${refDir} is not empty; pass --resume to continue it, --force to start over, or choose another --output-dir`,
  ]);
  assert.deepEqual(hashTree(refDir), before);
});

test("timings (diagnostics)", (t) => {
  for (const [k, v] of Object.entries(timings)) t.diagnostic(`${k}: ${v.toFixed(1)} s`);
  assert.ok(timings.reference > 0);
});
