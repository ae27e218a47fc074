/** `sat eval`: pass@k / maj@k / avg@k of a team checkpoint on the held-out split. */
import type { CommandSpec } from "../command.js";
import { UsageError } from "../errors.js";
import { modelDirArg, teamCheckpointArg } from "../checkpoints.js";
import { modelWeightsPath } from "../../model/checkpoint.js";
import { runEval } from "../../app/evaluate.js";
import { formatEvalTable } from "../../eval/evaluate.js";

export const evalCommand: CommandSpec = {
  name: "eval",
  summary: "evaluate a team checkpoint on the held-out split (eval.*)",
  description:
    "Samples eval.n team completions for eval.n_prompts test prompts and appends avg@k, pass@k and maj@k " +
    "(with bootstrap intervals) and per-agent solo accuracy to eval.jsonl. With --baseline, also a single " +
    "model at a matched sample budget (one model with n·K samples against a team of n agents with K).",
  flags: "run",
  configFromOption: "checkpoint",
  options: [
    {
      flags: "--checkpoint <path>",
      description: "team checkpoint (or run directory: its newest checkpoint) to evaluate",
    },
    {
      flags: "--baseline <path>",
      description: "single-model checkpoint evaluated at a matched sample budget",
    },
    { flags: "--name <name>", description: "row name in eval.jsonl", default: "team" },
  ],
  run: async (ctx) => {
    const checkpoint = ctx.options.checkpoint as string | undefined;
    if (!checkpoint) throw new UsageError("eval needs --checkpoint <team checkpoint or run directory>");
    const team = teamCheckpointArg(checkpoint, "--checkpoint", ctx.warn).dir;
    let baseline = ctx.options.baseline as string | undefined;
    if (baseline !== undefined) {
      baseline = modelWeightsPath(baseline)
        ? modelDirArg(baseline, "--baseline")
        : teamCheckpointArg(baseline, "--baseline", ctx.warn).dir;
    }
    const results = await runEval(
      ctx.config!,
      () => ctx.openRunDir(),
      { checkpoint: team, name: ctx.options.name as string, baseline },
      ctx.progress,
    );
    ctx.out(formatEvalTable(results));
  },
};
