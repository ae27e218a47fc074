/**
 * What each server family wants in a turn request and returns in its reply. All of them take the
 * transcript as a list of token ids and sample up to `max_tokens` tokens; they differ in field
 * names, in how stop ids and token ids travel, and in which distribution their log-probs describe:
 *
 *   vllm     POST /v1/completions; stop_token_ids; token ids in `token_ids` (return_token_ids) or as
 *            "token_id:N" strings (return_tokens_as_token_ids); log-probs are those of the raw
 *            model unless the server runs with --logprobs-mode processed_logprobs (temperature and
 *            top-p applied), which sampling for training needs.
 *   sglang   POST /v1/completions; stop_token_ids, no_stop_trim; token ids in `token_ids`
 *            (return_token_ids); log-probs are log softmax(logits / temperature), without the top-p
 *            renormalisation (SGLANG_RETURN_ORIGINAL_LOGPROB=1 would drop the temperature: leave it unset).
 *   llamacpp POST /completion (the native endpoint: the OpenAI one returns no token ids); no stop ids
 *            (generation ends at the model's end-of-generation tokens or n_predict, and the client
 *            cuts the reply after the turn's first stop id); token ids in `tokens` (return_tokens);
 *            with post_sampling_probs the sampled token's probability after the sampler chain
 *            (`samplers` = temperature then top_p, our order).
 *   sat      `sat serve`: the vLLM shape plus `sat_uniforms`, the draws the in-process sampler would
 *            use, so the reply equals an in-process turn token for token.
 *
 * Every server samples with its own random numbers except `sat serve`: the turn's uniforms (see
 * contracts/member.ts) cannot be honoured, and a per-request seed (derived from them) is sent
 * instead, which makes a rollout repeatable only where the server honours seeds.
 */

export type RolloutApi = "vllm" | "sglang" | "llamacpp" | "sat";

/** One episode's turn as sent to the server. */
export interface TurnCall {
  model: string;
  prompt: ArrayLike<number>;
  maxTokens: number;
  /** Ids that end the turn (kept in the reply). */
  stop: readonly number[];
  temperature: number;
  topP: number;
  seed: number;
  /** Per-token uniforms (`sat` only). */
  uniforms?: ArrayLike<number>;
}

export interface HttpCall {
  path: string;
  body: Record<string, unknown>;
}

/** The request for one turn of one episode. */
export function turnRequest(api: RolloutApi, c: TurnCall): HttpCall {
  const prompt = Array.from(c.prompt);
  if (api === "llamacpp") {
    return {
      path: "/completion",
      body: {
        model: c.model,
        prompt,
        n_predict: c.maxTokens,
        temperature: c.temperature,
        top_p: c.topP,
        // Only temperature then top-p, as we sample; every other sampler off.
        samplers: ["temperature", "top_p"],
        top_k: 0,
        min_p: 0,
        typical_p: 1,
        repeat_penalty: 1,
        presence_penalty: 0,
        frequency_penalty: 0,
        dry_multiplier: 0,
        xtc_probability: 0,
        mirostat: 0,
        seed: c.seed,
        n_probs: 1,
        post_sampling_probs: true,
        return_tokens: true,
        cache_prompt: true,
        stream: false,
      },
    };
  }
  const body: Record<string, unknown> = {
    model: c.model,
    prompt,
    max_tokens: c.maxTokens,
    temperature: c.temperature,
    top_p: c.topP,
    // Neutral values, so a model's generation_config defaults do not change the distribution.
    top_k: -1,
    min_p: 0,
    repetition_penalty: 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    n: 1,
    seed: c.seed,
    logprobs: 1,
    stop_token_ids: [...c.stop],
    // The model's own end-of-sequence token ends a turn only when it is one of our stop ids.
    ignore_eos: true,
    skip_special_tokens: false,
    return_token_ids: true,
    stream: false,
  };
  if (api === "vllm") {
    body.include_stop_str_in_output = true;
    body.return_tokens_as_token_ids = true;
  } else if (api === "sglang") {
    body.no_stop_trim = true;
  } else {
    body.return_tokens_as_token_ids = true;
    if (c.uniforms) body.sat_uniforms = Array.from(c.uniforms);
  }
  return { path: "/v1/completions", body };
}

