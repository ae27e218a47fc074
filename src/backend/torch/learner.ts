/**
 * AgentLearner (contracts/learner.ts) served by a PyTorch worker: the update spec goes over once
 * (token ids, states and per-trajectory weights as typed arrays), then each call is one request.
 * Every reply is checked: right lengths, finite values, log-probs ≤ 0, divergences ≥ 0 — a worker
 * that returns NaN fails the stage with one line naming the agent, the call and the field.
 */
import type { AgentLearner, Measurement, UpdateSpec } from "../../contracts/learner.js";
import { BackendError, type WorkerClient } from "./client.js";
import { decodeF64, f64, i32 } from "./wire.js";

/** An opaque handle to parameters and optimizer state kept in the worker. */
export interface RemoteSnapshot {
  agent: number;
  snapshot: number;
}

export class TorchLearner implements AgentLearner {
  private states = 0;

  constructor(
    private readonly client: WorkerClient,
    readonly agent: number,
    readonly vocabSize: number,
  ) {}

  async beginUpdate(spec: UpdateSpec): Promise<{ chosen: Float64Array; entropy: Float64Array }> {
    const lengths = spec.trajs.map((t) => t.tokens.length);
    const tokens = new Int32Array(lengths.reduce((a, b) => a + b, 0));
    let at = 0;
    for (const t of spec.trajs) {
      tokens.set(t.tokens, at);
      at += t.tokens.length;
    }
    const S = spec.states.length;
    this.states = S;
    const r = await this.call("begin_update", {
      tokens: i32(tokens),
      lengths: i32(lengths),
      state_traj: i32(spec.states.map((s) => s.traj)),
      state_t: i32(spec.states.map((s) => s.t)),
      offsets: i32(spec.offsets),
      adv: f64(spec.adv),
      w: f64(spec.w),
      prior: f64(spec.prior),
      clip_low: spec.clipLow,
      clip_high: spec.clipHigh,
      beta: spec.beta,
      ratio: spec.ratio,
    });
    return {
      chosen: this.values(r, "begin_update", "chosen", S, "logp"),
      entropy: this.values(r, "begin_update", "entropy", S, "nonneg"),
    };
  }

  async step(minibatch: readonly number[]): Promise<void> {
    await this.call("step", { minibatch: i32(minibatch) });
  }

  async measure(): Promise<Measurement> {
    const r = await this.call("measure", {});
    const S = this.states;
    return {
      chosen: this.values(r, "measure", "chosen", S, "logp"),
      kl: this.values(r, "measure", "kl", S, "nonneg"),
      tv: this.values(r, "measure", "tv", S, "nonneg"),
    };
  }

  async setStepScale(scale: number): Promise<void> {
    await this.call("set_step_scale", { scale });
  }

  async endUpdate(keptFraction: number): Promise<void> {
    await this.call("end_update", { kept: keptFraction });
  }

  async snapshot(): Promise<RemoteSnapshot> {
    const r = await this.call("snapshot", {});
    return { agent: this.agent, snapshot: r.snapshot as number };
  }

  async restore(s: unknown): Promise<void> {
    const snap = s as RemoteSnapshot;
    if (snap?.agent !== this.agent || typeof snap.snapshot !== "number")
      throw new BackendError(`agent ${this.agent}: restore() was given a snapshot of another learner`);
    await this.call("restore", { snapshot: snap.snapshot });
  }

  private call(op: string, body: Record<string, unknown>) {
    return this.client.request(op, { agent: this.agent, ...body });
  }

  /** A float64 array of the reply, checked: length S, finite, and ≤ 0 (log-probs) or ≥ 0 (divergences). */
  private values(
    r: Record<string, unknown>,
    op: string,
    field: string,
    S: number,
    kind: "logp" | "nonneg",
  ): Float64Array {
    const where = `${this.client.label}, agent ${this.agent}: ${op} returned`;
    let a: Float64Array;
    try {
      a = decodeF64(r[field], field, S);
    } catch (err) {
      throw new BackendError(`${where} a bad ${field} (${(err as Error).message})`);
    }
    for (let k = 0; k < a.length; k++) {
      const x = a[k];
      const bad = !Number.isFinite(x) || (kind === "logp" ? x > 0 : x < 0);
      if (bad)
        throw new BackendError(`${where} ${x} in ${field}[${k}] (state ${k}); the stage is not recorded`);
    }
    return a;
  }
}
