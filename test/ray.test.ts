/**
 * The PyTorch backend on Ray, locally (ray.init() on this machine, CPU): `sat train` with three
 * agents as three actors completes 2 stages; a run whose Ray driver is killed in stage 2 stops with
 * one line, and `--resume` finishes it with the same checkpoints and stage records as the same run
 * on local worker processes (the stage loop is the same; only where the workers run differs).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readJsonl } from "../src/io/jsonl.js";
import { RUN_FILES } from "../src/io/rundir.js";
import { errorLines, fingerprint, fixtureAgent, runSat, sets, startSat, waitUntil } from "./sat-process.js";
import { childPids, probeFor, tempDir } from "./torch-helpers.js";

const { skip } = probeFor(["torch", "transformers", "safetensors", "ray"]);
const tmp = tempDir("sat-ray-");

const TRAIN = [
  ...["train", "--threads", "1", "--max-steps", "2"],
  ...sets({
    "model.backend": "torch",
    "backend.torch_threads": 1,
    "team.agent_checkpoints": [fixtureAgent, fixtureAgent, fixtureAgent],
    "tasks.difficulty": 2,
    "rollout.max_prompt_length": 16,
    "rollout.max_completion_length": 40,
    "rollout.prompts_per_step": 4,
    "rollout.n": 4,
    "algo.ppo_mini_batch_size": 2,
    "algo.kl_radius": 0.05,
    "algo.cert_prompts": 0,
    "eval.before_train": false,
    "eval.n_prompts": 4,
    "eval.n": 1,
    "eval.k": [1],
    "run.save_steps": 1,
  }),
];

const stages = (run: string) => readJsonl(join(run, RUN_FILES.stages)).length;

test(
  "ray: a local Ray run with 3 agents as 3 actors completes 2 stages and resumes after the driver is killed",
  { skip, timeout: 300_000 },
  async () => {
    const run = join(tmp, "ray");
    const started = startSat([...TRAIN, ...sets({ "backend.torch_launcher": "ray" }), "--output-dir", run]);
    const latest = join(run, RUN_FILES.checkpoints, RUN_FILES.latest);
    await waitUntil(
      started,
      () => existsSync(latest) && readFileSync(latest, "utf8").trim() === "stage-1",
      "its first checkpoint",
    );
    const drivers = childPids(started.child.pid!);
    assert.equal(drivers.length, 1, "expected one Ray driver process");
    process.kill(drivers[0], "SIGKILL");
    const killed = await started.done;
    assert.equal(killed.code, 1, killed.stderr);
    assert.match(killed.stdout, /torch backend: 3 agent\(s\) on 3 Ray actor\(s\) \(local\)/);
    const errors = errorLines(killed);
    assert.equal(errors.length, 1, killed.stderr);
    assert.match(errors[0], /^sat: ray driver \(local\) was killed \(SIGKILL\)/);
    assert.equal(stages(run), 1, "the interrupted stage was recorded");

    const resumed = await runSat(["train", "-q", "--resume", "--output-dir", run]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(stages(run), 2);

    // The same run on local worker processes: Ray changes where the workers run, nothing else.
    const local = join(tmp, "local");
    const ref = await runSat([...TRAIN, "-q", "--output-dir", local]);
    assert.equal(ref.code, 0, ref.stderr);
    const [have, want] = [fingerprint(run), fingerprint(local)];
    assert.deepEqual(have.checkpoints, want.checkpoints);
    assert.deepEqual(have.stages, want.stages);
  },
);
