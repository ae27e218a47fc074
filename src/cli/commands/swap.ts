/** `sat swap`: plug-and-play replacement of one agent with a Stage-0 KL projection (sat-method §5). */
import type { CommandSpec } from "../command.js";
import { notImplemented } from "../errors.js";

export const swap: CommandSpec = {
  name: "swap",
  summary: "replace one agent by another model, projected into its trust region (Stage 0)",
  flags: "run",
  options: [
    { flags: "--agent <i>", description: "index of the agent to replace" },
    { flags: "--with <checkpoint>", description: "checkpoint of the replacement model" },
  ],
  run: () => {
    throw notImplemented("swap", "the Stage-0 projection (src/algorithm/)");
  },
};
