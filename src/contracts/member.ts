/**
 * What a team protocol needs from an agent: a session over a batch of episodes in which the agent
 * writes *turns* (up to some tokens per episode, until an end-of-turn or end-of-episode token).
 * Turn granularity lets one interface cover an in-process engine (KV cache per episode), a
 * PyTorch worker and an OpenAI-compatible server, where a per-token round trip would be too slow.
 *
 * Sampling is specified, not left to the backend: the k-th token an episode's entry writes in a
 * turn is drawn with `uniforms[i·maxTokens + k]` by inverse CDF over the sampling distribution
 * (softmax(logits / temperature), top-p truncated, renormalised) in token-id order, as
 * `inverseCdf` in engine/rng.ts does. Every backend that computes the same distribution therefore
 * writes the same tokens, and the log-prob it returns is log p(token) under that distribution.
 */

/** One turn of one agent over some episodes of a session. */
export interface TurnRequest {
  /** Episode ids (0 ≤ id < the session's size), stable across the turns of a session. */
  episodes: readonly number[];
  /** (entries) the whole transcript of each episode so far, prompt included. */
  transcripts: readonly Int32Array[];
  /** Most tokens the agent may write per episode in this turn. */
  maxTokens: number;
  /** (entries) transcript length at which the episode must stop (context or completion cap). */
  maxLength: Int32Array;
  /** Ids that end the turn when written (the token is kept): end-of-turn in a relay. */
  endTurn: readonly number[];
  /** Ids that end the episode when written (kept): end of sequence. */
  endEpisode: readonly number[];
  /** Sampling temperature; 0 = greedy (lowest id on ties), uniforms unused. */
  temperature: number;
  topP: number;
  /** (entries · maxTokens) uniforms in [0, 1), see the file header. */
  uniforms: Float64Array;
}

/** What one entry of a turn wrote: its tokens and their sampling log-probs. */
export interface TurnOutput {
  tokens: Int32Array;
  logp: Float64Array;
}

/** A batch of episodes an agent takes part in (one rollout). */
export interface TurnSession {
  writeTurn(req: TurnRequest): TurnOutput[] | Promise<TurnOutput[]>;
  /** Releases per-session state (caches, remote handles). */
  close?(): void | Promise<void>;
}

/** A team member as the protocol sees it. */
export interface TeamMember {
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  /** Policy version (incremented on every accepted update); recorded per token. */
  readonly version: number;
  /** A session over `episodes` episodes whose transcripts never exceed `maxLength` tokens. */
  openSession(episodes: number, maxLength: number): TurnSession;
}
