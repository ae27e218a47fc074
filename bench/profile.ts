/**
 * Where the time of a training step goes, to decide what to optimise next:
 *  - per phase (zero_grad, forward, loss, backward, optimizer), each split into gemm and the rest,
 *    by running the model on a timing wrapper of the kernels;
 *  - gemm time per shape (which products dominate, and at what GFLOP/s);
 *  - the non-gemm ops of a GPT-2 model timed one by one at the model's shapes and multiplied by
 *    how often a step calls them (an estimate: the ops run in isolation, with warm caches);
 *  - the same split for a KV-cache sampling round (decode gemms, the rest of decode, sampling).
 */
import type { Buf } from "../src/engine/kernels/types.js";
import { Rng } from "../src/engine/rng.js";
import type { ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { Decoder } from "../src/model/generate.js";
import { layerNormForward, layerNormBackward } from "../src/engine/ops/layernorm.js";
import { attentionDecode } from "../src/engine/ops/attention.js";
import {
  attentionGemmForward,
  attentionGemmBackward,
  attentionScratchSize,
} from "../src/engine/ops/attention-gemm.js";
import { geluForward, geluBackwardFromOutput } from "../src/engine/ops/activations.js";
import { addInto } from "../src/engine/ops/residual.js";
import { linearForward, linearBackward } from "../src/engine/ops/linear.js";
import {
  embeddingForward,
  embeddingBackward,
  addPositionForward,
  addPositionBackward,
} from "../src/engine/ops/embedding.js";
import type { BenchEngine } from "./engine.js";
import { TimedKernels, median, now } from "./timing.js";
import { PHASES, TrainStep, sampleRound, type BenchSettings, type Phase } from "./workloads.js";

export interface PhaseProfile {
  ms: number;
  gemm_ms: number;
  rest_ms: number;
  /** Share of the whole step. */
  share: number;
}

export interface GemmShapeProfile {
  shape: string;
  calls_per_step: number;
  ms_per_step: number;
  gflops: number;
}

export interface OpProfile {
  op: string;
  calls_per_step: number;
  ms_per_call: number;
  ms_per_step: number;
}

export interface TrainProfile {
  model: string;
  engine: string;
  steps: number;
  step_ms: number;
  phases: Record<Phase, PhaseProfile>;
  gemm_ms: number;
  gemm_share: number;
  gemm_shapes: GemmShapeProfile[];
  /** Non-gemm ops timed in isolation (GPT-2 models only; empty otherwise). */
  ops: OpProfile[];
  /** forward + backward non-gemm time not covered by `ops` (qkv split/merge, fills, loop overhead). */
  ops_unattributed_ms: number;
  sample: {
    round_ms: number;
    decode_gemm_ms: number;
    decode_rest_ms: number;
    sampling_ms: number;
    /** Decode gemms per shape, per round (calls_per_step counts calls per round here). */
    gemm_shapes: GemmShapeProfile[];
    /** Non-gemm decode ops timed in isolation, per round (GPT-2 models only). */
    ops: Array<{ op: string; calls_per_round: number; ms_per_call: number; ms_per_round: number }>;
    /** decode_rest_ms minus the sum of `ops`. */
    ops_unattributed_ms: number;
  };
}

/** Profiles `profileSteps` training steps (after `warmupSteps`) and one sampling round. */
export function profileTrain(
  be: BenchEngine,
  name: string,
  cfg: ModelConfig,
  s: BenchSettings,
): TrainProfile {
  const timer = new TimedKernels(be.kernels);
  const engine = be.withKernels(timer);
  const rng = new Rng(s.seed);
  const model = new Transformer(cfg, engine, rng.fork("init"));
  const step = new TrainStep(model, s.batch, s.seq, rng.fork("data"), s.lr);
  for (let i = 0; i < s.warmupSteps; i++) step.run(timer);
  timer.resetShapes();
  const runs = [];
  for (let i = 0; i < s.profileSteps; i++) runs.push(step.run(timer));
  const phases = {} as Record<Phase, PhaseProfile>;
  let stepMs = 0;
  let gemmMs = 0;
  for (const p of PHASES) {
    const ms = median(runs.map((r) => r.ms[p]));
    const gemm = Math.min(ms, median(runs.map((r) => r.gemmMs[p])));
    phases[p] = { ms, gemm_ms: gemm, rest_ms: ms - gemm, share: 0 };
    stepMs += ms;
    gemmMs += gemm;
  }
  for (const p of PHASES) phases[p].share = phases[p].ms / stepMs;
  const gemmShapes = timer.shapeStats().map((g) => ({
    shape: g.shape,
    calls_per_step: g.calls / s.profileSteps,
    ms_per_step: g.ms / s.profileSteps,
    gflops: (g.flops * g.calls) / (g.ms * 1e6),
  }));
  const ops = cfg.arch === "gpt2" ? gpt2Ops(be, cfg, s.batch, s.seq) : [];
  const opsMs = ops.reduce((a, o) => a + o.ms_per_step, 0);
  const restFwdBwd = phases.forward.rest_ms + phases.backward.rest_ms;

  const dec = new Decoder(model, s.sampleSequences, s.sampleSteps);
  const sampler = rng.fork("sample");
  sampleRound(dec, s.sampleSteps, sampler, timer); // warm-up
  timer.resetShapes();
  const r = sampleRound(dec, s.sampleSteps, sampler, timer);
  const decodeShapes = timer.shapeStats().map((g) => ({
    shape: g.shape,
    calls_per_step: g.calls,
    ms_per_step: g.ms,
    gflops: (g.flops * g.calls) / (g.ms * 1e6),
  }));
  const decodeRest = r.ms - r.gemmMs - r.samplingMs;
  const decodeOps = cfg.arch === "gpt2" ? gpt2DecodeOps(be, cfg, s.sampleSequences, s.sampleSteps) : [];
  return {
    model: name,
    engine: be.label,
    steps: s.profileSteps,
    step_ms: stepMs,
    phases,
    gemm_ms: gemmMs,
    gemm_share: gemmMs / stepMs,
    gemm_shapes: gemmShapes,
    ops,
    ops_unattributed_ms: ops.length > 0 ? restFwdBwd - opsMs : 0,
    sample: {
      round_ms: r.ms,
      decode_gemm_ms: r.gemmMs,
      decode_rest_ms: decodeRest,
      sampling_ms: r.samplingMs,
      gemm_shapes: decodeShapes,
      ops: decodeOps,
      ops_unattributed_ms:
        decodeOps.length > 0 ? decodeRest - decodeOps.reduce((a, o) => a + o.ms_per_round, 0) : 0,
    },
  };
}

/** Median ms of `fn` over a few calls after one warm-up call. */
function timeOp(fn: () => void, reps = 5): number {
  fn();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = now();
    fn();
    ms.push(now() - t0);
  }
  return median(ms);
}

