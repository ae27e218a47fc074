/** `sat demo`: a few-minute end-to-end run (pretrain, a few SAT stages, evaluation, report). */
import type { CommandSpec } from "../command.js";
import { notImplemented } from "../errors.js";

export const demo: CommandSpec = {
  name: "demo",
  summary: "a small end-to-end run: pretrain a nano team, run a few SAT stages, evaluate, report",
  flags: "run",
  run: () => {
    throw notImplemented("demo", "pretraining, the SAT trainer and the report");
  },
};
