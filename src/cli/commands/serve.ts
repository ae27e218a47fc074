/** `sat serve`: our agents behind an OpenAI-compatible completions API (the rollout server of backend.rollout_url). */
import { existsSync, mkdirSync } from "node:fs";
import type { CommandSpec } from "../command.js";
import { UsageError } from "../errors.js";
import { modelDirArg, teamCheckpointArg } from "../checkpoints.js";
import { runServe } from "../../app/serve.js";

function intOption(v: unknown, flag: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} must be an integer in [${min}, ${max}], got ${String(v)}`);
  return n;
}

export const serve: CommandSpec = {
  name: "serve",
  summary: "serve a team's agents over an OpenAI-compatible API (rollouts through backend.rollout_url)",
  description:
    "Serves the agents of a team checkpoint (--checkpoint) or model directories (--agent) at " +
    "/v1/models and /v1/completions (token-id prompts, stop_token_ids, logprobs, temperature, top_p, seed), " +
    "each under the name backend.rollout_model gives it (agent-{agent}@v{version}; versions from the checkpoint). " +
    "With --load-dir, /v1/load_lora_adapter loads new versions published there by a training run. Stops on Ctrl-C.",
  flags: "config",
  options: [
    {
      flags: "--checkpoint <path>",
      description: "team checkpoint (or run directory: its newest checkpoint)",
    },
    {
      flags: "--agent <dirs...>",
      description: "model directories served as agents 0, 1, … at version 0",
    },
    {
      flags: "--host <host>",
      description: "address to listen on (loopback by default)",
      default: "127.0.0.1",
    },
    { flags: "--port <n>", description: "port; 0 = any free port", default: "8000" },
    {
      flags: "--load-dir <dir>",
      description:
        "directory whose model directories may be loaded at run time (backend.rollout_publish_dir)",
    },
    { flags: "--max-batch <n>", description: "most sequences decoded in one batch", default: "64" },
  ],
  run: async (ctx) => {
    const o = ctx.options;
    const agents = ((o.agent as string[] | string | undefined) ?? []) as string[] | string;
    const agentList = (Array.isArray(agents) ? agents : [agents]).map((d) => modelDirArg(d, "--agent"));
    const checkpoint = o.checkpoint ? teamCheckpointArg(o.checkpoint as string, "--checkpoint").dir : null;
    if (!checkpoint && agentList.length === 0)
      throw new UsageError(
        "serve needs --checkpoint <team checkpoint or run> or at least one --agent <model dir>",
      );
    if (checkpoint && agentList.length > 0)
      throw new UsageError("--checkpoint and --agent contradict each other; give one");
    const loadDir = (o.loadDir as string | undefined) ?? null;
    if (loadDir && !existsSync(loadDir)) mkdirSync(loadDir, { recursive: true });
    await runServe(
      ctx.config!,
      {
        checkpoint,
        agents: agentList,
        host: o.host as string,
        port: intOption(o.port, "--port", 0, 65535),
        loadDir,
        maxBatch: intOption(o.maxBatch, "--max-batch", 1, 4096),
      },
      ctx.signal,
      (server) => ctx.out(`sat serve: listening on ${server.url}, serving ${server.names().join(", ")}`),
      (line) => ctx.progress.log(`sat serve: ${line}`),
    );
  },
};
