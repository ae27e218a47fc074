/** `sat report`: the HTML report, built only from the files of a run directory. */
import type { CommandSpec } from "../command.js";
import { writeReport } from "../../report/html.js";

export const report: CommandSpec = {
  name: "report",
  summary: "write report.html (self-contained, charts as inline SVG) from a run directory",
  args: [{ syntax: "<run-dir>", description: "the run directory to report on" }],
  flags: "none",
  options: [
    { flags: "--out <file>", description: "where to write the report (default <run-dir>/report.html)" },
  ],
  run: async (ctx) => {
    const path = await writeReport(ctx.args[0], ctx.options.out as string | undefined);
    ctx.out(`report: ${path}`);
  },
};
