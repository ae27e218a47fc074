/**
 * Supervised pretraining of base agents on worked solutions (`sat pretrain`). A training sequence
 * is `<bos> prompt solution <eos>`, with the loss on the solution and <eos> only. So that agents
 * can later share one transcript in a relay, an end-of-turn token is inserted after a solution
 * line with probability `eotProb`: the model learns both to hand over after a step and to continue
 * a transcript that another agent started. The protocol also closes a turn that reaches its token
 * cap, mid-line; so <eot> is also inserted at random positions with probability `cutProb` per
 * token, with no loss on predicting it: the model learns to continue after such a cut, not to make
 * one. Training stops at `steps`, or earlier once held-out
 * accuracy reaches `targetAccuracy` (kept below 1 so RL has headroom).
 *
 * Resumable: after every completed step `afterStep` may save the weights, the optimizer and
 * `SftState` (step, data stream and <eot> RNG positions, evaluations so far); `resume` continues
 * from them with results identical, bit for bit, to an uninterrupted run. On abort the loop stops
 * between steps and returns without a final evaluation (`interrupted`).
 */
import type { Buf } from "../engine/kernels/types.js";
import { Rng, type RngState } from "../engine/rng.js";
import { AdamW, type AdamWState } from "../engine/adamw.js";
import { crossEntropyForward, crossEntropyBackward } from "../engine/ops/softmax.js";
import type { Transformer } from "../model/transformer.js";
import { decayMask } from "../model/layout.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { generate } from "../model/generate.js";
import type { Problem, TaskFamily } from "../tasks/index.js";
import { ProblemStream, type ProblemStreamState } from "../tasks/index.js";
import { encodeProblemPrompt } from "../team/rollout.js";

export interface SftOptions {
  steps: number;
  batchSize: number; // sequences per step
  lr: number;
  minLrRatio: number; // cosine decay floor, as a fraction of lr
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  maxGradNorm: number; // 0 = off
  difficulty?: number;
  eotProb: number;
  cutProb: number;
  evalEvery: number; // steps; 0 = only at the end
  targetAccuracy: number; // stop once test accuracy ≥ this (1 = never stop early)
  seed: number;
}

export const DEFAULT_SFT: SftOptions = {
  steps: 2000,
  batchSize: 32,
  lr: 3e-3,
  minLrRatio: 0.1,
  warmupSteps: 50,
  weightDecay: 0.01,
  beta1: 0.9,
  beta2: 0.99,
  maxGradNorm: 1.0,
  eotProb: 0.3,
  cutProb: 1 / 16,
  evalEvery: 100,
  targetAccuracy: 1,
  seed: 42,
};

export interface SftStep {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number; // tokens in this batch (padding excluded)
  seconds: number; // wall time of this step
}

export interface SftEval {
  step: number;
  accuracy: number;
  n: number;
}

export interface SftResult {
  steps: number;
  evals: SftEval[];
  finalAccuracy: number;
  stoppedEarly: boolean;
  optimizer: AdamW;
  /** Stopped by the signal between steps (no final evaluation; `state` resumes it). */
  interrupted: boolean;
  state: SftState;
}

/** Where a supervised run stands after `step` steps, besides its weights and optimizer state. */
export interface SftState {
  step: number;
  stream: ProblemStreamState;
  eotRng: RngState;
  evals: SftEval[];
}

export interface SftHooks {
  onStep?(s: SftStep): void;
  onEval?(e: SftEval): void;
  signal?: AbortSignal;
  /** After step `step` is complete (its evaluation included) and training goes on. */
  afterStep?(step: number, state: () => SftState, optimizer: AdamW): void | Promise<void>;
  /** Continue from a saved state; the model must already hold the weights saved with it. */
  resume?: { state: SftState; optimizer: AdamWState };
}

