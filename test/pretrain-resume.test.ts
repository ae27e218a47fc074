/**
 * `sat pretrain` resumes like `sat train` (issue 11, point 6), with real processes: a run of two
 * agents killed with SIGKILL in the middle of agent 0, resumed, stopped with Ctrl-C in the middle
 * of agent 1 and resumed again ends with agents, pretrain.jsonl and eval.jsonl identical to an
 * uninterrupted run (weights byte for byte, no duplicated or missing record), honouring
 * run.save_steps.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
  waitUntil,
  withoutTiming,
} from "./sat-process.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-pretrain-resume-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const STEPS = 20;
const PRETRAIN = [
  ...["pretrain", "-q", "--threads", "1"],
  ...sets({
    "pretrain.agents": 2,
    "pretrain.steps": STEPS,
    "pretrain.batch_size": 8,
    "pretrain.eval_steps": 10,
    "pretrain.target_accuracy": null,
    "tasks.difficulty": 2,
    "eval.n_prompts": 8,
    "run.save_steps": 5,
    "run.save_total_limit": null,
  }),
];

function outcome(dir: string) {
  return {
    agents: hashTree(join(dir, "agents")),
    steps: withoutTiming(readJsonl(join(dir, "pretrain.jsonl"))),
    evals: readJsonl(join(dir, RUN_FILES.eval)),
  };
}

const latestOf = (dir: string) => read(join(dir, RUN_FILES.checkpoints, RUN_FILES.latest)).trim();

test("safety 6 pretrain-resume: SIGKILL in agent 0 and Ctrl-C in agent 1, each resumed: agents and logs identical to an uninterrupted run", async () => {
  const refDir = join(tmp, "reference");
  await completes(startSat([...PRETRAIN, "--output-dir", refDir], tmp));
  const reference = outcome(refDir);
  for (const i of [0, 1])
    assert.ok(`agent-${i}/model.safetensors` in reference.agents, `agent ${i} published`);
  assert.equal((reference.steps as unknown[]).length, 2 * STEPS);
  // run.save_steps = 5: every 5 steps of each agent, plus each finished agent (global steps).
  assert.deepEqual(
    listCheckpoints(refDir).map((c) => c.step),
    [5, 10, 15, 20, 25, 30, 35, 40],
  );

  const dir = join(tmp, "interrupted");
  const first = startSat([...PRETRAIN, "--output-dir", dir], tmp);
  await waitUntil(first, () => latestOf(dir) === "stage-15", "checkpoint stage-15 (agent 0, step 15)");
  await killed(first);
  const steps = readJsonl(join(dir, "pretrain.jsonl"));
  assert.ok(steps.length < STEPS, "killed in agent 0");

  const second = startSat(["pretrain", "--resume", "--output-dir", dir, "-q"], tmp);
  await waitUntil(second, () => latestOf(dir) === "stage-30", "checkpoint stage-30 (agent 1, step 10)");
  second.child.kill("SIGINT");
  const r2 = await second.done;
  assert.equal(r2.code, 130, r2.stderr);
  const stopped = listCheckpoints(dir).at(-1)!.step;
  assert.ok(
    errorLines(r2).some((l) =>
      new RegExp(
        `^sat: interrupted at agent 1, step ${stopped - STEPS}; checkpoint .*stage-${stopped} is complete; continue with sat pretrain --resume --output-dir`,
      ).test(l),
    ),
    r2.stderr,
  );
  const third = await completes(startSat(["pretrain", "--resume", "--output-dir", dir], tmp));
  assert.match(
    third.stdout,
    new RegExp(`resuming from .*stage-${stopped} \\(agent 1, step ${stopped - STEPS}\\)`),
  );
  assert.deepEqual(outcome(dir), reference);
  const leftovers = [dir, join(dir, "agents"), join(dir, RUN_FILES.checkpoints)].flatMap((d) =>
    readdirSync(d).filter((n) => /\.(tmp|del)-/.test(n)),
  );
  assert.deepEqual(leftovers, []);
});
