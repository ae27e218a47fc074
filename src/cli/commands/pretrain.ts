/** `sat pretrain`: supervised pretraining of base agents on worked solutions, before RL. */
import type { CommandSpec } from "../command.js";
import { runPretrain } from "../../app/pretrain.js";

export const pretrain: CommandSpec = {
  name: "pretrain",
  summary: "supervised pretraining of base agents on worked solutions (pretrain.*)",
  description:
    "Trains pretrain.agents base agents from scratch on the task's worked solutions until " +
    "pretrain.target_accuracy (held-out greedy accuracy) or pretrain.steps, leaving headroom for RL. " +
    "Writes <output-dir>/agents/agent-<i>/ (Hugging Face safetensors + config.json + tokenizer.json), " +
    "which `sat train --set team.agent_checkpoints=[...]` starts from. Checkpoints (run.save_steps, " +
    "run.save_interval_s, each finished agent, Ctrl-C) let --resume continue a killed run with identical results.",
  flags: "run",
  run: async (ctx) => {
    // Opened once the resume checkpoint is read, so a refused one leaves the run as it was.
    const r = await runPretrain(ctx.config!, (hooks) => ctx.openRunDir(hooks), ctx.progress, ctx.signal);
    r.agentDirs.forEach((d, i) =>
      ctx.out(`agent ${i}: held-out greedy accuracy ${(100 * r.accuracies[i]).toFixed(1)}% → ${d}`),
    );
    ctx.out(`pretraining took ${r.seconds.toFixed(0)} s`);
  },
};
