/** `sat doctor`: the engine's kernels and what the PyTorch backend finds here (app/doctor.ts). */
import type { CommandSpec } from "../command.js";
import { doctorReport, formatDoctor } from "../../app/doctor.js";

export const doctor: CommandSpec = {
  name: "doctor",
  summary: "check this machine: engine kernels, Python, torch, transformers, peft, ray, CUDA and GPUs",
  description:
    "Reports the engine's kernel tier and, for model.backend=torch, the Python interpreter the workers " +
    "would use ($SAT_PYTHON, ./.venv/bin/python, python3, or backend.torch_python), the versions of its " +
    "packages against python/requirements.txt, CUDA and the GPUs torch sees, and for each missing piece " +
    "the command that installs it. --json prints the report as one JSON object.",
  flags: "config",
  run: async (ctx) => {
    const report = await doctorReport(ctx.config!);
    ctx.out(ctx.flags.json ? JSON.stringify(report) : formatDoctor(report));
  },
};
