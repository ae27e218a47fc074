/**
 * Team rollouts: n agents solve problems together under a protocol, batched over all P·G episodes
 * of a stage.
 *
 * - relay: one shared transcript `prompt seg_1 seg_2 ...`, the prompt as tok.encodePrompt gives
 *   it (<bos> and the text, or the model's chat template with its generation prompt). Agents speak
 *   in `speakingOrder` for R rounds; a turn is one segment of at most M tokens ended by <eot>
 *   (sampled by the agent, or appended by the protocol when the agent used its M tokens, then owned
 *   by no agent). <eos> ends the episode. Each agent keeps its own KV cache and, at its turn, first catches up on the tokens
 *   written since it last spoke. The team answer is the last answer marker in the transcript, i.e.
 *   the one in the last segment that has one.
 * - independent: every agent writes a whole solution alone (no turn limit); the team answer is a
 *   majority vote over the agents' answers (ties to the lowest agent index).
 *
 * Every token records its owner, the log-prob under the owner's sampling distribution (temperature
 * and top-p included) and the owner's policy version.
 */
import { Rng } from "../engine/rng.js";
import type { Tokenizer } from "../model/tokenizer.js";
import type { Problem, Verdict } from "../tasks/index.js";
import type { TeamTrajectory } from "./trajectory.js";
import type { TeamMember, TurnOutput, TurnRequest, TurnSession } from "../contracts/member.js";

export type { TeamMember, TurnOutput, TurnRequest, TurnSession } from "../contracts/member.js";

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

/**
 * The prompt ids of a problem, as every rollout, pretraining step and dataset check builds them: a
 * chat-template tokenizer renders the dataset's messages (or the text as one user turn), any other
 * tokenizer encodes the text (with its BOS).
 */
export function encodeProblemPrompt(tok: Tokenizer, p: Problem): number[] {
  return tok.encodePrompt(tok.usesChatTemplate && p.messages ? p.messages : p.prompt);
}

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
  /** The episode's sampling stream. */
  stream: Rng;
  /** Transcript length at which the episode stops. */
  maxLength: number;
}

/**
 * Rolls out G episodes for each problem. Trajectories come grouped: for relay, problem i's episodes
 * are [i·G, (i+1)·G); for independent, agent a's episodes for problem i follow each other in the
 * same way inside the block of agent a.
 *
 * Each episode samples from its own stream (one draw of `rng` per episode, in episode order), so an
 * episode's tokens do not depend on how episodes are batched or on which backend serves an agent.
 */
