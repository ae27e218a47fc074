/** `sat swap`: plug-and-play replacement of one agent with a Stage-0 KL projection (sat-method §5). */
import type { CommandSpec } from "../command.js";
import { UsageError } from "../errors.js";
import { modelDirArg, teamCheckpointArg } from "../checkpoints.js";
import { runSwap } from "../../app/swap.js";
import { formatEvalTable } from "../../eval/evaluate.js";

export const swap: CommandSpec = {
  name: "swap",
  summary: "replace one agent by another model, projected into its trust region (Stage 0)",
  description:
    "Loads the team in --checkpoint, replaces agent --agent by the model in --with (same tokenizer, any size), " +
    "projected state by state into the KL ball of radius --delta0 around the agent it replaces, and evaluates " +
    "the team before and after. With --distill the new model is trained towards the projection on the states " +
    "the team visits and, if it passes the trust-region check, saved with the others to <output-dir>/team/, " +
    "ready for `sat train --set team.agent_checkpoints=[...]`.",
  flags: "run",
  configFromOption: "checkpoint",
  options: [
    { flags: "--checkpoint <path>", description: "team checkpoint (a directory with agent-<i>/)" },
    { flags: "--agent <i>", description: "index of the agent to replace" },
    {
      flags: "--with <model-dir>",
      description: "the replacement model (Hugging Face layout, same tokenizer)",
    },
    { flags: "--delta0 <kl>", description: "Stage-0 radius δ0 (swap.delta0; default algo.kl_radius)" },
    {
      flags: "--distill",
      description: "distil the projection into the new model so the incumbent can be dropped",
    },
  ],
  run: async (ctx) => {
    const o = ctx.options as {
      checkpoint?: string;
      agent?: string;
      with?: string;
      delta0?: string;
      distill?: boolean;
    };
    if (!o.checkpoint || o.agent === undefined || !o.with)
      throw new UsageError("swap needs --checkpoint <team>, --agent <i> and --with <model-dir>");
    const agent = Number(o.agent);
    if (!Number.isInteger(agent) || agent < 0)
      throw new UsageError(`--agent must be an agent index (0, 1, ...), got "${o.agent}"`);
    const team = teamCheckpointArg(o.checkpoint, "--checkpoint", ctx.warn);
    if (agent >= team.agents)
      throw new UsageError(`--agent ${agent}: the team in ${team.dir} has agents 0..${team.agents - 1}`);
    modelDirArg(o.with, "--with");
    const cfg = ctx.config!;
    const delta0 = o.delta0 === undefined ? (cfg.swap.delta0 ?? cfg.algo.kl_radius) : Number(o.delta0);
    if (!(delta0 > 0)) throw new UsageError(`--delta0 must be a positive number, got "${o.delta0}"`);
    const r = await runSwap(
      ctx.config!,
      () => ctx.openRunDir(),
      { checkpoint: team.dir, agent, replacement: o.with, delta0, distill: o.distill === true },
      ctx.progress,
    );
    ctx.out(formatEvalTable(r.evals));
    if (r.teamDir) ctx.out(`new team checkpoint: ${r.teamDir}`);
  },
};
