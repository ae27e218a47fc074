/** `sat train`: SAT stages on a team (or the baseline named by algo.name). */
import type { CommandSpec } from "../command.js";
import { runTrain } from "../../app/train.js";

export const train: CommandSpec = {
  name: "train",
  summary: "train a team with SAT (or the baseline named by algo.name)",
  description:
    "Runs run.max_steps stages: rollout, update order, sequential trust-region updates, evaluation " +
    "every eval.steps stages and checkpoints every run.save_steps, all logged to the run directory " +
    "(stages.jsonl, eval.jsonl, checkpoints/stage-K/). --resume continues a killed run from its last " +
    "complete checkpoint with identical results.",
  flags: "run",
  run: async (ctx) => {
    // Opened once the team has loaded and the resume checkpoint fits it, so a refusal changes nothing.
    const r = await runTrain(
      ctx.config!,
      (onResume) => ctx.openRunDir({ onResume }),
      ctx.progress,
      ctx.signal,
    );
    ctx.out(`${r.steps} stages in ${r.seconds.toFixed(0)} s; final checkpoint: ${r.finalDir}`);
  },
};
