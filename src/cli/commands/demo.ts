/** `sat demo`: a few-minute end-to-end run (pretrain, a few SAT stages, baseline, evaluation, report). */
import type { CommandSpec } from "../command.js";
import { DEMO_DEFAULTS, runDemo } from "../../app/demo.js";

function flatten(obj: Record<string, unknown>, prefix = ""): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === "object" && !Array.isArray(v))
      Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = v;
  }
  return out;
}

export const demo: CommandSpec = {
  name: "demo",
  summary:
    "end to end in a few minutes: pretrain a nano base agent, train a team with SAT, compare with a single model, report",
  description:
    "Pretrains a nano base agent on the default task (cached under runs/.cache), trains a team of " +
    "team.n_agents copies with SAT for run.max_steps stages, trains one copy alone with GRPO for the same " +
    "stages, evaluates the starting team, the SAT team and the single model at a matched sample budget on " +
    "the same held-out prompts, and writes report.html. Any config key can be changed with --set.",
  flags: "run",
  defaults: flatten(DEMO_DEFAULTS),
  run: async (ctx) => {
    const run = ctx.openRunDir();
    const r = await runDemo(ctx.config!, run, ctx.progress, ctx.signal);
    ctx.out(`demo finished in ${r.seconds.toFixed(0)} s`);
    ctx.out(`report: ${r.reportPath}`);
  },
};
