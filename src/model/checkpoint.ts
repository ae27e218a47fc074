/**
 * Agent checkpoints in Hugging Face layout: `model.safetensors` (Hugging Face tensor names; GPT-2
 * Conv1D weights transposed to (in, out) as transformers stores them), `config.json`,
 * `tokenizer.json` and `tokenizer_config.json`, so `transformers` can load our agents and we can
 * load theirs for the architectures we support. Sharded weights (`model.safetensors.index.json`
 * naming the shard of every tensor) are read one shard at a time. Optimizer state goes to a
 * separate `optimizer.safetensors`.
 * Every file is written atomically; loading checks names, shapes and the tokenizer and says
 * exactly what does not match. Non-finite weights or optimizer moments (NaN, ±Inf: a diverged run)
 * are refused on save and on load, naming the tensor, so they are never trained on or kept.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Buf } from "../engine/kernels/types.js";
import type { Engine } from "../engine/engine.js";
import type { AdamWState } from "../engine/adamw.js";
import { writeFileAtomic } from "../io/atomic.js";
import { fromHuggingFaceConfig, toHuggingFaceConfig, type ModelConfig } from "./config.js";
import { Transformer } from "./transformer.js";
import {
  CharTokenizer,
  TOKENIZER_FILE,
  readTokenizerHash,
  saveTokenizer,
  type Tokenizer,
} from "./tokenizer.js";
import {
  readSafetensors,
  toHalf,
  writeSafetensors,
  type SafeTensor,
  type TensorToWrite,
} from "./safetensors.js";

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

const MODEL_FILE = "model.safetensors";
const INDEX_FILE = "model.safetensors.index.json";
const CONFIG_FILE = "config.json";
const OPTIMIZER_FILE = "optimizer.safetensors";

function transpose(src: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

/** Count of NaN/±Inf entries. */
export function countNonFinite(a: ArrayLike<number>): number {
  let bad = 0;
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) bad++;
  return bad;
}

/** The first tensor of `model` holding non-finite values, or null. */
export function nonFiniteTensor(model: Transformer): { name: string; count: number } | null {
  for (const t of model.layout.tensors) {
    const count = countNonFinite(model.w(t.name));
    if (count > 0) return { name: t.name, count };
  }
  return null;
}

function refuseNonFinite(where: string, what: string, count: number, size: number, saving: boolean): void {
  if (count === 0) return;
  const verb = saving ? "refusing to save" : "refusing to load";
  throw new CheckpointError(
    `${where}: ${verb}: ${what} holds ${count} non-finite value(s) (NaN or Inf) of ${size}; the weights diverged` +
      (saving ? "; lower optim.lr or resume from an earlier checkpoint" : "; use an earlier checkpoint"),
  );
}

/**
 * Writes model.safetensors, config.json, tokenizer.json and tokenizer_config.json into `dir`
 * (which must exist).
 */
export function saveModel(dir: string, model: Transformer, tok: Tokenizer): void {
  saveWeights(dir, model);
  saveConfig(dir, model, { bos: tok.bos, eos: tok.eos, pad: tok.pad });
  saveTokenizer(dir, tok);
}

/** model.safetensors in Hugging Face layout, float32 or float16 (half-precision, rounded to nearest). */
export function saveWeights(dir: string, model: Transformer, dtype: "f32" | "f16" = "f32"): void {
  const bad = nonFiniteTensor(model);
  if (bad)
    refuseNonFinite(join(dir, MODEL_FILE), `tensor "${bad.name}"`, bad.count, model.w(bad.name).length, true);
  const tensors = new Map<string, TensorToWrite>();
  for (const t of model.layout.tensors) {
    const w = model.w(t.name);
    const [rows, cols] = t.shape;
    const data = t.hfTransposed ? transpose(w, rows, cols) : Float32Array.from(w);
    const shape = t.hfTransposed ? [cols, rows] : t.shape;
    tensors.set(t.name, { shape, data: dtype === "f16" ? toHalf(data) : data });
  }
  writeSafetensors(join(dir, MODEL_FILE), tensors, { format: "pt" });
}

/** config.json with the special token ids; `dtype` goes into torch_dtype. */
export function saveConfig(
  dir: string,
  model: Transformer,
  special: { bos: number | null; eos: number; pad: number | null },
  dtype: "f32" | "f16" = "f32",
): void {
  const hf = toHuggingFaceConfig(model.cfg, special) as Record<string, unknown>;
  if (dtype === "f16") hf.torch_dtype = "float16";
  if (model.cfg.valueHead) hf.sat_value_head = true;
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(hf, null, 2) + "\n");
}

