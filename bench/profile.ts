/**
 * Where the time of a training step and of a sampling round goes, on any kernel tier: the model
 * runs on a timing wrapper of its op table (TimedOps), so every op is timed in place, at the
 * model's real shapes and with the caches as the step leaves them. The linear layers are keyed by
 * shape (M×N×K of the product) with their GFLOP/s. The phases of a step (zero_grad, forward, loss,
 * backward, optimizer) are timed around the op calls; what no op accounts for (JS between ops,
 * buffer views, the loss sum) is `unattributed_ms`.
 */
import { Rng } from "../src/engine/rng.js";
import type { ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { Decoder } from "../src/model/generate.js";
import type { BenchEngine } from "./engine.js";
import { TimedOps, median, now, type OpStats } from "./timing.js";
import { PHASES, TrainStep, sampleRound, type BenchSettings, type Phase } from "./workloads.js";

export interface OpProfile {
  op: string;
  calls: number;
  ms: number;
  /** Share of the step (or round). */
  share: number;
  /** Linear layers only: GFLOP/s of the op (its gemms plus the bias work). */
  gflops: number | null;
}

export interface Profile {
  model: string;
  engine: string;
  steps: number;
  step_ms: number;
  /** Median phase times; their sum is step_ms. */
  phases: Record<Phase, number>;
  /** Per op, per step (means over the profiled steps), slowest first. */
  ops: OpProfile[];
  /** Linear layers' share of the step (their gemms and bias work). */
  linear_share: number;
  unattributed_ms: number;
  sample: {
    round_ms: number;
    /** softmax + draw per sequence and step (sampleToken). */
    sampling_ms: number;
    ops: OpProfile[];
    unattributed_ms: number;
  };
}

function opProfiles(stats: OpStats[], per: number, total: number): OpProfile[] {
  return stats.map((s) => ({
    op: s.op,
    calls: s.calls / per,
    ms: s.ms / per,
    share: s.ms / per / total,
    gflops: s.flops > 0 ? (s.flops * s.calls) / (s.ms * 1e6) : null,
  }));
}

/** Profiles `profileSteps` training steps (after `warmupSteps`) and one sampling round (after one warm-up). */
export function profileModel(
  be: BenchEngine,
  name: string,
  cfg: ModelConfig,
  s: BenchSettings,
  clock: () => number = now,
): Profile {
  const timed = new TimedOps(be.engine.ops, clock);
  const engine = be.withOps(timed.ops);
  const rng = new Rng(s.seed);
  const model = new Transformer(cfg, engine, rng.fork("init"));
  const step = new TrainStep(model, s.batch, s.seq, rng.fork("data"), s.lr);
  timed.enabled = false;
  for (let i = 0; i < s.warmupSteps; i++) step.run();
  timed.enabled = true;
  timed.take();
  const phaseRuns: Record<Phase, number[]> = {
    zero_grad: [],
    forward: [],
    loss: [],
    backward: [],
    optimizer: [],
  };
  for (let i = 0; i < s.profileSteps; i++) {
    let t = clock();
    step.run((phase) => {
      const t1 = clock();
      phaseRuns[phase].push(t1 - t);
      t = t1;
    });
  }
  const stats = timed.take();
  const phases = {} as Record<Phase, number>;
  let stepMs = 0;
  for (const p of PHASES) stepMs += phases[p] = median(phaseRuns[p]);
  const ops = opProfiles(stats, s.profileSteps, stepMs);
  const opsMs = ops.reduce((a, o) => a + o.ms, 0);

  const dec = new Decoder(model, s.sampleSequences, s.sampleSteps);
  const sampler = rng.fork("sample");
  timed.enabled = false;
  sampleRound(dec, s.sampleSteps, sampler, clock);
  timed.enabled = true;
  timed.take();
  const r = sampleRound(dec, s.sampleSteps, sampler, clock);
  const decodeOps = opProfiles(timed.take(), 1, r.ms);
  return {
    model: name,
    engine: be.label,
    steps: s.profileSteps,
    step_ms: stepMs,
    phases,
    ops,
    linear_share: ops.filter((o) => o.op.startsWith("linear")).reduce((a, o) => a + o.share, 0),
    unattributed_ms: stepMs - opsMs,
    sample: {
      round_ms: r.ms,
      sampling_ms: r.samplingMs,
      ops: decodeOps,
      // sampleRow (native) runs inside sampleToken: already in sampling_ms.
      unattributed_ms:
        r.ms - r.samplingMs - decodeOps.filter((o) => o.op !== "sampleRow").reduce((a, o) => a + o.ms, 0),
    },
  };
}
