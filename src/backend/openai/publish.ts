/**
 * Publishes an in-process agent's weights to a rollout server under versioned names, so a server
 * can sample for an agent that is being trained here without ever serving stale weights: the
 * weights of version v are written to `<dir>/<name of v>/` (Hugging Face layout, written to a
 * temp dir and renamed into place) and the server is asked to load them under that name
 * (`POST /v1/load_lora_adapter {lora_name, lora_path}`, the call vLLM uses for runtime adapters;
 * `sat serve` loads a whole model directory there). The previous version is unloaded afterwards.
 *
 * A new version is published only when the weights changed since the last one (compared exactly):
 * a rejected update restores the old weights bit for bit and publishes nothing. The version
 * number follows the policy version, and runs ahead of it in the middle of a stage, when an
 * accepted update has changed the weights before the trainer counts it at the end of the stage.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Transformer } from "../../model/transformer.js";
import type { Tokenizer } from "../../model/tokenizer.js";
import { saveModel } from "../../model/checkpoint.js";
import { fsyncDir } from "../../io/atomic.js";
import type { ServerClient } from "./client.js";

export interface PublisherOptions {
  client: ServerClient;
  /** Directory the server can read; one subdirectory per published version. */
  dir: string;
  agent: number;
  modelName: (version: number) => string;
  model: Transformer;
  tok: Tokenizer;
  /** The agent's policy version now (the trainer's count of accepted updates). */
  policyVersion: () => number;
}

export class WeightPublisher {
  private last: { version: number; name: string; params: ArrayLike<number> } | null = null;
  private pending: Promise<number> | null = null;

  constructor(private readonly opts: PublisherOptions) {}

  /** Publishes the current weights if they changed; returns the version the server holds them as. */
  publish(): Promise<number> {
    // Sessions of one rollout may ask at once: they share one publication.
    this.pending ??= this.publishNow().finally(() => (this.pending = null));
    return this.pending;
  }

  private async publishNow(): Promise<number> {
    const { model, client } = this.opts;
    const params = model.params;
    const last = this.last;
    if (last && sameValues(last.params, params)) return last.version;
    const policy = this.opts.policyVersion();
    const version = last ? Math.max(last.version + 1, policy) : policy;
    const name = this.opts.modelName(version);
    const path = resolve(this.opts.dir, name);
    this.write(path);
    const what = `agent ${this.opts.agent}, publishing ${name}`;
    await client.post("/v1/load_lora_adapter", { lora_name: name, lora_path: path }, what);
    if (last && last.name !== name)
      await client.post(
        "/v1/unload_lora_adapter",
        { lora_name: last.name },
        `agent ${this.opts.agent}, unloading ${last.name}`,
      );
    this.last = { version, name, params: params.slice() };
    return version;
  }

  /** Writes the model directory under a temp name and renames it into place. */
  private write(path: string): void {
    const parent = resolve(path, "..");
    mkdirSync(parent, { recursive: true });
    const tmp = join(parent, `.${path.split("/").pop()}.tmp-${process.pid}-${Date.now()}`);
    mkdirSync(tmp);
    saveModel(tmp, this.opts.model, this.opts.tok);
    // A name published by an interrupted run is replaced: names are reused only by a resume, which
    // regenerates the same weights; the server reloads it from the load call that follows.
    if (existsSync(path)) rmSync(path, { recursive: true, force: true });
    renameSync(tmp, path);
    fsyncDir(parent);
  }
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(a[i] !== a[i] && b[i] !== b[i])) return false;
  return true;
}
