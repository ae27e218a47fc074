/**
 * The TypeScript end of the worker protocol (docs/worker-protocol.md): spawns a Python worker (or
 * the Ray driver), speaks JSON lines over its stdin/stdout, matches replies to requests by id and
 * turns every way a worker can fail into one BackendError line: it exits or is killed (exit code
 * and the last line it wrote to stderr), it hangs (no reply within the timeout: it is stopped),
 * it answers ok = false, or its reply is not readable.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { PACKAGE_ROOT } from "../../io/python.js";

export const PROTOCOL_VERSION = 1;
/** The directory holding the sat_worker package. */
export const PYTHON_DIR = `${PACKAGE_ROOT}python`;

/** A failure of the PyTorch backend; the CLI prints its message as one line and exits 1. */
export class BackendError extends Error {
  readonly exitCode = 1;
  override name = "BackendError";
}

export interface WorkerSpec {
  python: string;
  /** Python module to run: "sat_worker" (a worker) or "sat_worker.ray_driver". */
  module: string;
  args?: string[];
  env?: Record<string, string>;
  /** Names the worker in messages, e.g. "torch worker for agent 1". */
  label: string;
  /** Seconds a request may take before the worker is taken for hung and stopped. */
  timeoutS: number;
  /** Seconds start-up and model loading may take. */
  startTimeoutS: number;
  /** Intra-op threads of torch in the worker (null = torch's default). */
  threads: number | null;
}

type Reply = Record<string, unknown> & { id: number; ok: boolean; error?: string };

interface Pending {
  op: string;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const STDERR_LINES = 20;

export class WorkerClient {
  readonly label: string;
  /** The hello reply: versions, pid, threads. */
  info: Record<string, unknown> = {};
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffer = "";
  private readonly stderrTail: string[] = [];
  private failure: BackendError | null = null;
  private closing = false;
  private readonly exited: Promise<void>;

  private constructor(private readonly spec: WorkerSpec) {
    this.label = spec.label;
    const env = {
      ...process.env,
      PYTHONPATH: [PYTHON_DIR, process.env.PYTHONPATH].filter(Boolean).join(":"),
      PYTHONUNBUFFERED: "1",
      ...spec.env,
    };
    this.child = spawn(spec.python, ["-m", spec.module, ...(spec.args ?? [])], { env, stdio: "pipe" });
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (chunk: string) => this.onData(chunk));
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (chunk: string) => {
      for (const line of chunk.split("\n")) if (line.trim()) this.stderrTail.push(line.trim());
      this.stderrTail.splice(0, Math.max(0, this.stderrTail.length - STDERR_LINES));
    });
    // Writing to a worker that died raises EPIPE on stdin; the exit handler reports the death.
    this.child.stdin.on("error", () => {});
    this.exited = new Promise((resolve) => {
      this.child.on("error", (err) => {
        this.fail(`${this.label} could not start ${spec.python} (${err.message}); run \`sat doctor\``);
        resolve();
      });
      this.child.on("exit", (code, signal) => {
        if (!this.closing) {
          const how = signal ? `was killed (${signal})` : `exited with code ${code}`;
          const ops = [...this.pending.values()].map((p) => p.op);
          const during = ops.length > 0 ? ` during ${ops[0]}` : "";
          const last = this.lastStderr();
          this.fail(`${this.label} ${how}${during}${last ? `: ${last}` : ""}`);
        }
        resolve();
      });
    });
  }

  /** Starts a worker and checks that it speaks this protocol version. */
  static async start(spec: WorkerSpec): Promise<WorkerClient> {
    const c = new WorkerClient(spec);
    c.info = await c.request(
      "hello",
      { protocol: PROTOCOL_VERSION, threads: spec.threads },
      spec.startTimeoutS,
    );
    return c;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends one request; resolves with the reply's fields or rejects with a BackendError. */
  request(op: string, body: Record<string, unknown> = {}, timeoutS = this.spec.timeoutS): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(
          `${this.label} did not answer ${op} within ${timeoutS} s (backend.torch_timeout_s); it was stopped`,
        );
        this.child.kill("SIGKILL");
      }, timeoutS * 1000);
      this.pending.set(id, { op, resolve, reject, timer });
      this.child.stdin.write(JSON.stringify({ id, op, ...body }) + "\n");
    });
  }

  /** Asks the worker to exit; kills it when it does not within a few seconds. */
  async close(): Promise<void> {
    if (this.closing) return this.exited;
    this.closing = true;
    if (!this.failure && this.child.exitCode === null) {
      this.child.stdin.write(JSON.stringify({ id: 0, op: "shutdown" }) + "\n");
      this.child.stdin.end();
      const kill = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(kill);
    } else {
      this.child.kill("SIGKILL");
      await this.exited;
    }
    this.fail(`${this.label} is closed`);
  }

  private lastStderr(): string {
    // Python's traceback ends with the exception line; Ray and warnings come before it.
    return this.stderrTail.length > 0 ? this.stderrTail[this.stderrTail.length - 1].slice(0, 300) : "";
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onLine(line);
    }
  }

  private onLine(line: string): void {
    let reply: Reply;
    try {
      reply = JSON.parse(line) as Reply;
    } catch {
      this.fail(`${this.label} wrote a line that is not a protocol reply: ${line.slice(0, 120)}`);
      this.child.kill("SIGKILL");
      return;
    }
    const p = this.pending.get(reply.id);
    if (!p) return; // the reply to shutdown, or to a request already timed out
    this.pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.ok) p.resolve(reply);
    else p.reject(new BackendError(`${this.label}: ${p.op} failed: ${reply.error ?? "no reason given"}`));
  }

  /** Marks the worker failed and rejects everything in flight with the same one-line reason. */
  private fail(message: string): void {
    if (!this.failure) this.failure = new BackendError(message);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(this.failure);
      this.pending.delete(id);
    }
  }
}
