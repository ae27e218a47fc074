/**
 * Bad inputs of the commands that read or write runs and checkpoints (`train`, `pretrain`, `eval`,
 * `swap`, `report`) through the real `bin/sat.js`: each exits non-zero with exactly one stderr
 * line that names the file, key or flag and says what to do, without a stack trace, and where the
 * input is checked up front the output directory is not created (or a resumed run not changed).
 * Also Ctrl-C during `sat train`: exit 130, one line, the last checkpoint complete and loadable.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixtureAgent as fixture, hashTree, runSat, sets, sha256 } from "./sat-process.js";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { referenceEngine } from "../src/engine/engine.js";
import { readJsonl } from "../src/io/jsonl.js";
import { listCheckpoints, RUN_FILES } from "../src/io/rundir.js";
import { loadModel } from "../src/model/checkpoint.js";
import { readSafetensors, writeSafetensors, type TensorToWrite } from "../src/model/safetensors.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-train-errors-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const sat = (argv: string[], opts: { sigintWhen?: () => boolean } = {}) =>
  runSat(argv, { cwd: tmp, ...opts });
const at = (...parts: string[]) => join(tmp, ...parts);

/** A copy of the fixture agent with `change` applied to it. */
function agentCopy(name: string, change: (dir: string) => void): string {
  const dir = at(name);
  cpSync(fixture, dir, { recursive: true });
  change(dir);
  return dir;
}

function rewriteTensors(dir: string, change: (tensors: Map<string, TensorToWrite>) => void): void {
  const file = readSafetensors(join(dir, "model.safetensors"));
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, t] of file.tensors) tensors.set(name, { shape: t.shape, data: t.data as Float32Array });
  change(tensors);
  writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
}

const editJson = (path: string, change: (j: Record<string, any>) => void) => {
  const j = JSON.parse(readFileSync(path, "utf8")) as Record<string, any>;
  change(j);
  writeFileSync(path, JSON.stringify(j, null, 2) + "\n");
};

/** Replaces `from` by `to` (same length) in a file, so a checkpoint manifest's sizes still match. */
function sameSizeEdit(path: string, change: (text: string) => string): void {
  const before = readFileSync(path, "utf8");
  const after = change(before);
  assert.equal(Buffer.byteLength(after), Buffer.byteLength(before), `${path}: the edit must keep the size`);
  writeFileSync(path, after);
}

/** Records the current SHA-256 of `file` in its checkpoint's manifest: a checkpoint written that way. */
function rehash(checkpointDir: string, file: string): void {
  const path = join(checkpointDir, RUN_FILES.manifest);
  const m = JSON.parse(readFileSync(path, "utf8")) as { files: { path: string; sha256: string }[] };
  const entry = m.files.find((f) => f.path === file)!;
  entry.sha256 = sha256(join(checkpointDir, file));
  writeFileSync(path, JSON.stringify(m));
}

// Damaged agents.
const truncated = agentCopy("truncated", (d) => {
  const bytes = readFileSync(join(d, "model.safetensors"));
  writeFileSync(join(d, "model.safetensors"), bytes.subarray(0, 5000));
});
const wrongShape = agentCopy("wrong-shape", (d) =>
  rewriteTensors(d, (t) =>
    t.set("transformer.wpe.weight", { shape: [40, 32], data: new Float32Array(40 * 32) }),
  ),
);
const otherTokenizer = agentCopy("other-tokenizer", (d) =>
  editJson(join(d, "tokenizer.json"), (j) => {
    const v = j.model.vocab as Record<string, number>;
    [v.a, v.b] = [v.b, v.a];
  }),
);
const biggerVocab = agentCopy("bigger-vocab", (d) => {
  editJson(join(d, "tokenizer.json"), (j) => (j.model.vocab["~"] = 64));
  editJson(join(d, "config.json"), (j) => (j.vocab_size = 65));
  rewriteTensors(d, (t) => {
    const wte = t.get("transformer.wte.weight")!;
    const data = new Float32Array(65 * 32);
    data.set(wte.data as Float32Array);
    t.set("transformer.wte.weight", { shape: [65, 32], data });
  });
});

