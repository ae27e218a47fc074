/**
 * SAT training of a team of transformer agents on a built-in task: each stage draws prompts from
 * the train split, rolls out the team under its protocol, and hands the trajectories to the
 * algorithm's runStage (sat, or a baseline in the same code path). `independent-vote` trains each
 * agent alone with GRPO on its own solo rollouts (the team answers by majority vote at evaluation).
 *
 * With `advEstimator = gae` the trainer owns one critic (team/critic.ts): a copy of agent 0 with a
 * fresh value head, passed to runStage as the value function and fitted on the stage's training
 * trajectories after the stage, before the next one. independent-vote shares it across the agents.
 *
 * Every random stream of a stage is derived from (seed, stage index), so the trainer's whole state
 * is the stage index, the β values and policy versions, plus each agent's (and the critic's)
 * weights and optimizer state: a resumed run continues bit for bit.
 */
import { Rng } from "../engine/rng.js";
import type { Transformer } from "../model/transformer.js";
import type { Tokenizer } from "../model/tokenizer.js";
import type { TaskFamily } from "../tasks/index.js";
import { ProblemStream, makeProblems } from "../tasks/index.js";
import {
  runStage,
  type StageConfig,
  type StageRecord,
  type MetricsSink,
  type TrainablePolicy,
} from "../algorithm/index.js";
import { rolloutTeam, type RolloutOptions } from "../team/rollout.js";
import { ModelMember } from "../team/member.js";
import { LmPolicy, type LmOptimOptions } from "../team/lm-policy.js";
import {
  DEFAULT_CRITIC_EPOCHS,
  DEFAULT_CRITIC_MINIBATCH,
  LmCritic,
  returnTargets,
  type CriticFitResult,
} from "../team/critic.js";
import type { Trajectory } from "../contracts/policy.js";
import { decayMask } from "../model/layout.js";

export type TeamAlgo = StageConfig["algo"] | "independent-vote";

export interface TeamTrainOptions {
  algo: TeamAlgo;
  stage: Omit<StageConfig, "algo">;
  rollout: RolloutOptions;
  groupSize: number; // G = rollout.n
  klCoef: number; // initial β for every agent
  optim: LmOptimOptions;
  task: TaskFamily;
  difficulty?: number;
  testPercent?: number;
  heldOutPrompts: number; // per held-out batch (0 = no empirical improvement)
  seed: number;
  /** gae only. Defaults: optim with lr ×10 (verl's critic/actor ratio), 4 epochs, 32 trajectories per minibatch. */
  critic?: { optim?: Partial<LmOptimOptions>; epochs?: number; miniBatchSize?: number };
}

export interface TeamTrainState {
  step: number;
  klCoef: number[];
  versions: number[];
}

export interface StageResult {
  records: StageRecord[]; // one per runStage call (one per agent for independent-vote)
  tokens: number; // tokens generated in the stage's training rollouts
  seconds: number;
  /** gae: the critic's fit on this stage's trajectories (null otherwise). */
  critic: CriticFitResult | null;
}

export class TeamTrainer {
  readonly models: Transformer[];
  readonly members: ModelMember[];
  readonly policies: LmPolicy[];
  /** The value function of gae runs (null for group advantages). */
  readonly critic: LmCritic | null;
  readonly opts: TeamTrainOptions;
  private readonly tok: Tokenizer;
  state: TeamTrainState;

  constructor(models: Transformer[], tok: Tokenizer, opts: TeamTrainOptions) {
    if (opts.algo === "single" && models.length !== 1)
      throw new Error(`algo single trains one agent; got ${models.length}`);
    if (opts.algo === "independent-vote" && opts.rollout.protocol !== "independent") {
      throw new Error(
        `algo independent-vote needs team.protocol = independent (got ${opts.rollout.protocol})`,
      );
    }
    this.models = models;
    this.tok = tok;
    this.opts = opts;
    this.members = models.map((m) => new ModelMember(m));
    this.policies = models.map(
      (m) => new LmPolicy(m, opts.rollout.temperature, opts.optim, decayMask(m.layout)),
    );
    this.state = { step: 0, klCoef: models.map(() => opts.klCoef), versions: models.map(() => 0) };
    this.critic =
      opts.stage.advEstimator === "gae"
        ? LmCritic.fromAgent(
            models[0],
            { ...opts.optim, lr: 10 * opts.optim.lr, ...opts.critic?.optim },
            new Rng(opts.seed).fork("critic-init"),
          )
        : null;
  }

  private streamRng(name: string): Rng {
    return new Rng(this.opts.seed).fork(`${name}/${this.state.step}`);
  }

