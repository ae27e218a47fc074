/**
 * A team episode from a language-model rollout: the algorithm's Trajectory plus what the protocol
 * knows about it (which problem, who wrote it in the independent protocol, where the prompt ends).
 */
import type { Trajectory } from "../contracts/policy.js";

export interface TeamTrajectory extends Trajectory {
  problemId: string;
  /** independent protocol: the agent that wrote the episode alone; relay: -1. */
  writer: number;
  promptLength: number;
  behaviourLogp: Float32Array;
}