const RL = [
  ...["-q", "--threads", "1"],
  ...sets({
    "tasks.difficulty": 2,
    "rollout.max_prompt_length": 16,
    "rollout.max_completion_length": 40,
    "rollout.prompts_per_step": 4,
    "rollout.n": 4,
    "algo.ppo_mini_batch_size": 2,
    "eval.n_prompts": 8,
    "eval.n": 1,
    "eval.k": [1],
  }),
];
const team = (...dirs: string[]) => [
  "--set",
  `team.n_agents=${dirs.length}`,
  "--set",
  `team.agent_checkpoints=${JSON.stringify(dirs)}`,
];

// A real one-stage run: its run dir and its checkpoint are the inputs of the resume, eval, swap and report cases.
const runDir = at("run");
const first = await sat([
  "train",
  "--output-dir",
  runDir,
  "--max-steps",
  "1",
  "--set",
  "run.save_steps=1",
  ...RL,
  ...team(fixture, fixture),
]);
assert.equal(first.code, 0, first.stderr);
const stage1 = join(runDir, "checkpoints", "stage-1");

function runCopy(name: string, change: (dir: string) => void): string {
  const dir = at(name);
  cpSync(runDir, dir, { recursive: true });
  change(dir);
  return dir;
}
const noCheckpoint = runCopy("run-no-checkpoint", (d) => rmSync(join(d, "checkpoints"), { recursive: true }));
const corruptState = runCopy("run-corrupt-state", (d) =>
  sameSizeEdit(join(d, "checkpoints", "stage-1", "trainer_state.json"), (t) => "x".repeat(t.length)),
);
// Written that way (its checksum matches): the trainer state's own checks catch it.
const wrongStepState = runCopy("run-wrong-step-state", (d) => {
  sameSizeEdit(join(d, "checkpoints", "stage-1", "trainer_state.json"), (t) =>
    t.replace('"step": 1', '"step": 7'),
  );
  rehash(join(d, "checkpoints", "stage-1"), "trainer_state.json");
});
const truncatedTeam = at("team-truncated");
cpSync(stage1, truncatedTeam, { recursive: true });
writeFileSync(
  join(truncatedTeam, "agent-1", "model.safetensors"),
  readFileSync(join(truncatedTeam, "agent-1", "model.safetensors")).subarray(0, 100),
);
const corruptLog = runCopy("run-corrupt-log", (d) => {
  const good = readFileSync(join(d, RUN_FILES.stages), "utf8");
  writeFileSync(join(d, RUN_FILES.stages), '{"step": 1, "reward/mean": 0.5,\n' + good);
});
const notARun = at("not-a-run");
mkdirSync(notARun);
writeFileSync(join(notARun, "notes.txt"), "hello\n");

interface Case {
  name: string;
  argv: string[];
  code: number;
  line: RegExp;
  /** An output dir the command must not create. */
  absent?: string;
  /** A dir the command must leave byte-identical. */
  unchanged?: string;
}

const out = (name: string) => at("out", name);