  /**
   * Runs one stage (or one per agent for independent-vote) and advances the state. `onPhase` hears
   * when a rollout ends (with its generated tokens) and when an agent's update ends.
   */
  async stage(
    sink?: MetricsSink,
    onPhase?: (event: { kind: "rollout"; tokens: number } | { kind: "agent"; agent: number }) => void,
  ): Promise<StageResult> {
    const t0 = performance.now();
    const o = this.opts;
    const promptStream = new ProblemStream(o.task, {
      seed: this.streamRng("prompts").seed,
      difficulty: o.difficulty,
      testPercent: o.testPercent,
    });
    const rolloutRng = this.streamRng("rollout");
    let heldOutCalls = 0;
    let tokens = 0;
    const trained: Trajectory[] = []; // every training rollout of the stage (the critic's data)
    // Owners in the trajectories index the agents passed to runStage (a one-agent team for
    // independent-vote), which is how rolloutTeam numbers them.
    const collectFor = (agents: number[]) => async (_team: TrainablePolicy[], nPrompts: number) => {
      const members = agents.map((a) => this.members[a]);
      const trajs = await rolloutTeam(
        members,
        this.tok,
        promptStream.take(nPrompts),
        o.groupSize,
        o.rollout,
        o.task.verify,
        rolloutRng,
      );
      let generated = 0;
      for (const t of trajs) generated += t.tokens.length - t.promptLength;
      tokens += generated;
      onPhase?.({ kind: "rollout", tokens: generated });
      if (this.critic) for (const t of trajs) trained.push(t);
      return trajs;
    };
    const heldOutFor = (agents: number[]) => async (_team: TrainablePolicy[], nPrompts: number) => {
      const members = agents.map((a) => this.members[a]);
      const problems = makeProblems(o.task, {
        split: "test",
        n: nPrompts,
        // The same prompts before and after the stage, so the two estimates differ by the policy only.
        seed: this.streamRng("heldout").seed,
        difficulty: o.difficulty,
        testPercent: o.testPercent,
      });
      const rng = this.streamRng(`heldout-rollout/${heldOutCalls++}`);
      return rolloutTeam(members, this.tok, problems, o.groupSize, o.rollout, o.task.verify, rng);
    };
    const groups =
      o.algo === "independent-vote" ? this.models.map((_, a) => [a]) : [this.models.map((_, a) => a)];
    const records: StageRecord[] = [];
    for (const agents of groups) {
      const algo = o.algo === "independent-vote" ? "single" : o.algo;
      const config: StageConfig = { ...o.stage, algo, klRadius: agents.map((a) => o.stage.klRadius[a]) };
      const record = await runStage({
        team: agents.map((a) => this.policies[a]),
        collect: collectFor(agents),
        collectHeldOut: o.heldOutPrompts > 0 ? heldOutFor(agents) : undefined,
        heldOutPrompts: o.heldOutPrompts,
        config,
        klCoef: agents.map((a) => this.state.klCoef[a]),
        rng: this.streamRng(`stage/${agents.join(",")}`),
        step: this.state.step,
        value: this.critic ?? undefined,
        onAgentDone: onPhase ? (a) => onPhase({ kind: "agent", agent: agents[a] }) : undefined,
        sink: sink ? (r) => sink({ ...r, agent: r.agent === null ? null : agents[r.agent] }) : undefined,
      });
      record.agents.forEach((ar, k) => {
        const a = agents[k];
        this.state.klCoef[a] = ar.klCoefNext;
        if (ar.accepted) this.state.versions[a]++;
      });
      records.push(record);
    }
    let critic: CriticFitResult | null = null;
    if (this.critic) {
      critic = this.critic.fit(trained, returnTargets(trained, o.stage.gamma), {
        epochs: o.critic?.epochs ?? DEFAULT_CRITIC_EPOCHS,
        miniBatchSize: o.critic?.miniBatchSize ?? DEFAULT_CRITIC_MINIBATCH,
        rng: this.streamRng("critic"),
      });
      // Before the fit the stage's rollouts are unseen data: that loss is the critic's prediction error.
      sink?.({ step: this.state.step, agent: null, key: "critic/vf_loss_before", value: critic.lossBefore });
      sink?.({ step: this.state.step, agent: null, key: "critic/vf_loss", value: critic.lossAfter });
    }
    this.members.forEach((m, a) => (m.version = this.state.versions[a]));
    this.state.step++;
    return { records, tokens, seconds: (performance.now() - t0) / 1000, critic };
  }

  getState(): TeamTrainState {
    return { step: this.state.step, klCoef: [...this.state.klCoef], versions: [...this.state.versions] };
  }

  setState(s: TeamTrainState): void {
    if (s.klCoef.length !== this.models.length || s.versions.length !== this.models.length) {
      throw new Error(`trainer state is for ${s.klCoef.length} agents, the team has ${this.models.length}`);
    }
    this.state = { step: s.step, klCoef: [...s.klCoef], versions: [...s.versions] };
    this.members.forEach((m, a) => (m.version = s.versions[a]));
  }
}
