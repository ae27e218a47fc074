/** `sat bench`: throughput of the kernels, a training step and sampling on this machine (bench/). */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CommandSpec } from "../command.js";
import { RunError } from "../errors.js";

// dist/src/cli/commands/bench.js → dist/bench/run.js
const BENCH = fileURLToPath(new URL("../../../bench/run.js", import.meta.url));

export const bench: CommandSpec = {
  name: "bench",
  summary:
    "measure training, sampling and matmul throughput here, with PyTorch in the same run when available",
  description:
    "Runs the benchmark suite (bench/README.md): train tokens/s, KV-cache sampling tokens/s and a big matmul's " +
    "GFLOP/s for the bakeoff model and the small preset, on the WebAssembly kernels with 1 and 2 threads, and the " +
    "same workloads in PyTorch when a Python with torch is found ($SAT_BENCH_PYTHON). Prints one JSON object.",
  flags: "none",
  options: [
    { flags: "--quick", description: "a smoke run (~15 s)" },
    { flags: "--models <list>", description: "bakeoff,small,tiny" },
    { flags: "--out <file>", description: "also write the JSON report to this file" },
    { flags: "--no-torch", description: "skip the PyTorch reference" },
  ],
  run: async (ctx) => {
    if (!existsSync(BENCH))
      throw new RunError(
        `the benchmark suite is not built (${BENCH}); run \`npm run build\` in a source checkout`,
      );
    const args: string[] = [];
    if (ctx.options.quick) args.push("--quick");
    if (ctx.options.models) args.push("--models", String(ctx.options.models));
    if (ctx.options.out) args.push("--out", String(ctx.options.out));
    if (ctx.options.torch === false) args.push("--no-torch");
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [BENCH, ...args], { stdio: "inherit" });
      child.on("close", (c) => resolve(c ?? 1));
    });
    return code;
  },
};
