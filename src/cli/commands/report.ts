/** `sat report`: the HTML report of a run directory, or of an experiment's results (a file or their directory). */
import type { CommandSpec } from "../command.js";
import { writeReport } from "../../report/html.js";
import { isExperimentPath, writeExperimentReport } from "../../report/experiment.js";

export const report: CommandSpec = {
  name: "report",
  summary:
    "write report.html (self-contained, charts as inline SVG) from a run directory or experiment results",
  args: [
    {
      syntax: "<path>",
      description:
        "a run directory, or an experiment's results file (experiments/results/<name>.json) or their directory",
    },
  ],
  flags: "none",
  options: [
    {
      flags: "--out <file>",
      description:
        "where to write the report (default <run-dir>/report.html, <results>.html beside a results file)",
    },
  ],
  run: async (ctx) => {
    const path = ctx.args[0];
    const out = ctx.options.out as string | undefined;
    const written = isExperimentPath(path)
      ? await writeExperimentReport(path, out)
      : await writeReport(path, out);
    ctx.out(`report: ${written}`);
  },
};
