/** `sat bench`: throughput of the kernels, a training step and sampling on this machine. */
import type { CommandSpec } from "../command.js";
import { notImplemented } from "../errors.js";

export const bench: CommandSpec = {
  name: "bench",
  summary: "measure kernel, training-step and sampling throughput on this machine",
  flags: "config",
  run: () => {
    throw notImplemented("bench", "the benchmark suite (bench/)");
  },
};
