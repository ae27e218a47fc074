/** The command registry, in the order `sat --help` lists them. */
import type { CommandSpec } from "../command.js";
import { bench } from "./bench.js";
import { config } from "./config.js";
import { demo } from "./demo.js";
import { doctor } from "./doctor.js";
import { evalCommand } from "./eval.js";
import { exportCommand } from "./export.js";
import { pretrain } from "./pretrain.js";
import { report } from "./report.js";
import { serve } from "./serve.js";
import { swap } from "./swap.js";
import { tasks } from "./tasks.js";
import { train } from "./train.js";

export const COMMANDS: CommandSpec[] = [
  demo,
  pretrain,
  train,
  evalCommand,
  swap,
  exportCommand,
  report,
  serve,
  bench,
  tasks,
  config,
  doctor,
];
