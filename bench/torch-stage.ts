/**
 * The per-stage cost of SAT on the two backends, measured on this machine's CPU, for the cost model
 * of docs/scale-out.md. A stage is timed by part from its record: the training rollout
 * (`timing_s/gen`, per generated token), each agent's update (`timing_s/update_actor` minus its
 * trust-region check, per state and epoch) and the check (`timing_s/backtrack`, per state and
 * candidate). Models: the char agent and random Qwen3-shaped models of growing width (64-token
 * vocabulary, so they run on both backends). The first stage of each run is a warm-up and is
 * left out.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/torch-stage.js [--stages 3] [--widths 64,256] [--out f.json]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createEngine } from "../src/engine/engine.js";
import { loadModel } from "../src/model/checkpoint.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { defaultStageConfig, runStage, type StageRecord } from "../src/algorithm/index.js";
import { getTask } from "../src/tasks/index.js";
import { TeamTrainer, type TeamTrainOptions } from "../src/train/team.js";
import { TorchTeam } from "../src/backend/torch/team.js";
import { PYTHON_DIR } from "../src/backend/torch/client.js";
import { findPython } from "../src/io/python.js";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const STAGES = Number(arg("stages", "3"));
const WIDTHS = arg("widths", "64,256").split(",").map(Number);
const OUT = arg("out", "");
const PROMPTS = 8;
const G = 4;
const EPOCHS = 2;

const tok = new CharTokenizer();
const optim = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
const options: TeamTrainOptions = {
  stage: defaultStageConfig(3, { promptsPerStage: PROMPTS, miniBatchGroups: PROMPTS / 2, epochs: EPOCHS }),
  rollout: {
    ...{ protocol: "relay", rounds: 1, maxTurnTokens: 12, maxCompletionLength: 40 },
    ...{ maxPromptLength: 16, temperature: 1, topP: 1 },
  },
  groupSize: G,
  klCoef: 0.1,
  optim,
  task: getTask("add"),
  difficulty: 2,
  heldOutPrompts: 0,
  seed: 3,
};

interface Row {
  model: string;
  params: number;
  backend: string;
  stageSeconds: number;
  genSecondsPerToken: number;
  updateSecondsPerStateEpoch: number;
  checkSecondsPerStateCandidate: number;
  generatedTokens: number;
  states: number;
  candidates: number;
}

function summarize(
  model: string,
  params: number,
  backend: string,
  records: { r: StageRecord; s: number }[],
): Row {
  const used = records.slice(1); // the first stage warms caches and imports
  let gen = 0;
  let tokens = 0;
  let upd = 0;
  let stateEpochs = 0;
  let check = 0;
  let stateCandidates = 0;
  let seconds = 0;
  let states = 0;
  let candidates = 0;
  for (const { r, s } of used) {
    seconds += s;
    gen += r.timing["timing_s/gen"] ?? 0;
    tokens += r.generatedTokens;
    for (const a of r.agents) {
      const c = a.timing["timing_s/backtrack"] ?? 0;
      upd += (a.timing["timing_s/update_actor"] ?? 0) - c;
      stateEpochs += a.numStates * EPOCHS;
      check += c;
      stateCandidates += a.numStates * a.candidatesTried;
      states += a.numStates;
      candidates += a.candidatesTried;
    }
  }
  const n = used.length;
  return {
    ...{ model, params, backend, stageSeconds: seconds / n },
    genSecondsPerToken: gen / tokens,
    updateSecondsPerStateEpoch: upd / stateEpochs,
    checkSecondsPerStateCandidate: check / stateCandidates,
    ...{ generatedTokens: tokens / n, states: states / n, candidates: candidates / n },
  };
}

async function stages(trainer: TeamTrainer) {
  const out: { r: StageRecord; s: number }[] = [];
  for (let i = 0; i < STAGES; i++) {
    const t0 = performance.now();
    const r = await runStage(trainer.stageInput());
    trainer.finishStage(r);
    out.push({ r, s: (performance.now() - t0) / 1000 });
  }
  return out;
}

async function main() {
  const probe = findPython(["torch", "transformers", "safetensors"]);
  if (!probe.ok) throw new Error(probe.reason);
  const dir = mkdtempSync(join(tmpdir(), "sat-stage-bench-"));
  const models: [string, string][] = [["char (GPT-2, d 32)", join(repo, "test/fixtures/agents/add2-tiny")]];
  for (const w of WIDTHS) {
    const out = join(dir, `qwen3-${w}`);
    const r = spawnSync(
      probe.python,
      ["-m", "sat_worker.random_model", "--arch", "qwen3", "--out", out, "--hidden", String(w)],
      ...[{ env: { ...process.env, PYTHONPATH: PYTHON_DIR }, encoding: "utf8" as const }],
    );
    if (r.status !== 0 || !existsSync(join(out, "config.json"))) throw new Error(r.stderr);
    models.push([`random Qwen3 (d ${w}, 2 layers)`, out]);
  }
  const rows: Row[] = [];
  try {
    for (const [name, path] of models) {
      const engine = await createEngine({ threads: 1 });
      const team3 = [0, 1, 2].map(() => loadModel(path, engine, tok));
      const params = team3[0].params.length;
      rows.push(
        summarize(
          name,
          params,
          "engine (wasm, 1 thread)",
          await stages(new TeamTrainer(team3, tok, options)),
        ),
      );
      await engine.close();
      const team = await TorchTeam.start(
        {
          ...{
            python: probe.python,
            launcher: "process",
            workers: "shared",
            device: "cpu",
            dtype: "float32",
          },
          ...{
            threads: 1,
            timeoutS: 600,
            startTimeoutS: 600,
            microBatchSize: 16,
            refCacheMb: 1024,
            lora: null,
          },
          ...{
            ray: { address: null, numCpus: 1, numGpus: 0, shipFiles: false },
            temperature: 1,
            optim,
            seed: 1,
          },
        },
        [0, 1, 2].map(() => ({ path })),
      );
      try {
        const agents = team.members.map((member, a) => ({ member, learner: team.learners[a] }));
        rows.push(
          summarize(
            name,
            params,
            "torch (CPU, 1 thread)",
            await stages(new TeamTrainer(agents, tok, options)),
          ),
        );
      } finally {
        await team.close();
      }
      process.stderr.write(`${name}: done\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const fmt = (x: number) => (x >= 0.01 ? x.toFixed(3) : x.toExponential(2));
  const lines = [
    `${STAGES - 1} timed stages each: 3 agents, relay, ${PROMPTS} prompts × ${G} episodes, ${EPOCHS} epochs × 2 minibatches`,
    "",
    "| model | params | backend | s/stage | rollout s/token | update s/(state·epoch) | check s/(state·candidate) | tokens | states | candidates |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.model} | ${r.params} | ${r.backend} | ${fmt(r.stageSeconds)} | ${fmt(r.genSecondsPerToken)} | ${fmt(r.updateSecondsPerStateEpoch)} | ${fmt(r.checkSecondsPerStateCandidate)} | ${r.generatedTokens.toFixed(0)} | ${r.states.toFixed(0)} | ${r.candidates.toFixed(1)} |`,
    ),
  ];
  process.stdout.write(lines.join("\n") + "\n");
  if (OUT)
    writeFileSync(OUT, JSON.stringify({ command: process.argv.slice(1).join(" "), rows }, null, 2) + "\n");
}

main().catch((err: Error) => {
  process.stderr.write(`torch-stage: ${err.message}\n`);
  process.exit(1);
});
