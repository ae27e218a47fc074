/**
 * Team rollouts: n agents solve problems together under a protocol, batched over all P·G episodes
 * of a stage.
 *
 * - relay: one shared transcript `<bos> prompt seg_1 seg_2 ...`. Agents speak in `speakingOrder`
 *   for R rounds; a turn is one segment of at most M tokens ended by <eot> (sampled by the agent, or
 *   appended by the protocol when the agent used its M tokens, then owned by no agent). <eos> ends
 *   the episode. Each agent keeps its own KV cache and, at its turn, first catches up on the tokens
 *   written since it last spoke. The team answer is the last answer marker in the transcript, i.e.
 *   the one in the last segment that has one.
 * - independent: every agent writes a whole solution alone (no turn limit); the team answer is a
 *   majority vote over the agents' answers (ties to the lowest agent index).
 *
 * Every token records its owner, the log-prob under the owner's sampling distribution (temperature
 * and top-p included) and the owner's policy version.
 */
import type { Rng } from "../engine/rng.js";
import { sampleToken } from "../model/generate.js";
import type { Tokenizer } from "../model/tokenizer.js";
import type { Problem, Verdict } from "../tasks/index.js";
import type { TeamTrajectory } from "./trajectory.js";
import type { StepDecoder, TeamMember } from "../contracts/member.js";

export type { StepDecoder, TeamMember } from "../contracts/member.js";

export type Protocol = "relay" | "independent";

export interface RolloutOptions {
  protocol: Protocol;
  rounds: number; // R (relay)
  maxTurnTokens: number; // M (relay)
  maxCompletionLength: number; // tokens after the prompt, whole transcript
  maxPromptLength?: number; // a longer prompt is an error (never truncated)
  temperature: number;
  topP: number;
  speakingOrder?: number[]; // relay; default 0..n-1
}

export type Verifier = (p: Problem, completion: string) => Verdict;

interface Episode {
  problem: Problem;
  promptId: number;
  groupId: number;
  agent: number; // independent protocol: the writer; relay: -1
  tokens: number[];
  owner: number[];
  logp: number[];
  version: number[];
  promptLen: number;
  done: boolean;
  eos: boolean;
}

/**
 * Rolls out G episodes for each problem. Trajectories come grouped: for relay, problem i's episodes
 * are [i·G, (i+1)·G); for independent, agent a's episodes for problem i follow each other in the
 * same way inside the block of agent a.
 */
export function rolloutTeam(
  team: TeamMember[],
  tok: Tokenizer,
  problems: Problem[],
  G: number,
  opts: RolloutOptions,
  verify: Verifier,
  rng: Rng,
): TeamTrajectory[] {
  if (team.length === 0) throw new Error("a team needs at least one agent");
  const V = team[0].vocabSize;
  for (const m of team)
    if (m.vocabSize !== V)
      throw new Error("all agents of a team must share the tokenizer (vocabulary sizes differ)");
  const episodes: Episode[] = [];
  const writers = opts.protocol === "relay" ? [-1] : team.map((_, a) => a);
  for (const agent of writers) {
    problems.forEach((problem, i) => {
      const prompt = [tok.bos, ...tok.encode(problem.prompt)];
      for (let g = 0; g < G; g++) {
        episodes.push({
          problem,
          promptId: i,
          groupId: i,
          agent,
          tokens: [...prompt],
          owner: prompt.map(() => -1),
          logp: prompt.map(() => 0),
          version: prompt.map(() => -1),
          promptLen: prompt.length,
          done: false,
          eos: false,
        });
      }
    });
  }
  const maxPrompt = Math.max(...episodes.map((e) => e.promptLen));
  if (opts.maxPromptLength !== undefined && maxPrompt > opts.maxPromptLength) {
    const long = episodes.find((e) => e.promptLen === maxPrompt)!;
    // A limit the user set: exitCode 2 makes the CLI report it as a config error, in one line.
    const msg = `problem ${long.problem.id} has a prompt of ${maxPrompt} tokens, more than rollout.max_prompt_length (${opts.maxPromptLength}); raise rollout.max_prompt_length to at least ${maxPrompt} (prompts are never truncated)`;
    throw Object.assign(new Error(msg), { exitCode: 2 });
  }
  const Tmax = Math.min(Math.min(...team.map((m) => m.maxSeqLen)), maxPrompt + opts.maxCompletionLength);
  if (maxPrompt >= Tmax)
    throw new Error(`a prompt has ${maxPrompt} tokens, which leaves no room to answer (context ${Tmax})`);
  const probs = new Float64Array(V);
  if (opts.protocol === "relay") {
    const order = opts.speakingOrder ?? team.map((_, a) => a);
    const decoders = team.map((m) => m.createDecoder(episodes.length, Tmax));
    for (let r = 0; r < opts.rounds; r++) {
      for (const a of order) {
        if (episodes.every((e) => e.done)) break;
        takeTurn(team[a], a, decoders[a], episodes, opts.maxTurnTokens, true, Tmax, opts, tok, rng, probs);
      }
    }
  } else {
    for (let a = 0; a < team.length; a++) {
      const mine = episodes.filter((e) => e.agent === a);
      const dec = team[a].createDecoder(mine.length, Tmax);
      // Writing alone, an agent's <eot> hands the turn back to itself: it just goes on.
      takeTurn(team[a], a, dec, mine, Infinity, false, Tmax, opts, tok, rng, probs);
    }
  }
  return episodes.map((e) => {
    const completion = tok.decode(e.tokens.slice(e.promptLen));
    const verdict = verify(e.problem, completion);
    return {
      promptId: e.promptId,
      groupId: e.groupId,
      problemId: e.problem.id,
      writer: e.agent,
      tokens: Int32Array.from(e.tokens),
      owner: Int8Array.from(e.owner),
      behaviourLogp: Float32Array.from(e.logp),
      ownerVersion: Int32Array.from(e.version),
      promptLength: e.promptLen,
      reward: verdict.reward,
      answer: verdict.extracted,
      truncated: !e.eos,
    };
  });
}

