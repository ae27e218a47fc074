/**
 * `sat serve`: our engine's agents behind the OpenAI completions API that vLLM and SGLang speak,
 * on node:http. It is the reference server of the rollout client (backend/openai) and its test
 * double:
 *
 *   GET  /health                    {"status": "ok"}
 *   GET  /v1/models                 the served names (e.g. agent-1@v7)
 *   POST /v1/completions            prompt as token ids (one list, or a list of lists), max_tokens,
 *                                   temperature, top_p, stop_token_ids (kept in the reply), seed,
 *                                   logprobs (sampling log-probs: temperature and top-p applied),
 *                                   return_token_ids, return_tokens_as_token_ids, and the extension
 *                                   sat_uniforms: the per-token draws of our sampler (a list per
 *                                   prompt), which make a reply equal an in-process turn
 *   POST /v1/load_lora_adapter      {lora_name, lora_path}: loads a model directory under a name
 *   POST /v1/unload_lora_adapter    {lora_name}             (only with a load root, see ServeOptions)
 *
 * Sampling: with sat_uniforms the draws are those; else with a seed they come from Rng(seed) (a
 * fork per prompt after the first), so the same request gives the same tokens; else from a fresh
 * random seed. Requests that arrive together are decoded as one batch per model (sampler.ts).
 * Bad requests get an OpenAI-style error body with status 400 (404 for a model not served).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomInt } from "node:crypto";
import { realpathSync } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type { AddressInfo } from "node:net";
import { Rng } from "../../engine/rng.js";
import type { Engine } from "../../engine/engine.js";
import { loadModel, loadWeightsInto, readModelConfig } from "../../model/checkpoint.js";
import { readTokenizerHash } from "../../model/tokenizer.js";
import type { Transformer } from "../../model/transformer.js";
import type { Tokenizer } from "../../model/tokenizer.js";
import type { TurnOutput } from "../../contracts/member.js";
import { BatchSampler, type SampleJob } from "./sampler.js";

export interface ServeOptions {
  engine: Engine;
  tok: Tokenizer;
  /** Models served from the start, by name. */
  models: Map<string, Transformer>;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Model directories below this root may be loaded at run time; null = loading is refused. */
  loadRoot?: string | null;
  /** Most sequences decoded in one batch. */
  maxBatch?: number;
  /** One line per event worth a log (loads, errors). */
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  /** Completion requests answered so far. */
  readonly completions: number;
  /** The names served now. */
  names(): string[];
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY = 64 * 1024 * 1024;

interface Pending {
  name: string;
  job: SampleJob;
  resolve: (o: TurnOutput) => void;
  reject: (e: Error) => void;
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const models = new Map(opts.models);
  /** Unloaded models, reused by later loads of the same architecture (the engine heap is not freed). */
  const pool = new Map<string, Transformer[]>();
  const sampler = new BatchSampler(opts.maxBatch ?? 64);
  const log = opts.log ?? (() => {});
  const loadRoot = opts.loadRoot ? realpathSync(opts.loadRoot) : null;
  let pending: Pending[] = [];
  let flushScheduled = false;
  let completions = 0;
  let counter = 0;

  const served = () => [...models.keys()].sort();

  function modelOf(name: unknown): Transformer {
    if (typeof name !== "string") throw new HttpError(400, "`model` must be a string naming a served model");
    const m = models.get(name);
    if (!m)
      throw new HttpError(404, `model ${name} is not served (serving: ${served().join(", ") || "none"})`);
    return m;
  }

  /** Decodes everything queued, one batch per model, resolved by name now (a load may have replaced it). */
  function flush(): void {
    flushScheduled = false;
    const jobs = pending;
    pending = [];
    const byName = new Map<string, Pending[]>();
    for (const p of jobs) {
      let l = byName.get(p.name);
      if (!l) byName.set(p.name, (l = []));
      l.push(p);
    }
    for (const [name, list] of byName) {
      try {
        const outs = sampler.run(
          modelOf(name),
          list.map((p) => p.job),
        );
        list.forEach((p, i) => p.resolve(outs[i]));
      } catch (err) {
        list.forEach((p) => p.reject(err as Error));
      }
    }
  }

  function sample(name: string, job: SampleJob): Promise<TurnOutput> {
    return new Promise((resolve, reject) => {
      pending.push({ name, job, resolve, reject });
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    });
  }

