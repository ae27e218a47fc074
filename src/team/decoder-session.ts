/**
 * Turn sessions for in-process agents: a session owns one incremental decoder (a KV cache per
 * episode). At its turn an agent first catches up on the tokens other agents wrote since it last
 * spoke, then samples its own tokens with the request's uniforms (contracts/member.ts).
 */
import type { Buf } from "../engine/kernels/types.js";
import { sampleWithUniform } from "../model/generate.js";
import type { TurnOutput, TurnRequest, TurnSession } from "../contracts/member.js";

/** Incremental next-token scorer over B sequences (a KV-cached model, or a mixture of two). */
export interface StepDecoder {
  readonly lengths: Int32Array;
  /** Feeds one token per active sequence; returns next-token logits (B, V). */
  step(tokens: ArrayLike<number>, active: Uint8Array): Buf;
}

export class DecoderSession implements TurnSession {
  private readonly probs: Float64Array;

  constructor(
    private readonly dec: StepDecoder,
    private readonly V: number,
  ) {
    this.probs = new Float64Array(V);
  }

  writeTurn(req: TurnRequest): TurnOutput[] {
    const { dec, V, probs } = this;
    const E = req.episodes.length;
    const B = dec.lengths.length;
    const active = new Uint8Array(B);
    const feed = new Int32Array(B);
    const entryOf = new Int32Array(B).fill(-1);
    req.episodes.forEach((ep, i) => {
      if (ep < 0 || ep >= B) throw new Error(`turn: episode ${ep} outside the session's ${B}`);
      entryOf[ep] = i;
    });
    // Catch up: every transcript token but the last goes into the cache; the last is fed when sampling starts.
    for (;;) {
      let any = false;
      active.fill(0);
      for (let i = 0; i < E; i++) {
        const ep = req.episodes[i];
        const tr = req.transcripts[i];
        if (dec.lengths[ep] < tr.length - 1) {
          active[ep] = 1;
          feed[ep] = tr[dec.lengths[ep]];
          any = true;
        }
      }
      if (!any) break;
      dec.step(feed, active);
    }
    const written: number[][] = req.transcripts.map(() => []);
    const logps: number[][] = req.transcripts.map(() => []);
    const last = Int32Array.from(req.transcripts, (tr) => tr[tr.length - 1]);
    const open = Uint8Array.from(req.transcripts, (tr, i) => (tr.length < req.maxLength[i] ? 1 : 0));
    const endTurn = new Set(req.endTurn);
    const endEpisode = new Set(req.endEpisode);
    for (let k = 0; k < req.maxTokens; k++) {
      let any = false;
      active.fill(0);
      for (let i = 0; i < E; i++) {
        if (!open[i]) continue;
        const ep = req.episodes[i];
        active[ep] = 1;
        feed[ep] = last[i];
        any = true;
      }
      if (!any) break;
      const logits = dec.step(feed, active);
      for (let ep = 0; ep < B; ep++) {
        if (!active[ep]) continue;
        const i = entryOf[ep];
        const u = req.uniforms[i * req.maxTokens + k];
        const { token, logp } = sampleWithUniform(logits, ep * V, V, req.temperature, req.topP, u, probs);
        written[i].push(token);
        logps[i].push(logp);
        last[i] = token;
        const length = req.transcripts[i].length + written[i].length;
        if (endTurn.has(token) || endEpisode.has(token) || length >= req.maxLength[i]) open[i] = 0;
      }
    }
    return written.map((tokens, i) => ({
      tokens: Int32Array.from(tokens),
      logp: Float64Array.from(logps[i]),
    }));
  }
}
