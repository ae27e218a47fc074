/**
 * The PyTorch backend on Ray, locally (ray.init() on this machine, CPU): `sat train` with three
 * agents as three actors completes 2 stages; a run whose Ray driver is killed in stage 2 stops with
 * one line, and `--resume` finishes it with the same checkpoints and stage records as the same run
 * on local worker processes (the stage loop is the same; only where the workers run differs).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { RUN_FILES } from "../src/io/rundir.js";
import { charAgent, childPids, jsonLines, probeFor, sat, sets, startSat, tempDir } from "./torch-helpers.js";

const { skip } = probeFor(["torch", "transformers", "safetensors", "ray"]);
const tmp = tempDir("sat-ray-");

const TRAIN = [
  ...["train", "--threads", "1", "--max-steps", "2"],
  ...sets({
    "model.backend": "torch",
    "backend.torch_threads": 1,
    "team.agent_checkpoints": [charAgent, charAgent, charAgent],
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

const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n !== RUN_FILES.manifest) out[relative(dir, p)] = sha(p);
    }
  };
  walk(dir);
  return out;
}
const stageRows = (run: string) =>
  JSON.parse(
    JSON.stringify(jsonLines(join(run, "stages.jsonl")), (k, v) =>
      /^time$|timing|throughput|seconds/.test(k) ? undefined : v,
    ),
  ) as unknown;

test(
  "ray: a local Ray run with 3 agents as 3 actors completes 2 stages and resumes after the driver is killed",
  { skip, timeout: 300_000 },
  async () => {
    const run = join(tmp, "ray");
    const started = startSat([...TRAIN, ...sets({ "backend.torch_launcher": "ray" }), "--output-dir", run]);
    const latest = join(run, RUN_FILES.checkpoints, RUN_FILES.latest);
    let ended = false;
    void started.done.then(() => (ended = true));
    while (!(existsSync(latest) && readFileSync(latest, "utf8").trim() === "stage-1")) {
      if (ended) assert.fail(`the run ended before its first checkpoint: ${(await started.done).stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const drivers = childPids(started.child.pid!);
    assert.equal(drivers.length, 1, "expected one Ray driver process");
    process.kill(drivers[0], "SIGKILL");
    const killed = await started.done;
    assert.equal(killed.code, 1, killed.stderr);
    assert.match(killed.stdout, /torch backend: 3 agent\(s\) on 3 Ray actor\(s\) \(local\)/);
    const errors = killed.stderr.split("\n").filter((l) => l.startsWith("sat: "));
    assert.equal(errors.length, 1, killed.stderr);
    assert.match(errors[0], /^sat: ray driver \(local\) was killed \(SIGKILL\)/);
    assert.equal(jsonLines(join(run, "stages.jsonl")).length, 1, "the interrupted stage was recorded");

    const resumed = await sat(["train", "-q", "--resume", "--output-dir", run]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(jsonLines(join(run, "stages.jsonl")).length, 2);

    // The same run on local worker processes: Ray changes where the workers run, nothing else.
    const local = join(tmp, "local");
    const ref = await sat([...TRAIN, "-q", "--output-dir", local]);
    assert.equal(ref.code, 0, ref.stderr);
    assert.deepEqual(tree(join(run, "checkpoints")), tree(join(local, "checkpoints")));
    assert.deepEqual(stageRows(run), stageRows(local));
  },
);
