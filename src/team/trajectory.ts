/**
 * One team episode as the algorithm sees it: every token with its owner (the agent that chose it,
 * -1 for prompt and protocol tokens), the log-prob under the owner's sampling policy at rollout time
 * and the owner's policy version; plus the episode's reward from the verifier.
 */
export interface Trajectory {
  promptId: number;
  groupId: number;
  problemId: string;
  /** independent protocol: the agent that wrote the episode alone; relay: -1. */
  writer: number;
  tokens: Int32Array; // (L)
  owner: Int8Array; // (L)
  behaviourLogp: Float32Array; // (L), 0 where owner = -1
  ownerVersion: Int32Array; // (L), -1 where owner = -1
  promptLength: number;
  reward: number;
  answer: string | null;
  /** The episode ended without <eos> (context, length or round limit). */
  truncated: boolean;
}
