/** `sat report`: markdown/HTML report built only from the files of a run directory. */
import type { CommandSpec } from "../command.js";
import { notImplemented } from "../errors.js";

export const report: CommandSpec = {
  name: "report",
  summary: "write report.md / report.html from a run directory",
  args: [{ syntax: "<run-dir>", description: "the run directory to report on" }],
  flags: "none",
  options: [{ flags: "--format <fmt>", description: "md or html", default: "md" }],
  run: () => {
    throw notImplemented("report", "the report builder (src/report/)");
  },
};