/** Token ids and per-position targets (-1 = no loss) for one training sequence. */
export function encodeSftExample(
  tok: Tokenizer,
  p: Problem,
  rng: Rng,
  eotProb: number,
  cutProb = 0,
): { ids: number[]; targets: number[] } {
  const ids = encodeProblemPrompt(tok, p);
  const firstTarget = ids.length - 1; // predicting the first solution token from the last prompt token
  const cuts = new Set<number>(); // positions of <eot> tokens that are not to be predicted
  const lines = p.solution.split("\n");
  for (let i = 0; i < lines.length; i++) {
    for (const id of tok.encode(i < lines.length - 1 ? lines[i] + "\n" : lines[i])) {
      if (cutProb > 0 && rng.uniform() < cutProb) {
        cuts.add(ids.length);
        ids.push(tok.eot);
      }
      ids.push(id);
    }
    if (i < lines.length - 1 && rng.uniform() < eotProb) ids.push(tok.eot);
  }
  ids.push(tok.eos);
  const targets = ids.map((_, t) =>
    t >= firstTarget && t + 1 < ids.length && !cuts.has(t + 1) ? ids[t + 1] : -1,
  );
  return { ids, targets };
}

export function learningRate(step: number, o: SftOptions): number {
  if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  const progress = Math.min(1, (step - o.warmupSteps) / Math.max(1, o.steps - o.warmupSteps));
  return o.lr * (o.minLrRatio + (1 - o.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** Greedy solo accuracy: the agent writes the whole solution alone (end-of-turn tokens are skipped over). */
export function soloAccuracy(
  model: Transformer,
  tok: Tokenizer,
  family: TaskFamily,
  problems: Problem[],
  opts: { batch?: number; maxNewTokens?: number; temperature?: number; rng?: Rng } = {},
): number {
  const batch = opts.batch ?? 64;
  const rng = opts.rng ?? new Rng(0);
  let correct = 0;
  for (let i = 0; i < problems.length; i += batch) {
    const chunk = problems.slice(i, i + batch);
    const prompts = chunk.map((p) => encodeProblemPrompt(tok, p));
    const longest = Math.max(...prompts.map((p) => p.length));
    const maxNew = Math.min(
      opts.maxNewTokens ?? model.cfg.maxSeqLen - longest,
      model.cfg.maxSeqLen - longest,
    );
    const gen = generate(model, prompts, {
      maxNewTokens: maxNew,
      temperature: opts.temperature ?? 0,
      topP: 1,
      stopTokens: [tok.eos],
      rng,
    });
    for (let j = 0; j < chunk.length; j++) {
      const text = tok.decode(gen.tokens[j].filter((t) => t !== tok.eot && t !== tok.eos));
      if (family.verify(chunk[j], text).correct) correct++;
    }
  }
  return problems.length ? correct / problems.length : 0;
}

/** Trains `model` in place on `family`'s worked solutions; evaluates on `testProblems`. */
export async function sftTrain(
  model: Transformer,
  tok: Tokenizer,
  family: TaskFamily,
  testProblems: Problem[],
  o: SftOptions,
  hooks: SftHooks = {},
): Promise<SftResult> {
  const V = model.cfg.vocabSize;
  const rng = new Rng(o.seed);
  const stream = new ProblemStream(family, { seed: rng.fork("data").seed, difficulty: o.difficulty });
  const eotRng = rng.fork("eot");
  const opt = new AdamW(model.params, model.grads, {
    lr: o.lr,
    beta1: o.beta1,
    beta2: o.beta2,
    eps: 1e-8,
    weightDecay: o.weightDecay,
    decayMask: decayMask(model.layout),
  });
  const evals: SftEval[] = [];
  let first = 0;
  if (hooks.resume) {
    const r = hooks.resume;
    stream.setState(r.state.stream);
    eotRng.setState(r.state.eotRng);
    opt.restore(r.optimizer);
    evals.push(...r.state.evals);
    first = r.state.step;
  }
  const state = (): SftState => ({
    step,
    stream: stream.getState(),
    eotRng: eotRng.getState(),
    evals: evals.map((e) => ({ ...e })),
  });
  let ids = new Int32Array(0);
  let targets = new Int32Array(0);
  let losses: Buf = new Float64Array(0);
  let logp: Buf = new Float64Array(0);
  let dlogits: Buf = new Float64Array(0);
  let dlosses: Buf = new Float64Array(0);
  let step = first;
  let stoppedEarly = false;
  let interrupted = false;
  const evaluate = (atStep: number): number => {
    const acc = soloAccuracy(model, tok, family, testProblems);
    const e = { step: atStep, accuracy: acc, n: testProblems.length };
    evals.push(e);
    hooks.onEval?.(e);
    return acc;
  };
  for (step = first; step < o.steps; step++) {
    // Give the event loop a turn so a Ctrl-C (AbortSignal) is seen between steps.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (hooks.signal?.aborted) {
      interrupted = true;
      break;
    }
    const t0 = performance.now();
    const examples = stream
      .take(o.batchSize)
      .map((p) => encodeSftExample(tok, p, eotRng, o.eotProb, o.cutProb));
    const T = Math.max(...examples.map((e) => e.ids.length));
    if (T > model.cfg.maxSeqLen) {
      throw new Error(
        `a training sequence has ${T} tokens, more than the model context (${model.cfg.maxSeqLen}); lower the task difficulty or raise the context`,
      );
    }
    const B = examples.length;
    const N = B * T;
    if (ids.length < N) {
      ids = new Int32Array(N);
      targets = new Int32Array(N);
      losses = model.engine.alloc(N);
      dlosses = model.engine.alloc(N);
      logp = model.engine.alloc(N * V);
      dlogits = model.engine.alloc(N * V);
    }
    ids.fill(0, 0, N);
    targets.fill(-1, 0, N);
    let count = 0;
    for (let b = 0; b < B; b++) {
      const e = examples[b];
      for (let t = 0; t < e.ids.length; t++) {
        ids[b * T + t] = e.ids[t];
        targets[b * T + t] = e.targets[t];
        if (e.targets[t] >= 0) count++;
      }
    }
    const tg = targets.subarray(0, N);
    const logits = model.forward(ids.subarray(0, N), B, T);
    crossEntropyForward(losses, logp, logits, tg, N, V);
    let loss = 0;
    for (let n = 0; n < N; n++) loss += losses[n];
    loss /= count;
    for (let n = 0; n < N; n++) dlosses[n] = tg[n] >= 0 ? 1 / count : 0;
    const dl = dlogits.subarray(0, N * V);
    dl.fill(0);
    crossEntropyBackward(dl, dlosses, logp, tg, N, V);
    model.zeroGrad();
    model.backward(dl);
    const gradNorm = opt.clipGradNorm(o.maxGradNorm);
    const lr = learningRate(step, o);
    opt.step(lr);
    let tokens = 0;
    for (const e of examples) tokens += e.ids.length;
    hooks.onStep?.({ step: step + 1, loss, lr, gradNorm, tokens, seconds: (performance.now() - t0) / 1000 });
    if (o.evalEvery > 0 && (step + 1) % o.evalEvery === 0 && step + 1 < o.steps) {
      if (evaluate(step + 1) >= o.targetAccuracy) {
        step++;
        stoppedEarly = true;
        break;
      }
    }
    if (hooks.afterStep && step + 1 < o.steps) {
      const done = step + 1;
      await hooks.afterStep(done, () => ({ ...state(), step: done }), opt);
    }
  }
  if (interrupted) {
    const acc = evals.length ? evals[evals.length - 1].accuracy : 0;
    return {
      steps: step,
      evals,
      finalAccuracy: acc,
      stoppedEarly,
      optimizer: opt,
      interrupted,
      state: state(),
    };
  }
  const finalAccuracy = stoppedEarly ? evals[evals.length - 1].accuracy : evaluate(step);
  return { steps: step, evals, finalAccuracy, stoppedEarly, optimizer: opt, interrupted, state: state() };
}
