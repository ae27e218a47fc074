/**
 * Incremental decoding with a KV cache. A Decoder holds, for B sequences, each layer's keys and
 * values and each sequence's length; `step` feeds one token to every active sequence at its own next
 * position and returns the next-token logits. Sequences advance independently, which is what a team
 * relay needs: an agent catches up on the tokens other agents wrote, then continues the transcript.
 * Sampling returns the log-prob of the token under the exact distribution sampled from
 * (temperature and top-p included), so behaviour log-probs match what the trainer recomputes.
 */
import type { Buf } from "../engine/kernels/types.js";
import type { Rng } from "../engine/rng.js";
import type { Transformer } from "./transformer.js";
import { layerNormForward } from "../engine/ops/layernorm.js";
import { rmsNormForward } from "../engine/ops/rmsnorm.js";
import { linearForward } from "../engine/ops/linear.js";
import { ropeTables, ropeApply } from "../engine/ops/rope.js";
import { attentionDecode } from "../engine/ops/attention.js";
import { geluForward, swigluForward } from "../engine/ops/activations.js";
import { addInto } from "../engine/ops/residual.js";

export class Decoder {
  readonly model: Transformer;
  readonly B: number;
  readonly Tmax: number;
  /** Tokens already in the cache, per sequence. */
  readonly lengths: Int32Array;
  private readonly kCache: Buf[];
  private readonly vCache: Buf[];
  private readonly pos: Int32Array;
  private readonly attLen: Int32Array;
  private readonly ids: Int32Array;
  private readonly rope: { cos: Float64Array; sin: Float64Array } | null;
  private readonly s: Record<string, Buf>;

  constructor(model: Transformer, B: number, Tmax = model.cfg.maxSeqLen) {
    const c = model.cfg;
    if (Tmax > c.maxSeqLen)
      throw new Error(`decoder length ${Tmax} exceeds the model context (${c.maxSeqLen})`);
    this.model = model;
    this.B = B;
    this.Tmax = Tmax;
    this.lengths = new Int32Array(B);
    this.pos = new Int32Array(B);
    this.attLen = new Int32Array(B);
    this.ids = new Int32Array(B);
    const al = (n: number): Buf => model.engine.alloc(n);
    const kvDim = c.nKvHeads * c.headDim;
    const qDim = c.nHeads * c.headDim;
    this.kCache = [];
    this.vCache = [];
    for (let l = 0; l < c.nLayers; l++) {
      this.kCache.push(al(B * Tmax * kvDim));
      this.vCache.push(al(B * Tmax * kvDim));
    }
    this.rope = c.arch === "gpt2" ? null : ropeTables(c.headDim, c.maxSeqLen, c.ropeTheta);
    const C = c.dModel;
    this.s = {
      x: al(B * C),
      ln: al(B * C),
      mean: al(B),
      rstd: al(B),
      qkv: al(B * 3 * C),
      q: al(B * qDim),
      k: al(B * kvDim),
      v: al(B * kvDim),
      qn: al(B * c.nHeads),
      kn: al(B * c.nKvHeads),
      atty: al(B * qDim),
      proj: al(B * C),
      fc: al(B * c.dFF),
      up: al(B * c.dFF),
      act: al(B * c.dFF),
      scores: al(Tmax),
      logits: al(B * c.vocabSize),
    };
  }

  reset(): void {
    this.lengths.fill(0);
  }

