/**
 * Plug-and-play upgrade, Stage 0 (sat-method §5), realised exactly at decode time: a projected
 * member holds the new model (π_pre) and the incumbent it replaces (π_cur) and, at every state,
 * samples from the projection of π_pre into the δ0 KL ball around π_cur (π_pre itself when it is
 * already inside). Both distributions include the sampling temperature, as every policy here does.
 *
 * `distillProjection` optionally trains the new model towards the projected policy on states the
 * team visits, so the incumbent can be dropped; it reports the resulting per-state KL to π_cur so
 * the caller can keep the distilled model only when it stays inside the ball.
 */
import type { Buf } from "../engine/kernels/types.js";
import { logSoftmaxForward } from "../engine/ops/softmax.js";
import { Decoder } from "../model/generate.js";
import type { Transformer } from "../model/transformer.js";
import { klRow, weightedQuantile } from "../algorithm/kl.js";
import type { StateRef, Trajectory } from "../contracts/policy.js";
import type { TeamMember, TurnSession } from "../contracts/member.js";
import { DecoderSession, type StepDecoder } from "../team/decoder-session.js";
import type { LmPolicy } from "../team/lm-policy.js";
import { projectToTrustRegion } from "./projection.js";

export interface ProjectionCounters {
  states: number;
  projected: number;
  klMax: number; // max KL(π_used ‖ π_cur) over decoded states
}

export class ProjectedMember implements TeamMember {
  readonly pre: Transformer;
  readonly cur: Transformer;
  readonly delta0: number;
  readonly temperature: number;
  version = 0;
  readonly counters: ProjectionCounters = { states: 0, projected: 0, klMax: 0 };

  constructor(pre: Transformer, cur: Transformer, delta0: number, temperature: number) {
    if (pre.cfg.vocabSize !== cur.cfg.vocabSize) {
      throw new Error(
        `the new agent's vocabulary (${pre.cfg.vocabSize}) differs from the incumbent's (${cur.cfg.vocabSize}); a swap needs a shared tokenizer`,
      );
    }
    if (!(delta0 > 0)) throw new Error(`Stage-0 radius must be > 0, got ${delta0}`);
    if (!(temperature > 0))
      throw new Error(`a projected agent needs a sampling temperature > 0, got ${temperature}`);
    this.pre = pre;
    this.cur = cur;
    this.delta0 = delta0;
    this.temperature = temperature;
  }

  get vocabSize(): number {
    return this.cur.cfg.vocabSize;
  }

  get maxSeqLen(): number {
    return Math.min(this.pre.cfg.maxSeqLen, this.cur.cfg.maxSeqLen);
  }

  openSession(episodes: number, maxLength: number): TurnSession {
    return new DecoderSession(this.createDecoder(episodes, maxLength), this.vocabSize);
  }

  createDecoder(B: number, Tmax: number): StepDecoder {
    const dPre = new Decoder(this.pre, B, Tmax);
    const dCur = new Decoder(this.cur, B, Tmax);
    const V = this.vocabSize;
    const T = this.temperature;
    const out = new Float64Array(B * V);
    const lpPre = new Float64Array(V);
    const lpCur = new Float64Array(V);
    const counters = this.counters;
    const delta0 = this.delta0;
    return {
      lengths: dCur.lengths,
      step(tokens: ArrayLike<number>, active: Uint8Array): Buf {
        const a = dPre.step(tokens, active);
        const c = dCur.step(tokens, active);
        for (let b = 0; b < B; b++) {
          if (!active[b]) continue;
          logSoftmaxForward(lpPre, a.subarray(b * V, (b + 1) * V), 1, V, 1 / T);
          logSoftmaxForward(lpCur, c.subarray(b * V, (b + 1) * V), 1, V, 1 / T);
          const p = projectToTrustRegion(lpPre, lpCur, delta0);
          counters.states++;
          if (p.projected) counters.projected++;
          counters.klMax = Math.max(counters.klMax, p.kl);
          // Returned as logits for sampling at temperature T: softmax(T·log π / T) = π.
          for (let v = 0; v < V; v++) out[b * V + v] = T * p.logp[v];
        }
        return out;
      },
    };
  }
}

export interface DistillOptions {
  epochs: number;
  miniBatch: number; // trajectories per optimizer step
  klQuantile: number; // level of the acceptance check
  /**
   * Radii tried for the distillation target, as fractions κ of δ0, largest first: aiming inside the
   * ball (κ < 1) leaves room for the student's fitting error; a failed check retries from the
   * original weights with the next κ. Default [0.5, 0.25, 0.125, 0.0625].
   */
  kappas?: number[];
  /**
   * Hold every `holdOutEvery`-th trajectory's states out of training and check on those only; by
   * default (0) the check runs on the distillation states, as a stage's trust-region check does.
   */
  holdOutEvery?: number;
}