/**
 * The non-gemm work of a GPT-2 step, op by op, at (B, T) and the model's sizes, calling the same op
 * functions as transformer.ts (keep the two in step). Ops that also run gemms (linear biases,
 * attention) count their time minus their gemms, which the phase gemm times already hold.
 */
function gpt2Ops(be: BenchEngine, cfg: ModelConfig, B: number, T: number): OpProfile[] {
  const rng = new Rng(7);
  const N = B * T;
  const C = cfg.dModel;
  const F = cfg.dFF;
  const H = cfg.nHeads;
  const hd = cfg.headDim;
  const L = cfg.nLayers;
  const V = cfg.vocabSize;
  const al = (n: number, fill = true): Buf => {
    const x = be.engine.alloc(n);
    if (fill) for (let i = 0; i < n; i++) x[i] = rng.normal();
    return x;
  };
  const x = al(N * C);
  const y = al(N * C, false);
  const dy = al(N * C);
  const dx = al(N * C, false);
  const w = al(C);
  const b = al(C);
  const dw = al(C, false);
  const db = al(C, false);
  const mean = al(N, false);
  const rstd = al(N, false);
  const q = al(N * C);
  const k = al(N * C);
  const v = al(N * C);
  const att = al(B * H * T * T, false);
  const atty = al(N * C, false);
  const dq = al(N * C, false);
  const dk = al(N * C, false);
  const dv = al(N * C, false);
  const hF = al(N * F);
  const aF = al(N * F, false);
  const dF = al(N * F);
  const dF2 = al(N * F, false);
  const wte = al(V * C);
  const wpe = al(cfg.maxSeqLen * C);
  const ids = new Int32Array(N).map(() => rng.int(V));
  const pos = new Int32Array(N).map((_, i) => i % T);
  const attScratch = al(attentionScratchSize(T, hd), false);
  const timer = new TimedKernels(be.kernels);
  attentionGemmForward(timer, atty, att, q, k, v, attScratch, B, T, H, H, hd); // probabilities for the backward

  const ops: OpProfile[] = [];
  const add = (op: string, calls: number, msPerCall: number): void => {
    ops.push({ op, calls_per_step: calls, ms_per_call: msPerCall, ms_per_step: calls * msPerCall });
  };
  add(
    "layernorm_forward",
    2 * L + 1,
    timeOp(() => layerNormForward(y, mean, rstd, x, w, b, N, C, cfg.normEps)),
  );
  add(
    "layernorm_backward",
    2 * L + 1,
    timeOp(() => layerNormBackward(dx, dw, db, dy, x, w, mean, rstd, N, C)),
  );
  // Attention runs its products on the kernels: only the rest (packing, softmax) counts here.
  const attFwd = (): void => attentionGemmForward(timer, atty, att, q, k, v, attScratch, B, T, H, H, hd);
  const attBwd = (): void =>
    attentionGemmBackward(timer, dq, dk, dv, dy, att, q, k, v, attScratch, B, T, H, H, hd);
  add("attention_forward", L, timeRest(timer, attFwd));
  add("attention_backward", L, timeRest(timer, attBwd));
  add(
    "gelu_forward",
    L,
    timeOp(() => geluForward(aF, hF, N * F)),
  );
  add(
    "gelu_backward",
    L,
    timeOp(() => geluBackwardFromOutput(dF2, hF, aF, dF, N * F)),
  );
  add(
    "residual_add",
    2 * L,
    timeOp(() => addInto(y, x, dy, N * C)),
  );
  add(
    "embedding_forward",
    1,
    timeOp(() => (embeddingForward(y, ids, wte, N, C), addPositionForward(y, wpe, pos, N, C))),
  );
  add(
    "embedding_backward",
    1,
    timeOp(() => (embeddingBackward(wte, dy, ids, N, C), addPositionBackward(wpe, dy, pos, N, C))),
  );

  // Bias work = linear op time − its gemm time, for each biased linear of a block.
  const linears: Array<[string, number, number]> = [
    ["qkv", C, 3 * C],
    ["attn_proj", C, C],
    ["mlp_fc", C, F],
    ["mlp_proj", F, C],
  ];
  for (const [what, IC, OC] of linears) {
    const inp = al(N * IC);
    const out = al(N * OC, false);
    const dout = al(N * OC);
    const dinp = al(N * IC, false);
    const W = al(OC * IC);
    const dW = al(OC * IC, false);
    const bias = al(OC);
    const dbias = al(OC, false);
    add(
      `bias_forward_${what}`,
      L,
      timeRest(timer, () => linearForward(timer, out, inp, W, bias, N, IC, OC)),
    );
    add(
      `bias_backward_${what}`,
      L,
      timeRest(timer, () => linearBackward(timer, dinp, dW, dbias, dout, inp, W, N, IC, OC)),
    );
  }
  return ops;
}