/** What a reply holds once read: sampled ids, their log-probs, the model that answered. */
export interface TurnReply {
  model: unknown;
  tokens: unknown[];
  logp: unknown[];
  /** The server says it stopped on its own (not at the token cap). */
  stopped: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Reads a reply's fields; throws a short problem text when its shape is not the documented one. */
export function readReply(api: RolloutApi, json: unknown): TurnReply {
  if (!isObject(json)) throw new Error("the reply is not a JSON object");
  if (api === "llamacpp") {
    const probs = json.completion_probabilities ?? json.probs;
    const ids = json.tokens;
    if (!Array.isArray(ids)) throw new Error("the reply has no `tokens` list (return_tokens)");
    if (!Array.isArray(probs))
      throw new Error("the reply has no `completion_probabilities` list (n_probs, post_sampling_probs)");
    const logp = probs.map((p, j) => {
      if (!isObject(p)) throw new Error(`completion_probabilities[${j}] is not an object`);
      if (p.id !== ids[j])
        throw new Error(
          `completion_probabilities[${j}] is for token ${String(p.id)}, tokens[${j}] is ${String(ids[j])}`,
        );
      if (typeof p.prob === "number") return p.prob > 0 ? Math.log(p.prob) : Number.NEGATIVE_INFINITY;
      return p.logprob ?? null;
    });
    return { model: json.model, tokens: ids as unknown[], logp, stopped: json.stop_type !== "limit" };
  }
  const choices = json.choices;
  if (!Array.isArray(choices) || choices.length !== 1)
    throw new Error(
      `the reply needs exactly one choice, it has ${Array.isArray(choices) ? choices.length : "none"}`,
    );
  const choice = choices[0];
  if (!isObject(choice)) throw new Error("choices[0] is not an object");
  const lp = choice.logprobs;
  if (!isObject(lp) || !Array.isArray(lp.token_logprobs))
    throw new Error("choices[0] has no logprobs.token_logprobs (logprobs were requested)");
  let tokens: unknown[];
  if (Array.isArray(choice.token_ids)) tokens = choice.token_ids;
  else if (
    Array.isArray(lp.tokens) &&
    lp.tokens.every((t) => typeof t === "string" && t.startsWith("token_id:"))
  )
    tokens = (lp.tokens as string[]).map((t) => Number(t.slice("token_id:".length)));
  else
    throw new Error(
      "choices[0] has no token_ids (return_token_ids) nor token_id:N strings (return_tokens_as_token_ids); the server is too old for token-level rollouts",
    );
  return {
    model: json.model,
    tokens,
    logp: lp.token_logprobs as unknown[],
    stopped: choice.finish_reason === "stop",
  };
}

/** Log-probs a float32 server rounds to just above 0 are read as 0; larger ones are errors. */
const LOGP_SLACK = 1e-6;

export interface CheckedTurn {
  tokens: number[];
  logp: number[];
}

/**
 * Validates a reply against its call: the model asked for, as many log-probs as ids, ids in
 * [0, vocabSize), finite log-probs ≤ 0, at most maxTokens ids; cuts it after the first stop id
 * (a server without stop ids, llama.cpp, writes on) and refuses one that stopped on a token that
 * is not a stop id of the turn. Throws a short problem text.
 */
export function checkReply(reply: TurnReply, call: TurnCall, vocabSize: number): CheckedTurn {
  if (typeof reply.model !== "string")
    throw new Error("the reply names no model, so the version of the weights that answered is unknown");
  if (reply.model !== call.model)
    throw new Error(
      `answered with model ${reply.model}, not ${call.model}: the server holds other weights than the run expects (stale or wrong version)`,
    );
  if (reply.tokens.length !== reply.logp.length)
    throw new Error(`${reply.tokens.length} token ids but ${reply.logp.length} log-probs`);
  const stop = new Set(call.stop);
  const tokens: number[] = [];
  const logp: number[] = [];
  for (let j = 0; j < reply.tokens.length; j++) {
    const t: unknown = reply.tokens[j];
    if (typeof t !== "number" || !Number.isInteger(t) || t < 0 || t >= vocabSize)
      throw new Error(`token ${j} is ${JSON.stringify(t)}, not an id in [0, ${vocabSize})`);
    const l: unknown = reply.logp[j];
    if (typeof l !== "number" || !Number.isFinite(l) || l > LOGP_SLACK)
      throw new Error(`log-prob ${j} (token ${t}) is ${String(l)}, not a finite number ≤ 0`);
    tokens.push(t);
    logp.push(Math.min(0, l));
    if (stop.has(t)) break;
  }
  if (tokens.length > call.maxTokens)
    throw new Error(`wrote ${tokens.length} tokens, more than max_tokens = ${call.maxTokens}`);
  const last = tokens.length > 0 ? tokens[tokens.length - 1] : -1;
  if (reply.stopped && tokens.length < call.maxTokens && !stop.has(last))
    throw new Error(
      `stopped after ${tokens.length} tokens at ${last < 0 ? "no token" : `token ${last}`}, which is not a stop id of the turn (${[...stop].join(", ")}): the server stops at tokens of its own (vLLM: start it with --generation-config vllm) or leaves the stop token out of its reply`,
    );
  return { tokens, logp };
}
