/**
 * Parameter layout: every tensor of a model, named exactly as in its Hugging Face checkpoint, placed
 * at a fixed offset in one flat parameter buffer. Internally every matrix uses the nn.Linear layout
 * (out, in); GPT-2's Conv1D weights are stored (in, out) by Hugging Face, so they carry
 * `hfTransposed` and are transposed on load and save. A linear module's bias exists exactly when the
 * config says so (GPT-2 always; Qwen2 q/k/v; Llama/Qwen3 attention_bias; Llama mlp_bias), and the
 * model's linear layers pick it up by name.
 */
import type { ModelConfig } from "./config.js";

export type Init = "normal" | "residual" | "zeros" | "ones";

export interface TensorSpec {
  name: string; // Hugging Face name
  shape: number[]; // internal shape
  offset: number;
  size: number;
  init: Init;
  decay: boolean; // weight decay applies (matrices and embeddings, not norms or biases)
  hfTransposed: boolean; // stored transposed (2-D) in the Hugging Face checkpoint
}

export interface Layout {
  tensors: TensorSpec[];
  byName: Map<string, TensorSpec>;
  total: number;
}

export function buildLayout(c: ModelConfig): Layout {
  const tensors: TensorSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], init: Init, hfTransposed = false): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    // Align each tensor to 16 floats (64 bytes) so SIMD kernels see aligned rows.
    offset = Math.ceil(offset / 16) * 16;
    const decay = init === "normal" || init === "residual";
    tensors.push({ name, shape, offset, size, init, decay, hfTransposed });
    offset += size;
  };
  const C = c.dModel;
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  if (c.arch === "gpt2") {
    add("transformer.wte.weight", [c.vocabSize, C], "normal");
    add("transformer.wpe.weight", [c.maxSeqLen, C], "normal");
    for (let l = 0; l < c.nLayers; l++) {
      const p = `transformer.h.${l}.`;
      add(p + "ln_1.weight", [C], "ones");
      add(p + "ln_1.bias", [C], "zeros");
      add(p + "attn.c_attn.weight", [3 * C, C], "normal", true);
      add(p + "attn.c_attn.bias", [3 * C], "zeros");
      add(p + "attn.c_proj.weight", [C, C], "residual", true);
      add(p + "attn.c_proj.bias", [C], "zeros");
      add(p + "ln_2.weight", [C], "ones");
      add(p + "ln_2.bias", [C], "zeros");
      add(p + "mlp.c_fc.weight", [c.dFF, C], "normal", true);
      add(p + "mlp.c_fc.bias", [c.dFF], "zeros");
      add(p + "mlp.c_proj.weight", [C, c.dFF], "residual", true);
      add(p + "mlp.c_proj.bias", [C], "zeros");
    }
    add("transformer.ln_f.weight", [C], "ones");
    add("transformer.ln_f.bias", [C], "zeros");
  } else {
    add("model.embed_tokens.weight", [c.vocabSize, C], "normal");
    // A linear module's bias, when the config has one, sits right after its weight.
    const linear = (name: string, shape: [number, number], init: Init, bias: boolean | undefined) => {
      add(name + ".weight", shape, init);
      if (bias) add(name + ".bias", [shape[0]], "zeros");
    };
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      add(p + "input_layernorm.weight", [C], "ones");
      linear(p + "self_attn.q_proj", [qDim, C], "normal", c.attnBias);
      linear(p + "self_attn.k_proj", [kvDim, C], "normal", c.attnBias);
      linear(p + "self_attn.v_proj", [kvDim, C], "normal", c.attnBias);
      if (c.arch === "qwen3") {
        add(p + "self_attn.q_norm.weight", [c.headDim], "ones");
        add(p + "self_attn.k_norm.weight", [c.headDim], "ones");
      }
      linear(p + "self_attn.o_proj", [C, qDim], "residual", c.attnOutBias);
      add(p + "post_attention_layernorm.weight", [C], "ones");
      linear(p + "mlp.gate_proj", [c.dFF, C], "normal", c.mlpBias);
      linear(p + "mlp.up_proj", [c.dFF, C], "normal", c.mlpBias);
      linear(p + "mlp.down_proj", [C, c.dFF], "residual", c.mlpBias);
    }
    add("model.norm.weight", [C], "ones");
  }
  if (!c.tiedEmbeddings) add("lm_head.weight", [c.vocabSize, C], "normal");
  if (c.valueHead) {
    // TRL's AutoModelForCausalLMWithValueHead names.
    add("v_head.summary.weight", [1, C], "normal");
    add("v_head.summary.bias", [1], "zeros");
  }
  const total = Math.ceil(offset / 16) * 16;
  return { tensors, byName: new Map(tensors.map((t) => [t.name, t])), total };
}

/** Per parameter element, 1 where weight decay applies (matrices and embeddings), else 0. */
export function decayMask(layout: Layout): Uint8Array {
  const mask = new Uint8Array(layout.total);
  for (const t of layout.tensors) if (t.decay) mask.fill(1, t.offset, t.offset + t.size);
  return mask;
}

/** Number of parameters (without alignment padding). */
export function countParams(layout: Layout): number {
  return layout.tensors.reduce((a, t) => a + t.size, 0);
}

/** Module names (tensor-name prefixes) of one block, per architecture. */
export interface LayerModules {
  ln1: string;
  qkv: string; // GPT-2's fused projection
  q: string;
  k: string;
  v: string;
  qNorm: string; // Qwen3 only
  kNorm: string;
  attnOut: string;
  ln2: string;
  fc: string; // GPT-2 c_fc, Llama gate_proj
  up: string; // Llama only
  down: string; // GPT-2 c_proj, Llama down_proj
}

export interface ModuleNames {
  embed: string; // token embedding weight
  lnf: string;
  lmHead: string; // the token embedding's module when tied
  layers: LayerModules[];
}

export function moduleNames(c: ModelConfig): ModuleNames {
  const gpt2 = c.arch === "gpt2";
  const layers = Array.from({ length: c.nLayers }, (_, l): LayerModules => {
    if (gpt2) {
      const p = `transformer.h.${l}.`;
      const none = "";
      return {
        ln1: p + "ln_1",
        qkv: p + "attn.c_attn",
        q: none,
        k: none,
        v: none,
        qNorm: none,
        kNorm: none,
        attnOut: p + "attn.c_proj",
        ln2: p + "ln_2",
        fc: p + "mlp.c_fc",
        up: none,
        down: p + "mlp.c_proj",
      };
    }
    const p = `model.layers.${l}.`;
    return {
      ln1: p + "input_layernorm",
      qkv: "",
      q: p + "self_attn.q_proj",
      k: p + "self_attn.k_proj",
      v: p + "self_attn.v_proj",
      qNorm: p + "self_attn.q_norm",
      kNorm: p + "self_attn.k_norm",
      attnOut: p + "self_attn.o_proj",
      ln2: p + "post_attention_layernorm",
      fc: p + "mlp.gate_proj",
      up: p + "mlp.up_proj",
      down: p + "mlp.down_proj",
    };
  });
  const embedModule = gpt2 ? "transformer.wte" : "model.embed_tokens";
  return {
    embed: embedModule + ".weight",
    lnf: gpt2 ? "transformer.ln_f" : "model.norm",
    lmHead: c.tiedEmbeddings ? embedModule : "lm_head",
    layers,
  };
}
