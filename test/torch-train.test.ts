/**
 * `sat train` with model.backend = torch through the real CLI: checkpoints hold each torch agent in
 * Hugging Face layout (which the engine loads: `sat eval` on the engine reproduces the run's last
 * evaluation) plus its optimizer state, and `--resume` continues bit for bit. A worker that exits,
 * hangs or answers NaN in the second stage stops the run with one line on stderr, the stage is not
 * recorded, and a resume ends exactly like the uninterrupted run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readJsonl } from "../src/io/jsonl.js";
import { RUN_FILES } from "../src/io/rundir.js";
import { errorLines, fingerprint, fixtureAgent, runSat, sets } from "./sat-process.js";
import { probeFor, tempDir } from "./torch-helpers.js";

const { skip } = probeFor(["torch", "transformers", "safetensors"]);
const tmp = tempDir("sat-torch-train-");

const TASK = {
  "tasks.difficulty": 2,
  "rollout.max_prompt_length": 16,
  "rollout.max_completion_length": 40,
  "eval.n_prompts": 32,
  "eval.n": 2,
  "eval.k": [1, 2],
};
const TRAIN = [
  ...["train", "-q", "--threads", "1", "--max-steps", "2"],
  ...sets({
    ...TASK,
    "model.backend": "torch",
    "backend.torch_workers": "shared",
    "backend.torch_threads": 1,
    "team.agent_checkpoints": [fixtureAgent, fixtureAgent, fixtureAgent],
    "rollout.prompts_per_step": 4,
    "rollout.n": 4,
    "algo.ppo_mini_batch_size": 2,
    "algo.kl_radius": 0.05,
    "algo.cert_prompts": 2,
    "eval.before_train": false,
    "run.save_steps": 1,
  }),
];

const sat = (argv: string[], env: Record<string, string> = {}) =>
  runSat(argv, { env: { ...process.env, ...env } });
const rows = (run: string, file: string) => {
  const path = join(run, file);
  return existsSync(path) ? readJsonl(path) : [];
};

let reference: Promise<string> | null = null;
/** The uninterrupted 2-stage run (shared by the tests of this file). */
function referenceRun(): Promise<string> {
  reference ??= (async () => {
    const run = join(tmp, "reference");
    const r = await sat([...TRAIN, "--output-dir", run]);
    assert.equal(r.code, 0, r.stderr);
    return run;
  })();
  return reference;
}

test(
  "torch backend: sat train checkpoints torch agents in Hugging Face layout that the engine loads, and --resume continues bit for bit",
  { skip },
  async () => {
    const run = await referenceRun();
    assert.equal(rows(run, RUN_FILES.stages).length, 2);
    const agent = join(run, "checkpoints", "stage-2", "agent-1");
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "torch_optimizer.safetensors"])
      assert.ok(existsSync(join(agent, f)), `${f} missing from ${agent}`);
    // The engine evaluates the torch agents as saved: same tokens, so the same scores as the run's own.
    const evalDir = join(tmp, "engine-eval");
    const e = await sat([
      ...["eval", "-q", "--threads", "1", "--checkpoint", run, "--output-dir", evalDir],
      ...sets({ ...TASK, "team.n_agents": 3 }),
    ]);
    assert.equal(e.code, 0, e.stderr);
    const trained = rows(run, RUN_FILES.eval).at(-1)!;
    const engineRow = rows(evalDir, RUN_FILES.eval)[0];
    for (const k of ["avg@1", "pass@2", "maj@2"]) assert.equal(engineRow[k], trained[k], k);
    assert.ok((trained["pass@2"] as number) > 0, "nothing solved: the comparison says nothing");
    // Stop after one stage, resume to two: the same files, byte for byte.
    const split = join(tmp, "split");
    const first = await sat([...TRAIN, "--output-dir", split, "--max-steps", "1"]);
    assert.equal(first.code, 0, first.stderr);
    const second = await sat(["train", "-q", "--resume", "--output-dir", split, "--max-steps", "2"]);
    assert.equal(second.code, 0, second.stderr);
    const want = fingerprint(run);
    const have = fingerprint(split);
    assert.deepEqual(
      have.checkpoints,
      want.checkpoints,
      "checkpoint files differ from the uninterrupted run",
    );
    assert.deepEqual(have.stages, want.stages);
  },
);

test(
  "torch backend: a worker that exits, hangs or returns NaN stops sat train with one line and no stage record; --resume finishes like the uninterrupted run",
  { skip },
  async () => {
    const want = fingerprint(await referenceRun());
    // Three agents × 2 epochs × 2 minibatches = 12 steps per stage, 3 begin_updates: all in stage 2.
    const faults: [string, string[], RegExp][] = [
      ["step:14:exit", [], /^sat: torch worker exited with code 3 during step: .*injected fault/],
      [
        "begin_update:4:hang",
        ["--set", "backend.torch_timeout_s=4"],
        /^sat: torch worker did not answer begin_update within 4 s \(backend\.torch_timeout_s\); it was stopped$/,
      ],
      ["begin_update:5:nan", [], /^sat: torch worker, agent \d: begin_update returned NaN in chosen\[0\]/],
    ];
    for (const [fault, extra, message] of faults) {
      const run = join(tmp, fault.replace(/:/g, "-"));
      const r = await sat([...TRAIN, ...extra, "--output-dir", run], { SAT_WORKER_FAULT: fault });
      assert.equal(r.code, 1, `${fault}: exit code ${r.code}, stderr ${r.stderr}`);
      const lines = errorLines(r);
      assert.equal(lines.length, 1, `${fault}: stderr should be one line: ${r.stderr}`);
      assert.match(lines[0], message, fault);
      assert.equal(rows(run, RUN_FILES.stages).length, 1, `${fault}: the failed stage was recorded`);
      if (!fault.endsWith(":exit")) continue; // one resume shows the recovery; the others fail alike
      const resumed = await sat(["train", "-q", "--resume", "--output-dir", run]);
      assert.equal(resumed.code, 0, `${fault}: resume failed: ${resumed.stderr}`);
      const have = fingerprint(run);
      assert.deepEqual(have.checkpoints, want.checkpoints, `${fault}: checkpoints after resume`);
      assert.deepEqual(have.stages, want.stages, `${fault}: stages after resume`);
    }
  },
);
