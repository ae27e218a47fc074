import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { AdamW } from "../src/engine/adamw.js";
import { Transformer } from "../src/model/transformer.js";
import { presetConfig } from "../src/model/config.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { saveModel, loadModel, saveOptimizer, loadOptimizer } from "../src/model/checkpoint.js";
import { readSafetensors, writeSafetensors } from "../src/model/safetensors.js";

const tok = new CharTokenizer();
const tmp = () => mkdtempSync(join(tmpdir(), "sat-ckpt-"));

for (const style of ["gpt2", "llama"] as const) {
  test(`save → load round trip is exact (${style}, value head), Conv1D weights stored transposed`, () => {
    const cfg = presetConfig("nano", tok.vocabSize, style, {
      dModel: 16,
      nHeads: 2,
      dFF: 32,
      nLayers: 1,
      maxSeqLen: 32,
      valueHead: true,
      tiedEmbeddings: style === "gpt2",
    });
    const m = new Transformer(cfg, referenceEngine(), new Rng(1));
    for (const t of m.layout.tensors) for (let i = 0; i < t.size; i++) m.params[t.offset + i] += 0.01 * i;
    const dir = tmp();
    saveModel(dir, m, tok);
    const back = loadModel(dir, referenceEngine(), tok);
    assert.deepEqual(back.cfg, m.cfg);
    assert.deepEqual(Array.from(back.params), Array.from(m.params));
    const file = readSafetensors(join(dir, "model.safetensors"));
    if (style === "gpt2") {
      assert.deepEqual(file.tensors.get("transformer.h.0.mlp.c_fc.weight")!.shape, [16, 32]);
      assert.equal(file.tensors.has("lm_head.weight"), false);
    }
    const hf = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.equal(hf.model_type, style);
    assert.equal(hf.vocab_size, tok.vocabSize);
  });
}

test("loading reports missing, unexpected and mis-shaped tensors, a different tokenizer, and bad config", () => {
  const cfg = presetConfig("nano", tok.vocabSize, "llama", {
    dModel: 16,
    nHeads: 2,
    dFF: 32,
    nLayers: 1,
    maxSeqLen: 32,
  });
  const m = new Transformer(cfg, referenceEngine(), new Rng(2));
  const dir = tmp();
  saveModel(dir, m, tok);
  const path = join(dir, "model.safetensors");
  const orig = readSafetensors(path);
  const rewrite = (edit: (t: Map<string, { shape: number[]; data: Float32Array }>) => void) => {
    const t = new Map(
      [...orig.tensors].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]),
    );
    edit(t);
    writeSafetensors(path, t);
  };
  rewrite((t) => t.delete("model.norm.weight"));
  assert.throws(() => loadModel(dir, referenceEngine()), /missing tensor\(s\) model\.norm\.weight/);
  rewrite((t) => t.set("model.extra.weight", { shape: [1], data: new Float32Array(1) }));
  assert.throws(
    () => loadModel(dir, referenceEngine()),
    /unexpected tensor\(s\) model\.extra\.weight for a llama model/,
  );
  rewrite((t) => t.set("model.norm.weight", { shape: [15], data: new Float32Array(15) }));
  assert.throws(
    () => loadModel(dir, referenceEngine()),
    /tensor "model\.norm\.weight" has shape \[15\], the model config needs \[16\]/,
  );
  const other = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
  saveModel(dir, m, tok);
  const vocab = other.model.vocab as Record<string, number>;
  const [a, b] = Object.keys(vocab).slice(10, 12);
  [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(other));
  assert.throws(() => loadModel(dir, referenceEngine(), tok), /tokenizer/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ model_type: "mamba" }));
  assert.throws(
    () => loadModel(dir, referenceEngine()),
    /config\.json: "model_type": "mamba" is not supported \(gpt2, llama, mistral, qwen2, qwen3\)$/,
  );
  assert.throws(() => loadModel(join(dir, "nope"), referenceEngine()), /config\.json: file not found/);
});

test("optimizer state round trip is bit-exact and checks its size", () => {
  const p = Float32Array.from({ length: 10 }, (_, i) => i * 0.1);
  const g = Float32Array.from({ length: 10 }, (_, i) => Math.sin(i));
  const opt = new AdamW(p, g, { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
  opt.step();
  opt.step();
  const dir = tmp();
  saveOptimizer(dir, opt.snapshot());
  const back = loadOptimizer(dir, p);
  assert.equal(back.step, 2);
  assert.deepEqual(Array.from(back.m), Array.from(opt.m));
  assert.deepEqual(Array.from(back.v), Array.from(opt.v));
  assert.throws(
    () => loadOptimizer(dir, new Float32Array(11)),
    /optimizer state has 10 entries, the model has 11 parameters/,
  );
});
