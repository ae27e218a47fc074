/**
 * The decoder-only transformer, top to bottom: parameters in one flat buffer with named views
 * (Hugging Face names, see layout.ts), a teacher-forced forward over a (B, T) batch that keeps its
 * activations, and the matching backward that accumulates into one flat gradient buffer.
 *
 * Batches are right-padded: with causal attention a real token never attends to the padding after
 * it, so no attention mask is needed; the caller masks the loss at padded positions.
 * Activations are allocated for the largest B·T seen and reused (no allocation per step). Every op
 * runs through the engine's op table, so the whole step stays on one kernel tier.
 * Generation with a KV cache lives in generate.ts and reuses the same weights.
 */
import type { Buf } from "../engine/kernels/types.js";
import type { Engine } from "../engine/engine.js";
import type { Rng } from "../engine/rng.js";
import type { ModelConfig } from "./config.js";
import { buildLayout, moduleNames, type Layout, type ModuleNames } from "./layout.js";
import type { Ops } from "../engine/ops/table.js";
import { ropeTables } from "../engine/ops/rope.js";
import { attentionScratchSize } from "../engine/ops/attention-gemm.js";

interface LayerActs {
  ln1: Buf; // (N,C)
  ln1Mean: Buf; // (N) (LayerNorm only)
  ln1Rstd: Buf; // (N)
  qkv: Buf | null; // (N,3C) gpt2 fused projection
  qPre: Buf | null; // (N,Hq·hd) before q_norm (qwen3)
  kPre: Buf | null; // (N,Hkv·hd) before k_norm (qwen3)
  qNormRstd: Buf | null; // (N·Hq)
  kNormRstd: Buf | null; // (N·Hkv)
  q: Buf; // (N,Hq·hd) as used by attention (after norm and RoPE)
  k: Buf; // (N,Hkv·hd)
  v: Buf; // (N,Hkv·hd)
  att: Buf; // (B,Hq,T,T) attention probabilities
  atty: Buf; // (N,Hq·hd)
  attProj: Buf; // (N,C)
  res2: Buf; // (N,C)
  ln2: Buf; // (N,C)
  ln2Mean: Buf; // (N)
  ln2Rstd: Buf; // (N)
  fc: Buf; // (N,F) gpt2: pre-GELU; llama: gate
  up: Buf | null; // (N,F) llama up projection
  act: Buf; // (N,F) GELU(fc) or silu(gate)·up
  fcProj: Buf; // (N,C)
  res3: Buf; // (N,C)
}

interface ModuleParams {
  w: Buf;
  b: Buf | null;
  gw: Buf | null; // null until the gradients are allocated
  gb: Buf | null;
}

/** Views of the activation buffers sized for N rows (the buffers themselves have capacity rows). */
interface Views {
  N: number;
  encoded: Buf;
  lnf: Buf;
  logits: Buf | null;
  dres: Buf;
  dln: Buf;
  dact: Buf;
  dfc: Buf;
  dup: Buf | null;
  datty: Buf;
  dq: Buf;
  dk: Buf;
  dv: Buf;
  dqkv: Buf | null;
  dqPre: Buf | null;
  dkPre: Buf | null;
}

interface Acts {
  capacity: number; // rows (B·T) allocated
  attCapacity: number; // B·T·T allocated per layer
  ids: Int32Array; // (N)
  pos: Int32Array; // (N)
  encoded: Buf; // (N,C)
  layers: LayerActs[];
  lnf: Buf;
  lnfMean: Buf;
  lnfRstd: Buf;
  logits: Buf | null; // (N,V), allocated by the first full forward (scoring paths never need it)
  values: Buf | null; // (N)
  attScratch: Buf; // attentionScratchSize(maxSeqLen, headDim), shared by all layers
  // Backward scratch, shared by all layers.
  dres: Buf;
  dln: Buf;
  dq: Buf;
  dk: Buf;
  dv: Buf;
  dqkv: Buf | null;
  dqPre: Buf | null;
  dkPre: Buf | null;
  datty: Buf;
  dfc: Buf;
  dup: Buf | null;
  dact: Buf;
}

