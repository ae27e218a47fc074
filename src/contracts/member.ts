/**
 * What a team protocol needs from an agent: an incremental next-token scorer over a batch of
 * sequences, and the member that creates one. Implemented by transformer agents (team/member.ts),
 * Stage-0 projected members (swap/) and remote backends.
 */
import type { Buf } from "../engine/kernels/types.js";

/** Incremental next-token scorer over B sequences (a KV-cached model, or a mixture of two). */
export interface StepDecoder {
  readonly lengths: Int32Array;
  /** Feeds one token per active sequence; returns next-token logits (B, V). */
  step(tokens: ArrayLike<number>, active: Uint8Array): Buf;
}

/** What the protocol needs from an agent. */
export interface TeamMember {
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  /** Policy version (incremented on every accepted update); recorded per token. */
  readonly version: number;
  createDecoder(B: number, Tmax: number): StepDecoder;
}
