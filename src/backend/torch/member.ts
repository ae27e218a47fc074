/**
 * A team member (contracts/member.ts) whose turns a PyTorch worker writes: a session opens a
 * batched KV cache in the worker on its first turn, each turn is one request carrying the
 * transcripts and the uniforms, and the reply's tokens and log-probs are checked before the
 * protocol sees them.
 */
import type { TeamMember, TurnOutput, TurnRequest, TurnSession } from "../../contracts/member.js";
import { BackendError, type WorkerClient } from "./client.js";
import { decodeF64, decodeI32, encodeArray, i32 } from "./wire.js";

export class TorchMember implements TeamMember {
  /** Policy version, kept by the trainer. */
  version = 0;

  constructor(
    private readonly client: WorkerClient,
    readonly agent: number,
    readonly vocabSize: number,
    readonly maxSeqLen: number,
  ) {}

  openSession(episodes: number, maxLength: number): TurnSession {
    return new TorchSession(this.client, this.agent, episodes, maxLength, this.vocabSize);
  }
}

class TorchSession implements TurnSession {
  private id: Promise<number> | null = null;

  constructor(
    private readonly client: WorkerClient,
    private readonly agent: number,
    private readonly episodes: number,
    private readonly maxLength: number,
    private readonly V: number,
  ) {}

  private open(): Promise<number> {
    this.id ??= this.client
      .request("open_session", { agent: this.agent, episodes: this.episodes, max_length: this.maxLength })
      .then((r) => r.session as number);
    return this.id;
  }

  async writeTurn(req: TurnRequest): Promise<TurnOutput[]> {
    const session = await this.open();
    const n = req.episodes.length;
    const lengths = req.transcripts.map((t) => t.length);
    const tokens = new Int32Array(lengths.reduce((a, b) => a + b, 0));
    let at = 0;
    for (const t of req.transcripts) {
      tokens.set(t, at);
      at += t.length;
    }
    const r = await this.client.request("write_turn", {
      session,
      episodes: i32(req.episodes),
      tokens: encodeArray(tokens),
      lengths: i32(lengths),
      max_tokens: req.maxTokens,
      max_length: encodeArray(req.maxLength),
      end_turn: [...req.endTurn],
      end_episode: [...req.endEpisode],
      temperature: req.temperature,
      top_p: req.topP,
      uniforms: encodeArray(req.uniforms),
    });
    const where = `${this.client.label}, agent ${this.agent}: write_turn returned`;
    let counts: Int32Array;
    let outTokens: Int32Array;
    let logp: Float64Array;
    try {
      counts = decodeI32(r.lengths, "lengths", n);
      outTokens = decodeI32(r.tokens, "tokens");
      logp = decodeF64(r.logp, "logp", outTokens.length);
    } catch (err) {
      throw new BackendError(`${where} a bad reply (${(err as Error).message})`);
    }
    const out: TurnOutput[] = [];
    let k = 0;
    for (let i = 0; i < n; i++) {
      const c = counts[i];
      if (c < 0 || k + c > outTokens.length)
        throw new BackendError(`${where} token counts that do not add up`);
      out.push({ tokens: outTokens.slice(k, k + c), logp: logp.slice(k, k + c) });
      k += c;
    }
    for (let j = 0; j < logp.length; j++)
      if (!Number.isFinite(logp[j]) || logp[j] > 0 || outTokens[j] < 0 || outTokens[j] >= this.V)
        throw new BackendError(
          `${where} token ${outTokens[j]} with log-prob ${logp[j]}; the stage is not recorded`,
        );
    return out;
  }

  async close(): Promise<void> {
    if (!this.id) return;
    const session = await this.id;
    await this.client.request("close_session", { session });
  }
}
