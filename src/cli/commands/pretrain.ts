/** `sat pretrain`: supervised pretraining of each agent on worked solutions, before RL. */
import type { CommandSpec } from "../command.js";
import { notImplemented } from "../errors.js";

export const pretrain: CommandSpec = {
  name: "pretrain",
  summary: "supervised pretraining of the agents on worked solutions (pretrain.*)",
  description:
    "Trains each agent from scratch on the task's worked solutions until pretrain.target_accuracy or " +
    "pretrain.steps, leaving headroom for RL; writes a checkpoint that `sat train` can start from.",
  flags: "run",
  run: () => {
    throw notImplemented("pretrain", "supervised pretraining (src/model/ + src/tasks/)");
  },
};
