/**
 * `sat serve`: serves a team checkpoint's agents (or given model directories) over the OpenAI
 * completions API (backend/serve/server.ts) under the names backend.rollout_model makes of them,
 * with each agent's policy version from the checkpoint's trainer state (0 for plain model dirs),
 * until the signal aborts.
 */
import { loadModel } from "../model/checkpoint.js";
import type { Transformer } from "../model/transformer.js";
import type { ResolvedConfig } from "../config/schema.js";
import { startServer, type RunningServer } from "../backend/serve/server.js";
import { agentDirsOf } from "./evaluate.js";
import { engineOf, teamTokenizer } from "./setup.js";
import { checkpointVersions } from "./train.js";

export interface ServeRequest {
  /** A team checkpoint dir (agent-<i>/ inside) or null. */
  checkpoint: string | null;
  /** Model directories served as agents 0, 1, … at version 0. */
  agents: string[];
  host: string;
  port: number;
  loadDir: string | null;
  maxBatch: number;
}

export async function runServe(
  cfg: ResolvedConfig,
  req: ServeRequest,
  signal: AbortSignal,
  onListening: (server: RunningServer) => void,
  log: (line: string) => void,
): Promise<void> {
  const dirs = req.checkpoint ? agentDirsOf(req.checkpoint) : req.agents;
  const tok = teamTokenizer(
    cfg,
    dirs.map((dir, a) => ({ label: req.checkpoint ? `--checkpoint agent-${a}` : `--agent ${dir}`, dir })),
  );
  const engine = await engineOf(cfg);
  try {
    const versions = req.checkpoint ? checkpointVersions(req.checkpoint, dirs.length) : dirs.map(() => 0);
    const models = new Map<string, Transformer>();
    dirs.forEach((d, a) => {
      const name = cfg.backend.rollout_model
        .replaceAll("{agent}", String(a))
        .replaceAll("{version}", String(versions[a]));
      if (models.has(name))
        throw new Error(`backend.rollout_model gives two agents the name ${name}; put {agent} in it`);
      models.set(name, loadModel(d, engine, tok));
    });
    const server = await startServer({
      engine,
      tok,
      models,
      host: req.host,
      port: req.port,
      loadRoot: req.loadDir,
      maxBatch: req.maxBatch,
      log,
    });
    onListening(server);
    if (!signal.aborted)
      await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
    await server.close();
  } finally {
    await engine.close();
  }
}
