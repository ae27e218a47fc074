/**
 * Agent checkpoints in Hugging Face layout: `model.safetensors` (Hugging Face tensor names; GPT-2
 * Conv1D weights transposed to (in, out) as transformers stores them), `config.json`,
 * `tokenizer.json` and `tokenizer_config.json`, so `transformers` can load our agents and we can
 * load theirs for the architectures we support. Optimizer state goes to a separate `optimizer.safetensors`.
 * Every file is written atomically; loading checks names, shapes and the tokenizer and says
 * exactly what does not match. Non-finite weights or optimizer moments (NaN, ±Inf: a diverged run)
 * are refused on save and on load, naming the tensor, so they are never trained on or kept.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
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
import { readSafetensors, writeSafetensors, type TensorToWrite } from "./safetensors.js";

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

const MODEL_FILE = "model.safetensors";
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
  const bad = nonFiniteTensor(model);
  if (bad)
    refuseNonFinite(join(dir, MODEL_FILE), `tensor "${bad.name}"`, bad.count, model.w(bad.name).length, true);
  const tensors = new Map<string, TensorToWrite>();
  for (const t of model.layout.tensors) {
    const w = model.w(t.name);
    if (t.hfTransposed) {
      const [rows, cols] = t.shape;
      tensors.set(t.name, { shape: [cols, rows], data: transpose(w, rows, cols) });
    } else {
      tensors.set(t.name, { shape: t.shape, data: Float32Array.from(w) });
    }
  }
  writeSafetensors(join(dir, MODEL_FILE), tensors, { format: "pt" });
  const hf = toHuggingFaceConfig(model.cfg, { bos: tok.bos, eos: tok.eos, pad: tok.pad }) as Record<
    string,
    unknown
  >;
  if (model.cfg.valueHead) hf.sat_value_head = true;
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(hf, null, 2) + "\n");
  saveTokenizer(dir, tok);
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
 * (Hugging Face models pad it, e.g. Qwen3's 151,936 rows for 151,669 tokens), exactly equal for
 * the character tokenizer, which has no padding rows to spare.
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
    if (
      tooSmall ||
      (expectTokenizer instanceof CharTokenizer && cfg.vocabSize !== expectTokenizer.vocabSize)
    ) {
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
  loadWeightsInto(model, join(dir, MODEL_FILE));
  return model;
}

/** Copies the tensors of a safetensors file into `model`, checking names and shapes. */
export function loadWeightsInto(model: Transformer, path: string): void {
  if (!existsSync(path)) throw new CheckpointError(`${path}: file not found`);
  const file = readSafetensors(path);
  const expected = new Set(model.layout.tensors.map((t) => t.name));
  const extra = [...file.tensors.keys()].filter((n) => !expected.has(n));
  // transformers may store the tied output projection too; it must then equal the embedding.
  const tiedAlias = model.cfg.tiedEmbeddings ? "lm_head.weight" : null;
  const unexpected = extra.filter((n) => n !== tiedAlias);
  if (unexpected.length) {
    throw new CheckpointError(
      `${path}: unexpected tensor(s) ${unexpected.slice(0, 5).join(", ")}${unexpected.length > 5 ? ", ..." : ""} for a ${model.cfg.arch} model`,
    );
  }
  const missing = [...expected].filter((n) => !file.tensors.has(n));
  if (missing.length) {
    throw new CheckpointError(
      `${path}: missing tensor(s) ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", ..." : ""}`,
    );
  }
  for (const t of model.layout.tensors) {
    const st = file.tensors.get(t.name)!;
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