const CASES: Case[] = [
  {
    name: "train: team.agent_checkpoints names a missing dir",
    argv: ["train", "--output-dir", out("missing-agent"), ...RL, ...team(fixture, at("no-such-agent"))],
    code: 1,
    line: new RegExp(
      `^sat: team\\.agent_checkpoints\\[1\\]: ${esc(at("no-such-agent"))} does not exist; give a model directory \\(model\\.safetensors, config\\.json, tokenizer\\.json\\)`,
    ),
    absent: out("missing-agent"),
  },
  {
    name: "train: truncated model.safetensors",
    argv: ["train", "--output-dir", out("truncated"), ...RL, ...team(truncated, fixture)],
    code: 1,
    line: new RegExp(
      `^sat: team\\.agent_checkpoints\\[0\\]: ${esc(join(truncated, "model.safetensors"))}: .*exceed the \\d+-byte data section \\(file truncated\\?\\)$`,
    ),
    absent: out("truncated"),
  },
  {
    name: "train: a tensor of the wrong shape",
    argv: ["train", "--output-dir", out("shape"), ...RL, ...team(fixture, wrongShape)],
    code: 1,
    line: new RegExp(
      `^sat: team\\.agent_checkpoints\\[1\\]: ${esc(join(wrongShape, "model.safetensors"))}: tensor "transformer\\.wpe\\.weight" has shape \\[40,32\\], the model config needs \\[56,32\\]$`,
    ),
    absent: out("shape"),
  },
  {
    name: "train: a tokenizer.json that differs from the team's",
    argv: ["train", "--output-dir", out("tokenizer"), ...RL, ...team(fixture, otherTokenizer)],
    code: 1,
    line: new RegExp(
      `^sat: team\\.agent_checkpoints\\[0\\] \\(${esc(fixture)}\\) and team\\.agent_checkpoints\\[1\\] \\(${esc(otherTokenizer)}\\) have different tokenizers \\(sha256 [0-9a-f]{12}… vs [0-9a-f]{12}…\\); agents of a team must share one tokenizer$`,
    ),
    absent: out("tokenizer"),
  },
  {
    name: "train: an agent whose context cannot hold prompt + completion",
    argv: [
      "train",
      "--output-dir",
      out("context"),
      ...RL,
      "--set",
      "rollout.max_completion_length=60",
      ...team(fixture, fixture),
    ],
    code: 1,
    line: /^sat: team\.agent_checkpoints\[0\]: .* has a context of 56 tokens, less than rollout\.max_prompt_length \+ rollout\.max_completion_length = 76; shorten the rollout or use a model with a longer context$/,
    absent: out("context"),
  },
  {
    name: "train: a prompt longer than rollout.max_prompt_length",
    argv: [
      "train",
      "--output-dir",
      out("prompt"),
      ...RL,
      "--set",
      "rollout.max_prompt_length=5",
      ...team(fixture, fixture),
    ],
    code: 2,
    line: /^sat: problem add-[0-9a-f]{16} has a prompt of (\d+) tokens, more than rollout\.max_prompt_length \(5\); raise rollout\.max_prompt_length to at least \1 \(prompts are never truncated\)$/,
  },
  {
    name: "train: model.max_seq_len too small for the rollout",
    argv: ["train", "--output-dir", out("seq-len"), ...RL, "--set", "model.max_seq_len=20"],
    code: 2,
    line: /^sat: --set model\.max_seq_len=20: model\.max_seq_len \(20\) cannot hold max_prompt_length \+ max_completion_length = 56; raise it to 56 or shorten the rollout$/,
    absent: out("seq-len"),
  },
  {
    name: "train: --resume <run> that has no checkpoint",
    argv: ["train", "--resume", noCheckpoint, "-q"],
    code: 2,
    line: new RegExp(
      `^sat: --resume ${esc(noCheckpoint)}: no intact checkpoint there \\(expected checkpoint\\.json or checkpoints/stage-K/\\); give a run directory or checkpoint that has one$`,
    ),
    unchanged: noCheckpoint,
  },
  {
    name: "train: --resume with a corrupt trainer_state.json",
    argv: ["train", "--resume", corruptState, "-q"],
    code: 1,
    line: new RegExp(
      `^sat: --resume ${esc(corruptState)}: no intact checkpoint there: ${esc(join(corruptState, "checkpoints", "stage-1", "trainer_state.json"))}: SHA-256 differs from the manifest \\(the file is damaged\\); restore the file, or start over with --force$`,
    ),
    unchanged: corruptState,
  },
  {
    name: "train: --resume with a trainer_state.json of another stage",
    argv: ["train", "--resume", "--output-dir", wrongStepState, "-q"],
    code: 1,
    line: /trainer_state\.json: trainer state is for stage 7, the checkpoint for stage 1; resume from an older checkpoint/,
    unchanged: wrongStepState,
  },
  {
    name: "pretrain: model.max_seq_len too small",
    argv: ["pretrain", "--output-dir", out("pretrain-seq"), "-q", "--set", "model.max_seq_len=20"],
    code: 2,
    line: /^sat: --set model\.max_seq_len=20: model\.max_seq_len \(20\) cannot hold max_prompt_length \+ max_completion_length = 80; raise it to 80 or shorten the rollout$/,
    absent: out("pretrain-seq"),
  },
  {
    name: "pretrain: model.n_heads that does not divide model.d_model",
    argv: [
      "pretrain",
      "--output-dir",
      out("pretrain-heads"),
      "-q",
      "--set",
      "model.d_model=32",
      "--set",
      "model.n_heads=3",
    ],
    code: 2,
    line: /model\.n_heads \(3\) must divide model\.d_model \(32\); pick a divisor such as 2$/,
    absent: out("pretrain-heads"),
  },
  {
    name: "pretrain: a used output dir",
    argv: ["pretrain", "--output-dir", runDir, "-q"],
    code: 2,
    line: new RegExp(
      `^sat: output directory ${esc(runDir)} is not empty; pass --resume to continue it, --force to start over, or choose another --output-dir$`,
    ),
    unchanged: runDir,
  },
  {
    name: "eval: no --checkpoint",
    argv: ["eval", "--output-dir", out("eval-none"), ...RL],
    code: 2,
    line: /^sat: eval needs --checkpoint <team checkpoint or run directory>$/,
    absent: out("eval-none"),
  },
  {
    name: "eval: --checkpoint missing",
    argv: ["eval", "--output-dir", out("eval-missing"), ...RL, "--checkpoint", at("no-such-team")],
    code: 2,
    line: new RegExp(
      `^sat: --checkpoint ${esc(at("no-such-team"))}: no such directory; give a team checkpoint \\(<run>/checkpoints/stage-K\\) or a run directory$`,
    ),
    absent: out("eval-missing"),
  },
  {
    name: "eval: --checkpoint is a single model",
    argv: ["eval", "--output-dir", out("eval-model"), ...RL, "--checkpoint", fixture],
    code: 2,
    line: new RegExp(
      `^sat: --checkpoint ${esc(fixture)}: a single model, not a team checkpoint; give a directory with agent-<i>/ inside`,
    ),
    absent: out("eval-model"),
  },
  {
    name: "eval: --checkpoint is neither a team checkpoint nor a run",
    argv: ["eval", "--output-dir", out("eval-other"), ...RL, "--checkpoint", notARun],
    code: 2,
    line: new RegExp(
      `^sat: --checkpoint ${esc(notARun)}: not a team checkpoint \\(no agent-<i>/\\) nor a run directory \\(no checkpoints/\\)`,
    ),
    absent: out("eval-other"),
  },
  {
    name: "eval: --checkpoint is a run without a complete checkpoint",
    argv: [
      "eval",
      "--output-dir",
      out("eval-no-ck"),
      ...RL,
      "--checkpoint",
      runCopy("run-empty-checkpoints", (d) => rmSync(join(d, "checkpoints", "stage-1"), { recursive: true })),
    ],
    code: 2,
    line: /^sat: --checkpoint .*run-empty-checkpoints: no intact checkpoint there/,
    absent: out("eval-no-ck"),
  },
  {
    name: "eval: a team checkpoint with a truncated agent",
    argv: ["eval", "--output-dir", out("eval-truncated"), ...RL, "--checkpoint", truncatedTeam],
    code: 1,
    line: new RegExp(
      `^sat: --checkpoint ${esc(truncatedTeam)}: ${esc(join(truncatedTeam, "agent-1", "model.safetensors"))}: 100 bytes, the manifest says \\d+ \\(truncated or overwritten\\); give an older checkpoint$`,
    ),
  },
  {
    name: "swap: no --agent",
    argv: ["swap", "--output-dir", out("swap-none"), ...RL, "--checkpoint", stage1, "--with", fixture],
    code: 2,
    line: /^sat: swap needs --checkpoint <team>, --agent <i> and --with <model-dir>$/,
    absent: out("swap-none"),
  },
  {
    name: "swap: --agent out of range",
    argv: [
      "swap",
      "--output-dir",
      out("swap-range"),
      ...RL,
      "--checkpoint",
      stage1,
      "--agent",
      "2",
      "--with",
      fixture,
    ],
    code: 2,
    line: new RegExp(`^sat: --agent 2: the team in ${esc(stage1)} has agents 0\\.\\.1$`),
    absent: out("swap-range"),
  },
  {
    name: "swap: --agent not a number",
    argv: [
      "swap",
      "--output-dir",
      out("swap-nan"),
      ...RL,
      "--checkpoint",
      stage1,
      "--agent",
      "first",
      "--with",
      fixture,
    ],
    code: 2,
    line: /^sat: --agent must be an agent index \(0, 1, \.\.\.\), got "first"$/,
    absent: out("swap-nan"),
  },
  {
    name: "swap: --with a model of a different vocabulary",
    argv: [
      "swap",
      "--output-dir",
      out("swap-vocab"),
      ...RL,
      "--checkpoint",
      stage1,
      "--agent",
      "1",
      "--with",
      biggerVocab,
    ],
    code: 1,
    line: new RegExp(
      `^sat: --checkpoint agent-0 \\(${esc(join(stage1, "agent-0"))}\\) and --with \\(${esc(biggerVocab)}\\) have different tokenizers \\(sha256 [0-9a-f]{12}… vs [0-9a-f]{12}…\\); agents of a team must share one tokenizer$`,
    ),
  },
  {
    name: "swap: --with a team checkpoint instead of a model",
    argv: [
      "swap",
      "--output-dir",
      out("swap-team"),
      ...RL,
      "--checkpoint",
      stage1,
      "--agent",
      "1",
      "--with",
      stage1,
    ],
    code: 2,
    line: new RegExp(
      `^sat: --with ${esc(stage1)}: no model\\.safetensors there; .*e\\.g\\. ${esc(join(stage1, "agent-0"))}$`,
    ),
    absent: out("swap-team"),
  },
  {
    name: "report: a corrupt stages.jsonl line",
    argv: ["report", corruptLog, "-q"],
    code: 1,
    line: new RegExp(
      `^sat: ${esc(join(corruptLog, RUN_FILES.stages))}:1: not valid JSON \\(.*\\); fix or delete that line$`,
    ),
    unchanged: corruptLog,
  },
  {
    name: "report: a missing run dir",
    argv: ["report", at("no-such-run"), "-q"],
    code: 1,
    line: new RegExp(`^sat: ${esc(at("no-such-run"))}: no such run directory`),
  },
];

