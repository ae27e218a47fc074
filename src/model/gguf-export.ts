/**
 * A model and its tokenizer as llama.cpp's GGUF: architecture metadata, tensors under llama.cpp's
 * names, and the vocabulary.
 *
 * Architectures: llama and mistral → "llama" (optional q/k/v/o and MLP biases; Llama-3 RoPE scaling
 * as the `rope_freqs` divisors), qwen2 → "qwen2", qwen3 → "qwen3" (no biases), gpt2 → "gpt2".
 * llama.cpp's "llama" rotates adjacent pairs (2i, 2i+1) where transformers rotates (i, i + hd/2), so
 * the q and k rows of each head are interleaved for it (as llama.cpp's own converter does); qwen2
 * and qwen3 use the half-split rotation and keep the rows.
 *
 * Vocabulary: llama.cpp's byte-level BPE ("gpt2" tokenizer model). Our character tokenizer becomes
 * one token per character (its UTF-8 bytes in GPT-2's byte-to-unicode alphabet, no merges, specials
 * as control tokens); a Hugging Face byte-level BPE tokenizer.json is copied with its merges.
 * Token ids beyond the tokenizer (padded embedding rows) become unused "[PAD<i>]" tokens.
 * f16 files store matrices in half precision and 1-D tensors (norms, biases) in f32, as llama.cpp does.
 */
import type { ModelConfig } from "./config.js";
import type { Transformer } from "./transformer.js";
import { ropeFrequencies } from "../engine/ops/rope.js";
import { GGML_F16, GGML_F32, type GgufTensor, type GgufValue } from "./gguf.js";
import { toHalf } from "./safetensors.js";

export type GgufDtype = "f32" | "f16";

/** llama.cpp token types. */
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;

export interface GgufVocab {
  tokens: string[];
  types: number[];
  merges: string[];
  /** tokenizer.ggml.pre: the pre-tokenizer llama.cpp applies before BPE. */
  pre: string;
  bos: number;
  eos: number;
  pad: number | null;
  addBos: boolean;
  chatTemplate: string | null;
}

/** A model or tokenizer GGUF cannot express (one line; the CLI exits with 1). */
export class GgufExportError extends Error {
  override name = "GgufExportError";
  readonly exitCode = 1;
}

const GGUF_ARCH: Record<ModelConfig["arch"], string> = {
  gpt2: "gpt2",
  llama: "llama",
  mistral: "llama",
  qwen2: "qwen2",
  qwen3: "qwen3",
};

/** Why llama.cpp cannot run this config, or null. */
export function ggufUnsupported(c: ModelConfig): string | null {
  if (c.arch === "qwen3" && (c.attnBias || c.attnOutBias))
    return "llama.cpp's qwen3 has no attention biases (attention_bias = true)";
  if (c.arch === "qwen2" && c.nHeads * c.headDim !== c.dModel)
    return `llama.cpp's qwen2 needs num_attention_heads · head_dim = hidden_size (${c.nHeads}·${c.headDim} ≠ ${c.dModel})`;
  return null;
}

/** GPT-2's byte → printable character table (bytes that print map to themselves). */
function byteAlphabet(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep(b) ? b : next++));
  return out;
}