export async function rolloutTeam(
  team: TeamMember[],
  tok: Tokenizer,
  problems: Problem[],
  G: number,
  opts: RolloutOptions,
  verify: Verifier,
  rng: Rng,
): Promise<TeamTrajectory[]> {
  if (team.length === 0) throw new Error("a team needs at least one agent");
  const V = team[0].vocabSize;
  for (const m of team)
    if (m.vocabSize !== V)
      throw new Error("all agents of a team must share the tokenizer (vocabulary sizes differ)");
  if (tok.vocabSize > V)
    throw new Error(`the tokenizer has ${tok.vocabSize} tokens, more than the agents' vocabulary (${V})`);
  const episodes: Episode[] = [];
  const writers = opts.protocol === "relay" ? [-1] : team.map((_, a) => a);
  for (const [w, agent] of writers.entries()) {
    problems.forEach((problem, i) => {
      const prompt = encodeProblemPrompt(tok, problem);
      for (let g = 0; g < G; g++) {
        episodes.push({
          problem,
          promptId: i,
          // A group is one writer's samples of one prompt (the team's, in a relay).
          groupId: w * problems.length + i,
          agent,
          tokens: [...prompt],
          owner: prompt.map(() => -1),
          logp: prompt.map(() => 0),
          version: prompt.map(() => -1),
          promptLen: prompt.length,
          done: false,
          eos: false,
          maxLength: 0,
          stream: new Rng(rng.nextU32()),
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
  for (const e of episodes) e.maxLength = Math.min(Tmax, e.promptLen + opts.maxCompletionLength);
  const ctx: TurnContext = { opts, tok, V };
  if (opts.protocol === "relay") {
    const order = opts.speakingOrder ?? team.map((_, a) => a);
    const sessions = team.map((m) => m.openSession(episodes.length, Tmax));
    try {
      for (let r = 0; r < opts.rounds; r++) {
        for (const a of order) {
          if (episodes.every((e) => e.done)) break;
          await takeTurn(team[a], a, sessions[a], episodes, opts.maxTurnTokens, true, ctx);
        }
      }
    } finally {
      for (const s of sessions) await s.close?.();
    }
  } else {
    for (let a = 0; a < team.length; a++) {
      const mine = episodes.filter((e) => e.agent === a);
      const session = team[a].openSession(mine.length, Tmax);
      try {
        // Writing alone, an agent's <eot> hands the turn back to itself: it just goes on.
        await takeTurn(team[a], a, session, mine, opts.maxCompletionLength, false, ctx);
      } finally {
        await session.close?.();
      }
    }
  }
  return episodes.map((e) => {
    // Turn boundaries reach the verifier as line ends, however the tokenizer spells its specials.
    const completion = tok.decode(e.tokens.slice(e.promptLen), { specialAs: "\n" });
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

interface TurnContext {
  opts: RolloutOptions;
  tok: Tokenizer;
  V: number;
}

/**
 * One agent's turn over the unfinished episodes `eps` (session episode ids = their indices in
 * `eps`): it writes ≤ maxTokens each, ending at its own <eot> when `relay`; in a relay a turn that
 * used all maxTokens is closed by an <eot> owned by no agent.
 */
async function takeTurn(
  member: TeamMember,
  a: number,
  session: TurnSession,
  eps: Episode[],
  maxTokens: number,
  relay: boolean,
  { opts, tok, V }: TurnContext,
): Promise<void> {
  const ids: number[] = [];
  eps.forEach((e, i) => {
    if (!e.done) ids.push(i);
  });
  if (ids.length === 0) return;
  const uniforms = new Float64Array(ids.length * maxTokens);
  ids.forEach((i, k) => {
    for (let j = 0; j < maxTokens; j++) uniforms[k * maxTokens + j] = eps[i].stream.uniform();
  });
  const req: TurnRequest = {
    episodes: ids,
    transcripts: ids.map((i) => Int32Array.from(eps[i].tokens)),
    maxTokens,
    maxLength: Int32Array.from(ids, (i) => eps[i].maxLength),
    endTurn: relay ? [tok.eot] : [],
    endEpisode: [tok.eos],
    temperature: opts.temperature,
    topP: opts.topP,
    uniforms,
  };
  const outs = await session.writeTurn(req);
  if (outs.length !== ids.length)
    throw new Error(`agent ${a} answered a turn for ${ids.length} episodes with ${outs.length} results`);
  ids.forEach((i, k) => {
    const e = eps[i];
    const { tokens, logp } = checkTurnOutput(outs[k], req, k, a, V);
    for (let j = 0; j < tokens.length; j++) {
      e.tokens.push(tokens[j]);
      e.owner.push(a);
      e.logp.push(logp[j]);
      e.version.push(member.version);
    }
    const last = tokens.length > 0 ? tokens[tokens.length - 1] : -1;
    if (last === tok.eos) {
      e.done = true;
      e.eos = true;
    } else if (e.tokens.length >= e.maxLength) {
      e.done = true;
    } else if (relay && last !== tok.eot) {
      // The agent used its whole turn (or stopped without a stop token): the protocol closes the segment.
      e.tokens.push(tok.eot);
      e.owner.push(-1);
      e.logp.push(0);
      e.version.push(-1);
      if (e.tokens.length >= e.maxLength) e.done = true;
    } else if (!relay) {
      e.done = true;
    }
  });
}

/** A backend's answer for one entry, checked so that a bad reply fails here with one clear line. */
function checkTurnOutput(out: TurnOutput, req: TurnRequest, k: number, a: number, V: number): TurnOutput {
  const where = `agent ${a}, episode ${req.episodes[k]}`;
  const { tokens, logp } = out;
  if (!tokens || !logp || tokens.length !== logp.length)
    throw new Error(`${where}: a turn must return as many log-probs as tokens`);
  const room = req.maxLength[k] - req.transcripts[k].length;
  if (tokens.length > Math.min(req.maxTokens, room))
    throw new Error(
      `${where}: wrote ${tokens.length} tokens, the turn allowed ${Math.min(req.maxTokens, room)}`,
    );
  for (let j = 0; j < tokens.length; j++) {
    const t = tokens[j];
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`${where}: token ${t} outside [0, ${V})`);
    if (!(logp[j] <= 0) || !Number.isFinite(logp[j]))
      throw new Error(`${where}: log-prob ${logp[j]} of token ${t} is not a finite number ≤ 0`);
    const stop = req.endTurn.includes(t) || req.endEpisode.includes(t);
    if (stop && j < tokens.length - 1) throw new Error(`${where}: tokens continue after stop token ${t}`);
  }
  return out;
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