export class Transformer {
  readonly cfg: ModelConfig;
  readonly engine: Engine;
  /** The engine's op table (every op of forward, backward and decoding). */
  readonly ops: Ops;
  readonly layout: Layout;
  /** Tensor-name prefixes of the modules (see layout.ts). */
  readonly names: ModuleNames;
  readonly params: Buf;
  private gradBuf: Buf | null = null;
  private readonly pv = new Map<string, Buf>();
  private readonly gv = new Map<string, Buf>();
  /** Weight, bias and their gradients per module name: no string building in the step loop. */
  private readonly mods = new Map<string, ModuleParams>();
  /** Activation views for the last row count, rebuilt when it changes: no views made per step. */
  private views: Views | null = null;
  private readonly rope: { cos: Float64Array; sin: Float64Array } | null;
  private acts: Acts | null = null;
  /** Ids below this are real tokens; the rest of the vocabulary rows are padding (see maskTokensFrom). */
  private tokens: number;
  private last: { B: number; T: number } | null = null;

  constructor(cfg: ModelConfig, engine: Engine, rng?: Rng) {
    this.cfg = cfg;
    this.engine = engine;
    this.ops = engine.ops;
    this.layout = buildLayout(cfg);
    this.names = moduleNames(cfg);
    this.tokens = cfg.vocabSize;
    this.params = engine.alloc(this.layout.total);
    for (const t of this.layout.tensors)
      this.pv.set(t.name, this.params.subarray(t.offset, t.offset + t.size));
    for (const t of this.layout.tensors) {
      if (!t.name.endsWith(".weight")) continue;
      const m = t.name.slice(0, -".weight".length);
      this.mods.set(m, {
        w: this.pv.get(t.name)!,
        b: this.pv.get(m + ".bias") ?? null,
        gw: null,
        gb: null,
      });
    }
    this.rope =
      cfg.arch === "gpt2" ? null : ropeTables(cfg.headDim, cfg.maxSeqLen, cfg.ropeTheta, cfg.ropeScaling);
    if (rng) this.initialize(rng);
  }

  /** GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2L), norms 1, biases 0. */
  initialize(rng: Rng): void {
    const residualStd = 0.02 / Math.sqrt(2 * this.cfg.nLayers);
    for (const t of this.layout.tensors) {
      const w = this.pv.get(t.name)!;
      if (t.init === "ones") w.fill(1);
      else if (t.init === "zeros") w.fill(0);
      else {
        const std = t.init === "residual" ? residualStd : 0.02;
        for (let i = 0; i < w.length; i++) w[i] = rng.normal() * std;
      }
    }
  }

  /** Parameter view by Hugging Face name. */
  w(name: string): Buf {
    const v = this.pv.get(name);
    if (!v) throw new Error(`no parameter named "${name}"`);
    return v;
  }

  /**
   * The flat gradient buffer, allocated on first use: a model that only samples (evaluation, the
   * rollout side) never pays for it, which lets a 0.6B model fit the 4 GiB WebAssembly heap.
   */
  get grads(): Buf {
    return this.gradBuf ?? this.allocGrads();
  }

  private allocGrads(): Buf {
    const g = this.engine.alloc(this.layout.total);
    for (const t of this.layout.tensors) this.gv.set(t.name, g.subarray(t.offset, t.offset + t.size));
    for (const [m, p] of this.mods) {
      p.gw = this.gv.get(m + ".weight")!;
      p.gb = this.gv.get(m + ".bias") ?? null;
    }
    this.gradBuf = g;
    return g;
  }

  /** Gradient view by Hugging Face name. */
  g(name: string): Buf {
    if (!this.gradBuf) this.allocGrads();
    const v = this.gv.get(name);
    if (!v) throw new Error(`no parameter named "${name}"`);
    return v;
  }

  /** The output projection (the token embedding when tied). */
  lmHeadName(): string {
    return this.names.lmHead + ".weight";
  }

  zeroGrad(): void {
    this.ops.zero(this.grads, this.grads.length);
  }

