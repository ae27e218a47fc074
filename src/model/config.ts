/**
 * Model configuration: one decoder-only transformer that can be GPT-2 shaped (LayerNorm, learned
 * positions, GELU, fused qkv with biases) or Llama shaped (RMSNorm, RoPE, SwiGLU, grouped-query
 * attention), with the Llama-family variants Mistral (same tensors), Qwen2 (q/k/v biases) and Qwen3
 * (per-head q/k RMSNorm), optional projection biases and Llama-3 RoPE frequency scaling.
 * Presets give sizes; the style gives the structure. Also maps to and from Hugging Face
 * `config.json`; a setting that would change the model's outputs and that we do not implement is
 * refused with the key and its value.
 */
import type { Llama3RopeScaling } from "../engine/ops/rope.js";

export type Arch = "gpt2" | "llama" | "mistral" | "qwen2" | "qwen3";

export type RopeScaling = Llama3RopeScaling;

export interface ModelConfig {
  arch: Arch;
  vocabSize: number;
  dModel: number; // C
  nLayers: number; // L
  nHeads: number; // Hq
  nKvHeads: number; // Hkv (= nHeads for gpt2)
  headDim: number; // hd
  dFF: number; // MLP hidden size
  maxSeqLen: number; // context length (positions)
  normEps: number;
  ropeTheta: number; // RoPE archs only
  tiedEmbeddings: boolean; // lm_head shares the token embedding
  valueHead: boolean; // scalar value head on the final hidden state (for GAE)
  /** RoPE archs: q/k/v projections have biases (always for qwen2; HF attention_bias for llama/qwen3). */
  attnBias?: boolean;
  /** RoPE archs: o_proj has a bias (HF attention_bias for llama/qwen3). */
  attnOutBias?: boolean;
  /** llama: gate/up/down projections have biases (HF mlp_bias). */
  mlpBias?: boolean;
  /** RoPE archs: frequency scaling (HF rope_type "llama3"); absent = plain RoPE. */
  ropeScaling?: RopeScaling | null;
}

/** The Hugging Face architecture class and model_type of each arch. */
export const HF_ARCHITECTURES: Record<Arch, string> = {
  gpt2: "GPT2LMHeadModel",
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
};

export type PresetName = "nano" | "micro" | "small" | "base";
export type Style = "gpt2" | "llama";

const PRESET_DIMS: Record<
  PresetName,
  { dModel: number; nLayers: number; nHeads: number; maxSeqLen: number }
> = {
  nano: { dModel: 64, nLayers: 2, nHeads: 4, maxSeqLen: 128 }, // ~0.1M parameters
  micro: { dModel: 128, nLayers: 4, nHeads: 4, maxSeqLen: 128 }, // ~0.8M
  small: { dModel: 256, nLayers: 4, nHeads: 4, maxSeqLen: 128 }, // ~3M
  base: { dModel: 384, nLayers: 6, nHeads: 6, maxSeqLen: 128 }, // ~10M
};

export const PRESET_NAMES = Object.keys(PRESET_DIMS) as PresetName[];

export function presetConfig(
  preset: PresetName,
  vocabSize: number,
  style: Style = "gpt2",
  overrides: Partial<ModelConfig> = {},
): ModelConfig {
  if (!PRESET_DIMS[preset])
    throw new Error(`unknown model preset "${preset}" (choose one of ${PRESET_NAMES.join(", ")})`);
  // Size overrides apply before the derived sizes (head dim, kv heads, MLP width) are computed.
  const dims = { ...PRESET_DIMS[preset] };
  for (const k of ["dModel", "nLayers", "nHeads", "maxSeqLen"] as const)
    if (overrides[k] !== undefined) dims[k] = overrides[k]!;
  const headDim = dims.dModel / dims.nHeads;
  const base: ModelConfig =
    style === "gpt2"
      ? {
          arch: "gpt2",
          vocabSize,
          ...dims,
          nKvHeads: dims.nHeads,
          headDim,
          dFF: 4 * dims.dModel,
          normEps: 1e-5,
          ropeTheta: 10000,
          tiedEmbeddings: true,
          valueHead: false,
        }
      : {
          arch: "llama",
          vocabSize,
          ...dims,
          nKvHeads: dims.nHeads % 2 === 0 ? dims.nHeads / 2 : dims.nHeads,
          headDim,
          // SwiGLU has three matrices; 8/3·C keeps the MLP parameter count of a 4·C GELU MLP.
          dFF: Math.round((8 * dims.dModel) / 3 / 8) * 8,
          normEps: 1e-6,
          ropeTheta: 10000,
          tiedEmbeddings: true,
          valueHead: false,
        };
  return validateModelConfig({ ...base, ...overrides });
}