/** A character as a byte-level BPE token. */
export function byteLevel(text: string): string {
  const table = byteAlphabet();
  return Array.from(Buffer.from(text, "utf8"), (b) => table[b]).join("");
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

function addedTokens(j: Record<string, unknown>): AddedToken[] {
  const list = Array.isArray(j.added_tokens) ? (j.added_tokens as Record<string, unknown>[]) : [];
  return list.map((t) => ({ id: Number(t.id), content: String(t.content), special: t.special === true }));
}

/**
 * The GGUF vocabulary of a tokenizer.json object (and tokenizer_config.json when present) for a
 * model with `vocabSize` embedding rows.
 */
export function ggufVocab(
  tokenizer: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown> | null,
  special: { bos: number; eos: number; pad: number | null },
  vocabSize: number,
): GgufVocab {
  let pre: string;
  const model = (tokenizer.model ?? {}) as Record<string, unknown>;
  const tokens: (string | undefined)[] = new Array(vocabSize);
  const types = new Array<number>(vocabSize).fill(NORMAL);
  let merges: string[] = [];
  const put = (id: number, text: string, type: number) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
      throw new GgufExportError(
        `tokenizer.json: token id ${id} ("${text}") is outside the model's ${vocabSize} embeddings`,
      );
    tokens[id] = text;
    types[id] = type;
  };
  let addBos: boolean;
  if (model.type === "WordLevel") {
    // Our character tokenizer: one token per character, pre-tokenized into single characters.
    const vocab = model.vocab as Record<string, number>;
    const specials = new Set(addedTokens(tokenizer).map((t) => t.id));
    for (const [ch, id] of Object.entries(vocab)) {
      if (specials.has(id)) continue; // written below as control tokens
      if (Array.from(ch).length !== 1)
        throw new GgufExportError(
          `tokenizer.json: WordLevel token ${JSON.stringify(ch)} is not a single character; only character vocabularies convert`,
        );
      if (Buffer.byteLength(ch, "utf8") !== 1)
        throw new GgufExportError(
          `tokenizer.json: character ${JSON.stringify(ch)} is not ASCII; a byte-level vocabulary cannot spell it as one token`,
        );
      put(id, byteLevel(ch), NORMAL);
    }
    pre = "gpt-2";
    addBos = true; // every prompt of ours starts with <bos>
  } else if (model.type === "BPE") {
    if (model.byte_fallback === true)
      throw new GgufExportError(
        "tokenizer.json: BPE with byte_fallback (SentencePiece style) is not supported for GGUF export",
      );
    const byteLevelish = JSON.stringify([tokenizer.pre_tokenizer, tokenizer.decoder]).includes('"ByteLevel"');
    if (!byteLevelish)
      throw new GgufExportError(
        "tokenizer.json: only byte-level BPE (a ByteLevel pre-tokenizer or decoder) converts to GGUF",
      );
    for (const [tok, id] of Object.entries(model.vocab as Record<string, number>)) put(id, tok, NORMAL);
    const raw = Array.isArray(model.merges) ? (model.merges as unknown[]) : [];
    merges = raw.map((m) => (Array.isArray(m) ? m.join(" ") : String(m)));
    pre = preTokenizerOf(tokenizer);
    addBos = tokenizerConfig?.add_bos_token === true;
  } else {
    throw new GgufExportError(
      `tokenizer.json: model type ${JSON.stringify(model.type)} is not supported for GGUF export (byte-level BPE or our character tokenizer)`,
    );
  }
  for (const t of addedTokens(tokenizer)) put(t.id, t.content, t.special ? CONTROL : USER_DEFINED);
  const out: string[] = [];
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      out.push(`[PAD${i}]`);
      types[i] = UNUSED;
    } else out.push(tokens[i]!);
  }
  const template = tokenizerConfig?.chat_template;
  return {
    tokens: out,
    types,
    merges,
    pre,
    ...special,
    addBos,
    chatTemplate: typeof template === "string" ? template : null,
  };
}

// Pre-tokenizer split patterns of tokenizer.json files and llama.cpp's names for them.
const SPLIT_PATTERNS: Record<string, string> = {
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    "qwen2",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    "llama-bpe",
};

/**
 * llama.cpp's pre-tokenizer (tokenizer.ggml.pre) for a byte-level BPE tokenizer.json: GPT-2's
 * regex (a ByteLevel pre-tokenizer alone), SmolLM's (single digits, then GPT-2's), or a Split
 * with the Qwen2 or Llama-3 pattern. Anything else would tokenize differently in llama.cpp.
 */
