/**
 * backend.rollout_* → remote team members: which agents a rollout server samples for, the client
 * (timeouts, retries, concurrency), the versioned served names, and, for agents trained here with
 * a publish dir, the publisher that hands each new version of the weights to the server.
 */
import type { ResolvedConfig } from "../config/schema.js";
import type { Transformer } from "../model/transformer.js";
import type { Tokenizer } from "../model/tokenizer.js";
import type { ModelMember } from "../team/member.js";
import { ServerClient } from "../backend/openai/client.js";
import { RemoteMember } from "../backend/openai/remote-member.js";
import { WeightPublisher } from "../backend/openai/publish.js";

export interface RolloutServer {
  client: ServerClient;
  cfg: ResolvedConfig["backend"];
  /** Whether agent `a` (of a team of `n`) samples on the server. */
  serves(a: number): boolean;
  modelName(agent: number, version: number): string;
}

/** The configured rollout server, or null for in-process sampling. */
export function rolloutServerOf(cfg: ResolvedConfig): RolloutServer | null {
  const b = cfg.backend;
  if (b.rollout_url === null) return null;
  const client = new ServerClient({
    url: b.rollout_url,
    timeoutSeconds: b.rollout_timeout_s,
    retries: b.rollout_retries,
    backoffSeconds: b.rollout_backoff_s,
    concurrency: b.rollout_concurrency,
    // Servers started with an API key (vLLM --api-key, llama.cpp --api-key) take it from here.
    apiKey: process.env.SAT_ROLLOUT_API_KEY || undefined,
  });
  const agents = new Set(b.rollout_agents);
  return {
    client,
    cfg: b,
    serves: (a) => agents.size === 0 || agents.has(a),
    modelName: (agent, version) =>
      b.rollout_model.replaceAll("{agent}", String(agent)).replaceAll("{version}", String(version)),
  };
}

/** A member sampling on `server` for agent `agent`, whose weights are `model` at `version()`. */
export function remoteMember(
  server: RolloutServer,
  agent: number,
  model: Transformer,
  tok: Tokenizer,
  version: () => number,
  /** false: the weights stay fixed (evaluation), nothing is published. */
  trained = true,
): RemoteMember {
  const modelName = (v: number) => server.modelName(agent, v);
  const publisher =
    !trained || server.cfg.rollout_publish_dir === null
      ? null
      : new WeightPublisher({
          client: server.client,
          dir: server.cfg.rollout_publish_dir,
          agent,
          modelName,
          model,
          tok,
          policyVersion: version,
        });
  const member = new RemoteMember({
    client: server.client,
    api: server.cfg.rollout_api,
    agent,
    vocabSize: model.cfg.vocabSize,
    maxSeqLen: model.cfg.maxSeqLen,
    modelName,
    publish: publisher ? () => publisher.publish() : undefined,
  });
  member.version = version();
  return member;
}

/** The TeamTrainer's `sampler` option for a configured server (undefined without one). */
export function samplerOf(cfg: ResolvedConfig, tok: Tokenizer) {
  const server = rolloutServerOf(cfg);
  if (!server) return undefined;
  return (agent: number, local: ModelMember, version: () => number) =>
    server.serves(agent) ? remoteMember(server, agent, local.model, tok, version) : null;
}

/** Stage-record fields that say how the rollouts were sampled (absent for in-process sampling). */
export function rolloutRecordOf(cfg: ResolvedConfig, nAgents: number): Record<string, unknown> {
  const server = rolloutServerOf(cfg);
  if (!server) return {};
  const served = [...Array(nAgents).keys()].filter((a) => server.serves(a));
  return {
    "rollout/server_agents": served,
    // Only sat serve samples with the run's uniforms; other servers draw their own numbers.
    "rollout/uniforms_honoured": cfg.backend.rollout_api === "sat" ? 1 : 0,
  };
}
