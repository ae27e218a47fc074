/**
 * `sat export`: a model directory (an agent, a pretrained base, a downloaded Hugging Face model of
 * a supported layout) written as one GGUF file for llama.cpp, or as a Hugging Face directory in
 * float32 or float16. The model is loaded and checked exactly as training loads it, so a file we
 * export is one our engine runs.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { referenceEngine } from "../engine/engine.js";
import { CheckpointError, loadModel, saveConfig, saveWeights } from "../model/checkpoint.js";
import { writeGguf } from "../model/gguf.js";
import { writeFileAtomic } from "../io/atomic.js";
import { ggufOf, ggufVocab, GgufExportError, type GgufDtype } from "../model/gguf-export.js";

export type ExportFormat = "gguf" | "safetensors";

export interface ExportRequest {
  modelDir: string;
  format: ExportFormat;
  dtype: GgufDtype;
  /** GGUF: the file; safetensors: a directory (created). */
  out: string;
  /** Replace an existing output. */
  force?: boolean;
  /** general.name in the GGUF file (default: the model directory's name). */
  name?: string;
}

export interface ExportResult {
  path: string;
  bytes: number;
  tensors: number;
}

/** Files of a Hugging Face model directory besides the weights and config that travel with it. */
const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
  "chat_template.jinja",
];

function readJsonIfAny(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(`${path}: invalid JSON (${(err as Error).message})`);
  }
}

/** bos/eos/pad from config.json (eos may be a list in transformers configs: the first is used). */
function specialIds(
  config: Record<string, unknown>,
  where: string,
): { bos: number; eos: number; pad: number | null } {
  const id = (key: string, required: boolean): number | null => {
    let v = config[key];
    if (Array.isArray(v)) v = v[0];
    if (v === undefined || v === null) {
      if (required) throw new CheckpointError(`${where}: no "${key}"; the GGUF vocabulary needs it`);
      return null;
    }
    if (!Number.isInteger(v))
      throw new CheckpointError(`${where}: "${key}" must be a token id, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const eos = id("eos_token_id", true)!;
  return { bos: id("bos_token_id", false) ?? eos, eos, pad: id("pad_token_id", false) };
}

function refuseExisting(path: string, force: boolean | undefined): void {
  if (!existsSync(path) || force) return;
  const isDir = statSync(path).isDirectory();
  if (isDir && readdirSync(path).length === 0) return;
  throw new GgufExportError(`${path} already exists; choose another --out or pass --force to replace it`);
}

export function exportModel(req: ExportRequest): ExportResult {
  const dir = req.modelDir;
  refuseExisting(req.out, req.force);
  // The reference engine keeps tensors in ordinary memory (no heap limit) and is exact for a copy.
  const model = loadModel(dir, referenceEngine());
  const configPath = join(dir, "config.json");
  const config = readJsonIfAny(configPath)!;
  if (req.format === "gguf") {
    const tokPath = join(dir, "tokenizer.json");
    const tokenizer = readJsonIfAny(tokPath);
    if (!tokenizer) throw new CheckpointError(`${tokPath}: file not found; GGUF carries the vocabulary`);
    let vocab;
    try {
      vocab = ggufVocab(
        tokenizer,
        readJsonIfAny(join(dir, "tokenizer_config.json")),
        specialIds(config, configPath),
        model.cfg.vocabSize,
      );
    } catch (err) {
      if (err instanceof GgufExportError)
        throw new GgufExportError(`${tokPath}: ${err.message.replace(/^tokenizer\.json: /, "")}`);
      throw err;
    }
    const { metadata, tensors } = ggufOf(model, vocab, req.dtype, req.name ?? basename(resolve(dir)));
    writeGguf(req.out, metadata, tensors);
    return { path: req.out, bytes: statSync(req.out).size, tensors: tensors.length };
  }
  mkdirSync(req.out, { recursive: true });
  saveWeights(req.out, model, req.dtype);
  const ids = specialIds(config, configPath);
  saveConfig(req.out, model, ids, req.dtype);
  for (const f of TOKENIZER_FILES)
    if (existsSync(join(dir, f))) writeFileAtomic(join(req.out, f), readFileSync(join(dir, f)));
  const weights = join(req.out, "model.safetensors");
  return { path: req.out, bytes: statSync(weights).size, tensors: model.layout.tensors.length };
}