export function validateModelConfig(c: ModelConfig): ModelConfig {
  const bad = (msg: string): never => {
    throw new Error(`invalid model config: ${msg}`);
  };
  for (const k of [
    "vocabSize",
    "dModel",
    "nLayers",
    "nHeads",
    "nKvHeads",
    "headDim",
    "dFF",
    "maxSeqLen",
  ] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.nHeads % c.nKvHeads !== 0) bad(`nHeads (${c.nHeads}) must be a multiple of nKvHeads (${c.nKvHeads})`);
  if (c.arch === "gpt2") {
    if (c.nKvHeads !== c.nHeads) bad("gpt2 has no grouped-query attention: nKvHeads must equal nHeads");
    if (c.nHeads * c.headDim !== c.dModel)
      bad(`gpt2 needs nHeads·headDim = dModel (${c.nHeads}·${c.headDim} ≠ ${c.dModel})`);
    if (c.attnBias || c.attnOutBias || c.mlpBias || c.ropeScaling)
      bad(
        "gpt2 always has its biases and no RoPE: attnBias, attnOutBias, mlpBias and ropeScaling do not apply",
      );
  } else {
    if (c.headDim % 2 !== 0) bad(`RoPE needs an even headDim, got ${c.headDim}`);
    // Only the bias combinations a Hugging Face class can express, so every model can be saved.
    const attnBias = c.attnBias === true;
    const outBias = c.attnOutBias === true;
    if (c.arch === "qwen2" && (!attnBias || outBias))
      bad("qwen2 has q/k/v biases and no o_proj bias (attnBias true, attnOutBias false)");
    if ((c.arch === "llama" || c.arch === "qwen3") && attnBias !== outBias)
      bad(`${c.arch} attention_bias puts biases on q, k, v and o_proj alike (attnBias = attnOutBias)`);
    if (c.arch === "mistral" && (attnBias || outBias)) bad("mistral has no attention biases");
    if (c.arch !== "llama" && c.mlpBias) bad(`${c.arch} has no MLP biases (mlpBias is llama's mlp_bias)`);
    const r = c.ropeScaling;
    if (r) {
      if (r.type !== "llama3") bad(`unknown ropeScaling type ${JSON.stringify(r.type)}`);
      if (!(r.factor > 0)) bad(`ropeScaling.factor must be > 0, got ${r.factor}`);
      if (!(r.lowFreqFactor > 0) || !(r.highFreqFactor > r.lowFreqFactor))
        bad(
          `ropeScaling needs 0 < lowFreqFactor < highFreqFactor, got ${r.lowFreqFactor} and ${r.highFreqFactor}`,
        );
      if (!(r.originalMaxPositions > 0))
        bad(`ropeScaling.originalMaxPositions must be > 0, got ${r.originalMaxPositions}`);
    }
  }
  if (!(c.normEps > 0)) bad(`normEps must be > 0, got ${c.normEps}`);
  return c;
}

