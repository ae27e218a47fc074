/**
 * A team whose agents live in PyTorch workers: starts the workers (one Python process per agent,
 * one for the whole team, or Ray actors through the driver), loads every agent, and hands out a
 * TeamMember and an AgentLearner per agent for rolloutTeam and runStage to use unchanged. Saving
 * writes each agent in Hugging Face layout (or a PEFT adapter) plus its optimizer state; loading
 * replaces an agent's weights and optimizer state in place (resume).
 */
import { BackendError, WorkerClient, type WorkerSpec } from "./client.js";
import { TorchLearner } from "./learner.js";
import { TorchMember } from "./member.js";
import { decodeF64, encodeArray, i32 } from "./wire.js";

export interface TorchOptim {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number;
}

export interface TorchBackendOptions {
  python: string;
  /** process: local Python processes; ray: Ray actors through sat_worker.ray_driver. */
  launcher: "process" | "ray";
  /** per_agent: a worker (process or actor) per agent; shared: one for the team (LoRA agents share a base). */
  workers: "per_agent" | "shared";
  device: "cpu" | "cuda" | "auto";
  /** float64 on CPU: the engine's formulas checked without float32 rounding (parity tests). */
  dtype: "float32" | "bfloat16" | "float64";
  threads: number | null;
  timeoutS: number;
  startTimeoutS: number;
  /** Trajectories per forward pass (memory only). */
  microBatchSize: number;
  /** π_cur's log-prob rows are cached up to this size, else recomputed. */
  refCacheMb: number;
  /** Log-prob rows formed per block (states × vocabulary); default the worker's (2^22). */
  rowBlockElements?: number;
  lora: { rank: number; alpha: number; targetModules: string | string[] } | null;
  ray: { address: string | null; numCpus: number; numGpus: number; shipFiles: boolean };
  /** Sampling temperature of the trained policy. */
  temperature: number;
  optim: TorchOptim;
  seed: number;
  /** Extra environment for the workers. */
  env?: Record<string, string>;
}

/** Where an agent's weights come from. */
export interface TorchAgentSource {
  /** Model directory or hub id (the base model with LoRA). */
  path: string;
  /** A saved LoRA adapter directory (resume). */
  adapter?: string | null;
  /** Directory with torch_optimizer.safetensors (resume). */
  optimizerState?: string | null;
}

export interface LoadedAgent {
  vocabSize: number;
  maxSeqLen: number;
  device: string;
  dtype: string;
  params: number;
  trainable: number;
  sharedBase: boolean;
  /** Process id of the worker holding the agent (a Ray actor's own process). */
  pid: number;
}

export class TorchTeam {
  readonly members: TorchMember[] = [];
  readonly learners: TorchLearner[] = [];
  readonly loaded: LoadedAgent[] = [];

  private constructor(
    readonly opts: TorchBackendOptions,
    private readonly clients: WorkerClient[],
    private readonly clientOf: WorkerClient[],
  ) {}

  /** Starts the workers and loads every agent; on any failure the workers already started are stopped. */
  static async start(opts: TorchBackendOptions, sources: TorchAgentSource[]): Promise<TorchTeam> {
    const n = sources.length;
    const base: Omit<WorkerSpec, "label" | "module" | "args"> = {
      python: opts.python,
      env: opts.env,
      timeoutS: opts.timeoutS,
      startTimeoutS: opts.startTimeoutS,
      threads: opts.threads,
    };
    const clients: WorkerClient[] = [];
    const clientOf: WorkerClient[] = [];
    try {
      if (opts.launcher === "ray") {
        const r = opts.ray;
        const args = [
          "--agents",
          String(n),
          "--num-cpus",
          String(r.numCpus),
          "--num-gpus",
          String(r.numGpus),
        ];
        args.push("--workers", opts.workers);
        if (r.address) args.push("--address", r.address);
        if (r.shipFiles) args.push("--ship-files");
        const label = `ray driver${r.address ? ` (${r.address})` : " (local)"}`;
        clients.push(await WorkerClient.start({ ...base, module: "sat_worker.ray_driver", args, label }));
        for (let a = 0; a < n; a++) clientOf.push(clients[0]);
      } else if (opts.workers === "shared") {
        clients.push(await WorkerClient.start({ ...base, module: "sat_worker", label: "torch worker" }));
        for (let a = 0; a < n; a++) clientOf.push(clients[0]);
      } else {
        const started = await Promise.allSettled(
          sources.map((_, a) =>
            WorkerClient.start({ ...base, module: "sat_worker", label: `torch worker for agent ${a}` }),
          ),
        );
        for (const s of started) if (s.status === "fulfilled") clients.push(s.value);
        const failed = started.find((s) => s.status === "rejected");
        if (failed) throw (failed as PromiseRejectedResult).reason;
        clientOf.push(...clients);
      }
      const team = new TorchTeam(opts, clients, clientOf);
      // Workers load in parallel; the agents of one worker one after the other.
      await Promise.all(
        clients.map(async (c) => {
          for (let a = 0; a < n; a++) if (clientOf[a] === c) await team.loadAgent(a, sources[a], false);
        }),
      );
      return team;
    } catch (err) {
      await Promise.all(clients.map((c) => c.close()));
      throw err;
    }
  }

