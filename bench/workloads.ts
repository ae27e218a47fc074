/**
 * The measured workloads: the benchmark models, one training step (forward, cross-entropy,
 * backward, AdamW) over a fixed random batch, KV-cache sampling from BOS, and one big matmul.
 * scripts/bench/torch_bench.py mirrors each of these in PyTorch; keep the two in step.
 */
import type { Buf } from "../src/engine/kernels/types.js";
import { Rng } from "../src/engine/rng.js";
import { AdamW } from "../src/engine/adamw.js";
import { presetConfig, validateModelConfig, type ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { Decoder, sampleToken } from "../src/model/generate.js";
import { buildLayout, countParams } from "../src/model/layout.js";
import type { BenchEngine } from "./engine.js";
import { median, now } from "./timing.js";

export interface BenchModel {
  name: string;
  description: string;
  config: ModelConfig;
  /** Settings that differ for this model (batch and step counts of the large model). */
  settings?: Partial<BenchSettings>;
  /** Large model: skipped on 1-thread WebAssembly (minutes per step, and says nothing new). */
  heavy?: boolean;
}

/** SmolLM2-135M's shape (d 576, 30 layers, 9/3 heads, MLP 1536, vocab 49,152), context 256. */
export const LLAMA_135M: ModelConfig = validateModelConfig({
  arch: "llama",
  vocabSize: 49152,
  dModel: 576,
  nLayers: 30,
  nHeads: 9,
  nKvHeads: 3,
  headDim: 64,
  dFF: 1536,
  maxSeqLen: 256,
  normEps: 1e-5,
  ropeTheta: 100000,
  tiedEmbeddings: true,
  valueHead: false,
});

/** The models `--models` can name. `tiny` and `tiny-llama` exist for smoke tests of the harness itself. */
export function benchModels(): Record<string, BenchModel> {
  return {
    bakeoff: {
      name: "bakeoff",
      description: "engine-bakeoff model: micro preset, vocab 32, ctx 64, untied lm_head (809,728 params)",
      config: validateModelConfig({
        ...presetConfig("micro", 32, "gpt2"),
        maxSeqLen: 64,
        tiedEmbeddings: false,
      }),
    },
    small: {
      name: "small",
      description: "small preset, gpt2 style, vocab 64, ctx 64, tied embeddings",
      config: presetConfig("small", 64, "gpt2", { maxSeqLen: 64 }),
    },
    tiny: {
      name: "tiny",
      description: "harness smoke test: d 32, 1 layer, 2 heads, MLP 128, vocab 16, ctx 64",
      config: presetConfig("nano", 16, "gpt2", {
        dModel: 32,
        nLayers: 1,
        nHeads: 2,
        headDim: 16,
        dFF: 128,
        maxSeqLen: 64,
      }),
    },
    "llama-135m": {
      name: "llama-135m",
      description:
        "SmolLM2-135M shape, random weights: llama, d 576, 30 layers, 9 heads / 3 kv heads, MLP 1536, vocab 49,152, ctx 256, tied embeddings",
      config: LLAMA_135M,
      // 4 × 256 = 1,024 tokens a step (the other models' token count); ~2.5 GB of our heap.
      settings: {
        batch: 4,
        seq: 256,
        warmupSteps: 1,
        trainSteps: 3,
        sampleWarmup: 1,
        sampleRepeats: 3,
        profileSteps: 2,
      },
      heavy: true,
    },
    "tiny-llama": {
      name: "tiny-llama",
      description: "harness smoke test, llama: d 32, 1 layer, 2 heads / 1 kv head, MLP 64, vocab 16, ctx 64",
      config: presetConfig("nano", 16, "llama", {
        dModel: 32,
        nLayers: 1,
        nHeads: 2,
        nKvHeads: 1,
        headDim: 16,
        dFF: 64,
        maxSeqLen: 64,
      }),
    },
  };
}

/**
 * The settings a model runs with: the common ones with the model's own overrides (a quick run keeps
 * its short step counts and takes only the model's batch shape).
 */
export function settingsFor(m: BenchModel, s: BenchSettings, quick: boolean): BenchSettings {
  if (!m.settings) return s;
  if (!quick) return { ...s, ...m.settings };
  return { ...s, batch: m.settings.batch ?? s.batch, seq: m.settings.seq ?? s.seq };
}

export interface MatmulShape {
  M: number;
  K: number;
  N: number;
}

export interface BenchSettings {
  /** Training batch: sequences × tokens per sequence. */
  batch: number;
  seq: number;
  warmupSteps: number;
  trainSteps: number;
  /** Sampling: sequences decoded together, decode steps from BOS, untimed and timed rounds. */
  sampleSequences: number;
  sampleSteps: number;
  sampleWarmup: number;
  sampleRepeats: number;
  /** C (M,N) = A (M,K) @ B (K,N); the ts reference gets one timed run (it takes seconds). */
  matmul: MatmulShape & { warmup: number; repeats: number };
  /** Timed steps of the profile (after `warmupSteps`). */
  profileSteps: number;
  /** AdamW as torch.optim.AdamW defaults except lr: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
  lr: number;
  seed: number;
}

export const FULL_SETTINGS: BenchSettings = {
  batch: 16,
  seq: 64,
  warmupSteps: 3,
  trainSteps: 15,
  sampleSequences: 16,
  sampleSteps: 64,
  sampleWarmup: 1,
  sampleRepeats: 7,
  matmul: { M: 1024, K: 512, N: 2048, warmup: 2, repeats: 10 },
  profileSteps: 5,
  lr: 3e-4,
  seed: 1337,
};

export const QUICK_SETTINGS: BenchSettings = {
  ...FULL_SETTINGS,
  warmupSteps: 1,
  trainSteps: 2,
  sampleWarmup: 0,
  sampleRepeats: 1,
  matmul: { M: 256, K: 128, N: 512, warmup: 1, repeats: 2 },
  profileSteps: 1,
};

export const BOS = 0;

/** Throws when the settings cannot run on this model (one line naming the setting). */
export function checkSettings(s: BenchSettings, cfg: ModelConfig, model: string): void {
  if (s.seq > cfg.maxSeqLen)
    throw new Error(`bench: seq ${s.seq} exceeds the context of model "${model}" (${cfg.maxSeqLen})`);
  if (s.sampleSteps > cfg.maxSeqLen) {
    throw new Error(
      `bench: sampleSteps ${s.sampleSteps} exceeds the context of model "${model}" (${cfg.maxSeqLen})`,
    );
  }
  for (const k of [
    "batch",
    "seq",
    "trainSteps",
    "sampleSequences",
    "sampleSteps",
    "sampleRepeats",
    "profileSteps",
  ] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 1)
      throw new Error(`bench: setting ${k} must be a positive integer, got ${s[k]}`);
  }
}

export const paramCount = (cfg: ModelConfig): number => countParams(buildLayout(cfg));

export type Phase = "zero_grad" | "forward" | "loss" | "backward" | "optimizer";
export const PHASES: readonly Phase[] = ["zero_grad", "forward", "loss", "backward", "optimizer"];

/**
 * One training step on a fixed random batch: zero grads, forward, mean cross-entropy over all
 * B·T tokens (fused softmax–cross-entropy), backward, AdamW, every op on the engine's tier.
 */
export class TrainStep {
  private readonly ids: Int32Array; // (B,T)
  private readonly targets: Int32Array; // (B·T)
  private readonly dlogits: Buf; // (B·T, V)
  private readonly losses: Buf; // (B·T)
  readonly optimizer: AdamW;

  constructor(
    readonly model: Transformer,
    readonly B: number,
    readonly T: number,
    rng: Rng,
    lr: number,
  ) {
    const N = B * T;
    const V = model.cfg.vocabSize;
    // Random sequences of T+1 tokens: inputs are the first T, targets the last T.
    this.ids = new Int32Array(N);
    this.targets = new Int32Array(N);
    for (let b = 0; b < B; b++) {
      let prev = rng.int(V);
      for (let t = 0; t < T; t++) {
        const next = rng.int(V);
        this.ids[b * T + t] = prev;
        this.targets[b * T + t] = next;
        prev = next;
      }
    }
    this.dlogits = model.engine.alloc(N * V);
    this.losses = model.engine.alloc(N);
    this.optimizer = new AdamW(
      model.params,
      model.grads,
      { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
      model.ops,
    );
  }

  /** One step; with `mark`, calls it after each phase (the profile times phases this way). */
  run(mark?: (phase: Phase) => void): number {
    const { model, B, T } = this;
    const N = B * T;
    const V = model.cfg.vocabSize;
    model.zeroGrad();
    mark?.("zero_grad");
    const logits = model.forward(this.ids, B, T);
    mark?.("forward");
    model.ops.softmaxCrossEntropy(this.losses, this.dlogits, logits, this.targets, N, V, 1 / N);
    let loss = 0;
    for (let i = 0; i < N; i++) loss += this.losses[i];
    mark?.("loss");
    model.backward(this.dlogits);
    mark?.("backward");
    this.optimizer.step();
    mark?.("optimizer");
    return loss / N;
  }
}

export interface TrainResult {
  tokens_per_step: number;
  warmup_steps: number;
  step_ms: number[];
  median_ms: number;
  tok_s: number;
  loss_first: number;
  loss_last: number;
}

/** Train tokens/s: median step time of `trainSteps` steps after `warmupSteps` untimed ones. */
export function trainBench(be: BenchEngine, cfg: ModelConfig, s: BenchSettings): TrainResult {
  const rng = new Rng(s.seed);
  const model = new Transformer(cfg, be.engine, rng.fork("init"));
  const step = new TrainStep(model, s.batch, s.seq, rng.fork("data"), s.lr);
  const losses: number[] = [];
  const stepMs: number[] = [];
  for (let i = 0; i < s.warmupSteps + s.trainSteps; i++) {
    const t0 = now();
    const loss = step.run();
    const dt = now() - t0;
    losses.push(loss);
    if (i >= s.warmupSteps) stepMs.push(dt);
  }
  const med = median(stepMs);
  const tokens = s.batch * s.seq;
  return {
    tokens_per_step: tokens,
    warmup_steps: s.warmupSteps,
    step_ms: stepMs,
    median_ms: med,
    tok_s: (tokens / med) * 1000,
    loss_first: losses[0],
    loss_last: losses[losses.length - 1],
  };
}

export interface SampleRun {
  ms: number;
  /** Time spent turning logits into tokens (softmax + multinomial, `sampleToken`). */
  samplingMs: number;
}

/** One sampling round: all sequences from BOS, `steps` decode steps, multinomial at temperature 1. */
export function sampleRound(dec: Decoder, steps: number, rng: Rng, clock: () => number = now): SampleRun {
  const S = dec.B;
  const V = dec.model.cfg.vocabSize;
  const tokens = new Int32Array(S).fill(BOS);
  const active = new Uint8Array(S).fill(1);
  const probs = new Float64Array(V);
  let samplingMs = 0;
  dec.reset();
  const t0 = clock();
  for (let i = 0; i < steps; i++) {
    const logits = dec.step(tokens, active);
    const ts = clock();
    for (let b = 0; b < S; b++) tokens[b] = sampleToken(logits, b * V, V, 1, 1, rng, probs).token;
    samplingMs += clock() - ts;
  }
  const ms = clock() - t0;
  return { ms, samplingMs };
}

export interface SampleResult {
  tokens: number;
  round_ms: number[];
  median_ms: number;
  tok_s: number;
}

/** Sampling tokens/s with the KV cache: tokens = sequences × steps per round, median round time. */
export function sampleBench(be: BenchEngine, cfg: ModelConfig, s: BenchSettings): SampleResult {
  const rng = new Rng(s.seed);
  const model = new Transformer(cfg, be.engine, rng.fork("init"));
  const dec = new Decoder(model, s.sampleSequences, s.sampleSteps);
  const sampler = rng.fork("sample");
  const roundMs: number[] = [];
  for (let i = 0; i < s.sampleWarmup + s.sampleRepeats; i++) {
    const r = sampleRound(dec, s.sampleSteps, sampler);
    if (i >= s.sampleWarmup) roundMs.push(r.ms);
  }
  const med = median(roundMs);
  const tokens = s.sampleSequences * s.sampleSteps;
  return { tokens, round_ms: roundMs, median_ms: med, tok_s: (tokens / med) * 1000 };
}

export interface MatmulResult {
  run_ms: number[];
  median_ms: number;
  gflops: number;
}

/** C = A @ B (no transposes), buffers on the engine's heap; GFLOP/s from the median run. */
export function matmulBench(
  be: BenchEngine,
  shape: MatmulShape,
  warmup: number,
  repeats: number,
  seed: number,
): MatmulResult {
  const { M, K, N } = shape;
  const rng = new Rng(seed);
  const k = be.kernels;
  const A = be.engine.alloc(M * K);
  const B = be.engine.alloc(K * N);
  const C = be.engine.alloc(M * N);
  for (let i = 0; i < A.length; i++) A[i] = rng.uniform() * 2 - 1;
  for (let i = 0; i < B.length; i++) B[i] = rng.uniform() * 2 - 1;
  const runMs: number[] = [];
  for (let i = 0; i < warmup + repeats; i++) {
    const t0 = now();
    k.gemm(false, false, M, N, K, A, B, C, false);
    const dt = now() - t0;
    if (i >= warmup) runMs.push(dt);
  }
  for (const x of [A, B, C]) if (k.heap && x instanceof Float32Array) k.heap.free(x);
  const med = median(runMs);
  return { run_ms: runMs, median_ms: med, gflops: (2 * M * N * K) / (med * 1e6) };
}