  async function completion(body: Record<string, unknown>): Promise<unknown> {
    const name = body.model as string;
    const model = modelOf(body.model);
    const V = model.cfg.vocabSize;
    const prompts = promptsOf(body.prompt, V);
    const maxTokens = intField(body.max_tokens ?? 16, "max_tokens", 1);
    const temperature = numField(body.temperature ?? 1, "temperature", 0, Infinity);
    const topP = numField(body.top_p ?? 1, "top_p", Number.MIN_VALUE, 1);
    if ((body.n ?? 1) !== 1) throw new HttpError(400, "`n` must be 1 (send one prompt per sample)");
    const stop = idsField(body.stop_token_ids ?? [], "stop_token_ids", V);
    const seed = body.seed === undefined || body.seed === null ? null : intField(body.seed, "seed", 0);
    const uniforms = uniformsOf(body.sat_uniforms, prompts.length, maxTokens);
    const jobs = prompts.map((prompt, i): SampleJob => {
      if (prompt.length + maxTokens > model.cfg.maxSeqLen)
        throw new HttpError(
          400,
          `prompt ${i} has ${prompt.length} tokens; with max_tokens ${maxTokens} it exceeds the context of ${model.cfg.maxSeqLen}`,
        );
      let u = uniforms?.[i];
      if (!u) {
        const base = new Rng(seed ?? randomInt(2 ** 31));
        const rng = i === 0 ? base : base.fork(String(i));
        u = Float64Array.from({ length: maxTokens }, () => rng.uniform());
      }
      return { prompt, maxTokens, stop, temperature, topP, uniforms: u };
    });
    const outs = await Promise.all(jobs.map((j) => sample(name, j)));
    completions++;
    const wantLogprobs = typeof body.logprobs === "number";
    const asIds = body.return_tokens_as_token_ids === true;
    let completionTokens = 0;
    const choices = outs.map((o, index) => {
      const tokens = Array.from(o.tokens);
      completionTokens += tokens.length;
      const last = tokens.length > 0 ? tokens[tokens.length - 1] : -1;
      const stopped = stop.includes(last);
      return {
        index,
        text: opts.tok.decode(tokens),
        ...(body.return_token_ids === true ? { token_ids: tokens } : {}),
        logprobs: wantLogprobs
          ? {
              tokens: tokens.map((t) => (asIds ? `token_id:${t}` : opts.tok.decode([t]))),
              token_logprobs: Array.from(o.logp),
              top_logprobs: null,
              text_offset: [],
            }
          : null,
        finish_reason: stopped ? "stop" : "length",
        stop_reason: stopped ? last : null,
      };
    });
    const promptTokens = prompts.reduce((s, p) => s + p.length, 0);
    return {
      id: `cmpl-${++counter}`,
      object: "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: name,
      choices,
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      },
    };
  }

  function load(body: Record<string, unknown>): string {
    if (!loadRoot) throw new HttpError(400, "loading models is off; start sat serve with --load-dir <dir>");
    const name = body.lora_name;
    const path = body.lora_path;
    if (typeof name !== "string" || name === "")
      throw new HttpError(400, "`lora_name` must be a non-empty string");
    if (typeof path !== "string") throw new HttpError(400, "`lora_path` must be a model directory");
    let real: string;
    try {
      real = realpathSync(resolve(path));
    } catch {
      throw new HttpError(400, `lora_path ${path} does not exist`);
    }
    const rel = relative(loadRoot, real);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel) || rel.split(sep).includes(".."))
      throw new HttpError(400, `lora_path ${path} is outside the load directory ${loadRoot}`);
    let model: Transformer;
    try {
      // A model of an architecture unloaded before takes over that one's buffers.
      const reuse = pool.get(JSON.stringify(readModelConfig(real)))?.pop();
      if (reuse) {
        const hash = readTokenizerHash(real);
        if (hash !== null && hash !== opts.tok.hash)
          throw new Error("its tokenizer differs from the served models'");
        loadWeightsInto(reuse, join(real, "model.safetensors"));
        model = reuse;
      } else {
        model = loadModel(real, opts.engine, opts.tok);
      }
    } catch (err) {
      throw new HttpError(400, `cannot load ${path}: ${(err as Error).message}`);
    }
    const old = models.get(name);
    models.set(name, model);
    if (old) release(old);
    log(`loaded ${name} from ${real}`);
    return `Success: model ${name} loaded`;
  }

  function unload(body: Record<string, unknown>): string {
    if (!loadRoot) throw new HttpError(400, "unloading models is off; start sat serve with --load-dir <dir>");
    const name = body.lora_name;
    if (typeof name !== "string") throw new HttpError(400, "`lora_name` must be a string");
    const m = models.get(name);
    if (!m)
      throw new HttpError(404, `model ${name} is not served (serving: ${served().join(", ") || "none"})`);
    models.delete(name);
    release(m);
    log(`unloaded ${name}`);
    return `Success: model ${name} unloaded`;
  }

  function release(m: Transformer): void {
    const key = JSON.stringify(m.cfg);
    let l = pool.get(key);
    if (!l) pool.set(key, (l = []));
    l.push(m);
  }

  async function route(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    const url = (req.url ?? "/").split("?")[0].replace(/\/+$/, "") || "/";
    if (req.method === "GET" && (url === "/health" || url === "/v1/health"))
      return { status: 200, body: { status: "ok" } };
    if (req.method === "GET" && url === "/v1/models") {
      const data = served().map((id) => ({
        id,
        object: "model",
        owned_by: "sat-llm",
        max_model_len: models.get(id)!.cfg.maxSeqLen,
      }));
      return { status: 200, body: { object: "list", data } };
    }
    const routes: Record<string, (b: Record<string, unknown>) => unknown> = {
      "/v1/completions": completion,
      "/v1/load_lora_adapter": load,
      "/v1/unload_lora_adapter": unload,
    };
    const handler = routes[url];
    if (!handler) throw new HttpError(404, `no route ${req.method} ${url}`);
    if (req.method !== "POST") throw new HttpError(405, `${url} takes POST`);
    const body = await readJsonBody(req);
    return { status: 200, body: await handler(body) };
  }

  const server: Server = createServer((req, res) => {
    route(req).then(
      ({ status, body }) => send(res, status, body),
      (err: Error) => {
        const status = err instanceof HttpError ? err.status : 500;
        if (status === 500) log(`error: ${err.message}`);
        send(res, status, {
          error: {
            message: err.message,
            type: status === 404 ? "NotFoundError" : "BadRequestError",
            code: status,
          },
        });
      },
    );
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolveListen());
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.host ?? "127.0.0.1";
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    get completions() {
      return completions;
    },
    names: served,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "the request body is not JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new HttpError(400, "the request body must be a JSON object");
  return body as Record<string, unknown>;
}