/**
 * The main non-gemm decode ops of a GPT-2 sampling round (S sequences, `steps` positions), timed in
 * isolation: attention against the cache replayed at every length 1..steps, GELU and LayerNorm
 * on the (S, ·) rows of one position.
 */
function gpt2DecodeOps(
  be: BenchEngine,
  cfg: ModelConfig,
  S: number,
  steps: number,
): TrainProfile["sample"]["ops"] {
  const rng = new Rng(8);
  const C = cfg.dModel;
  const F = cfg.dFF;
  const H = cfg.nHeads;
  const hd = cfg.headDim;
  const L = cfg.nLayers;
  const al = (n: number, fill = true): Buf => {
    const x = be.engine.alloc(n);
    if (fill) for (let i = 0; i < n; i++) x[i] = rng.normal();
    return x;
  };
  const q = al(S * C);
  // One cache per layer, as the Decoder has: the working set matters for this memory-bound op.
  const kc = Array.from({ length: L }, () => al(S * steps * C));
  const vc = Array.from({ length: L }, () => al(S * steps * C));
  const out = al(S * C, false);
  const scores = al(steps, false);
  const lengths = new Int32Array(S);
  const active = new Uint8Array(S).fill(1);
  const x = al(S * C);
  const y = al(S * C, false);
  const w = al(C);
  const b = al(C);
  const mean = al(S, false);
  const rstd = al(S, false);
  const hF = al(S * F);
  const aF = al(S * F, false);
  const replay = (): void => {
    for (let t = 1; t <= steps; t++) {
      lengths.fill(t);
      for (let l = 0; l < L; l++)
        attentionDecode(out, scores, q, kc[l], vc[l], lengths, active, S, steps, H, H, hd);
    }
  };
  const ops: TrainProfile["sample"]["ops"] = [];
  const add = (op: string, calls: number, msPerRound: number): void => {
    ops.push({ op, calls_per_round: calls, ms_per_call: msPerRound / calls, ms_per_round: msPerRound });
  };
  add("attention_decode", L * steps, timeOp(replay, 3));
  add("gelu_forward", L * steps, L * steps * timeOp(() => geluForward(aF, hF, S * F)));
  add(
    "layernorm_forward",
    (2 * L + 1) * steps,
    (2 * L + 1) * steps * timeOp(() => layerNormForward(y, mean, rstd, x, w, b, S, C, cfg.normEps)),
  );
  return ops;
}

/** Median non-gemm time of `fn` (its time minus the gemm time the timer saw). */
function timeRest(timer: TimedKernels, fn: () => void, reps = 5): number {
  fn();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    timer.take();
    const t0 = now();
    fn();
    const total = now() - t0;
    ms.push(Math.max(0, total - timer.take().ms));
  }
  return median(ms);
}
