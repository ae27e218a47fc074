import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { float64Engine, referenceEngine } from "../src/engine/engine.js";
import { expectAllClose, numericGrad } from "../src/engine/check.js";
import { Transformer } from "../src/model/transformer.js";
import { Decoder, generate, samplingDistribution } from "../src/model/generate.js";
import { presetConfig, validateModelConfig, type ModelConfig, type Arch } from "../src/model/config.js";
import { buildLayout, countParams } from "../src/model/layout.js";

function tinyConfig(arch: Arch, extra: Partial<ModelConfig> = {}): ModelConfig {
  return validateModelConfig({
    arch,
    vocabSize: 11,
    dModel: 8,
    nLayers: 2,
    nHeads: 2,
    nKvHeads: arch === "gpt2" ? 2 : 1,
    headDim: 4,
    dFF: 12,
    maxSeqLen: 8,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: arch === "gpt2",
    valueHead: false,
    ...extra,
  });
}

const BIASED_LLAMA3: Partial<ModelConfig> = {
  attnBias: true,
  attnOutBias: true,
  mlpBias: true,
  ropeScaling: { type: "llama3", factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8 },
};

function randomize(m: Transformer, rng: Rng, scale = 0.3): void {
  // Non-trivial norms and biases so every gradient path is exercised.
  for (let i = 0; i < m.params.length; i++) m.params[i] = rng.normal() * scale;
  for (const t of m.layout.tensors)
    if (t.init === "ones") for (let i = 0; i < t.size; i++) m.params[t.offset + i] += 1;
}

const cases: Array<[string, ModelConfig]> = [
  ["gpt2 tied", tinyConfig("gpt2")],
  ["gpt2 untied + value head", tinyConfig("gpt2", { tiedEmbeddings: false, valueHead: true })],
  ["llama GQA untied", tinyConfig("llama")],
  ["qwen3 q/k norm tied + value head", tinyConfig("qwen3", { tiedEmbeddings: true, valueHead: true })],
  ["qwen2 q/k/v biases", tinyConfig("qwen2", { attnBias: true })],
  ["llama attention and MLP biases, llama3 rope", tinyConfig("llama", BIASED_LLAMA3)],
];

for (const [name, cfg] of cases) {
  test(`whole-model finite-difference gradient check (float64): ${name}`, () => {
    const rng = new Rng(11);
    const m = new Transformer(cfg, float64Engine());
    randomize(m, rng);
    const B = 2;
    const T = 5;
    const ids = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
    // A random linear functional of logits (and values): its gradient is the functional itself.
    const r = Float64Array.from({ length: B * T * cfg.vocabSize }, () => rng.normal());
    const sv = Float64Array.from({ length: B * T }, () => rng.normal());
    const loss = (): number => {
      const logits = m.forward(ids, B, T);
      let s = 0;
      for (let i = 0; i < r.length; i++) s += r[i] * logits[i];
      if (cfg.valueHead) {
        const v = m.values();
        for (let i = 0; i < sv.length; i++) s += sv[i] * v[i];
      }
      return s;
    };
    loss();
    m.zeroGrad();
    m.backward(r, cfg.valueHead ? sv : undefined);
    const analytic = Float64Array.from(m.grads);
    // Check every tensor at a few random entries plus its first and last entry.
    let checked = 0;
    for (const t of m.layout.tensors) {
      const idx = new Set([t.offset, t.offset + t.size - 1]);
      for (let j = 0; j < 3; j++) idx.add(t.offset + rng.int(t.size));
      const indices = [...idx];
      const num = numericGrad(loss, m.params, 1e-6, indices);
      const ana = indices.map((i) => analytic[i]);
      expectAllClose(ana, num, 1e-5, 1e-7, `${name} ${t.name}`);
      checked += indices.length;
    }
    assert.ok(checked >= m.layout.tensors.length * 2, `checked ${checked} entries`);
  });
}

test("parameter counts: the bakeoff model has 809,728 parameters; presets have their stated sizes", () => {
  const bakeoff = validateModelConfig({
    ...presetConfig("micro", 32, "gpt2"),
    maxSeqLen: 64,
    tiedEmbeddings: false,
  });
  assert.equal(countParams(buildLayout(bakeoff)), 809_728);
  const sizes = (["nano", "micro", "small", "base"] as const).map((p) =>
    countParams(buildLayout(presetConfig(p, 48))),
  );
  assert.ok(sizes[0] > 80_000 && sizes[0] < 150_000, `nano ${sizes[0]}`);
  assert.ok(sizes[1] > 700_000 && sizes[1] < 1_000_000, `micro ${sizes[1]}`);
  assert.ok(sizes[2] > 2_500_000 && sizes[2] < 3_600_000, `small ${sizes[2]}`);
  assert.ok(sizes[3] > 9_000_000 && sizes[3] < 12_000_000, `base ${sizes[3]}`);
  const llama = countParams(buildLayout(presetConfig("micro", 48, "llama")));
  assert.ok(Math.abs(llama - sizes[1]) / sizes[1] < 0.15, `llama micro ${llama} vs gpt2 micro ${sizes[1]}`);
});