  get size(): number {
    return this.clientOf.length;
  }

  /** One line: where the agents run. */
  describe(): string {
    const l = this.loaded[0];
    const workers = new Set(this.loaded.map((x) => x.pid)).size;
    const where =
      this.opts.launcher === "ray"
        ? `${workers} Ray actor(s) (${this.opts.ray.address ?? "local"})`
        : `${workers} worker process(es)`;
    const lora = this.opts.lora ? `, LoRA rank ${this.opts.lora.rank}` : "";
    return `torch backend: ${this.size} agent(s) on ${where}, ${l.device}, ${l.dtype}${lora}, ${l.trainable} trainable parameters each`;
  }

  private loadMessage(a: number, src: TorchAgentSource): Record<string, unknown> {
    const o = this.opts;
    return {
      agent: a,
      path: src.path,
      dtype: o.dtype,
      device: o.device,
      gpu_index: o.workers === "per_agent" && o.launcher === "process" ? a : 0,
      temperature: o.temperature,
      optim: {
        lr: o.optim.lr,
        beta1: o.optim.beta1,
        beta2: o.optim.beta2,
        eps: o.optim.eps,
        weight_decay: o.optim.weightDecay,
        max_grad_norm: o.optim.maxGradNorm,
      },
      micro_batch_size: o.microBatchSize,
      ref_cache_mb: o.refCacheMb,
      ...(o.rowBlockElements ? { row_block_elements: o.rowBlockElements } : {}),
      lora: o.lora
        ? {
            rank: o.lora.rank,
            alpha: o.lora.alpha,
            target_modules: o.lora.targetModules,
            seed: (o.seed + 7919 * (a + 1)) >>> 0,
            base: src.path,
            adapter: src.adapter ?? null,
          }
        : null,
      optimizer_state: src.optimizerState ?? null,
    };
  }

  private async loadAgent(a: number, src: TorchAgentSource, replace: boolean): Promise<void> {
    const client = this.clientOf[a];
    if (replace) await client.request("unload", { agent: a });
    const r = await client.request("load", this.loadMessage(a, src), this.opts.startTimeoutS);
    const info: LoadedAgent = {
      vocabSize: r.vocab_size as number,
      maxSeqLen: r.max_seq_len as number,
      device: r.device as string,
      dtype: r.dtype as string,
      params: r.params as number,
      trainable: r.trainable as number,
      sharedBase: r.shared_base === true,
      pid: r.pid as number,
    };
    if (!Number.isInteger(info.vocabSize) || !Number.isInteger(info.maxSeqLen))
      throw new BackendError(`${client.label}: load of agent ${a} returned no vocab_size/max_seq_len`);
    this.loaded[a] = info;
    if (!replace) {
      this.members[a] = new TorchMember(client, a, info.vocabSize, info.maxSeqLen);
      this.learners[a] = new TorchLearner(client, a, info.vocabSize);
    } else if (info.vocabSize !== this.members[a].vocabSize) {
      throw new BackendError(
        `${src.path}: agent ${a} has ${info.vocabSize} tokens, the team ${this.members[a].vocabSize}`,
      );
    }
  }

  /** Replaces every agent's weights and optimizer state (resume from a checkpoint). */
  async load(sources: TorchAgentSource[]): Promise<void> {
    if (sources.length !== this.size)
      throw new BackendError(`load: ${sources.length} agent(s) given for a team of ${this.size}`);
    for (let a = 0; a < this.size; a++) await this.loadAgent(a, sources[a], true);
  }

  /** Writes agent a (HF layout or PEFT adapter, plus torch_optimizer.safetensors) into `dir`. */
  async save(a: number, dir: string): Promise<void> {
    await this.clientOf[a].request("save", { agent: a, path: dir }, this.opts.startTimeoutS);
  }

  /** Log-probs of tokens[t] of the given transcripts under agent a (outside any update). */
  async score(
    a: number,
    trajs: readonly Int32Array[],
    states: readonly { traj: number; t: number }[],
  ): Promise<Float64Array> {
    const lengths = trajs.map((t) => t.length);
    const tokens = new Int32Array(lengths.reduce((x, y) => x + y, 0));
    let at = 0;
    for (const t of trajs) {
      tokens.set(t, at);
      at += t.length;
    }
    const r = await this.clientOf[a].request("score", {
      agent: a,
      tokens: encodeArray(tokens),
      lengths: i32(lengths),
      state_traj: i32(states.map((s) => s.traj)),
      state_t: i32(states.map((s) => s.t)),
    });
    return decodeF64(r.logp, "logp", states.length);
  }

  /** Process ids of the workers (or the Ray driver). */
  pids(): number[] {
    return this.clients.map((c) => c.pid ?? -1);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}
