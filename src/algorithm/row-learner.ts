/**
 * AgentLearner (contracts/learner.ts) on top of an in-process policy that returns whole log-prob
 * rows and takes their gradient (TrainablePolicy): the surrogate and the exact KL are computed here
 * (sums in float64), so the tabular test bed and the transformer agents share one implementation.
 *
 * Memory with large vocabularies (Qwen3: 151,936 rows): π_cur rows are kept for the whole update
 * (S × V, in the policy's float type; transformer agents return float32), and everything else
 * works a piece at a time: the policy is asked for the states of consecutive trajectories up to
 * `rowChunkEntries` log-prob entries (a trajectory is never split: its ratio needs all its states),
 * each minibatch's gradient accumulates over its pieces before the one optimizer step, and
 * measurements reduce each piece to per-state numbers. Results do not depend on the piece size
 * beyond float rounding.
 */
import type { AgentLearner, Measurement, UpdateSpec } from "../contracts/learner.js";
import type { TrainablePolicy } from "../contracts/policy.js";
import { entropyRow, klRow, tvRow } from "./kl.js";
import { clipTerm, klPenalty, statesOf } from "./surrogate.js";

type Rows = Float64Array | Float32Array;

/** Default piece size: 2^25 entries, 128 MB of float32 rows (221 states at V = 151,936). */
export const ROW_CHUNK_ENTRIES = 2 ** 25;

export class RowLearner implements AgentLearner {
  private spec: UpdateSpec | null = null;
  private curRows: Rows = new Float64Array(0);
  private curChosen: Float64Array = new Float64Array(0);
  private tokens = new Int32Array(0);

  constructor(
    readonly policy: TrainablePolicy,
    private readonly rowChunkEntries = ROW_CHUNK_ENTRIES,
  ) {
    if (!Number.isInteger(rowChunkEntries) || rowChunkEntries < 1)
      throw new Error(`RowLearner: rowChunkEntries must be a positive integer, got ${rowChunkEntries}`);
  }

  get vocabSize(): number {
    return this.policy.vocabSize;
  }

  beginUpdate(spec: UpdateSpec): { chosen: Float64Array; entropy: Float64Array } {
    const V = this.vocabSize;
    const S = spec.states.length;
    this.policy.beginUpdate();
    this.spec = spec;
    this.tokens = Int32Array.from(spec.states, (s) => spec.trajs[s.traj].tokens[s.t]);
    this.curChosen = new Float64Array(S);
    const entropy = new Float64Array(S);
    let cur: Rows | null = null;
    for (const { ks, rows } of this.pieces(this.trajectories())) {
      cur ??= rows instanceof Float32Array ? new Float32Array(S * V) : new Float64Array(S * V);
      cur.set(rows, ks[0] * V);
      ks.forEach((k, r) => {
        this.curChosen[k] = rows[r * V + this.tokens[k]];
        entropy[k] = entropyRow(rows, r * V, V);
      });
    }
    this.curRows = cur ?? new Float64Array(0);
    return { chosen: Float64Array.from(this.curChosen), entropy };
  }

  step(minibatch: readonly number[]): void {
    const spec = this.current();
    const V = this.vocabSize;
    if (statesOf(spec.offsets, minibatch).length === 0) return;
    this.policy.zeroGrad();
    for (const { piece, ks, rows } of this.pieces(minibatch)) {
      const chosen = Float64Array.from(ks, (k, r) => rows[r * V + this.tokens[k]]);
      const dChosen = new Float64Array(ks.length);
      // Normalised over the whole minibatch, so the pieces' gradients add up to its gradient.
      clipTerm(spec, piece, chosen, this.curChosen, dChosen, minibatch);
      const dlogp =
        rows instanceof Float32Array ? new Float32Array(rows.length) : new Float64Array(rows.length);
      for (let r = 0; r < ks.length; r++) dlogp[r * V + this.tokens[ks[r]]] = dChosen[r];
      klPenalty(spec.offsets, spec.prior, piece, rows, this.curRows, V, spec.beta, dlogp, minibatch);
      this.policy.backward(dlogp);
    }
    this.policy.optimizerStep();
  }

  measure(): Measurement {
    const V = this.vocabSize;
    const S = this.current().states.length;
    const out: Measurement = {
      chosen: new Float64Array(S),
      kl: new Float64Array(S),
      tv: new Float64Array(S),
    };
    for (const { ks, rows } of this.pieces(this.trajectories()))
      ks.forEach((k, r) => {
        out.chosen[k] = rows[r * V + this.tokens[k]];
        out.kl[k] = klRow(rows, r * V, this.curRows, k * V, V);
        out.tv[k] = tvRow(rows, r * V, this.curRows, k * V, V);
      });
    return out;
  }

  setStepScale(scale: number): void {
    this.policy.setStepScale(scale);
  }

  endUpdate(keptFraction: number): void {
    this.policy.endUpdate(keptFraction);
    this.spec = null;
    this.curRows = new Float64Array(0); // π_cur rows are the update's largest buffer
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

  /** The trajectories in which the agent acted, in order. */
  private trajectories(): number[] {
    const { offsets } = this.current();
    const out: number[] = [];
    for (let i = 0; i + 1 < offsets.length; i++) if (offsets[i + 1] > offsets[i]) out.push(i);
    return out;
  }

  /**
   * `trajList` scored in consecutive pieces of whole trajectories with at most rowChunkEntries / V
   * states each (at least one trajectory): the piece, its state indices and its rows.
   */
  private *pieces(trajList: readonly number[]): Generator<{ piece: number[]; ks: number[]; rows: Rows }> {
    const spec = this.current();
    const maxStates = Math.max(1, Math.floor(this.rowChunkEntries / this.vocabSize));
    let piece: number[] = [];
    let n = 0;
    const flush = () => {
      const ks = statesOf(spec.offsets, piece);
      const out = { piece, ks, rows: this.rows(ks.map((k) => spec.states[k])) };
      piece = [];
      n = 0;
      return out;
    };
    for (const i of trajList) {
      const m = spec.offsets[i + 1] - spec.offsets[i];
      if (m === 0) continue;
      if (n > 0 && n + m > maxStates) yield flush();
      piece.push(i);
      n += m;
    }
    if (n > 0) yield flush();
  }

  private rows(states: UpdateSpec["states"]): Rows {
    const rows = this.policy.logProbs(this.current().trajs, states);
    if (rows.length !== states.length * this.vocabSize)
      throw new Error(
        `logProbs returned ${rows.length} values for ${states.length} states × V=${this.vocabSize}`,
      );
    return rows;
  }
}

/** True for objects that already are learners (they measure), false for row-level policies. */
export function isLearner(p: AgentLearner | TrainablePolicy): p is AgentLearner {
  return typeof (p as AgentLearner).measure === "function";
}
