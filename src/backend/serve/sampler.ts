/**
 * Batched turn sampling for `sat serve`: completion requests that arrive together are decoded as
 * one batch per model (one KV-cached decoder over all of them), with the in-process sampler
 * (team/decoder-session.ts), so a request answered here gives the tokens and log-probs an
 * in-process agent would write with the same uniforms. Decoders are kept per model and batch
 * size (rounded up to a power of two, at the model's full context), so serving allocates no new
 * caches once warm.
 */
import { Decoder } from "../../model/generate.js";
import type { Transformer } from "../../model/transformer.js";
import { DecoderSession } from "../../team/decoder-session.js";
import type { TurnOutput } from "../../contracts/member.js";

export interface SampleJob {
  prompt: Int32Array;
  maxTokens: number;
  stop: readonly number[];
  temperature: number;
  topP: number;
  /** (≥ maxTokens) the draw of each token slot. */
  uniforms: ArrayLike<number>;
}

export class BatchSampler {
  private readonly decoders = new WeakMap<Transformer, Map<number, Decoder>>();

  constructor(readonly maxBatch: number) {}

  /** Samples every job with `model`; jobs that share sampling settings share a batch. */
  run(model: Transformer, jobs: readonly SampleJob[]): TurnOutput[] {
    const out: TurnOutput[] = new Array(jobs.length);
    const groups = new Map<string, number[]>();
    jobs.forEach((j, i) => {
      const key = `${j.temperature}|${j.topP}|${[...j.stop].sort((a, b) => a - b).join(",")}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(i);
    });
    for (const members of groups.values()) {
      for (let s = 0; s < members.length; s += this.maxBatch) {
        const chunk = members.slice(s, s + this.maxBatch);
        const res = this.sampleBatch(
          model,
          chunk.map((i) => jobs[i]),
        );
        chunk.forEach((i, k) => (out[i] = res[k]));
      }
    }
    return out;
  }

  private sampleBatch(model: Transformer, jobs: SampleJob[]): TurnOutput[] {
    const B = jobs.length;
    const M = Math.max(...jobs.map((j) => j.maxTokens));
    const uniforms = new Float64Array(B * M);
    jobs.forEach((j, i) => {
      for (let k = 0; k < j.maxTokens; k++) uniforms[i * M + k] = j.uniforms[k];
    });
    const session = new DecoderSession(this.decoder(model, B), model.cfg.vocabSize);
    const { temperature, topP, stop } = jobs[0];
    return session.writeTurn({
      episodes: jobs.map((_, i) => i),
      transcripts: jobs.map((j) => j.prompt),
      maxTokens: M,
      maxLength: Int32Array.from(jobs, (j) => j.prompt.length + j.maxTokens),
      endTurn: stop,
      endEpisode: [],
      temperature,
      topP,
      uniforms,
    });
  }

  private decoder(model: Transformer, B: number): Decoder {
    let bySize = this.decoders.get(model);
    if (!bySize) this.decoders.set(model, (bySize = new Map()));
    const size = Math.min(this.maxBatch, 2 ** Math.ceil(Math.log2(B)));
    let dec = bySize.get(size);
    if (!dec) bySize.set(size, (dec = new Decoder(model, size, model.cfg.maxSeqLen)));
    dec.reset();
    return dec;
  }
}