function readJson(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new CheckpointError(`${path}: file not found`);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(`${path}: invalid JSON (${(err as Error).message})`);
  }
}

export function readModelConfig(dir: string): ModelConfig {
  const path = join(dir, CONFIG_FILE);
  const j = readJson(path);
  let cfg: ModelConfig;
  try {
    cfg = fromHuggingFaceConfig(j, path);
  } catch (err) {
    throw new CheckpointError((err as Error).message);
  }
  return { ...cfg, valueHead: j.sat_value_head === true };
}

/**
 * Loads a model directory. With `expectTokenizer`, the directory's own tokenizer (when it has a
 * tokenizer.json) must be the same one (same Tokenizer.hash), since a team shares one tokenizer,
 * and the model needs an embedding row for every token id: vocab_size ≥ the tokenizer's size
 * (Hugging Face models pad it, e.g. Qwen3's 151,936 rows for 151,669 tokens; the rows past the
 * tokenizer are masked, so they are never sampled or scored). A directory without a tokenizer.json
 * is assumed to use the built-in characters and must then have exactly their rows.
 */
export function loadModel(dir: string, engine: Engine, expectTokenizer?: Tokenizer): Transformer {
  const cfg = readModelConfig(dir);
  if (expectTokenizer) {
    let hash: string | null;
    try {
      hash = readTokenizerHash(dir);
    } catch (err) {
      throw new CheckpointError((err as Error).message);
    }
    if (hash !== null && hash !== expectTokenizer.hash) {
      throw new CheckpointError(
        `${join(dir, TOKENIZER_FILE)}: the tokenizer differs from the team's; agents of a team must share one tokenizer`,
      );
    }
    const tooSmall = cfg.vocabSize < expectTokenizer.vocabSize;
    // More rows than tokens is a padded vocabulary (masked below), unless the directory has no
    // tokenizer of its own and the built-in characters were only assumed.
    const assumedChars =
      hash === null &&
      expectTokenizer instanceof CharTokenizer &&
      cfg.vocabSize !== expectTokenizer.vocabSize;
    if (tooSmall || assumedChars) {
      const hint =
        hash === null && expectTokenizer instanceof CharTokenizer
          ? `; the directory has no ${TOKENIZER_FILE}, so the built-in character tokenizer was assumed: put the model's own ${TOKENIZER_FILE} beside it`
          : "";
      throw new CheckpointError(
        `${join(dir, CONFIG_FILE)}: vocab_size ${cfg.vocabSize} does not match the tokenizer (${expectTokenizer.vocabSize} tokens)${hint}`,
      );
    }
  }
  const model = new Transformer(cfg, engine);
  loadWeightsInto(model, modelWeightsPath(dir) ?? join(dir, MODEL_FILE));
  // Embedding rows past the tokenizer (padded vocabularies) are never sampled or scored.
  if (expectTokenizer && cfg.vocabSize > expectTokenizer.vocabSize)
    model.maskTokensFrom(expectTokenizer.vocabSize);
  return model;
}

/** The weights of a model directory: model.safetensors, else the sharded index; null when neither exists. */
export function modelWeightsPath(dir: string): string | null {
  for (const f of [MODEL_FILE, INDEX_FILE]) if (existsSync(join(dir, f))) return join(dir, f);
  return null;
}

/**
 * Copies the tensors of a safetensors file, or of the shards a `model.safetensors.index.json`
 * names, into `model`, checking names, shapes and dtypes.
 */
export function loadWeightsInto(model: Transformer, path: string): void {
  if (!existsSync(path)) throw new CheckpointError(`${path}: file not found`);
  if (path.endsWith(INDEX_FILE)) return loadShardsInto(model, path);
  const file = readSafetensors(path);
  checkTensorNames(model, [...file.tensors.keys()], path);
  for (const t of model.layout.tensors) copyTensor(model, t.name, file.tensors.get(t.name)!, path);
}

/** Every model tensor present, nothing else (a tied lm_head alias aside). */
function checkTensorNames(model: Transformer, names: string[], path: string): void {
  const expected = new Set(model.layout.tensors.map((t) => t.name));
  const have = new Set(names);
  // transformers may store the tied output projection too; it must then equal the embedding.
  const tiedAlias = model.cfg.tiedEmbeddings ? "lm_head.weight" : null;
  const unexpected = names.filter((n) => !expected.has(n) && n !== tiedAlias);
  if (unexpected.length) {
    throw new CheckpointError(
      `${path}: unexpected tensor(s) ${unexpected.slice(0, 5).join(", ")}${unexpected.length > 5 ? ", ..." : ""} for a ${model.cfg.arch} model`,
    );
  }
  const missing = [...expected].filter((n) => !have.has(n));
  if (missing.length) {
    throw new CheckpointError(
      `${path}: missing tensor(s) ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", ..." : ""}`,
    );
  }
}

