/**
 * Plug-and-play, then keep training (sat-method §5): `sat swap --distill` puts a different model in
 * place of agent 1 — distilled into the incumbent's δ0 ball and checked on held-out states — and
 * `sat train` continues from the new team: the new member is updated in later stages with the
 * trust region enforced.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixtureAgent as AGENT, satSync, sets } from "./sat-process.js";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { loadModel, saveModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { readSafetensors } from "../src/model/safetensors.js";

const COMMON = {
  "tasks.difficulty": 2,
  "rollout.max_prompt_length": 16,
  "rollout.max_completion_length": 40,
  "rollout.prompts_per_step": 4,
  "rollout.n": 4,
  "algo.ppo_mini_batch_size": 2,
  "team.n_agents": 2,
  "team.max_turn_tokens": 12,
  "eval.n_prompts": 8,
  "eval.n": 1,
  "eval.k": [1],
};

function sat(argv: string[]) {
  const r = satSync(argv);
  assert.equal(r.code, 0, `sat ${argv[0]}: ${r.stderr}`);
  return r;
}

test("swap then train: the distilled new member passes the δ0 check and is trained in later stages inside δ", () => {
  const dir = mkdtempSync(join(tmpdir(), "sat-swap-train-"));
  try {
    const team = join(dir, "team");
    for (const i of [0, 1]) cpSync(AGENT, join(team, `agent-${i}`), { recursive: true });
    // A different model sharing the tokenizer: the fixture with perturbed weights.
    const tok = new CharTokenizer();
    const other = loadModel(AGENT, referenceEngine(), tok);
    const rng = new Rng(3);
    for (let i = 0; i < other.params.length; i++)
      other.params[i] += 0.1 * rng.normal() * Math.abs(other.params[i]);
    mkdirSync(join(dir, "other"));
    saveModel(join(dir, "other"), other, tok);

    const swapDir = join(dir, "swap");
    const delta0 = 0.05;
    const swap = sat([
      ...["swap", "--quiet", "--threads", "1", "--checkpoint", team, "--agent", "1"],
      ...["--with", join(dir, "other"), "--delta0", String(delta0), "--distill", "--output-dir", swapDir],
      ...sets(COMMON),
    ]);
    assert.match(swap.stdout, /new team checkpoint: /);
    const swapped = join(swapDir, "team");
    const distilled = readSafetensors(join(swapped, "agent-1", "model.safetensors"));

    const runDir = join(dir, "train");
    const delta = 0.05;
    sat([
      ...["train", "--quiet", "--threads", "1", "--max-steps", "3", "--output-dir", runDir],
      ...sets({
        ...COMMON,
        "team.agent_checkpoints": [join(swapped, "agent-0"), join(swapped, "agent-1")],
        "algo.kl_radius": delta,
        "algo.trust_region": "checked",
        "eval.before_train": false,
      }),
    ]);
    const stages = readFileSync(join(runDir, "stages.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { agents: Array<Record<string, number>> });
    assert.equal(stages.length, 3);
    const member = stages.map((s) => s.agents.find((a) => a.agent === 1)!);
    assert.ok(
      member.some((a) => a["trust_region/accepted"] === 1),
      "the new member was updated in a later stage",
    );
    for (const a of member)
      if (a["trust_region/accepted"] === 1)
        assert.ok(
          a["trust_region/kl_quantile"] <= delta,
          `accepted update outside δ: ${a["trust_region/kl_quantile"]}`,
        );
    const after = readSafetensors(join(runDir, "checkpoints", "stage-3", "agent-1", "model.safetensors"));
    const changed = [...after.tensors.keys()].some(
      (name) =>
        Buffer.compare(
          Buffer.from(after.tensors.get(name)!.data.buffer),
          Buffer.from(distilled.tensors.get(name)!.data.buffer),
        ) !== 0,
    );
    assert.ok(changed, "the new member's weights changed after the swap");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
