/**
 * Peak memory of one SAT stage (scoring + every agent's update, trust-region check and
 * backtracking) on a Qwen3-shaped model with the real Qwen3 vocabulary size, random weights and a
 * fixed synthetic relay batch. Prints one JSON object: the shapes, the peak resident set size
 * (getrusage maxrss, whole process) and the stage's wall time.
 *
 *   npm run build && node dist/bench/vocab-memory.js [--layers 4] [--d-model 512] [--trajectories 8] [--wasm]
 *
 * One run per process: maxrss never goes down, so each measurement needs a fresh process.
 */
import { createEngine } from "../src/engine/engine.js";
import { Rng } from "../src/engine/rng.js";
import { validateModelConfig, type ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { countParams } from "../src/model/layout.js";
import { LmPolicy } from "../src/team/lm-policy.js";
import { defaultStageConfig, runStage, type Trajectory } from "../src/algorithm/index.js";

const QWEN3_VOCAB = 151_643;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

/** Qwen3 structure (q/k norm, grouped-query attention, tied embeddings, head_dim 64 or 128). */
export function qwen3Shaped(dModel: number, nLayers: number, vocabSize = QWEN3_VOCAB): ModelConfig {
  const headDim = dModel >= 1024 ? 128 : 64;
  const nHeads = Math.max(2, (2 * dModel) / headDim); // Qwen3-0.6B: 16 heads of 128 on d_model 1024
  return validateModelConfig({
    arch: "qwen3",
    vocabSize,
    dModel,
    nLayers,
    nHeads,
    nKvHeads: nHeads / 2,
    headDim,
    dFF: 3 * dModel,
    maxSeqLen: 4096,
    normEps: 1e-6,
    ropeTheta: 1_000_000,
    tiedEmbeddings: true,
    valueHead: false,
  });
}

/**
 * A relay batch: `groups` prompts × `groupSize` episodes, a `promptLen`-token prompt, then turns of
 * `turn` tokens alternating between the agents until `completion` tokens.
 */
function relayBatch(
  rng: Rng,
  V: number,
  nAgents: number,
  groups: number,
  groupSize: number,
  promptLen: number,
  completion: number,
  turn: number,
): Trajectory[] {
  const out: Trajectory[] = [];
  for (let g = 0; g < groups; g++)
    for (let e = 0; e < groupSize; e++) {
      const L = promptLen + completion;
      const tokens = Int32Array.from({ length: L }, () => rng.int(V));
      const owner = Int8Array.from({ length: L }, (_, t) =>
        t < promptLen ? -1 : Math.floor((t - promptLen) / turn) % nAgents,
      );
      out.push({
        promptId: g,
        groupId: g,
        tokens,
        owner,
        behaviourLogp: new Float64Array(L),
        ownerVersion: new Int32Array(L),
        reward: rng.int(2),
        answer: null,
        truncated: false,
      });
    }
  return out;
}

async function main(): Promise<void> {
  const dModel = arg("d-model", 512);
  const nLayers = arg("layers", 4);
  const nTraj = arg("trajectories", 8);
  const groupSize = 4;
  const promptLen = 32;
  const completion = 96;
  const turn = 24;
  const nAgents = 2;
  const cfg = qwen3Shaped(dModel, nLayers);
  const impl = process.argv.includes("--wasm") ? "wasm" : undefined; // default: the best tier present
  const engine = await createEngine({ threads: 2, impl });
  const rng = new Rng(1);
  const optim = { lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
  const team = Array.from(
    { length: nAgents },
    (_, a) => new LmPolicy(new Transformer(cfg, engine, rng.fork(`init/${a}`)), 1, optim),
  );
  const batch = relayBatch(
    rng,
    cfg.vocabSize,
    nAgents,
    nTraj / groupSize,
    groupSize,
    promptLen,
    completion,
    turn,
  );
  const { algo: _algo, ...stage } = defaultStageConfig(nAgents, {
    promptsPerStage: nTraj / groupSize,
    epochs: 1,
    miniBatchGroups: 1,
    maxBacktracks: 2,
    order: "static",
  });
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const rec = await runStage({
    team,
    collect: () => batch,
    config: { algo: "sat", ...stage },
    klCoef: [0.1, 0.1],
    rng: rng.fork("stage"),
    step: 0,
  });
  const seconds = (performance.now() - t0) / 1000;
  await engine.close();
  const states = batch.reduce((s, t) => s + t.owner.filter((o) => o >= 0).length, 0);
  console.log(
    JSON.stringify({
      engine: `${engine.impl}${engine.isa ? ` ${engine.isa}` : ""}`,
      model: { ...cfg, params: countParams(team[0].model.layout) },
      batch: { trajectories: nTraj, tokens: promptLen + completion, agents: nAgents, states },
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      rss_before_stage_mb: Math.round(rssBefore / 2 ** 20),
      stage_seconds: Math.round(seconds * 10) / 10,
      candidates_tried: rec.agents.map((a) => a.candidatesTried),
    }),
  );
}

main().catch((err) => {
  console.error(`vocab-memory: ${(err as Error).message}`);
  process.exit(1);
});