export interface DistillResult {
  loss: number; // final mean KL(π_θ ‖ π_λ) over the training states
  klQuantile: number; // of KL(π_θ ‖ π_cur) over the check states after distillation
  klMax: number;
  accepted: boolean; // klQuantile ≤ δ0
  /** κ of the accepted attempt (of the last one when none passed) and attempts made. */
  kappa: number;
  attempts: number;
  states: number;
  checkStates: number;
}

/**
 * Trains `student` (an LmPolicy over the new model) towards the projection of its own starting
 * policy into the κ·δ0 ball around the incumbent, then checks the (1−α)-quantile of
 * KL(π_student ‖ π_cur) ≤ δ0 on the distillation states (or on a held-out trajectory split). When
 * the check fails it restarts from the starting weights with a smaller κ. The caller keeps the
 * student only when `accepted`; otherwise the student is back at its starting weights.
 */
export function distillProjection(
  student: LmPolicy,
  incumbent: LmPolicy,
  delta0: number,
  trajs: Trajectory[],
  states: StateRef[],
  o: DistillOptions,
): DistillResult {
  const V = student.vocabSize;
  const every = o.holdOutEvery ?? 0;
  const heldOut = (s: StateRef) => every > 0 && s.traj % every === every - 1;
  const train = states.filter((s) => !heldOut(s));
  const check = every > 0 ? states.filter(heldOut) : train;
  if (train.length === 0 || check.length === 0)
    throw new Error(
      `distillation needs states to train on and to check (got ${train.length} and ${check.length})`,
    );
  const snap = student.snapshot();
  const pre = Float64Array.from(student.logProbs(trajs, train));
  const cur = Float64Array.from(incumbent.logProbs(trajs, train));
  const curCheck = Float64Array.from(incumbent.logProbs(trajs, check));
  const byTraj = new Map<number, number[]>();
  train.forEach((s, k) => byTraj.set(s.traj, [...(byTraj.get(s.traj) ?? []), k]));
  const trajIds = [...byTraj.keys()];
  const kappas = o.kappas ?? [0.5, 0.25, 0.125, 0.0625];
  let result: DistillResult | null = null;
  for (const [attempt, kappa] of kappas.entries()) {
    if (attempt > 0) student.restore(snap);
    const target = new Float64Array(train.length * V);
    for (let k = 0; k < train.length; k++) {
      const row = (x: Float64Array) => x.subarray(k * V, (k + 1) * V);
      target.set(projectToTrustRegion(row(pre), row(cur), kappa * delta0).logp, k * V);
    }
    let loss = 0;
    for (let e = 0; e < o.epochs; e++) {
      for (let i = 0; i < trajIds.length; i += o.miniBatch) {
        const ks = trajIds.slice(i, i + o.miniBatch).flatMap((t) => byTraj.get(t)!);
        const lp = student.logProbs(
          trajs,
          ks.map((k) => train[k]),
        );
        const grad = new Float64Array(ks.length * V);
        loss = 0;
        ks.forEach((k, j) => {
          // Reverse KL(π_θ ‖ π_λ), the direction of the check: it keeps π_θ off tokens π_λ (and so
          // the incumbent) leaves unlikely. d/dlogπ_θ,v = π_θ,v·(logπ_θ,v − logπ_λ,v + 1).
          loss += klRow(lp, j * V, target, k * V, V);
          for (let v = 0; v < V; v++) {
            const l = lp[j * V + v];
            grad[j * V + v] = (Math.exp(l) * (l - target[k * V + v] + 1)) / ks.length;
          }
        });
        loss /= Math.max(1, ks.length);
        student.zeroGrad();
        student.backward(grad);
        student.optimizerStep();
      }
    }
    const after = student.logProbs(trajs, check);
    const kls = Float64Array.from(check, (_, k) => klRow(after, k * V, curCheck, k * V, V));
    const q = weightedQuantile(kls, null, o.klQuantile);
    result = {
      ...{ loss, klQuantile: q, klMax: Math.max(0, ...kls), accepted: q <= delta0, kappa },
      ...{ attempts: attempt + 1, states: train.length, checkStates: check.length },
    };
    if (result.accepted) return result;
  }
  student.restore(snap);
  return result!;
}