/**
 * One agent's turn over all unfinished episodes: catch up on new tokens, then write ≤ maxTokens
 * (stopping at its own <eot> when `eotEndsTurn`).
 */
function takeTurn(
  member: TeamMember,
  a: number,
  dec: StepDecoder,
  eps: Episode[],
  maxTokens: number,
  eotEndsTurn: boolean,
  Tmax: number,
  opts: RolloutOptions,
  tok: Tokenizer,
  rng: Rng,
  probs: Float64Array,
): void {
  const B = eps.length;
  const V = member.vocabSize;
  const active = new Uint8Array(B);
  const feed = new Int32Array(B);
  // Catch up: every token but the last goes into the cache; the last is fed when sampling starts.
  for (;;) {
    let any = false;
    for (let b = 0; b < B; b++) {
      const e = eps[b];
      active[b] = !e.done && dec.lengths[b] < e.tokens.length - 1 ? 1 : 0;
      if (active[b]) {
        feed[b] = e.tokens[dec.lengths[b]];
        any = true;
      }
    }
    if (!any) break;
    dec.step(feed, active);
  }
  const written = new Int32Array(B);
  const turnOver = new Uint8Array(B);
  for (let b = 0; b < B; b++) turnOver[b] = eps[b].done ? 1 : 0;
  for (;;) {
    let any = false;
    for (let b = 0; b < B; b++) {
      active[b] = turnOver[b] ? 0 : 1;
      if (active[b]) {
        feed[b] = eps[b].tokens[eps[b].tokens.length - 1];
        any = true;
      }
    }
    if (!any) break;
    const logits = dec.step(feed, active);
    for (let b = 0; b < B; b++) {
      if (!active[b]) continue;
      const e = eps[b];
      const { token, logp } = sampleToken(logits, b * V, V, opts.temperature, opts.topP, rng, probs);
      e.tokens.push(token);
      e.owner.push(a);
      e.logp.push(logp);
      e.version.push(member.version);
      written[b]++;
      const completionLen = e.tokens.length - e.promptLen;
      if (token === tok.eos) {
        e.done = true;
        e.eos = true;
        turnOver[b] = 1;
      } else if (e.tokens.length >= Tmax || completionLen >= opts.maxCompletionLength) {
        e.done = true;
        turnOver[b] = 1;
      } else if (token === tok.eot && eotEndsTurn) {
        turnOver[b] = 1;
      } else if (written[b] >= maxTokens) {
        // The agent used its whole turn: the protocol closes the segment.
        e.tokens.push(tok.eot);
        e.owner.push(-1);
        e.logp.push(0);
        e.version.push(-1);
        turnOver[b] = 1;
        if (e.tokens.length >= Tmax) e.done = true;
      }
    }
  }
}

/**
 * Majority vote for the independent protocol (sat-method §2): the most frequent non-null answer;
 * ties go to the answer given first (the lowest agent index); all null → null.
 */
export function majorityVote(answers: Array<string | null>): string | null {
  const counts = new Map<string, number>();
  for (const a of answers) if (a !== null) counts.set(a, (counts.get(a) ?? 0) + 1);
  let best: string | null = null;
  let bestCount = 0;
  for (const a of answers) {
    if (a === null) continue;
    const c = counts.get(a)!;
    if (c > bestCount) {
      best = a;
      bestCount = c;
    }
  }
  return best;
}
