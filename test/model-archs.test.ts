/**
 * Hugging Face config.json mapping of every architecture: what is refused (one line naming the key
 * and its value), exact save → load round trips of the Qwen2, Llama-with-biases, Llama-3 RoPE and
 * Mistral layouts, transformers loading the checkpoints we write, and sharded-checkpoint errors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { satSync, sets, TINY } from "./sat-process.js";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { fromHuggingFaceConfig, type ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { loadModel, readModelConfig, saveModel } from "../src/model/checkpoint.js";
import { generate } from "../src/model/generate.js";
import { LmPolicy } from "../src/team/lm-policy.js";
import { klRow } from "../src/algorithm/kl.js";
import { findPython } from "../src/io/python.js";

const GOLDEN = join(fileURLToPath(new URL(".", import.meta.url)), "../../test/golden");
const tok = new CharTokenizer();
const tmp = () => mkdtempSync(join(tmpdir(), "sat-archs-"));

const LLAMA = {
  model_type: "llama",
  vocab_size: 64,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 32,
};
const GPT2 = { model_type: "gpt2", vocab_size: 64, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32 };

test("hf config: unsupported settings are refused with one line naming the key and its value", () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [
      { ...GPT2, scale_attn_weights: false },
      '"scale_attn_weights": false is not supported (attention scores are always scaled by 1/sqrt(head_dim))',
    ],
    [
      { ...GPT2, scale_attn_by_inverse_layer_idx: true },
      '"scale_attn_by_inverse_layer_idx": true is not supported (attention scores are never scaled by the layer index)',
    ],
    [{ ...GPT2, activation_function: "relu" }, '"activation_function": "relu" is not supported'],
    [{ ...GPT2, add_cross_attention: true }, '"add_cross_attention": true is not supported'],
    [{ ...LLAMA, hidden_act: "gelu" }, '"hidden_act": "gelu" is not supported (only "silu")'],
    [
      { ...LLAMA, rope_parameters: { rope_type: "yarn", rope_theta: 1e4, factor: 4 } },
      '"rope_parameters.rope_type": "yarn" is not supported (only "default" and "llama3")',
    ],
    [
      { ...LLAMA, rope_theta: 1e4, rope_scaling: { type: "dynamic", factor: 2 } },
      '"rope_scaling.type": "dynamic" is not supported',
    ],
    [
      { ...LLAMA, rope_scaling: { rope_type: "linear", factor: 2 } },
      '"rope_scaling.rope_type": "linear" is not supported',
    ],
    [{ ...LLAMA, partial_rotary_factor: 0.5 }, '"partial_rotary_factor": 0.5 is not supported'],
    [
      { ...LLAMA, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1 } },
      'missing "rope_scaling.high_freq_factor"',
    ],
    [
      { ...LLAMA, model_type: "qwen3", layer_types: ["full_attention", "chunked_attention"] },
      '"layer_types": ["full_attention","chunked_attention"] is not supported',
    ],
    [
      { ...LLAMA, model_type: "gemma" },
      '"model_type": "gemma" is not supported (gpt2, llama, mistral, qwen2, qwen3)',
    ],
  ];
  for (const [cfg, msg] of cases) {
    assert.throws(
      () => fromHuggingFaceConfig(cfg, "m/config.json"),
      (err: Error) => {
        assert.ok(err.message.startsWith("m/config.json: "), err.message);
        assert.ok(err.message.includes(msg), `${err.message}\n  should contain ${msg}`);
        assert.ok(!err.message.includes("\n"), "one line");
        return true;
      },
    );
  }
});

test("hf config: biases, llama3 RoPE (both spellings) and sliding windows map as transformers reads them", () => {
  const read = (j: Record<string, unknown>) => fromHuggingFaceConfig(j, "config.json");
  const biases = (c: ModelConfig) => [!!c.attnBias, !!c.attnOutBias, !!c.mlpBias];
  assert.deepEqual(biases(read({ ...LLAMA, model_type: "qwen2" })), [true, false, false]);
  assert.deepEqual(biases(read({ ...LLAMA, attention_bias: true, mlp_bias: true })), [true, true, true]);
  assert.deepEqual(biases(read({ ...LLAMA, model_type: "qwen3", attention_bias: true })), [
    true,
    true,
    false,
  ]);
  // Where the class has no such bias transformers ignores the key, and so do we.
  assert.deepEqual(biases(read({ ...LLAMA, model_type: "qwen3", mlp_bias: true })), [false, false, false]);
  assert.deepEqual(biases(read({ ...LLAMA, model_type: "qwen2", attention_bias: true })), [
    true,
    false,
    false,
  ]);
  const mistral = read({ ...LLAMA, model_type: "mistral", attention_bias: true, sliding_window: null });
  assert.deepEqual([...biases(mistral), mistral.maxSeqLen], [false, false, false, 32]);
  const scaling = {
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 16,
  };
  const v5 = read({ ...LLAMA, rope_parameters: { rope_type: "llama3", rope_theta: 5e5, ...scaling } });
  const v4 = read({ ...LLAMA, rope_theta: 5e5, rope_scaling: { type: "llama3", ...scaling } });
  assert.deepEqual(v4, v5);
  assert.equal(v5.ropeTheta, 5e5);
  assert.deepEqual(v5.ropeScaling, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 16,
  });
  // Sliding windows cap the context (below the window a sliding layer sees every earlier token).
  assert.equal(read({ ...LLAMA, model_type: "mistral" }).maxSeqLen, 32); // default window 4096
  assert.equal(read({ ...LLAMA, model_type: "mistral", sliding_window: 8 }).maxSeqLen, 8);
  assert.equal(read({ ...LLAMA, model_type: "qwen2", sliding_window: 8 }).maxSeqLen, 32); // off
  const qwenSliding = { ...LLAMA, model_type: "qwen2", use_sliding_window: true, sliding_window: 8 };
  assert.equal(read({ ...qwenSliding, max_window_layers: 1 }).maxSeqLen, 8);
  assert.equal(read({ ...qwenSliding, max_window_layers: 2 }).maxSeqLen, 32); // no layer slides
  assert.equal(read({ ...qwenSliding, layer_types: ["full_attention", "sliding_attention"] }).maxSeqLen, 8);
});

const ROUND_TRIP: Array<[string, Partial<ModelConfig>]> = [
  ["qwen2", { arch: "qwen2", attnBias: true, tiedEmbeddings: true }],
  ["llama with biases", { arch: "llama", attnBias: true, attnOutBias: true, mlpBias: true }],
  [
    "llama3 rope",
    {
      arch: "llama",
      ropeTheta: 500000,
      ropeScaling: {
        type: "llama3",
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositions: 8,
      },
    },
  ],
  ["mistral", { arch: "mistral" }],
  ["qwen3 with attention bias", { arch: "qwen3", attnBias: true, attnOutBias: true }],
];

function randomModel(over: Partial<ModelConfig>, seed: number): Transformer {
  const cfg: ModelConfig = {
    arch: "llama",
    vocabSize: tok.vocabSize,
    dModel: 16,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 4,
    dFF: 24,
    maxSeqLen: 32,
    normEps: 1e-6,
    ropeTheta: 10000,
    tiedEmbeddings: false,
    valueHead: false,
    ...over,
  };
  const m = new Transformer(cfg, referenceEngine(), new Rng(seed));
  // Non-zero biases and norms so a misplaced tensor shows.
  const rng = new Rng(seed + 1);
  for (const t of m.layout.tensors)
    for (let i = 0; i < t.size; i++) m.params[t.offset + i] += 0.05 * rng.normal();
  return m;
}

for (const [name, over] of ROUND_TRIP) {
  test(`hf config: ${name} save → load is exact (config, every tensor, logits)`, () => {
    const m = randomModel(over, 7);
    const dir = tmp();
    saveModel(dir, m, tok);
    const back = loadModel(dir, referenceEngine(), tok);
    assert.deepEqual(back.cfg, m.cfg);
    assert.deepEqual(Array.from(back.params), Array.from(m.params));
    rmSync(dir, { recursive: true });
  });
}

const probe = findPython(["torch", "transformers", "safetensors"]);

test(
  "hf config: transformers loads the checkpoints we write for each layout and computes our logits",
  { skip: probe.ok ? false : `no Python with torch and transformers (${probe.ok ? "" : probe.reason})` },
  () => {
    if (!probe.ok) return;
    const root = tmp();
    const ids = [4, 9, 17, 30, 5, 44, 12, 8, 60, 3];
    const ours: Record<string, number[]> = {};
    ROUND_TRIP.forEach(([name, over], i) => {
      const m = randomModel(over, 20 + i);
      const dir = join(root, String(i));
      mkdirSync(dir);
      saveModel(dir, m, tok);
      ours[String(i)] = Array.from(m.forward(Int32Array.from(ids), 1, ids.length));
    });
    const script = [
      "import json, sys, torch, transformers",
      "root, ids = sys.argv[1], json.loads(sys.argv[2])",
      "out = {}",
      `for i in range(${ROUND_TRIP.length}):`,
      "    m = transformers.AutoModelForCausalLM.from_pretrained(f'{root}/{i}', attn_implementation='eager')",
      "    with torch.no_grad(): out[str(i)] = [m.__class__.__name__, m(torch.tensor([ids])).logits.flatten().tolist()]",
      "print(json.dumps(out))",
    ].join("\n");
    const r = spawnSync(probe.python, ["-c", script, root, JSON.stringify(ids)], {
      encoding: "utf8",
      timeout: 300_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const theirs = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, [string, number[]]>;
    const classes = ROUND_TRIP.map((_, i) => theirs[String(i)][0]);
    assert.deepEqual(classes, [
      "Qwen2ForCausalLM",
      "LlamaForCausalLM",
      "LlamaForCausalLM",
      "MistralForCausalLM",
      "Qwen3ForCausalLM",
    ]);
    ROUND_TRIP.forEach(([name], i) => {
      const a = ours[String(i)];
      const b = theirs[String(i)][1];
      let maxDiff = 0;
      let maxRef = 0;
      for (let k = 0; k < a.length; k++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[k] - b[k]));
        maxRef = Math.max(maxRef, Math.abs(b[k]));
      }
      assert.ok(maxDiff / maxRef < 1e-5, `${name}: logits differ by ${maxDiff} (max ${maxRef})`);
    });
    rmSync(root, { recursive: true });
  },
);

test("sharded: a missing shard, a tensor absent from its shard and a path outside the directory are named", () => {
  const src = join(GOLDEN, "sharded");
  const index = JSON.parse(readFileSync(join(src, "model.safetensors.index.json"), "utf8"));
  const shards = [...new Set(Object.values(index.weight_map as Record<string, string>))].sort();
  const copy = (mutate: (ix: { weight_map: Record<string, string> }) => void, skip?: string) => {
    const dir = tmp();
    copyFileSync(join(src, "config.json"), join(dir, "config.json"));
    for (const s of shards) if (s !== skip) copyFileSync(join(src, s), join(dir, s));
    const ix = JSON.parse(JSON.stringify(index));
    mutate(ix);
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify(ix));
    return dir;
  };
  assert.equal(readModelConfig(src).arch, "qwen2");
  const missing = copy(() => {}, shards[1]);
  assert.throws(
    () => loadModel(missing, referenceEngine()),
    new RegExp(`model\\.safetensors\\.index\\.json: shard ${shards[1]} \\(named in weight_map\\) not found$`),
  );
  const moved = copy((ix) => {
    ix.weight_map["model.norm.weight"] = shards.find((s) => s !== index.weight_map["model.norm.weight"])!;
  });
  assert.throws(
    () => loadModel(moved, referenceEngine()),
    /: no tensor "model\.norm\.weight", although model\.safetensors\.index\.json places it here$/,
  );
  const outside = copy((ix) => {
    ix.weight_map["model.norm.weight"] = "../elsewhere.safetensors";
  });
  assert.throws(
    () => loadModel(outside, referenceEngine()),
    /weight_map\["model\.norm\.weight"\] = "\.\.\/elsewhere\.safetensors" is not a \.safetensors file name$/,
  );
  const dropped = copy((ix) => {
    delete ix.weight_map["model.layers.1.self_attn.q_proj.bias"];
  });
  assert.throws(
    () => loadModel(dropped, referenceEngine()),
    /index\.json: missing tensor\(s\) model\.layers\.1\.self_attn\.q_proj\.bias$/,
  );
});

test("padded vocab: a model with more embedding rows than the tokenizer has tokens never samples or scores the extra ids", () => {
  const m = randomModel({ vocabSize: 100 }, 40);
  const dir = tmp();
  saveModel(dir, m, tok);
  const back = loadModel(dir, referenceEngine(), tok);
  const V = 100;
  const logits = back.forward(Int32Array.from([1, 8, 9, 20]), 1, 4);
  for (let r = 0; r < 4; r++) {
    assert.ok(logits.subarray(r * V + tok.vocabSize, (r + 1) * V).every((x) => x === -Infinity));
    assert.ok(logits.subarray(r * V, r * V + tok.vocabSize).every(Number.isFinite));
  }
  const gen = generate(
    back,
    [
      [1, 8, 9],
      [1, 20],
    ],
    {
      maxNewTokens: 30,
      temperature: 1.5,
      topP: 1,
      stopTokens: [],
      rng: new Rng(3),
    },
  );
  assert.ok(gen.tokens.flat().every((t) => t < tok.vocabSize));
  // The policy rows put no mass there and the exact KL between two such rows stays finite.
  const pol = new LmPolicy(back, 1, {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weightDecay: 0,
    maxGradNorm: 0,
  });
  const traj = {
    promptId: 0,
    groupId: 0,
    tokens: Int32Array.from([1, 8, 9, 20, 5]),
    owner: Int8Array.from([-1, 0, 0, 0, 0]),
    behaviourLogp: new Float64Array(5),
    ownerVersion: new Int32Array(5),
    reward: 0,
    answer: null,
    truncated: false,
  };
  const rows = pol.logProbs(
    [traj],
    [1, 2, 3, 4].map((t) => ({ traj: 0, t })),
  );
  assert.ok(rows.subarray(70, 100).every((x) => x === -Infinity));
  assert.ok(Number.isFinite(klRow(rows, 0, rows, V, V)) && klRow(rows, 0, rows, 0, V) === 0);
  pol.zeroGrad();
  const dlogp = new Float64Array(rows.length);
  dlogp[8] = 1;
  pol.backward(dlogp);
  assert.ok(back.grads.every(Number.isFinite));
  // Fewer rows than tokens cannot work.
  const small = tmp();
  saveModel(small, randomModel({ vocabSize: 50 }, 41), tok);
  assert.throws(
    () => loadModel(small, referenceEngine(), tok),
    /config\.json: vocab_size 50 does not match the tokenizer \(64 tokens\)$/,
  );
});

test("padded vocab: sat train accepts a vocab-100 Llama agent with the character tokenizer", () => {
  const dir = tmp();
  const agent = join(dir, "agent");
  mkdirSync(agent);
  saveModel(agent, randomModel({ vocabSize: 100, maxSeqLen: 64 }, 42), tok);
  const r = satSync([
    "train",
    "-q",
    "--threads",
    "1",
    "--output-dir",
    join(dir, "run"),
    "--max-steps",
    "1",
    ...sets({ ...TINY, "team.agent_checkpoints": [agent, agent], "rollout.prompts_per_step": 2 }),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const stages = readFileSync(join(dir, "run", "stages.jsonl"), "utf8")
    .trim()
    .split("\n");
  assert.equal(stages.length, 1);
});