  /**
   * Feeds tokens[b] to every sequence b with active[b] = 1 and returns the logits (B, V) that follow
   * (rows of inactive sequences are meaningless). Advances the lengths of active sequences.
   */
  step(tokens: ArrayLike<number>, active: Uint8Array): Buf {
    const m = this.model;
    const c = m.cfg;
    const B = this.B;
    const C = c.dModel;
    const k = m.engine.kernels;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const F = c.dFF;
    const gpt2 = c.arch === "gpt2";
    const s = this.s;
    for (let b = 0; b < B; b++) {
      if (active[b]) {
        if (this.lengths[b] >= this.Tmax) throw new Error(`sequence ${b} is full (${this.Tmax} tokens)`);
        const id = tokens[b];
        if (!(id >= 0 && id < c.vocabSize))
          throw new Error(`token id ${id} of sequence ${b} is outside the vocabulary`);
        this.ids[b] = id;
        this.pos[b] = this.lengths[b];
        this.attLen[b] = this.lengths[b] + 1;
      } else {
        this.ids[b] = 0;
        this.pos[b] = 0;
        this.attLen[b] = 0;
      }
    }
    const x = s.x;
    const wte = m.w(gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight");
    for (let b = 0; b < B; b++) {
      const row = wte.subarray(this.ids[b] * C, (this.ids[b] + 1) * C);
      x.set(row, b * C);
      if (gpt2) {
        const wpe = m.w("transformer.wpe.weight");
        const off = this.pos[b] * C;
        for (let i = 0; i < C; i++) x[b * C + i] += wpe[off + i];
      }
    }
    for (let l = 0; l < c.nLayers; l++) {
      const p = gpt2 ? `transformer.h.${l}.` : `model.layers.${l}.`;
      if (gpt2) {
        layerNormForward(
          s.ln,
          s.mean,
          s.rstd,
          x,
          m.w(p + "ln_1.weight"),
          m.w(p + "ln_1.bias"),
          B,
          C,
          c.normEps,
        );
        linearForward(
          k,
          s.qkv,
          s.ln,
          m.w(p + "attn.c_attn.weight"),
          m.w(p + "attn.c_attn.bias"),
          B,
          C,
          3 * C,
        );
        for (let b = 0; b < B; b++) {
          s.q.set(s.qkv.subarray(b * 3 * C, b * 3 * C + C), b * C);
          s.k.set(s.qkv.subarray(b * 3 * C + C, b * 3 * C + 2 * C), b * C);
          s.v.set(s.qkv.subarray(b * 3 * C + 2 * C, b * 3 * C + 3 * C), b * C);
        }
      } else {
        rmsNormForward(s.ln, s.rstd, x, m.w(p + "input_layernorm.weight"), B, C, c.normEps);
        linearForward(k, s.q, s.ln, m.w(p + "self_attn.q_proj.weight"), null, B, C, qDim);
        linearForward(k, s.k, s.ln, m.w(p + "self_attn.k_proj.weight"), null, B, C, kvDim);
        linearForward(k, s.v, s.ln, m.w(p + "self_attn.v_proj.weight"), null, B, C, kvDim);
        if (c.arch === "qwen3") {
          rmsNormForward(
            s.q,
            s.qn,
            s.q,
            m.w(p + "self_attn.q_norm.weight"),
            B * c.nHeads,
            c.headDim,
            c.normEps,
          );
          rmsNormForward(
            s.k,
            s.kn,
            s.k,
            m.w(p + "self_attn.k_norm.weight"),
            B * c.nKvHeads,
            c.headDim,
            c.normEps,
          );
        }
        ropeApply(s.q, this.pos, this.rope!.cos, this.rope!.sin, B, c.nHeads, c.headDim, false);
        ropeApply(s.k, this.pos, this.rope!.cos, this.rope!.sin, B, c.nKvHeads, c.headDim, false);
      }
      const kc = this.kCache[l];
      const vc = this.vCache[l];
      for (let b = 0; b < B; b++) {
        if (!active[b]) continue;
        const dst = (b * this.Tmax + this.pos[b]) * kvDim;
        kc.set(s.k.subarray(b * kvDim, (b + 1) * kvDim), dst);
        vc.set(s.v.subarray(b * kvDim, (b + 1) * kvDim), dst);
      }
      attentionDecode(
        s.atty,
        s.scores,
        s.q,
        kc,
        vc,
        this.attLen,
        active,
        B,
        this.Tmax,
        c.nHeads,
        c.nKvHeads,
        c.headDim,
      );
      if (gpt2)
        linearForward(k, s.proj, s.atty, m.w(p + "attn.c_proj.weight"), m.w(p + "attn.c_proj.bias"), B, C, C);
      else linearForward(k, s.proj, s.atty, m.w(p + "self_attn.o_proj.weight"), null, B, qDim, C);
      addInto(x, x, s.proj, B * C);
      if (gpt2) {
        layerNormForward(
          s.ln,
          s.mean,
          s.rstd,
          x,
          m.w(p + "ln_2.weight"),
          m.w(p + "ln_2.bias"),
          B,
          C,
          c.normEps,
        );
        linearForward(k, s.fc, s.ln, m.w(p + "mlp.c_fc.weight"), m.w(p + "mlp.c_fc.bias"), B, C, F);
        geluForward(s.act, s.fc, B * F);
        linearForward(k, s.proj, s.act, m.w(p + "mlp.c_proj.weight"), m.w(p + "mlp.c_proj.bias"), B, F, C);
      } else {
        rmsNormForward(s.ln, s.rstd, x, m.w(p + "post_attention_layernorm.weight"), B, C, c.normEps);
        linearForward(k, s.fc, s.ln, m.w(p + "mlp.gate_proj.weight"), null, B, C, F);
        linearForward(k, s.up, s.ln, m.w(p + "mlp.up_proj.weight"), null, B, C, F);
        swigluForward(s.act, s.fc, s.up, B * F);
        linearForward(k, s.proj, s.act, m.w(p + "mlp.down_proj.weight"), null, B, F, C);
      }
      addInto(x, x, s.proj, B * C);
    }
    if (gpt2)
      layerNormForward(
        s.ln,
        s.mean,
        s.rstd,
        x,
        m.w("transformer.ln_f.weight"),
        m.w("transformer.ln_f.bias"),
        B,
        C,
        c.normEps,
      );
    else rmsNormForward(s.ln, s.rstd, x, m.w("model.norm.weight"), B, C, c.normEps);
    linearForward(k, s.logits, s.ln, m.w(m.lmHeadName()), null, B, C, c.vocabSize);
    for (let b = 0; b < B; b++) if (active[b]) this.lengths[b]++;
    return s.logits;
  }
}

/**
 * The sampling distribution at one row of logits: softmax(logits / temperature), restricted to the
 * smallest set of most likely tokens whose mass reaches topP, renormalised. Writes probabilities
 * into `probs` (V) and returns nothing; temperature 0 puts all mass on the argmax (lowest id on ties).
 */
export function samplingDistribution(
  probs: Float64Array,
  logits: Buf,
  off: number,
  V: number,
  temperature: number,
  topP: number,
  order?: Int32Array,
): void {
  if (temperature === 0) {
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[off + v] > logits[off + best]) best = v;
    probs.fill(0, 0, V);
    probs[best] = 1;
    return;
  }
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (logits[off + v] > max) max = logits[off + v];
  let sum = 0;
  const inv = 1 / temperature;
  for (let v = 0; v < V; v++) {
    const e = Math.exp((logits[off + v] - max) * inv);
    probs[v] = e;
    sum += e;
  }
  for (let v = 0; v < V; v++) probs[v] /= sum;
  if (topP < 1) {
    const idx = order ?? new Int32Array(V);
    for (let v = 0; v < V; v++) idx[v] = v;
    // Stable order by descending probability, ties by id, so the kept set is deterministic.
    const sorted = Array.from(idx.subarray(0, V)).sort((a, b) => probs[b] - probs[a] || a - b);
    let cum = 0;
    let keep = 0;
    while (keep < V && cum < topP) cum += probs[sorted[keep++]];
    for (let i = keep; i < V; i++) probs[sorted[i]] = 0;
    for (let v = 0; v < V; v++) probs[v] /= cum;
  }
}