/** Runs `jobs` with at most `limit` at a time (the machine has 2 cores). */
async function pool<T, R>(items: T[], limit: number, job: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await job(items[i]);
      }
    }),
  );
  return results;
}

test(`${CASES.length} bad inputs of train/pretrain/eval/swap/report: exit ≠ 0, one stderr line naming what and where, no stack`, async () => {
  const before = new Map(CASES.filter((c) => c.unchanged).map((c) => [c.name, hashTree(c.unchanged!)]));
  const results = await pool(CASES, 3, (c) => sat(c.argv));
  CASES.forEach((c, i) => {
    const r = results[i];
    const errLines = r.stderr.split("\n").filter((l) => l !== "");
    assert.equal(errLines.length, 1, `${c.name}: expected one stderr line, got:\n${r.stderr}`);
    assert.match(errLines[0], c.line, c.name);
    assert.equal(r.code, c.code, `${c.name}: exit code (${errLines[0]})`);
    assert.doesNotMatch(
      r.stderr,
      /\n\s+at |unexpected error|Error:/,
      `${c.name}: no stack trace or internal error name`,
    );
    assert.equal(r.stdout, "", `${c.name}: nothing on stdout`);
    if (c.absent) assert.ok(!existsSync(c.absent), `${c.name}: the output dir was created`);
    if (c.unchanged)
      assert.deepEqual(hashTree(c.unchanged), before.get(c.name), `${c.name}: the run dir was changed`);
  });
});

