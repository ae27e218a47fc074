/**
 * Budget-matched runs: `run.max_tokens` stops `sat train` at the first stage boundary where the
 * training rollouts have generated that many tokens, and stages.jsonl carries the per-stage and
 * cumulative counts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixtureAgent as AGENT, satSync } from "./sat-process.js";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

test("budget: run.max_tokens ends the run at the stage where the generated tokens reach it", () => {
  const dir = mkdtempSync(join(tmpdir(), "sat-budget-"));
  try {
    const out = join(dir, "run");
    const r = satSync([
      ...["train", "--quiet", "--threads", "1", "--max-steps", "20"],
      ...["--output-dir", out, "--set", `team.agent_checkpoints=${JSON.stringify([AGENT, AGENT])}`],
      ...["--set", "team.n_agents=2", "--set", "tasks.difficulty=2", "--set", "rollout.max_prompt_length=16"],
      ...[
        "--set",
        "rollout.max_completion_length=40",
        "--set",
        "rollout.prompts_per_step=2",
        "--set",
        "rollout.n=2",
      ],
      ...[
        "--set",
        "algo.ppo_mini_batch_size=1",
        "--set",
        "eval.before_train=false",
        "--set",
        "eval.n_prompts=4",
      ],
      ...["--set", "eval.n=1", "--set", "eval.k=[1]", "--set", "run.max_tokens=150"],
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rows = readFileSync(join(out, "stages.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, number>);
    let total = 0;
    for (const row of rows) {
      total += row["rollout/generated_tokens"];
      assert.equal(row.num_tokens, total, "num_tokens is cumulative");
    }
    assert.ok(total >= 150, `stopped at ${total} tokens`);
    assert.ok(
      total - rows[rows.length - 1]["rollout/generated_tokens"] < 150,
      "not a stage later than needed",
    );
    assert.ok(rows.length < 20);
    assert.ok(existsSync(join(out, "checkpoints", `stage-${rows.length}`)), "the last stage is checkpointed");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
