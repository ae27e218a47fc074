/**
 * `sat swap` end to end: swapping an agent for an identical model is a no-op at Stage 0 (no state
 * needs projection, the team's evaluation is unchanged), and the rows land in eval.jsonl.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixtureAgent as AGENT, satSync } from "./sat-process.js";
import { cpSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

test("sat swap with an identical model: Stage 0 projects nothing and the team scores the same", () => {
  const dir = mkdtempSync(join(tmpdir(), "sat-swap-"));
  const team = join(dir, "team");
  for (const i of [0, 1]) cpSync(AGENT, join(team, `agent-${i}`), { recursive: true });
  const out = join(dir, "run");
  const r = satSync([
    "swap",
    "--quiet",
    "--threads",
    "1",
    "--checkpoint",
    team,
    "--agent",
    "1",
    "--with",
    AGENT,
    "--set",
    "tasks.difficulty=2",
    "--set",
    "rollout.max_prompt_length=16",
    "--set",
    "rollout.max_completion_length=40",
    "--set",
    "team.n_agents=2",
    "--set",
    "team.max_turn_tokens=12",
    "--set",
    "eval.n_prompts=20",
    "--set",
    "eval.n=2",
    "--set",
    "eval.k=[1,2]",
    "--output-dir",
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const rows = readFileSync(join(out, "eval.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    rows.map((x) => x.name),
    ["before swap", "swap agent 1 (stage 0)"],
  );
  for (const key of ["avg@1", "pass@2", "maj@2"]) assert.equal(rows[1][key], rows[0][key], key);
  assert.match(r.stdout, /swap agent 1 \(stage 0\)/);
});