function preTokenizerOf(tokenizer: Record<string, unknown>): string {
  const pre = tokenizer.pre_tokenizer as Record<string, unknown> | null;
  const steps =
    (pre?.type === "Sequence" ? (pre.pretokenizers as Record<string, unknown>[]) : pre ? [pre] : []) ?? [];
  const kinds = steps.map((p) => p.type);
  const split = steps.find((p) => p.type === "Split");
  const regex = (split?.pattern as Record<string, unknown> | undefined)?.Regex;
  if (typeof regex === "string" && SPLIT_PATTERNS[regex]) return SPLIT_PATTERNS[regex];
  const byteLevelRegex = steps.some((p) => p.type === "ByteLevel" && p.use_regex !== false);
  if (byteLevelRegex && kinds.length === 1) return "gpt-2";
  if (
    byteLevelRegex &&
    kinds.length === 2 &&
    steps[0].type === "Digits" &&
    steps[0].individual_digits === true
  )
    return "smollm";
  throw new GgufExportError(
    `tokenizer.json: pre-tokenizer ${JSON.stringify(kinds)} has no llama.cpp equivalent we know (GPT-2, SmolLM, Qwen2, Llama 3 patterns)`,
  );
}

/** Rows of each head reordered from (i, i + hd/2) pairs to adjacent (2i, 2i+1) pairs. */
function interleaveHeads(src: ArrayLike<number>, heads: number, hd: number, cols: number): Float32Array {
  const out = new Float32Array(heads * hd * cols);
  const half = hd / 2;
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < half; j++)
      for (const [to, from] of [
        [2 * j, j],
        [2 * j + 1, j + half],
      ]) {
        const s = (h * hd + from) * cols;
        const d = (h * hd + to) * cols;
        for (let c = 0; c < cols; c++) out[d + c] = src[s + c];
      }
  return out;
}

function ggufTensorName(hf: string, gpt2: boolean): string | null {
  const fixed: Record<string, string> = gpt2
    ? {
        "transformer.wte.weight": "token_embd.weight",
        "transformer.wpe.weight": "position_embd.weight",
        "transformer.ln_f.weight": "output_norm.weight",
        "transformer.ln_f.bias": "output_norm.bias",
        "lm_head.weight": "output.weight",
      }
    : {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
      };
  if (fixed[hf]) return fixed[hf];
  if (hf.startsWith("v_head.")) return null; // a critic's value head is not part of the language model
  const m = /^(?:transformer\.h|model\.layers)\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  if (!m) throw new GgufExportError(`no GGUF name for tensor "${hf}"`);
  const part: Record<string, string> = gpt2
    ? {
        ln_1: "attn_norm",
        "attn.c_attn": "attn_qkv",
        "attn.c_proj": "attn_output",
        ln_2: "ffn_norm",
        "mlp.c_fc": "ffn_up",
        "mlp.c_proj": "ffn_down",
      }
    : {
        input_layernorm: "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
        post_attention_layernorm: "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
      };
  const p = part[m[2]];
  if (!p) throw new GgufExportError(`no GGUF name for tensor "${hf}"`);
  return `blk.${m[1]}.${p}.${m[3]}`;
}

