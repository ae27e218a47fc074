/**
 * AgentLearner (contracts/learner.ts) on top of an in-process policy that returns whole log-prob
 * rows and takes their gradient (TrainablePolicy): the surrogate and the exact KL are computed here
 * in float64, so the tabular test bed and the transformer agents share one implementation.
 * π_cur rows are kept for the whole update (S × V float64).
 */
import type { AgentLearner, Measurement, UpdateSpec } from "../contracts/learner.js";
import type { TrainablePolicy } from "../contracts/policy.js";
import { entropyRow, klRow, tvRow } from "./kl.js";
import { clipTerm, klPenalty, statesOf } from "./surrogate.js";

export class RowLearner implements AgentLearner {
  private spec: UpdateSpec | null = null;
  private curRows: Float64Array = new Float64Array(0);
  private curChosen: Float64Array = new Float64Array(0);
  private tokens = new Int32Array(0);

  constructor(readonly policy: TrainablePolicy) {}

  get vocabSize(): number {
    return this.policy.vocabSize;
  }

  beginUpdate(spec: UpdateSpec): { chosen: Float64Array; entropy: Float64Array } {
    const V = this.vocabSize;
    const S = spec.states.length;
    this.policy.beginUpdate();
    this.spec = spec;
    this.tokens = Int32Array.from(spec.states, (s) => spec.trajs[s.traj].tokens[s.t]);
    this.curRows = S > 0 ? this.rows(spec.states) : new Float64Array(0);
    this.curChosen = this.chosenOf(this.curRows, null);
    const entropy = new Float64Array(S);
    for (let k = 0; k < S; k++) entropy[k] = entropyRow(this.curRows, k * V, V);
    return { chosen: Float64Array.from(this.curChosen), entropy };
  }

  step(minibatch: readonly number[]): void {
    const spec = this.current();
    const V = this.vocabSize;
    const ks = statesOf(spec.offsets, minibatch);
    if (ks.length === 0) return;
    const rows = this.rows(ks.map((k) => spec.states[k]));
    const chosen = this.chosenOf(rows, ks);
    const dChosen = new Float64Array(ks.length);
    clipTerm(spec, minibatch, chosen, this.curChosen, dChosen);
    const dlogp = new Float64Array(rows.length);
    for (let r = 0; r < ks.length; r++) dlogp[r * V + this.tokens[ks[r]]] = dChosen[r];
    klPenalty(spec.offsets, spec.prior, minibatch, rows, this.curRows, V, spec.beta, dlogp);
    this.policy.zeroGrad();
    this.policy.backward(dlogp);
    this.policy.optimizerStep();
  }

  measure(): Measurement {
    const spec = this.current();
    const V = this.vocabSize;
    const S = spec.states.length;
    const rows = S > 0 ? this.rows(spec.states) : new Float64Array(0);
    const kl = new Float64Array(S);
    const tv = new Float64Array(S);
    for (let k = 0; k < S; k++) {
      kl[k] = klRow(rows, k * V, this.curRows, k * V, V);
      tv[k] = tvRow(rows, k * V, this.curRows, k * V, V);
    }
    return { chosen: this.chosenOf(rows, null), kl, tv };
  }

  setStepScale(scale: number): void {
    this.policy.setStepScale(scale);
  }

  endUpdate(keptFraction: number): void {
    this.policy.endUpdate(keptFraction);
    this.spec = null;
  }

  snapshot(): unknown {
    return this.policy.snapshot();
  }

  restore(s: unknown): void {
    this.policy.restore(s);
  }

  private current(): UpdateSpec {
    if (!this.spec) throw new Error("learner: step or measure called outside an update (beginUpdate first)");
    return this.spec;
  }

  private rows(states: UpdateSpec["states"]): Float64Array {
    const raw = this.policy.logProbs(this.current().trajs, states);
    if (raw.length !== states.length * this.vocabSize)
      throw new Error(
        `logProbs returned ${raw.length} values for ${states.length} states × V=${this.vocabSize}`,
      );
    return Float64Array.from(raw);
  }

  /** Chosen-token entries of rows for states `ks` (null = all states in order). */
  private chosenOf(rows: Float64Array, ks: number[] | null): Float64Array {
    const V = this.vocabSize;
    const n = ks ? ks.length : this.tokens.length;
    const out = new Float64Array(n);
    for (let r = 0; r < n; r++) out[r] = rows[r * V + this.tokens[ks ? ks[r] : r]];
    return out;
  }
}

/** True for objects that already are learners (they measure), false for row-level policies. */
export function isLearner(p: AgentLearner | TrainablePolicy): p is AgentLearner {
  return typeof (p as AgentLearner).measure === "function";
}