/** Samples one token from a logits row; returns the token and its log-prob under the sampling distribution. */
export function sampleToken(
  logits: Buf,
  off: number,
  V: number,
  temperature: number,
  topP: number,
  rng: Rng,
  probs: Float64Array,
): { token: number; logp: number } {
  samplingDistribution(probs, logits, off, V, temperature, topP);
  const token = temperature === 0 ? argmax(probs, V) : rng.categorical(probs, V);
  return { token, logp: Math.log(probs[token]) };
}

function argmax(p: Float64Array, V: number): number {
  let best = 0;
  for (let v = 1; v < V; v++) if (p[v] > p[best]) best = v;
  return best;
}

export interface GenerateOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  stopTokens: number[];
  rng: Rng;
}

export interface Generation {
  tokens: number[][]; // generated tokens per sequence (stop token included when produced)
  logps: number[][]; // their log-probs under the sampling distribution
}

/** Batched sampling of continuations of `prompts` with a KV cache. */
export function generate(model: Transformer, prompts: number[][], opts: GenerateOptions): Generation {
  const B = prompts.length;
  const V = model.cfg.vocabSize;
  const longest = Math.max(...prompts.map((p) => p.length));
  const Tmax = Math.min(model.cfg.maxSeqLen, longest + opts.maxNewTokens);
  const dec = new Decoder(model, B, Tmax);
  const active = new Uint8Array(B);
  const feed = new Int32Array(B);
  const out: Generation = { tokens: prompts.map(() => []), logps: prompts.map(() => []) };
  const done = new Uint8Array(B);
  const probs = new Float64Array(V);
  const stop = new Set(opts.stopTokens);
  // Prefill: all prompt tokens but the last, one position at a time (sequences may differ in length).
  for (let t = 0; t < longest - 1; t++) {
    for (let b = 0; b < B; b++) {
      active[b] = t < prompts[b].length - 1 ? 1 : 0;
      feed[b] = active[b] ? prompts[b][t] : 0;
    }
    dec.step(feed, active);
  }
  const next = prompts.map((p) => p[p.length - 1]);
  for (let step = 0; step < opts.maxNewTokens; step++) {
    let any = false;
    for (let b = 0; b < B; b++) {
      active[b] = !done[b] && dec.lengths[b] < Tmax ? 1 : 0;
      feed[b] = next[b];
      any ||= active[b] === 1;
    }
    if (!any) break;
    const logits = dec.step(feed, active);
    for (let b = 0; b < B; b++) {
      if (!active[b]) continue;
      const { token, logp } = sampleToken(logits, b * V, V, opts.temperature, opts.topP, opts.rng, probs);
      out.tokens[b].push(token);
      out.logps[b].push(logp);
      next[b] = token;
      if (stop.has(token) || dec.lengths[b] >= Tmax) done[b] = 1;
    }
  }
  return out;
}