/** Hugging Face `config.json` for this model. */
export function toHuggingFaceConfig(
  c: ModelConfig,
  special: { bos: number | null; eos: number; pad: number | null },
): object {
  if (c.arch === "gpt2") {
    return {
      architectures: [HF_ARCHITECTURES.gpt2],
      model_type: "gpt2",
      vocab_size: c.vocabSize,
      n_positions: c.maxSeqLen,
      n_embd: c.dModel,
      n_layer: c.nLayers,
      n_head: c.nHeads,
      n_inner: c.dFF,
      activation_function: "gelu_new",
      layer_norm_epsilon: c.normEps,
      resid_pdrop: 0,
      embd_pdrop: 0,
      attn_pdrop: 0,
      tie_word_embeddings: c.tiedEmbeddings,
      bos_token_id: special.bos,
      eos_token_id: special.eos,
      pad_token_id: special.pad,
      torch_dtype: "float32",
    };
  }
  const out: Record<string, unknown> = {
    architectures: [HF_ARCHITECTURES[c.arch]],
    model_type: c.arch,
    vocab_size: c.vocabSize,
    hidden_size: c.dModel,
    intermediate_size: c.dFF,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    hidden_act: "silu",
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: special.bos,
    eos_token_id: special.eos,
    pad_token_id: special.pad,
    torch_dtype: "float32",
  };
  if (c.arch === "llama" || c.arch === "qwen3") out.attention_bias = c.attnBias === true;
  if (c.arch === "llama") out.mlp_bias = c.mlpBias === true;
  if (c.arch === "qwen2" || c.arch === "qwen3") out.use_sliding_window = false;
  if (c.arch === "mistral") out.sliding_window = null; // transformers' default would be 4096
  const r = c.ropeScaling;
  if (r) {
    // The transformers 4 spelling; transformers 5 reads it into rope_parameters.
    out.rope_scaling = {
      rope_type: r.type,
      factor: r.factor,
      low_freq_factor: r.lowFreqFactor,
      high_freq_factor: r.highFreqFactor,
      original_max_position_embeddings: r.originalMaxPositions,
    };
  }
  return out;
}

const ROPE_ARCHS: readonly string[] = ["llama", "mistral", "qwen2", "qwen3"];

/** Reads a Hugging Face `config.json` object; `where` names the file in errors. */
export function fromHuggingFaceConfig(j: Record<string, unknown>, where: string): ModelConfig {
  const num = (key: string, fallback?: number, obj: Record<string, unknown> = j, path = key): number => {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${where}: missing "${path}"`);
    }
    if (typeof v !== "number")
      throw new Error(`${where}: "${path}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const refuse = (key: string, value: unknown, why: string): never => {
    throw new Error(`${where}: "${key}": ${JSON.stringify(value)} is not supported (${why})`);
  };
  const type = j.model_type;
  if (type === "gpt2") {
    const act = j.activation_function ?? "gelu_new";
    if (act !== "gelu_new" && act !== "gelu_pytorch_tanh")
      refuse("activation_function", act, 'only the tanh GELU, "gelu_new"');
    if (j.scale_attn_weights === false)
      refuse("scale_attn_weights", false, "attention scores are always scaled by 1/sqrt(head_dim)");
    if (j.scale_attn_by_inverse_layer_idx === true)
      refuse("scale_attn_by_inverse_layer_idx", true, "attention scores are never scaled by the layer index");
    if (j.add_cross_attention === true) refuse("add_cross_attention", true, "decoder-only models only");
    const d = num("n_embd");
    const nHeads = num("n_head");
    return validateModelConfig({
      arch: "gpt2",
      vocabSize: num("vocab_size"),
      dModel: d,
      nLayers: num("n_layer"),
      nHeads,
      nKvHeads: nHeads,
      headDim: d / nHeads,
      dFF: num("n_inner", 4 * d),
      maxSeqLen: num("n_positions"),
      normEps: num("layer_norm_epsilon", 1e-5),
      ropeTheta: 10000,
      tiedEmbeddings: j.tie_word_embeddings !== false,
      valueHead: false,
    });
  }
  if (typeof type === "string" && ROPE_ARCHS.includes(type)) {
    const arch = type as Arch;
    if (j.hidden_act !== undefined && j.hidden_act !== "silu")
      refuse("hidden_act", j.hidden_act, 'only "silu"');
    const d = num("hidden_size");
    const nHeads = num("num_attention_heads");
    const nLayers = num("num_hidden_layers");
    const maxPositions = num("max_position_embeddings");
    const { theta, scaling } = ropeOf(j, maxPositions, where, refuse, num);
    const attentionBias = j.attention_bias === true && arch !== "qwen2";
    return validateModelConfig({
      arch,
      vocabSize: num("vocab_size"),
      dModel: d,
      nLayers,
      nHeads,
      nKvHeads: num("num_key_value_heads", nHeads),
      headDim: num("head_dim", d / nHeads),
      dFF: num("intermediate_size"),
      // Within the sliding window a windowed layer attends to every earlier token, so a context
      // capped at the window computes exactly what transformers computes.
      maxSeqLen: Math.min(maxPositions, slidingWindowOf(j, arch, nLayers, refuse) ?? Infinity),
      normEps: num("rms_norm_eps", 1e-6),
      ropeTheta: theta,
      tiedEmbeddings: j.tie_word_embeddings === true,
      valueHead: false,
      // transformers hard-codes Qwen2's q/k/v biases and ignores attention_bias/mlp_bias where the
      // class has none; so do we. Options that are off stay absent.
      ...(arch === "qwen2" || (attentionBias && arch !== "mistral") ? { attnBias: true } : {}),
      ...(attentionBias && (arch === "llama" || arch === "qwen3") ? { attnOutBias: true } : {}),
      ...(arch === "llama" && j.mlp_bias === true ? { mlpBias: true } : {}),
      ...(scaling ? { ropeScaling: scaling } : {}),
    });
  }
  throw new Error(
    `${where}: "model_type": ${JSON.stringify(type)} is not supported (gpt2, ${ROPE_ARCHS.join(", ")})`,
  );
}