test("Ctrl-C during sat train: exit 130, one line, the last checkpoint complete and loadable", async () => {
  const dir = at("interrupted");
  const latest = join(dir, RUN_FILES.checkpoints, RUN_FILES.latest);
  const r = await sat(
    [
      "train",
      "--output-dir",
      dir,
      "--max-steps",
      "50",
      "--set",
      "run.save_steps=1",
      ...RL,
      ...team(fixture, fixture),
    ],
    { sigintWhen: () => existsSync(latest) },
  );
  assert.equal(r.code, 130, r.stderr);
  // It stopped after the stage in progress (long before 50), and that stage was checkpointed.
  const checkpoints = listCheckpoints(dir);
  const last = checkpoints[checkpoints.length - 1];
  assert.deepEqual(
    r.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("sat: warning: stage ")),
    [
      "sat: interrupted; stopping after the current write (Ctrl-C again to quit at once)",
      `sat: interrupted after stage ${last.step}; checkpoint ${last.dir} is complete; continue with sat train --resume --output-dir ${dir}`,
    ],
  );
  assert.ok(last.step >= 1 && last.step < 50, `stopped at stage ${last.step}`);
  assert.equal(readFileSync(latest, "utf8"), `stage-${last.step}\n`);
  assert.equal(
    readJsonl(join(dir, RUN_FILES.stages)).length,
    last.step,
    "one stage record per checkpointed stage",
  );
  const state = JSON.parse(readFileSync(join(last.dir, "trainer_state.json"), "utf8")) as { step: number };
  assert.equal(state.step, last.step);
  const engine = referenceEngine();
  for (const agent of ["agent-0", "agent-1"]) {
    const model = loadModel(join(last.dir, agent), engine);
    assert.ok(
      model.params.every((x) => Number.isFinite(x)),
      `${agent}: finite weights`,
    );
  }
  assert.deepEqual(
    readdirSync(join(dir, RUN_FILES.checkpoints)).filter((n) => n.startsWith(".")),
    [],
    "no temp dirs",
  );
});
