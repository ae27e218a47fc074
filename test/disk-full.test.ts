/**
 * A full disk while a checkpoint is written: one line naming the file and what to do, a non-zero
 * exit, no temporary directory left behind, and the previous checkpoint intact and resumable.
 * The disk is a 600 KB tmpfs mounted for the test (needs root; skipped with the reason otherwise).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixtureAgent as AGENT, satSync } from "./sat-process.js";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function tryMount(dir: string): string | null {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=600k", "tmpfs", dir], { stdio: "pipe" });
    return null;
  } catch (err) {
    return String((err as { stderr?: Buffer }).stderr ?? err).trim() || "mount failed";
  }
}

test("disk full while writing a checkpoint: one clear line, earlier checkpoint intact", (t) => {
  const mnt = mkdtempSync(join(tmpdir(), "sat-full-"));
  const why = process.getuid?.() === 0 ? tryMount(mnt) : "needs root to mount a small tmpfs";
  if (why) {
    t.skip(why);
    rmSync(mnt, { recursive: true, force: true });
    return;
  }
  try {
    const run = join(mnt, "run");
    const args = [
      "train",
      "--quiet",
      "--threads",
      "1",
      "--set",
      "tasks.difficulty=2",
      "--set",
      "rollout.max_prompt_length=16",
      "--set",
      "rollout.max_completion_length=40",
      "--set",
      `team.agent_checkpoints=${JSON.stringify([AGENT])}`,
      "--set",
      "team.n_agents=1",
      "--max-steps",
      "3",
      "--set",
      "run.save_steps=1",
      "--set",
      "eval.n_prompts=8",
      "--set",
      "eval.n=1",
      "--set",
      "eval.k=[1]",
      "--set",
      "rollout.prompts_per_step=2",
      "--set",
      "rollout.n=4",
      "--set",
      "algo.ppo_mini_batch_size=1",
      "--output-dir",
      run,
    ];
    const r = satSync(args);
    assert.notEqual(r.code, 0);
    // Stage warnings (this tiny setup often has equal rewards in every group) are not about the disk.
    const lines = r.stderr
      .trim()
      .split("\n")
      .filter((l) => !l.startsWith("sat: warning: stage "));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /^sat: write .*checkpoints\/\.stage-\d+\.tmp-[^ ]*: no space left on the device; free some space or choose another --output-dir/,
    );
    const ckpts = readdirSync(join(run, "checkpoints"));
    assert.deepEqual(
      ckpts.filter((n) => n.startsWith(".")),
      [],
      "no temporary checkpoint left behind",
    );
    const latest = readFileSync(join(run, "checkpoints", "latest"), "utf8").trim();
    assert.ok(ckpts.includes(latest), `latest names a complete checkpoint (${latest})`);
    const manifest = JSON.parse(
      readFileSync(join(run, "checkpoints", latest, "checkpoint.json"), "utf8"),
    ) as { files: { path: string }[] };
    assert.ok(manifest.files.some((f) => f.path.endsWith("model.safetensors")));
  } finally {
    spawnSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});
