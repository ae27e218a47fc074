/**
 * Model configuration: one decoder-only transformer that can be GPT-2 shaped (LayerNorm, learned
 * positions, GELU, fused qkv with biases) or Llama/Qwen3 shaped (RMSNorm, RoPE, SwiGLU, grouped-query
 * attention, optional per-head q/k RMSNorm). Presets give sizes; the style gives the structure.
 * Also maps to and from Hugging Face `config.json` for the architectures we can load and save.
 */

export type Arch = "gpt2" | "llama" | "qwen3";

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
  ropeTheta: number; // llama/qwen3 only
  tiedEmbeddings: boolean; // lm_head shares the token embedding
  valueHead: boolean; // scalar value head on the final hidden state (for GAE)
}

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
  } else if (c.headDim % 2 !== 0) bad(`RoPE needs an even headDim, got ${c.headDim}`);
  if (!(c.normEps > 0)) bad(`normEps must be > 0, got ${c.normEps}`);
  return c;
}

/** Hugging Face `config.json` for this model. */
export function toHuggingFaceConfig(
  c: ModelConfig,
  special: { bos: number | null; eos: number; pad: number },
): object {
  if (c.arch === "gpt2") {
    return {
      architectures: ["GPT2LMHeadModel"],
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
  return {
    architectures: [c.arch === "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM"],
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
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: special.bos,
    eos_token_id: special.eos,
    pad_token_id: special.pad,
    torch_dtype: "float32",
  };
}

/** Reads a Hugging Face `config.json` object; `where` names the file in errors. */
export function fromHuggingFaceConfig(j: Record<string, unknown>, where: string): ModelConfig {
  const num = (key: string, fallback?: number): number => {
    const v = j[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${where}: missing "${key}"`);
    }
    if (typeof v !== "number")
      throw new Error(`${where}: "${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const type = j.model_type;
  if (type === "gpt2") {
    const act = j.activation_function ?? "gelu_new";
    if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") {
      throw new Error(
        `${where}: activation_function "${act}" is not supported (only the tanh GELU, "gelu_new")`,
      );
    }
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
  if (type === "llama" || type === "qwen3") {
    if (j.attention_bias === true || j.mlp_bias === true) {
      throw new Error(`${where}: attention_bias/mlp_bias are not supported`);
    }
    if (j.hidden_act !== undefined && j.hidden_act !== "silu") {
      throw new Error(`${where}: hidden_act "${j.hidden_act}" is not supported (only "silu")`);
    }
    if (j.rope_scaling) throw new Error(`${where}: rope_scaling is not supported`);
    // transformers ≥ 5 nests the RoPE settings under rope_parameters.
    const rp = (j.rope_parameters ?? {}) as Record<string, unknown>;
    if (rp.rope_type !== undefined && rp.rope_type !== "default") {
      throw new Error(`${where}: rope_type "${rp.rope_type}" is not supported (only "default")`);
    }
    if (j.use_sliding_window === true) throw new Error(`${where}: sliding-window attention is not supported`);
    const ropeTheta = typeof rp.rope_theta === "number" ? rp.rope_theta : num("rope_theta", 10000);
    const d = num("hidden_size");
    const nHeads = num("num_attention_heads");
    return validateModelConfig({
      arch: type,
      vocabSize: num("vocab_size"),
      dModel: d,
      nLayers: num("num_hidden_layers"),
      nHeads,
      nKvHeads: num("num_key_value_heads", nHeads),
      headDim: num("head_dim", d / nHeads),
      dFF: num("intermediate_size"),
      maxSeqLen: num("max_position_embeddings"),
      normEps: num("rms_norm_eps", 1e-6),
      ropeTheta,
      tiedEmbeddings: j.tie_word_embeddings === true,
      valueHead: false,
    });
  }
  throw new Error(`${where}: model_type ${JSON.stringify(type)} is not supported (gpt2, llama, qwen3)`);
}
