/**
 * Power analysis of the per-stage monotonicity test (the paired held-out interval, cert/improvement):
 * how many held-out prompts, and how many samples each, make the test detect a true drop of 0.02
 * in team accuracy with 80% power (one-sided 2.5%: the 95% interval lies below 0).
 *
 * Pilot: SAT (checked trust region) and joint (no trust region) from the experiments' nano start,
 * on a training seed the ablations do not use, with two measurement designs of equal cost per stage
 * (P prompts × m samples: 256 × 2 and 64 × 8). Training does not depend on the design (the held-out
 * rollouts have their own random streams), so both designs measure the same stages. Per stage the
 * per-prompt standard deviation of the paired differences is σ = se·√P. With σ₉₀ the 90th percentile
 * over the pilot's stages, P = ⌈((z_{0.975} + z_{0.8})·σ₉₀/0.02)²⌉; the design with the smaller cost
 * P·m is chosen and written to results/power.json, which the ablation and certificate experiments
 * read.
 *
 *   node dist/experiments/power.js [--quick] [--reuse]
 */
import { log, parseArgs, round, trainRun, readResult } from "./lib.js";
import {
  N_AGENTS,
  pretrainBase,
  scaleOf,
  stageSummaries,
  stagesOf,
  trainSets,
  writeOutputs,
} from "./mini.js";
import { promptsForPower, quantile, Z975 } from "./stats.js";
import type { ExperimentTable } from "../src/report/experiment.js";

export const EXPERIMENT = "power";
export const DROP = 0.02;
export const POWER = 0.8;
const PILOT_SEED = 101;
/** Cap on held-out prompts per stage (each stage rolls them out twice; the test split holds thousands). */
const MAX_PROMPTS = 1024;

export interface PowerChoice {
  cert_prompts: number;
  cert_samples: number;
  sigma: number;
  drop: number;
  power: number;
}

/** The held-out design the experiments use: results/power.json of this script. */
export function readPowerChoice(): PowerChoice {
  let r: Record<string, unknown>;
  try {
    r = readResult(`${EXPERIMENT}.json`);
  } catch {
    throw new Error(
      "no results/power.json: run the power analysis first (node dist/experiments/power.js, same --quick and --results-dir)",
    );
  }
  return r.choice as PowerChoice;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), {
    seeds: [PILOT_SEED],
    stages: 10,
    evalPrompts: 400,
    evalN: 8,
  });
  const scale = scaleOf(args);
  const stages = args.explicit.has("--stages") ? args.stages : args.quick ? 2 : 10;
  const designs: [number, number][] = args.quick
    ? [
        [8, 1],
        [2, 4],
      ]
    : [
        [256, 2],
        [64, 8],
      ];
  const t0 = performance.now();
  const base = pretrainBase("nano", 1, scale, args.reuse);
  const agents = Array(N_AGENTS).fill(base.dirs[0]) as string[];
  const arms = [
    { name: "sat", sets: [] as string[] },
    { name: "joint", sets: ["algo.name=joint"] },
  ];
  const rows: Record<string, unknown>[] = [];
  for (const arm of arms)
    for (const [P, m] of designs) {
      const run = trainRun(
        EXPERIMENT,
        `${arm.name}-p${P}-m${m}`,
        [
          ...trainSets(scale, PILOT_SEED, agents, stages),
          ...arm.sets,
          `algo.cert_prompts=${P}`,
          `algo.cert_samples=${m}`,
        ],
        args.reuse,
      );
      for (const s of stageSummaries(stagesOf(run.dir), { arm: arm.name, prompts: P, samples: m }))
        if (s.se !== null) rows.push({ ...s, sigma: (s.se as number) * Math.sqrt(P) });
      log(`${arm.name}, ${P} prompts × ${m} samples: ${run.trainSeconds.toFixed(0)} s`);
    }
  const summary = designs.map(([P, m]) => {
    // Stages where the team did not change at all (every update null) have σ = 0 and say nothing.
    const sig = rows.filter((r) => r.prompts === P && (r.sigma as number) > 0).map((r) => r.sigma as number);
    if (sig.length === 0)
      return {
        prompts: P,
        samples: m,
        stages: 0,
        sigma_median: null,
        sigma_q90: null,
        prompts_needed: null,
        episodes_per_side: null,
      };
    const s90 = quantile(sig, 0.9);
    const need = promptsForPower(s90, DROP, POWER);
    return {
      prompts: P,
      samples: m,
      stages: sig.length,
      sigma_median: round(quantile(sig, 0.5)),
      sigma_q90: round(s90),
      prompts_needed: need,
      episodes_per_side: need * m,
    };
  });
  const sized = summary.filter((s) => s.prompts_needed !== null);
  const best = [...sized].sort((a, b) => a.episodes_per_side! - b.episodes_per_side!)[0];
  // Rounded up to a multiple of 16 prompts. Without a stage that changed the team (a quick run) σ is
  // unknown and the first pilot design is used as it is.
  const choice: PowerChoice = best
    ? {
        cert_prompts: Math.min(MAX_PROMPTS, Math.ceil(best.prompts_needed! / 16) * 16),
        cert_samples: best.samples,
        sigma: best.sigma_q90!,
        drop: DROP,
        power: POWER,
      }
    : { cert_prompts: designs[0][0], cert_samples: designs[0][1], sigma: NaN, drop: DROP, power: POWER };
  const seconds = (performance.now() - t0) / 1000;
  const table: ExperimentTable = {
    id: "designs",
    title: `Held-out prompts needed to detect a drop of ${DROP} with ${POWER * 100}% power`,
    caption:
      `σ: per-prompt standard deviation of the paired before/after differences (se·√P) over the pilot's stages ` +
      `(SAT and joint, ${stages} stages each). Needed prompts = ⌈((z₀.₉₇₅ + z₀.₈)·σ₉₀/${DROP})²⌉ with ` +
      `z₀.₉₇₅ = ${Z975.toFixed(3)}; cost = episodes per side. Chosen: ${choice.cert_prompts} prompts × ` +
      `${choice.cert_samples} samples (the cheaper design, rounded up to a multiple of 16, at most ${MAX_PROMPTS}).`,
    columns: [
      "pilot design",
      "stages",
      "σ median",
      "σ 90th percentile",
      "prompts needed",
      "episodes per side",
    ],
    rows: summary.map((s) => [
      `${s.prompts} × ${s.samples}`,
      s.stages,
      s.sigma_median,
      s.sigma_q90,
      s.prompts_needed,
      s.episodes_per_side,
    ]),
    chart: { mark: "bar", x: "pilot design", y: "episodes per side" },
  };
  writeOutputs(EXPERIMENT, {
    experiment: EXPERIMENT,
    scale: scale.name,
    command: `node dist/experiments/${EXPERIMENT}.js ${process.argv.slice(2).join(" ")}`.trim(),
    seconds: round(seconds, 0),
    pilot: { seed: PILOT_SEED, stages, arms: arms.map((a) => a.name), designs },
    summary,
    choice,
    stages: rows,
    tables: [table],
  });
  log(
    `chosen: ${choice.cert_prompts} held-out prompts × ${choice.cert_samples} samples (${seconds.toFixed(0)} s)`,
  );
}

if (process.argv[1]?.endsWith(`${EXPERIMENT}.js`))
  main().catch((err: Error) => {
    process.stderr.write(`${EXPERIMENT}: ${err.message}\n`);
    process.exit(1);
  });
