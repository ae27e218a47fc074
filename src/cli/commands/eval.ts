/** `sat eval`: pass@k / maj@k / avg@k of a team checkpoint on the held-out split. */
import type { CommandSpec } from "../command.js";
import { notImplemented } from "../errors.js";

export const evalCommand: CommandSpec = {
  name: "eval",
  summary: "evaluate a team checkpoint on the held-out split (eval.*)",
  description:
    "Samples eval.n completions for eval.n_prompts test prompts and appends pass@k, maj@k and avg@k to eval.jsonl.",
  flags: "run",
  options: [
    {
      flags: "--checkpoint <path>",
      description: "team checkpoint to evaluate (default: the newest in the output dir)",
    },
  ],
  run: () => {
    throw notImplemented("eval", "team evaluation (src/eval/)");
  },
};
