/**
 * A team member whose turns are written by an OpenAI-compatible server (dialects.ts): each episode's
 * turn is one completion request with the whole transcript as token ids, the turn's token cap, its
 * stop ids, the temperature and top-p, and a seed derived from the turn's uniforms (`sat serve`
 * also gets the uniforms themselves and then writes exactly what the in-process agent would).
 * Requests of a turn run concurrently up to the client's limit; every reply is validated, and any
 * problem fails the turn with one line naming the server, the agent, the episode and the model.
 *
 * Stale-weight safety: the member asks for its weights by a versioned name (e.g. `agent-1@v7`) and
 * refuses a reply from any other. When the agent is trained in this process, `publish` makes the
 * server hold the current weights under the name of their version before a session starts.
 */
import type { TeamMember, TurnOutput, TurnRequest, TurnSession } from "../../contracts/member.js";
import { ServerClient } from "./client.js";
import { checkReply, readReply, turnRequest, type RolloutApi, type TurnCall } from "./dialects.js";

export interface RemoteMemberOptions {
  client: ServerClient;
  api: RolloutApi;
  /** The agent's index in the team (error messages, the served name). */
  agent: number;
  vocabSize: number;
  maxSeqLen: number;
  /** The served name of this agent's weights at a version. */
  modelName: (version: number) => string;
  /**
   * Makes the server hold the agent's current weights and returns their version; absent = the
   * server holds fixed weights, asked for at the member's version.
   */
  publish?: () => Promise<number>;
}

export class RemoteMember implements TeamMember {
  version = 0;
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  /** Only `sat serve` samples with the turn's uniforms; other servers draw their own numbers. */
  readonly honoursUniforms: boolean;

  constructor(readonly opts: RemoteMemberOptions) {
    this.vocabSize = opts.vocabSize;
    this.maxSeqLen = opts.maxSeqLen;
    this.honoursUniforms = opts.api === "sat";
  }

  openSession(episodes: number, maxLength: number): TurnSession {
    return new RemoteSession(this, episodes, maxLength);
  }

  /** The name to ask for in this session: published weights, or the member's version. */
  async servedName(): Promise<string> {
    const version = this.opts.publish ? await this.opts.publish() : this.version;
    return this.opts.modelName(version);
  }
}

/** A uint31 seed from the turn's first uniform of an entry (a fresh 32-bit draw of the episode's stream). */
function seedOf(u: number): number {
  return Math.floor(u * 2 ** 31);
}

class RemoteSession implements TurnSession {
  private name: Promise<string> | null = null;

  constructor(
    private readonly member: RemoteMember,
    private readonly size: number,
    private readonly maxLength: number,
  ) {}

  async writeTurn(req: TurnRequest): Promise<TurnOutput[]> {
    const { opts } = this.member;
    this.name ??= this.member.servedName();
    const model = await this.name;
    const stop = [...req.endTurn, ...req.endEpisode];
    return Promise.all(
      req.episodes.map(async (ep, i): Promise<TurnOutput> => {
        if (ep < 0 || ep >= this.size)
          throw new Error(`turn: episode ${ep} outside the session's ${this.size}`);
        const prompt = req.transcripts[i];
        const room = Math.min(req.maxLength[i], this.maxLength) - prompt.length;
        const maxTokens = Math.min(req.maxTokens, room);
        if (maxTokens <= 0) return { tokens: new Int32Array(0), logp: new Float64Array(0) };
        const u = req.uniforms.subarray(i * req.maxTokens, i * req.maxTokens + maxTokens);
        const call: TurnCall = {
          model,
          prompt,
          maxTokens,
          stop,
          temperature: req.temperature,
          topP: req.topP,
          seed: seedOf(u[0]),
          uniforms: this.member.honoursUniforms ? u : undefined,
        };
        const { path, body } = turnRequest(opts.api, call);
        const what = `agent ${opts.agent}, episode ${ep}, model ${model}`;
        const json = await opts.client.post(path, body, what);
        try {
          const out = checkReply(readReply(opts.api, json), call, opts.vocabSize);
          return { tokens: Int32Array.from(out.tokens), logp: Float64Array.from(out.logp) };
        } catch (err) {
          throw opts.client.fail("POST", path, what, (err as Error).message);
        }
      }),
    );
  }
}
