/**
 * The command line with a model whose vocabulary is not the character one: a random Llama with
 * 512 embedding rows and its own 500-token byte-level BPE with a ChatML template
 * (test/fixtures/tokenizer/tiny-chat) trains with `sat train`, prompts go through the chat
 * template, every saved agent carries the same tokenizer files, and `sat eval` reads them back.
 * A team whose agents carry different tokenizers fails in one line that names both.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { satSync } from "./sat-process.js";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../src/io/python.js";
import { referenceEngine } from "../src/engine/engine.js";
import { Rng } from "../src/engine/rng.js";
import { presetConfig } from "../src/model/config.js";
import { saveModel } from "../src/model/checkpoint.js";
import { Transformer } from "../src/model/transformer.js";
import { readTokenizer, readTokenizerHash, TOKENIZER_CONFIG_FILE } from "../src/model/tokenizer.js";
import { readJsonl } from "../src/io/jsonl.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-tok-cli-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const CHAT = join(PACKAGE_ROOT, "test/fixtures/tokenizer/tiny-chat");

const sat = (argv: string[]) => satSync(argv, { cwd: tmp });

/** A random Llama with `rows` embedding rows saved with the tokenizer of `tokenizerDir`. */
function modelDir(name: string, tokenizerDir: string, rows: number): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const tok = readTokenizer(tokenizerDir)!;
  const cfg = presetConfig("nano", rows, "llama", { dModel: 32, nHeads: 2, headDim: 16, dFF: 64 });
  saveModel(dir, new Transformer(cfg, referenceEngine(), new Rng(1)), tok);
  return dir;
}

const ARGS = [
  ...["-q", "--threads", "1", "--max-steps", "1"],
  ...["--set", "tasks.difficulty=2", "--set", "rollout.max_prompt_length=32"],
  ...["--set", "rollout.max_completion_length=24", "--set", "team.max_turn_tokens=8"],
  ...["--set", "rollout.prompts_per_step=2", "--set", "rollout.n=2", "--set", "algo.ppo_mini_batch_size=1"],
  ...["--set", "eval.n_prompts=4", "--set", "eval.n=1", "--set", "eval.k=[1]"],
];
const team = (...dirs: string[]) => [
  ...["--set", `team.n_agents=${dirs.length}`],
  ...["--set", `team.agent_checkpoints=${JSON.stringify(dirs)}`],
];

test("bpe tokenizer: sat train and sat eval run a Llama with its own tokenizer.json (500 tokens, 512 rows) and keep its files", () => {
  const agent = modelDir("chat-llama", CHAT, 512);
  const run = join(tmp, "run");
  const r = sat(["train", "--output-dir", run, ...ARGS, ...team(agent, agent)]);
  assert.equal(r.code, 0, r.stderr);
  const stages = readJsonl(join(run, "stages.jsonl")) as Array<Record<string, unknown>>;
  assert.equal(stages.length, 1);
  assert.ok((stages[0].num_tokens as number) > 0);
  const hash = readTokenizerHash(CHAT);
  for (const a of ["agent-0", "agent-1"]) {
    const d = join(run, "checkpoints", "stage-1", a);
    assert.equal(readTokenizerHash(d), hash, a);
    assert.ok(existsSync(join(d, TOKENIZER_CONFIG_FILE)), a);
  }
  const ev = sat(["eval", "--checkpoint", run, "--output-dir", join(tmp, "eval"), ...ARGS]);
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal(readJsonl(join(tmp, "eval", "eval.jsonl")).length > 0, true);
});

test("bpe tokenizer: agents with different tokenizers fail in one line naming both; a model without its tokenizer is explained", () => {
  const chat = modelDir("chat-a", CHAT, 512);
  const other = join(tmp, "chat-b");
  cpSync(chat, other, { recursive: true });
  const cfgPath = join(other, TOKENIZER_CONFIG_FILE);
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  cfg.chat_template = "{{ messages[0].content }}";
  cpSync(chat, join(tmp, "chat-c"), { recursive: true });
  rmSync(join(tmp, "chat-c", "tokenizer.json"));
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const r = sat(["train", "--output-dir", join(tmp, "bad"), ...ARGS, ...team(chat, chat, other)]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr.trim(),
    new RegExp(
      `^sat: team\\.agent_checkpoints\\[0\\] \\(.*chat-a\\) and team\\.agent_checkpoints\\[2\\] \\(.*chat-b\\) have different tokenizers \\(sha256 [0-9a-f]{12}… vs [0-9a-f]{12}…\\); agents of a team must share one tokenizer$`,
    ),
  );
  assert.ok(!existsSync(join(tmp, "bad")), "no run directory for a refused team");
  // Without tokenizer.json the character tokenizer (64 tokens) is assumed, which the 512 rows contradict.
  const lone = sat(["train", "--output-dir", join(tmp, "lone"), ...ARGS, ...team(join(tmp, "chat-c"))]);
  assert.equal(lone.code, 1);
  assert.match(
    lone.stderr.trim(),
    /^sat: team\.agent_checkpoints\[0\]: .*config\.json: vocab_size 512 does not match the tokenizer \(64 tokens\); the directory has no tokenizer\.json, so the built-in character tokenizer was assumed: put the model's own tokenizer\.json beside it$/,
  );
});

test("chat template: model.chat_template_kwargs is set by --set or a file and written back as loadable YAML", () => {
  const shown = sat(["config", "--set", "model.chat_template_kwargs.enable_thinking=false"]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^ {2}chat_template_kwargs: \{"enable_thinking":false\}$/m);
  const file = join(tmp, "kwargs.yaml");
  writeFileSync(file, shown.stdout);
  const again = sat(["config", "--config", file]);
  assert.equal(again.stdout, shown.stdout);
  const bad = sat(["config", "--set", "model.chat_template_kwargs=3"]);
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr.trim(),
    "sat: --set model.chat_template_kwargs=3: model.chat_template_kwargs: expected mapping of names to values, got number 3",
  );
});
