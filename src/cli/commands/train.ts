/** `sat train`: SAT stages on a team (or a baseline algorithm, algo.name). */
import type { CommandSpec } from "../command.js";
import { notImplemented } from "../errors.js";

export const train: CommandSpec = {
  name: "train",
  summary: "train a team with SAT (or the baseline named by algo.name)",
  description:
    "Runs run.max_steps stages: rollout, update order, sequential trust-region updates, evaluation " +
    "every eval.steps stages and checkpoints every run.save_steps, all logged to the run directory.",
  flags: "run",
  run: () => {
    throw notImplemented("train", "the SAT trainer (src/algorithm/)");
  },
};
