/**
 * A transformer agent as a team member: it decodes with its own KV cache and carries the policy
 * version recorded on every token it writes. Decoders are kept and reused while the batch shape is
 * unchanged, so stages do not allocate new caches.
 */
import { Decoder } from "../model/generate.js";
import type { Transformer } from "../model/transformer.js";
import type { TeamMember, TurnSession } from "../contracts/member.js";
import { DecoderSession } from "./decoder-session.js";

export class ModelMember implements TeamMember {
  readonly model: Transformer;
  version = 0;
  private decoders = new Map<string, Decoder>();

  constructor(model: Transformer) {
    this.model = model;
  }

  get vocabSize(): number {
    return this.model.cfg.vocabSize;
  }

  get maxSeqLen(): number {
    return this.model.cfg.maxSeqLen;
  }

  openSession(episodes: number, maxLength: number): TurnSession {
    return new DecoderSession(this.decoder(episodes, maxLength), this.vocabSize);
  }

  private decoder(B: number, Tmax: number): Decoder {
    const key = `${B}x${Tmax}`;
    let dec = this.decoders.get(key);
    if (!dec) {
      dec = new Decoder(this.model, B, Tmax);
      this.decoders.set(key, dec);
    }
    dec.reset();
    return dec;
  }
}