type Refuse = (key: string, value: unknown, why: string) => never;
type Num = (key: string, fallback?: number, obj?: Record<string, unknown>, path?: string) => number;

/**
 * RoPE base and scaling. transformers ≥ 5 writes them under rope_parameters; older files have
 * rope_theta plus rope_scaling (with "type" in the oldest ones).
 */
function ropeOf(
  j: Record<string, unknown>,
  maxPositions: number,
  where: string,
  refuse: Refuse,
  num: Num,
): { theta: number; scaling: RopeScaling | null } {
  const key = j.rope_parameters != null ? "rope_parameters" : "rope_scaling";
  const raw = j[key] ?? {};
  if (typeof raw !== "object" || Array.isArray(raw)) throw new Error(`${where}: "${key}" must be an object`);
  const rp = raw as Record<string, unknown>;
  if (Object.values(rp).some((v) => typeof v === "object" && v !== null))
    refuse(key, rp, "one RoPE setting for all layers only");
  const typeKey = rp.rope_type !== undefined ? "rope_type" : "type";
  const ropeType = rp[typeKey] ?? "default";
  const theta = num("rope_theta", num("rope_theta", 10000), rp, `${key}.rope_theta`);
  const partial = rp.partial_rotary_factor ?? j.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1)
    refuse("partial_rotary_factor", partial, "RoPE on the whole head only");
  if (ropeType === "default") return { theta, scaling: null };
  if (ropeType !== "llama3") refuse(`${key}.${typeKey}`, ropeType, 'only "default" and "llama3"');
  const at = (k: string) => `${key}.${k}`;
  return {
    theta,
    scaling: {
      type: "llama3",
      factor: num("factor", undefined, rp, at("factor")),
      lowFreqFactor: num("low_freq_factor", undefined, rp, at("low_freq_factor")),
      highFreqFactor: num("high_freq_factor", undefined, rp, at("high_freq_factor")),
      originalMaxPositions: num(
        "original_max_position_embeddings",
        num("original_max_position_embeddings", maxPositions),
        rp,
        at("original_max_position_embeddings"),
      ),
    },
  };
}

/** The attention window of the layers that slide (transformers' rules per class), or null. */
function slidingWindowOf(
  j: Record<string, unknown>,
  arch: Arch,
  nLayers: number,
  refuse: Refuse,
): number | null {
  const types = j.layer_types;
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || types.some((t) => t !== "full_attention" && t !== "sliding_attention"))
      refuse("layer_types", types, 'only "full_attention" and "sliding_attention" layers');
  }
  const windowOf = (fallback: number | null): number | null => {
    const w = j.sliding_window === undefined ? fallback : j.sliding_window;
    if (w === null) return null;
    if (typeof w !== "number" || !Number.isInteger(w) || w < 1)
      refuse("sliding_window", w, "a positive integer or null");
    return w as number;
  };
  if (arch === "mistral") return windowOf(4096); // every layer slides when a window is set
  if (arch === "qwen2" || arch === "qwen3") {
    if (j.use_sliding_window !== true) return null;
    const window = windowOf(4096);
    const slides = Array.isArray(types)
      ? types.includes("sliding_attention")
      : nLayers > (typeof j.max_window_layers === "number" ? j.max_window_layers : 28);
    return slides ? window : null;
  }
  return null;
}
