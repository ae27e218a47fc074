/**
 * Incremental decoding with a KV cache. A Decoder holds, for B sequences, each layer's keys and
 * values (head-major, (B, Hkv, Tmax, hd): a head's rows are contiguous for the attention pass)
 * and each sequence's length; `step` feeds one token to every active sequence at its own next
 * position and returns the next-token logits. Sequences advance independently, which is what a team
 * relay needs: an agent catches up on the tokens other agents wrote, then continues the transcript.
 * Sampling returns the log-prob of the token under the exact distribution sampled from
 * (temperature and top-p included), so behaviour log-probs match what the trainer recomputes.
 */
import type { Buf } from "../engine/kernels/types.js";
import { inverseCdf, type Rng } from "../engine/rng.js";
import type { Transformer } from "./transformer.js";
import { ropeTables } from "../engine/ops/rope.js";
import type { Ops } from "../engine/ops/table.js";

/**
 * Decoder logits buffers whose tier samples natively (Ops.sampleRow): sampleToken looks its logits
 * up here, so callers that only see the logits (rollouts) still sample on the decoder's tier.
 */
const logitsOps = new WeakMap<Buf, Ops>();
const sampledLogp = new Float64Array(1);

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
    this.rope = c.arch === "gpt2" ? null : ropeTables(c.headDim, c.maxSeqLen, c.ropeTheta, c.ropeScaling);
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
      logits: al(B * c.vocabSize),
    };
    if (model.ops.sampleRow) logitsOps.set(this.s.logits, model.ops);
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
    const ops = m.ops;
    const x = s.x;
    ops.embeddingForward(x, this.ids, m.w(m.names.embed), B, C);
    if (gpt2) ops.addPositionForward(x, m.w("transformer.wpe.weight"), this.pos, B, C);
    for (let l = 0; l < c.nLayers; l++) {
      const n = m.names.layers[l];
      m.norm(n.ln1, s.ln, s.mean, s.rstd, x, B, C);
      if (gpt2) {
        m.linear(n.qkv, s.qkv, s.ln, B, C, 3 * C);
        ops.copyRows(s.q, 0, C, s.qkv, 0, 3 * C, B, C);
        ops.copyRows(s.k, 0, C, s.qkv, C, 3 * C, B, C);
        ops.copyRows(s.v, 0, C, s.qkv, 2 * C, 3 * C, B, C);
      } else {
        m.linear(n.q, s.q, s.ln, B, C, qDim);
        m.linear(n.k, s.k, s.ln, B, C, kvDim);
        m.linear(n.v, s.v, s.ln, B, C, kvDim);
        if (c.arch === "qwen3") {
          m.norm(n.qNorm, s.q, null, s.qn, s.q, B * c.nHeads, c.headDim);
          m.norm(n.kNorm, s.k, null, s.kn, s.k, B * c.nKvHeads, c.headDim);
        }
        ops.ropeApply(s.q, this.pos, this.rope!.cos, this.rope!.sin, B, c.nHeads, c.headDim, false);
        ops.ropeApply(s.k, this.pos, this.rope!.cos, this.rope!.sin, B, c.nKvHeads, c.headDim, false);
      }
      const kc = this.kCache[l];
      const vc = this.vCache[l];
      ops.kvCacheWrite(kc, vc, s.k, s.v, this.pos, active, B, this.Tmax, c.nKvHeads, c.headDim);
      ops.attentionDecode(
        s.atty,
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
      m.linear(n.attnOut, s.proj, s.atty, B, qDim, C);
      ops.addInto(x, x, s.proj, B * C);
      m.norm(n.ln2, s.ln, s.mean, s.rstd, x, B, C);
      m.linear(n.fc, s.fc, s.ln, B, C, F);
      if (gpt2) {
        ops.geluForward(s.act, s.fc, B * F);
      } else {
        m.linear(n.up, s.up, s.ln, B, C, F);
        ops.swigluForward(s.act, s.fc, s.up, B * F);
      }
      m.linear(n.down, s.proj, s.act, B, F, C);
      ops.addInto(x, x, s.proj, B * C);
    }
    m.norm(m.names.lnf, s.ln, s.mean, s.rstd, x, B, C);
    m.lmHead(s.logits, s.ln, B);
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
  return sampleWithUniform(logits, off, V, temperature, topP, temperature === 0 ? 0 : rng.uniform(), probs);
}

/**
 * sampleToken with the draw's uniform given (inverse CDF in id order; ignored at temperature 0).
 * On the logits of a decoder whose tier samples natively (temperature > 0, top-p 1) the same walk
 * runs in the addon over float32 weights; elsewhere in float64 here.
 */
export function sampleWithUniform(
  logits: Buf,
  off: number,
  V: number,
  temperature: number,
  topP: number,
  u: number,
  probs: Float64Array,
): { token: number; logp: number } {
  const ops = logitsOps.get(logits);
  if (ops?.sampleRow && temperature > 0 && topP >= 1) {
    const token = ops.sampleRow(logits, off, V, 1 / temperature, u, sampledLogp);
    return { token, logp: sampledLogp[0] };
  }
  samplingDistribution(probs, logits, off, V, temperature, topP);
  const token = temperature === 0 ? argmax(probs, V) : inverseCdf(probs, u, V);
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
