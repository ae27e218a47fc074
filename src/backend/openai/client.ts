/**
 * HTTP client for an OpenAI-compatible inference server (vLLM, SGLang, llama.cpp's server, or
 * `sat serve`): JSON requests with a per-request timeout, retries with exponential backoff on
 * failures that may pass (connection refused or reset, timeouts, HTTP 5xx and 429), and a limit on
 * requests in flight. Every failure becomes one RolloutServerError line naming the server, the
 * request and what went wrong; the reply's content is validated by the caller (dialects.ts).
 */

/** A rollout-server problem: one line, exit code 1 (the run failed; fix the server and --resume). */
export class RolloutServerError extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "RolloutServerError";
  }
}

export interface ClientOptions {
  /** Base URL, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted and dropped). */
  url: string;
  /** Per-request timeout in seconds (connect + answer). */
  timeoutSeconds: number;
  /** Retries after the first attempt, for failures that may pass. */
  retries: number;
  /** First backoff in seconds; doubles with every retry. */
  backoffSeconds: number;
  /** Requests in flight at most. */
  concurrency: number;
  /** Sent as `Authorization: Bearer …` when set (vLLM --api-key, llama.cpp --api-key). */
  apiKey?: string;
}

/** Strips a trailing slash and /v1, so both spellings of the base URL work. */
export function normaliseBaseUrl(url: string): string {
  return url.replace(/\/+$/, "").replace(/\/v1$/, "");
}

/** Whether a failed attempt is worth repeating. */
class Attempt extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export class ServerClient {
  readonly base: string;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly opts: ClientOptions) {
    this.base = normaliseBaseUrl(opts.url);
  }

  /** POST `path` with a JSON body; `what` names the request in errors (agent, episode, model). */
  post(path: string, body: unknown, what: string): Promise<unknown> {
    return this.request("POST", path, JSON.stringify(body), what);
  }

  get(path: string, what: string): Promise<unknown> {
    return this.request("GET", path, undefined, what);
  }

  /** One line naming the server and the request, for errors found in a valid reply. */
  fail(method: string, path: string, what: string, problem: string): RolloutServerError {
    return new RolloutServerError(`rollout server ${this.base}: ${method} ${path} (${what}): ${problem}`);
  }

  private async request(method: string, path: string, body: string | undefined, what: string) {
    await this.acquire();
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.once(method, path, body);
        } catch (err) {
          const a = err instanceof Attempt ? err : new Attempt(String(err), false);
          if (!a.retryable || attempt >= this.opts.retries) {
            const tries = attempt > 0 ? ` (after ${attempt + 1} attempts)` : "";
            throw this.fail(method, path, what, a.message + tries);
          }
          const wait = this.opts.backoffSeconds * 2 ** attempt * 1000;
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    } finally {
      this.release();
    }
  }

  private async once(method: string, path: string, body: string | undefined): Promise<unknown> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    const timeoutMs = this.opts.timeoutSeconds * 1000;
    let res: Response;
    let text: string;
    try {
      // One signal covers the connection and reading the whole body: a server that stalls
      // mid-reply times out like one that never answers.
      const signal = AbortSignal.timeout(timeoutMs);
      res = await fetch(this.base + path, { method, headers, body, signal });
      text = await res.text();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === "TimeoutError" || e.name === "AbortError")
        throw new Attempt(`no answer within ${this.opts.timeoutSeconds} s (backend.rollout_timeout_s)`, true);
      const cause = e.cause?.code ?? e.cause?.message ?? e.message;
      throw new Attempt(`cannot reach the server (${cause})`, true);
    }
    if (!res.ok) {
      const detail = errorDetail(text);
      const retryable = res.status >= 500 || res.status === 429;
      throw new Attempt(`HTTP ${res.status}${detail ? `: ${detail}` : ""}`, retryable);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // Python servers may write NaN or Infinity, which JSON cannot carry.
      const problem = /\b(NaN|Infinity)\b/.test(text)
        ? "the reply holds NaN or Infinity (not JSON): the server computed a non-finite value"
        : `the reply is not JSON (${JSON.stringify(text.slice(0, 60))}…)`;
      throw new Attempt(problem, false);
    }
  }

  private async acquire(): Promise<void> {
    if (this.inFlight < this.opts.concurrency) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlight--;
  }
}

/** The message of an OpenAI-style error body ({error: {message}} or {message}), shortened. */
function errorDetail(text: string): string {
  let msg = text;
  try {
    const j = JSON.parse(text) as {
      error?: { message?: string } | string;
      message?: string;
      detail?: string;
    };
    msg =
      (typeof j.error === "object" ? j.error?.message : j.error) ??
      j.message ??
      j.detail ??
      JSON.stringify(j);
  } catch {
    /* not JSON: the raw text */
  }
  msg = msg.replace(/\s+/g, " ").trim();
  return msg.length > 200 ? msg.slice(0, 200) + "…" : msg;
}
