/** `sat export`: a model directory as a GGUF file (llama.cpp) or a Hugging Face directory. */
import type { CommandSpec } from "../command.js";
import { UsageError } from "../errors.js";
import { modelDirArg } from "../checkpoints.js";
import { exportModel, type ExportFormat } from "../../app/export.js";
import type { GgufDtype } from "../../model/gguf-export.js";

export const exportCommand: CommandSpec = {
  name: "export",
  summary: "write a model as GGUF (llama.cpp, f32/f16) or as a Hugging Face safetensors directory",
  description:
    "Loads <model-dir> (config.json, model.safetensors or its shards, tokenizer.json) as training does and " +
    "writes it for other tools: --format gguf gives one file llama.cpp and node-llama-cpp run (GPT-2, Llama, " +
    "Mistral, Qwen2, Qwen3 layouts; byte-level BPE or character vocabularies); --format safetensors gives a " +
    "Hugging Face directory (model.safetensors, config.json and the tokenizer files). --dtype f16 halves the " +
    "size (matrices in half precision; GGUF keeps norms and biases in f32).",
  args: [{ syntax: "<model-dir>", description: "the model directory (e.g. <run>/final/agent-0)" }],
  flags: "none",
  options: [
    { flags: "--format <format>", description: "gguf or safetensors", default: "gguf" },
    { flags: "--dtype <dtype>", description: "f32 or f16", default: "f32" },
    { flags: "--out <path>", description: "GGUF: the file to write; safetensors: the directory" },
    { flags: "--name <name>", description: "GGUF general.name (default: the directory's name)" },
    { flags: "--force", description: "replace an existing --out" },
  ],
  run: (ctx) => {
    const o = ctx.options as { format: string; dtype: string; out?: string; name?: string; force?: boolean };
    if (o.format !== "gguf" && o.format !== "safetensors")
      throw new UsageError(`--format ${o.format}: expected gguf or safetensors`);
    if (o.dtype !== "f32" && o.dtype !== "f16")
      throw new UsageError(`--dtype ${o.dtype}: expected f32 or f16`);
    if (!o.out)
      throw new UsageError(`export needs --out <${o.format === "gguf" ? "file.gguf" : "directory"}>`);
    const modelDir = modelDirArg(ctx.args[0], "<model-dir>");
    const r = exportModel({
      modelDir,
      format: o.format as ExportFormat,
      dtype: o.dtype as GgufDtype,
      out: o.out,
      name: o.name,
      force: o.force === true,
    });
    if (ctx.flags.json) ctx.out(JSON.stringify(r));
    else
      ctx.out(
        `${o.format} (${o.dtype}, ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB): ${r.path}`,
      );
  },
};