/** Metadata and tensors of the GGUF file for `model` with vocabulary `vocab`. */
export function ggufOf(
  model: Transformer,
  vocab: GgufVocab,
  dtype: GgufDtype,
  name: string,
): { metadata: Record<string, GgufValue>; tensors: GgufTensor[] } {
  const c = model.cfg;
  const why = ggufUnsupported(c);
  if (why) throw new GgufExportError(why);
  if (vocab.tokens.length !== c.vocabSize)
    throw new GgufExportError(
      `vocabulary has ${vocab.tokens.length} tokens, the model ${c.vocabSize} embeddings`,
    );
  const arch = GGUF_ARCH[c.arch];
  const gpt2 = c.arch === "gpt2";
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  const f32 = (value: number): GgufValue => ({ type: "f32", value });
  const metadata: Record<string, GgufValue> = {
    "general.architecture": { type: "string", value: arch },
    "general.name": { type: "string", value: name },
    "general.file_type": u32(dtype === "f16" ? 1 : 0),
    [`${arch}.vocab_size`]: u32(c.vocabSize),
    [`${arch}.context_length`]: u32(c.maxSeqLen),
    [`${arch}.embedding_length`]: u32(c.dModel),
    [`${arch}.block_count`]: u32(c.nLayers),
    [`${arch}.feed_forward_length`]: u32(c.dFF),
    [`${arch}.attention.head_count`]: u32(c.nHeads),
    [`${arch}.attention.head_count_kv`]: u32(c.nKvHeads),
  };
  if (gpt2) metadata[`${arch}.attention.layer_norm_epsilon`] = f32(c.normEps);
  else {
    metadata[`${arch}.attention.layer_norm_rms_epsilon`] = f32(c.normEps);
    metadata[`${arch}.attention.key_length`] = u32(c.headDim);
    metadata[`${arch}.attention.value_length`] = u32(c.headDim);
    metadata[`${arch}.rope.dimension_count`] = u32(c.headDim);
    metadata[`${arch}.rope.freq_base`] = f32(c.ropeTheta);
  }
  metadata["tokenizer.ggml.model"] = { type: "string", value: "gpt2" };
  metadata["tokenizer.ggml.pre"] = { type: "string", value: vocab.pre };
  metadata["tokenizer.ggml.tokens"] = { type: "array", of: "string", value: vocab.tokens };
  metadata["tokenizer.ggml.token_type"] = { type: "array", of: "i32", value: vocab.types };
  metadata["tokenizer.ggml.merges"] = { type: "array", of: "string", value: vocab.merges };
  metadata["tokenizer.ggml.bos_token_id"] = u32(vocab.bos);
  metadata["tokenizer.ggml.eos_token_id"] = u32(vocab.eos);
  if (vocab.pad !== null) metadata["tokenizer.ggml.padding_token_id"] = u32(vocab.pad);
  metadata["tokenizer.ggml.add_bos_token"] = { type: "bool", value: vocab.addBos };
  if (vocab.chatTemplate) metadata["tokenizer.chat_template"] = { type: "string", value: vocab.chatTemplate };

  const tensors: GgufTensor[] = [];
  const add = (ggufName: string, shape: number[], data: Float32Array) => {
    const half = dtype === "f16" && shape.length > 1;
    tensors.push({
      name: ggufName,
      shape,
      type: half ? GGML_F16 : GGML_F32,
      data: half ? toHalf(data) : data,
    });
  };
  const interleave = c.arch === "llama" || c.arch === "mistral";
  for (const t of model.layout.tensors) {
    const ggufName = ggufTensorName(t.name, gpt2);
    if (!ggufName) continue;
    const w = model.w(t.name);
    let data = w instanceof Float32Array ? w : Float32Array.from(w);
    const q = /\.self_attn\.q_proj\./.test(t.name);
    const k = /\.self_attn\.k_proj\./.test(t.name);
    if (interleave && (q || k)) {
      const heads = q ? c.nHeads : c.nKvHeads;
      data = interleaveHeads(data, heads, c.headDim, t.shape.length > 1 ? t.shape[1] : 1);
    }
    add(ggufName, t.shape, data);
  }
  if (c.ropeScaling) {
    // llama.cpp divides each frequency by its factor: factor = unscaled / scaled frequency.
    const plain = ropeFrequencies(c.headDim, c.ropeTheta, null);
    const scaled = ropeFrequencies(c.headDim, c.ropeTheta, c.ropeScaling);
    add(
      "rope_freqs.weight",
      [c.headDim / 2],
      Float32Array.from(plain, (f, i) => f / scaled[i]),
    );
  }
  return { metadata, tensors };
}