function copyTensor(model: Transformer, name: string, st: SafeTensor, path: string): void {
  const t = model.layout.byName.get(name);
  if (!t) return; // the tied alias
  const want = t.hfTransposed ? [t.shape[1], t.shape[0]] : t.shape;
  if (st.shape.length !== want.length || st.shape.some((d, i) => d !== want[i])) {
    throw new CheckpointError(
      `${path}: tensor "${t.name}" has shape [${st.shape}], the model config needs [${want}]`,
    );
  }
  if (!(st.data instanceof Float32Array || st.data instanceof Float64Array)) {
    throw new CheckpointError(`${path}: tensor "${t.name}" has dtype ${st.dtype}, expected a float type`);
  }
  refuseNonFinite(path, `tensor "${t.name}"`, countNonFinite(st.data), st.data.length, false);
  const dst = model.w(t.name);
  if (t.hfTransposed) dst.set(transpose(st.data, want[0], want[1]));
  else dst.set(st.data);
}

/** Sharded weights: the index's weight_map gives each tensor's file; one shard is in memory at a time. */
function loadShardsInto(model: Transformer, indexPath: string): void {
  const index = readJson(indexPath);
  const map = index.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map))
    throw new CheckpointError(`${indexPath}: no "weight_map" object (tensor name → shard file)`);
  const byFile = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    // A shard is a file next to the index, never a path elsewhere.
    if (typeof file !== "string" || !/^[^/\\]+\.safetensors$/.test(file) || file.startsWith(".."))
      throw new CheckpointError(
        `${indexPath}: weight_map["${name}"] = ${JSON.stringify(file)} is not a .safetensors file name`,
      );
    const list = byFile.get(file);
    if (list) list.push(name);
    else byFile.set(file, [name]);
  }
  checkTensorNames(model, Object.keys(map), indexPath);
  for (const [file, names] of byFile) {
    const shardPath = join(dirname(indexPath), file);
    if (!existsSync(shardPath))
      throw new CheckpointError(`${indexPath}: shard ${file} (named in weight_map) not found`);
    const shard = readSafetensors(shardPath);
    for (const name of names) {
      const st = shard.tensors.get(name);
      if (!st)
        throw new CheckpointError(`${shardPath}: no tensor "${name}", although ${INDEX_FILE} places it here`);
      copyTensor(model, name, st, shardPath);
    }
  }
}

/** Optimizer state: first and second moments (flat, same layout as the parameters) and the step count. */
export function saveOptimizer(dir: string, state: AdamWState): void {
  const path = join(dir, OPTIMIZER_FILE);
  refuseNonFinite(path, "exp_avg", countNonFinite(state.m), state.m.length, true);
  refuseNonFinite(path, "exp_avg_sq", countNonFinite(state.v), state.v.length, true);
  writeSafetensors(
    path,
    {
      exp_avg: { shape: [state.m.length], data: state.m as Float32Array },
      exp_avg_sq: { shape: [state.v.length], data: state.v as Float32Array },
    },
    { step: String(state.step) },
  );
}

export function loadOptimizer(dir: string, like: Buf): AdamWState {
  const path = join(dir, OPTIMIZER_FILE);
  if (!existsSync(path)) throw new CheckpointError(`${path}: file not found`);
  const f = readSafetensors(path);
  const m = f.tensors.get("exp_avg");
  const v = f.tensors.get("exp_avg_sq");
  const step = Number(f.metadata.step);
  if (!m || !v || !Number.isInteger(step))
    throw new CheckpointError(`${path}: not an optimizer state (needs exp_avg, exp_avg_sq and a step)`);
  if (m.data.length !== like.length || v.data.length !== like.length) {
    throw new CheckpointError(
      `${path}: optimizer state has ${m.data.length} entries, the model has ${like.length} parameters`,
    );
  }
  refuseNonFinite(path, "exp_avg", countNonFinite(m.data as Float32Array), m.data.length, false);
  refuseNonFinite(path, "exp_avg_sq", countNonFinite(v.data as Float32Array), v.data.length, false);
  const make = (src: ArrayLike<number>): Buf => {
    const out = like instanceof Float64Array ? new Float64Array(like.length) : new Float32Array(like.length);
    out.set(src);
    return out;
  };
  return { step, m: make(m.data as Float32Array), v: make(v.data as Float32Array) };
}