  /** Positions per row for right-padded sequences (pos = t). */
  private prepare(B: number, T: number): Acts {
    const c = this.cfg;
    if (T > c.maxSeqLen) throw new Error(`sequence length ${T} exceeds the model context (${c.maxSeqLen})`);
    const N = B * T;
    const need = N;
    const needAtt = B * T * T;
    if (!this.acts || this.acts.capacity < need || this.acts.attCapacity < needAtt) {
      this.acts = this.allocActs(
        Math.max(need, this.acts?.capacity ?? 0),
        Math.max(needAtt, this.acts?.attCapacity ?? 0),
      );
    }
    const a = this.acts;
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) a.pos[b * T + t] = t;
    if (
      this.views?.N !== N ||
      this.views.encoded.buffer !== a.encoded.buffer ||
      !this.views.logits !== !a.logits
    )
      this.views = this.makeViews(a, N);
    return a;
  }

  private makeViews(a: Acts, N: number): Views {
    const c = this.cfg;
    const C = c.dModel;
    const F = c.dFF;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const rows = (x: Buf, width: number): Buf => x.subarray(0, N * width);
    const opt = (x: Buf | null, width: number): Buf | null => (x === null ? null : rows(x, width));
    return {
      N,
      encoded: rows(a.encoded, C),
      lnf: rows(a.lnf, C),
      logits: opt(a.logits, c.vocabSize),
      dres: rows(a.dres, C),
      dln: rows(a.dln, C),
      dact: rows(a.dact, F),
      dfc: rows(a.dfc, F),
      dup: opt(a.dup, F),
      datty: rows(a.datty, qDim),
      dq: rows(a.dq, qDim),
      dk: rows(a.dk, kvDim),
      dv: rows(a.dv, kvDim),
      dqkv: opt(a.dqkv, 3 * C),
      dqPre: opt(a.dqPre, qDim),
      dkPre: opt(a.dkPre, kvDim),
    };
  }

  private allocActs(N: number, attN: number): Acts {
    const c = this.cfg;
    const al = (n: number): Buf => this.engine.alloc(n);
    const C = c.dModel;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const F = c.dFF;
    const gpt2 = c.arch === "gpt2";
    const qk = c.arch === "qwen3";
    const layers: LayerActs[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      layers.push({
        ln1: al(N * C),
        ln1Mean: al(N),
        ln1Rstd: al(N),
        qkv: gpt2 ? al(N * 3 * C) : null,
        qPre: qk ? al(N * qDim) : null,
        kPre: qk ? al(N * kvDim) : null,
        qNormRstd: qk ? al(N * c.nHeads) : null,
        kNormRstd: qk ? al(N * c.nKvHeads) : null,
        q: al(N * qDim),
        k: al(N * kvDim),
        v: al(N * kvDim),
        att: al(attN * c.nHeads),
        atty: al(N * qDim),
        attProj: al(N * C),
        res2: al(N * C),
        ln2: al(N * C),
        ln2Mean: al(N),
        ln2Rstd: al(N),
        fc: al(N * F),
        up: gpt2 ? null : al(N * F),
        act: al(N * F),
        fcProj: al(N * C),
        res3: al(N * C),
      });
    }
    return {
      capacity: N,
      attCapacity: attN,
      ids: new Int32Array(N),
      pos: new Int32Array(N),
      encoded: al(N * C),
      layers,
      lnf: al(N * C),
      lnfMean: al(N),
      lnfRstd: al(N),
      logits: null,
      values: c.valueHead ? al(N) : null,
      attScratch: al(attentionScratchSize(c.maxSeqLen, c.headDim)),
      dres: al(N * C),
      dln: al(N * C),
      dq: al(N * qDim),
      dk: al(N * kvDim),
      dv: al(N * kvDim),
      dqkv: gpt2 ? al(N * 3 * C) : null,
      dqPre: qk ? al(N * qDim) : null,
      dkPre: qk ? al(N * kvDim) : null,
      datty: al(N * qDim),
      dfc: al(N * F),
      dup: gpt2 ? null : al(N * F),
      dact: al(N * F),
    };
  }

  /**
   * Teacher-forced forward over ids (B,T) row-major. Returns a view of the logits (B·T, V), valid
   * until the next forward. The value head output, when configured, is available from `values()`.
   */
  forward(ids: Int32Array, B: number, T: number): Buf {
    const hidden = this.forwardHidden(ids, B, T);
    const a = this.acts!;
    if (!a.logits) {
      a.logits = this.engine.alloc(a.capacity * this.cfg.vocabSize);
      this.views = this.makeViews(a, B * T);
    }
    const logits = this.views!.logits!;
    this.lmHead(logits, hidden, B * T);
    return logits;
  }

  /**
   * The forward up to the final norm, without the output projection: returns the hidden states
   * (B·T, C) the LM head reads, valid until the next forward. With a 150k vocabulary the (B·T, V)
   * logits dwarf everything else; callers that need few rows project them with lmHead in chunks.
   */
  forwardHidden(ids: Int32Array, B: number, T: number): Buf {
    const c = this.cfg;
    const a = this.prepare(B, T);
    const N = B * T;
    const C = c.dModel;
    const V = c.vocabSize;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const F = c.dFF;
    const gpt2 = c.arch === "gpt2";
    for (let i = 0; i < N; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < V))
        throw new Error(`token id ${id} at position ${i} is outside the vocabulary (0..${V - 1})`);
      a.ids[i] = id;
    }
    const ops = this.ops;
    const v = this.views!;
    const encoded = v.encoded;
    ops.embeddingForward(encoded, a.ids, this.w(this.names.embed), N, C);
    if (gpt2) ops.addPositionForward(encoded, this.w("transformer.wpe.weight"), a.pos, N, C);
    let x: Buf = encoded;
    for (let l = 0; l < c.nLayers; l++) {
      const L = a.layers[l];
      const m = this.names.layers[l];
      this.norm(m.ln1, L.ln1, L.ln1Mean, L.ln1Rstd, x, N, C);
      if (gpt2) {
        this.linear(m.qkv, L.qkv!, L.ln1, N, C, 3 * C);
        ops.copyRows(L.q, 0, C, L.qkv!, 0, 3 * C, N, C);
        ops.copyRows(L.k, 0, C, L.qkv!, C, 3 * C, N, C);
        ops.copyRows(L.v, 0, C, L.qkv!, 2 * C, 3 * C, N, C);
      } else {
        this.linear(m.q, L.qPre ?? L.q, L.ln1, N, C, qDim);
        this.linear(m.k, L.kPre ?? L.k, L.ln1, N, C, kvDim);
        this.linear(m.v, L.v, L.ln1, N, C, kvDim);
        if (L.qPre) {
          this.norm(m.qNorm, L.q, null, L.qNormRstd!, L.qPre, N * c.nHeads, c.headDim);
          this.norm(m.kNorm, L.k, null, L.kNormRstd!, L.kPre!, N * c.nKvHeads, c.headDim);
        }
        ops.ropeApply(L.q, a.pos, this.rope!.cos, this.rope!.sin, N, c.nHeads, c.headDim, false);
        ops.ropeApply(L.k, a.pos, this.rope!.cos, this.rope!.sin, N, c.nKvHeads, c.headDim, false);
      }
      ops.attentionForward(L.atty, L.att, L.q, L.k, L.v, a.attScratch, B, T, c.nHeads, c.nKvHeads, c.headDim);
      this.linear(m.attnOut, L.attProj, L.atty, N, qDim, C);
      ops.addInto(L.res2, x, L.attProj, N * C);
      this.norm(m.ln2, L.ln2, L.ln2Mean, L.ln2Rstd, L.res2, N, C);
      this.linear(m.fc, L.fc, L.ln2, N, C, F);
      if (gpt2) {
        ops.geluForward(L.act, L.fc, N * F);
      } else {
        this.linear(m.up, L.up!, L.ln2, N, C, F);
        ops.swigluForward(L.act, L.fc, L.up!, N * F);
      }
      this.linear(m.down, L.fcProj, L.act, N, F, C);
      ops.addInto(L.res3, L.res2, L.fcProj, N * C);
      x = L.res3;
    }
    this.norm(this.names.lnf, a.lnf, a.lnfMean, a.lnfRstd, x, N, C);
    if (a.values) this.linear("v_head.summary", a.values, a.lnf, N, C, 1);
    this.last = { B, T };
    return v.lnf;
  }

  /** logits (n,V) = hidden (n,C) @ W_headᵀ for any n rows of final hidden states. */
  lmHead(logits: Buf, hidden: Buf, n: number): void {
    const V = this.cfg.vocabSize;
    this.linear(this.names.lmHead, logits, hidden, n, this.cfg.dModel, V);
    if (this.tokens < V) for (let r = 0; r < n; r++) logits.fill(-Infinity, r * V + this.tokens, (r + 1) * V);
  }

  /**
   * Ids at and above `count` get logit −∞: embedding rows beyond the tokenizer's vocabulary (Qwen3
   * has 151,936 rows for 151,669 tokens) are never sampled and have log-prob −∞, so the policy, its
   * exact KL and the sampler all live on the tokenizer's ids. count = vocabSize turns it off.
   */
  maskTokensFrom(count: number): void {
    if (!Number.isInteger(count) || count < 1 || count > this.cfg.vocabSize)
      throw new Error(`maskTokensFrom: ${count} is not in 1..${this.cfg.vocabSize}`);
    this.tokens = count;
  }

  /** Backward of lmHead: dhidden (n,C) += dlogits @ W_head, and the head's gradient += dlogitsᵀ @ hidden. */
  lmHeadBackward(dhidden: Buf, dlogits: Buf, hidden: Buf, n: number): void {
    this.linearBack(this.names.lmHead, dhidden, dlogits, hidden, n, this.cfg.dModel, this.cfg.vocabSize);
  }

  /** Final hidden states (B·T, C) of the last forward: what the LM head reads. */
  hiddenStates(): Buf {
    if (!this.acts || !this.last) throw new Error("hiddenStates() needs a forward first");
    return this.views!.lnf;
  }

  /** Value head outputs (B·T) of the last forward. */
  values(): Buf {
    if (!this.acts?.values || !this.last)
      throw new Error("values() needs a model with a value head and a forward first");
    return this.acts.values.subarray(0, this.last.B * this.last.T);
  }

  /**
   * Backward of the last forward: dlogits (B·T, V) and optionally dvalues (B·T) for the value head.
   * Accumulates into `grads` (call zeroGrad first for a fresh gradient).
   */
  backward(dlogits: Buf, dvalues?: Buf): void {
    if (!this.acts || !this.last) throw new Error("backward called before forward");
    const N = this.last.B * this.last.T;
    const vw = this.views!;
    this.ops.zero(vw.dln, N * this.cfg.dModel);
    this.lmHeadBackward(vw.dln, dlogits, vw.lnf, N);
    this.backwardHidden(vw.dln, dvalues);
  }

  /**
   * Backward of the last forward from d(loss)/d(hidden states) (B·T, C) (the gradient through the
   * LM head, see lmHeadBackward; null when the loss does not involve the logits) and optionally
   * dvalues. Accumulates into `grads`.
   */
  backwardHidden(dhidden: Buf | null, dvalues?: Buf): void {
    if (!this.acts || !this.last) throw new Error("backward called before forward");
    const c = this.cfg;
    const a = this.acts;
    const { B, T } = this.last;
    const N = B * T;
    const C = c.dModel;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const F = c.dFF;
    const gpt2 = c.arch === "gpt2";
    const ops = this.ops;
    const vw = this.views!;
    const dres = vw.dres;
    const dln = vw.dln;
    if (dhidden === null) ops.zero(dln, N * C);
    else if (dhidden !== dln) dln.set(dhidden.subarray(0, N * C));
    if (dvalues) {
      if (!a.values) throw new Error("dvalues given but the model has no value head");
      this.linearBack("v_head.summary", dln, dvalues, a.lnf, N, C, 1);
    }
    ops.zero(dres, N * C);
    const lastX = c.nLayers > 0 ? a.layers[c.nLayers - 1].res3 : a.encoded;
    this.normBack(this.names.lnf, dres, dln, lastX, a.lnfMean, a.lnfRstd, N, C);
    for (let l = c.nLayers - 1; l >= 0; l--) {
      const L = a.layers[l];
      const m = this.names.layers[l];
      const x = l > 0 ? a.layers[l - 1].res3 : a.encoded;
      // MLP branch: res3 = res2 + down(act(fc(ln2(res2)))).
      const dact = vw.dact;
      const dfc = vw.dfc;
      ops.zero(dact, N * F);
      ops.zero(dfc, N * F);
      ops.zero(dln, N * C);
      this.linearBack(m.down, dact, dres, L.act, N, F, C);
      if (gpt2) {
        ops.geluBackwardFromOutput(dfc, L.fc, L.act, dact, N * F);
      } else {
        const dup = vw.dup!;
        ops.zero(dup, N * F);
        ops.swigluBackward(dfc, dup, dact, L.fc, L.up!, N * F);
        this.linearBack(m.up, dln, dup, L.ln2, N, C, F);
      }
      this.linearBack(m.fc, dln, dfc, L.ln2, N, C, F);
      this.normBack(m.ln2, dres, dln, L.res2, L.ln2Mean, L.ln2Rstd, N, C);
      // Attention branch: res2 = x + proj(attention(q, k, v)).
      const datty = vw.datty;
      const dq = vw.dq;
      const dk = vw.dk;
      const dv = vw.dv;
      ops.zero(datty, N * qDim);
      ops.zero(dq, N * qDim);
      ops.zero(dk, N * kvDim);
      ops.zero(dv, N * kvDim);
      ops.zero(dln, N * C);
      this.linearBack(m.attnOut, datty, dres, L.atty, N, qDim, C);
      ops.attentionBackward(
        dq,
        dk,
        dv,
        datty,
        L.att,
        L.q,
        L.k,
        L.v,
        a.attScratch,
        B,
        T,
        c.nHeads,
        c.nKvHeads,
        c.headDim,
      );
      if (gpt2) {
        const dqkv = vw.dqkv!;
        ops.copyRows(dqkv, 0, 3 * C, dq, 0, C, N, C);
        ops.copyRows(dqkv, C, 3 * C, dk, 0, C, N, C);
        ops.copyRows(dqkv, 2 * C, 3 * C, dv, 0, C, N, C);
        this.linearBack(m.qkv, dln, dqkv, L.ln1, N, C, 3 * C);
      } else {
        ops.ropeApply(dq, a.pos, this.rope!.cos, this.rope!.sin, N, c.nHeads, c.headDim, true);
        ops.ropeApply(dk, a.pos, this.rope!.cos, this.rope!.sin, N, c.nKvHeads, c.headDim, true);
        let dqIn: Buf = dq;
        let dkIn: Buf = dk;
        if (L.qPre) {
          dqIn = vw.dqPre!;
          dkIn = vw.dkPre!;
          ops.zero(dqIn, N * qDim);
          ops.zero(dkIn, N * kvDim);
          this.normBack(m.qNorm, dqIn, dq, L.qPre, null, L.qNormRstd!, N * c.nHeads, c.headDim);
          this.normBack(m.kNorm, dkIn, dk, L.kPre!, null, L.kNormRstd!, N * c.nKvHeads, c.headDim);
        }
        this.linearBack(m.q, dln, dqIn, L.ln1, N, C, qDim);
        this.linearBack(m.k, dln, dkIn, L.ln1, N, C, kvDim);
        this.linearBack(m.v, dln, dv, L.ln1, N, C, kvDim);
      }
      this.normBack(m.ln1, dres, dln, x, L.ln1Mean, L.ln1Rstd, N, C);
    }
    ops.embeddingBackward(this.g(this.names.embed), dres, a.ids, N, C);
    if (gpt2) ops.addPositionBackward(this.g("transformer.wpe.weight"), dres, a.pos, N, C);
  }

  /** out (N,OC) = inp (N,IC) @ Wᵀ (+ b) for the linear module `name` (`name.weight`, `name.bias` if any). */
  linear(name: string, out: Buf, inp: Buf, N: number, IC: number, OC: number): void {
    const p = this.mod(name);
    this.ops.linearForward(out, inp, p.w, p.b, N, IC, OC);
  }

  private linearBack(
    name: string,
    dinp: Buf | null,
    dout: Buf,
    inp: Buf,
    N: number,
    IC: number,
    OC: number,
  ): void {
    const p = this.mod(name);
    if (!this.gradBuf) this.allocGrads();
    this.ops.linearBackward(dinp, p.gw!, p.gb, dout, inp, p.w, N, IC, OC);
  }

  /** Weight, bias and gradients of module `name` (a Hugging Face tensor-name prefix). */
  private mod(name: string): ModuleParams {
    const p = this.mods.get(name);
    if (!p) throw new Error(`no module named "${name}"`);
    return p;
  }

  /** LayerNorm (GPT-2) or RMSNorm (Llama/Qwen3; `mean` unused) of the module `name` over N rows of C. */
  norm(name: string, out: Buf, mean: Buf | null, rstd: Buf, inp: Buf, N: number, C: number): void {
    const eps = this.cfg.normEps;
    const p = this.mod(name);
    if (this.cfg.arch === "gpt2") this.ops.layerNormForward(out, mean!, rstd, inp, p.w, p.b, N, C, eps);
    else this.ops.rmsNormForward(out, rstd, inp, p.w, N, C, eps);
  }

  private normBack(
    name: string,
    dinp: Buf,
    dout: Buf,
    inp: Buf,
    mean: Buf | null,
    rstd: Buf,
    N: number,
    C: number,
  ): void {
    const p = this.mod(name);
    if (!this.gradBuf) this.allocGrads();
    if (this.cfg.arch === "gpt2")
      this.ops.layerNormBackward(dinp, p.gw!, p.gb, dout, inp, p.w, mean!, rstd, N, C);
    else this.ops.rmsNormBackward(dinp, p.gw!, dout, inp, p.w, rstd, N, C);
  }
}