function intField(v: unknown, name: string, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min)
    throw new HttpError(400, `\`${name}\` must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function numField(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== "number" || !(v >= min && v <= max))
    throw new HttpError(
      400,
      `\`${name}\` must be a number in [${min === Number.MIN_VALUE ? "0 (excl.)" : min}, ${max}], got ${JSON.stringify(v)}`,
    );
  return v;
}

function idsField(v: unknown, name: string, V: number): number[] {
  if (!Array.isArray(v) || v.some((t) => typeof t !== "number" || !Number.isInteger(t) || t < 0 || t >= V))
    throw new HttpError(400, `\`${name}\` must be a list of token ids in [0, ${V})`);
  return v as number[];
}

/** One list of ids, or a list of such lists. */
function promptsOf(v: unknown, V: number): Int32Array[] {
  if (!Array.isArray(v) || v.length === 0)
    throw new HttpError(
      400,
      "`prompt` must be a non-empty list of token ids (or of such lists); text prompts are not supported",
    );
  const lists = Array.isArray(v[0]) ? (v as unknown[]) : [v];
  return lists.map((l, i) => {
    const ids = idsField(l, lists.length > 1 ? `prompt[${i}]` : "prompt", V);
    if (ids.length === 0) throw new HttpError(400, "a prompt must hold at least one token");
    return Int32Array.from(ids);
  });
}

function uniformsOf(v: unknown, prompts: number, maxTokens: number): Float64Array[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v))
    throw new HttpError(400, "`sat_uniforms` must be a list of numbers in [0, 1) (a list per prompt)");
  const lists = Array.isArray(v[0]) ? (v as unknown[]) : [v];
  if (lists.length !== prompts)
    throw new HttpError(400, `\`sat_uniforms\` has ${lists.length} lists for ${prompts} prompts`);
  return lists.map((l) => {
    if (
      !Array.isArray(l) ||
      l.length < maxTokens ||
      l.some((u) => typeof u !== "number" || !(u >= 0 && u < 1))
    )
      throw new HttpError(
        400,
        `\`sat_uniforms\` needs at least max_tokens (${maxTokens}) numbers in [0, 1) per prompt`,
      );
    return Float64Array.from(l as number[]);
  });
}
