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
}

export interface DistillResult {
  loss: number; // final mean KL(π_λ ‖ π_θ) over the states
  klQuantile: number; // of KL(π_θ ‖ π_cur) over the states after distillation
  klMax: number;
  accepted: boolean; // klQuantile ≤ δ0
  states: number;
}

/**
 * Trains `student` (an LmPolicy over the new model) to match the projected policy on the given
 * states of trajectories, then measures KL(π_student ‖ π_cur) there. The caller restores the
 * student's snapshot when `accepted` is false.
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
  const S = states.length;
  const pre = student.logProbs(trajs, states);
  const cur = Float64Array.from(incumbent.logProbs(trajs, states));
  const target = new Float64Array(S * V);
  for (let k = 0; k < S; k++) {
    target.set(
      projectToTrustRegion(pre.subarray(k * V, (k + 1) * V), cur.subarray(k * V, (k + 1) * V), delta0).logp,
      k * V,
    );
  }
  const byTraj = new Map<number, number[]>();
  states.forEach((s, k) => byTraj.set(s.traj, [...(byTraj.get(s.traj) ?? []), k]));
  const trajIds = [...byTraj.keys()];
  let loss = 0;
  for (let e = 0; e < o.epochs; e++) {
    for (let i = 0; i < trajIds.length; i += o.miniBatch) {
      const ks = trajIds.slice(i, i + o.miniBatch).flatMap((t) => byTraj.get(t)!);
      const sub = ks.map((k) => states[k]);
      const lp = student.logProbs(trajs, sub);
      const grad = new Float64Array(sub.length * V);
      loss = 0;
      for (let j = 0; j < sub.length; j++) {
        const k = ks[j];
        loss += klRow(target, k * V, lp, j * V, V);
        // d/dlogπ_θ of KL(π_λ ‖ π_θ) = −π_λ.
        for (let v = 0; v < V; v++) grad[j * V + v] = -Math.exp(target[k * V + v]) / sub.length;
      }
      loss /= Math.max(1, sub.length);
      student.zeroGrad();
      student.backward(grad);
      student.optimizerStep();
    }
  }
  const after = student.logProbs(trajs, states);
  const kls = new Float64Array(S);
  let klMax = 0;
  for (let k = 0; k < S; k++) {
    kls[k] = klRow(after, k * V, cur, k * V, V);
    klMax = Math.max(klMax, kls[k]);
  }
  const q = weightedQuantile(kls, null, o.klQuantile);
  return { loss, klQuantile: q, klMax, accepted: q <= delta0, states: S };
}