const decodeCases: Array<[string, ModelConfig]> = [
  ["gpt2", tinyConfig("gpt2")],
  ["llama", tinyConfig("llama")],
  ["qwen3", tinyConfig("qwen3")],
  ["qwen2", tinyConfig("qwen2", { attnBias: true })],
  ["llama with biases and llama3 rope", tinyConfig("llama", BIASED_LLAMA3)],
];
for (const [arch, cfg] of decodeCases) {
  test(`KV-cache decoding reproduces the full forward's logits: ${arch}`, () => {
    const rng = new Rng(5);
    const m = new Transformer(cfg, float64Engine());
    randomize(m, rng);
    const B = 3;
    const T = 7;
    const ids = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
    const full = Float64Array.from(m.forward(ids, B, T));
    const dec = new Decoder(m, B, T);
    const active = new Uint8Array(B).fill(1);
    const V = cfg.vocabSize;
    for (let t = 0; t < T; t++) {
      // Sequence 1 pauses at t = 2 and catches up later, as a relay agent does.
      const act = Uint8Array.from(active);
      const feed = new Int32Array(B);
      for (let b = 0; b < B; b++) feed[b] = ids[b * T + t];
      if (t === 2) act[1] = 0;
      const logits = dec.step(feed, act);
      for (let b = 0; b < B; b++) {
        if (!act[b]) continue;
        expectAllClose(
          logits.subarray(b * V, (b + 1) * V),
          full.subarray((b * T + t) * V, (b * T + t + 1) * V),
          1e-9,
          1e-10,
          `t=${t} b=${b}`,
        );
      }
      if (t === 2) {
        dec.step(feed, Uint8Array.from([0, 1, 0]));
      }
    }
    assert.deepEqual(Array.from(dec.lengths), [T, T, T]);
  });
}

test("sampling with the KV cache gives the same tokens as recomputing the whole prefix", () => {
  const cfg = tinyConfig("llama", { maxSeqLen: 16 });
  const m = new Transformer(cfg, referenceEngine(), new Rng(3));
  randomize(m, new Rng(4), 0.5);
  const prompts = [[1, 2, 3], [4, 5], [6]];
  const opts = { maxNewTokens: 8, temperature: 0.9, topP: 0.95, stopTokens: [10] };
  const cached = generate(m, prompts, { ...opts, rng: new Rng(99) });
  // Reference: no cache, sequences advanced one at a time in the same rng order.
  const rng = new Rng(99);
  const V = cfg.vocabSize;
  const probs = new Float64Array(V);
  const seqs = prompts.map((p) => [...p]);
  const done = prompts.map(() => false);
  const out: number[][] = prompts.map(() => []);
  for (let step = 0; step < opts.maxNewTokens; step++) {
    for (let b = 0; b < seqs.length; b++) {
      if (done[b]) continue;
      const T = seqs[b].length;
      const logits = m.forward(Int32Array.from(seqs[b]), 1, T);
      samplingDistribution(probs, logits, (T - 1) * V, V, opts.temperature, opts.topP);
      const tok = rng.categorical(probs, V);
      out[b].push(tok);
      seqs[b].push(tok);
      if (tok === 10) done[b] = true;
    }
  }
  assert.deepEqual(cached.tokens, out);
  for (const lp of cached.logps.flat()) assert.ok(lp <= 0 && Number.isFinite(lp));
});

test("top-p keeps the smallest most-likely set and renormalises; temperature 0 is greedy", () => {
  const logits = new Float64Array([Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]);
  const p = new Float64Array(4);
  samplingDistribution(p, logits, 0, 4, 1, 0.75);
  expectAllClose(p, [0.5 / 0.8, 0.3 / 0.8, 0, 0], 1e-12, 1e-12);
  samplingDistribution(p, logits, 0, 4, 1, 1);
  expectAllClose(p, [0.5, 0.3, 0.15, 0.05], 1e-12, 1e-12);
  samplingDistribution(p, logits, 0, 4, 0, 1);
  assert.deepEqual(Array.from(p), [1, 0, 0, 0]);
  // Temperature 2 flattens: p ∝ sqrt(p0).
  samplingDistribution(p, logits, 0, 4, 2, 1);
  const z = [0.5, 0.3, 0.15, 0.05].map(Math.sqrt);
  const s = z.reduce((a, b) => a + b);
  expectAllClose(
    p,
    z.map((x) => x / s),
    1e-12,
    1e-12,
  );
});

test("bad inputs: token outside vocabulary, sequence longer than the context", () => {
  const cfg = tinyConfig("gpt2");
  const m = new Transformer(cfg, referenceEngine(), new Rng(1));
  assert.throws(
    () => m.forward(Int32Array.from([1, 11]), 1, 2),
    /token id 11 at position 1 is outside the vocabulary/,
  );
  assert.throws(
    () => m.forward(new Int32Array(9), 1, 9),
    /sequence length 9 exceeds the model context \(8\)/,
  );
  assert.throws(() => m.backward(new Float64Array(1)), /backward called before forward/);
  assert.throws(() => presetConfig("huge" as never, 10), /unknown model preset "huge"/);
});
