/**
 * Progress reporting as an injected interface: the library calls `phase`, `log` and `metrics`
 * and never touches the console. The CLI picks one implementation: bars on a terminal (tokens/s
 * and ETA), plain periodic lines when output is redirected, JSON lines with --json, or nothing
 * with --quiet. Metric records get a one-line summary (style.md §10) every `loggingSteps` steps.
 */
import cliProgress from "cli-progress";
import { toJsonLine } from "./jsonl.js";

/** One metrics row: step, optional agent (null = team row), then flat metric keys (conventions §2). */
export interface MetricsRecord {
  step: number;
  agent?: number | null;
  [key: string]: unknown;
}

export interface PhaseBar {
  /** Marks `n` more units done (default 1), of which `tokens` tokens were processed. */
  tick(n?: number, tokens?: number): void;
  /** Ends the phase (also prints its final state). */
  done(): void;
}

export interface Progress {
  /** Starts a phase of `total` units (stages, steps, prompts…). */
  phase(name: string, total: number): PhaseBar;
  /** A free-form line for the user. */
  log(line: string): void;
  /** A warning for the user (stderr, shown even when progress is silent). */
  warn?(line: string): void;
  /** A metrics record; shown as a one-line summary at the logging cadence. */
  metrics(record: MetricsRecord): void;
  /** Stops any live display. */
  close(): void;
}

export type ProgressMode = "tty" | "plain" | "json" | "silent";

export interface ProgressOptions {
  /** Where output goes (default process.stdout). */
  stream?: NodeJS.WritableStream;
  /** Print the metrics summary when step % loggingSteps === 0 (default 1). */
  loggingSteps?: number;
  /** Minimum time between plain/JSON phase lines, in ms (default 10 s). */
  intervalMs?: number;
  /** Clock in ms (tests inject one). */
  now?: () => number;
  /** Where warnings go (every mode, silent included). */
  warn?: (line: string) => void;
}

const noopBar: PhaseBar = { tick() {}, done() {} };

export const silentProgress: Progress = {
  phase: () => noopBar,
  log() {},
  metrics() {},
  close() {},
};

export function createProgress(mode: ProgressMode, opts: ProgressOptions = {}): Progress {
  const progress: Progress = (() => {
    switch (mode) {
      case "silent":
        return { ...silentProgress };
      case "json":
        return new LineProgress(opts, true);
      case "plain":
        return new LineProgress(opts, false);
      case "tty":
        return new TtyProgress(opts);
    }
  })();
  if (opts.warn) progress.warn = opts.warn;
  return progress;
}

// ---------------------------------------------------------------------------------------------
// Formatting helpers

/** 3725 → "1h02m05s", 65 → "1m05s", 7.2 → "7s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const pad = (x: number) => String(x).padStart(2, "0");
  if (h > 0) return `${h}h${pad(m)}m${pad(r)}s`;
  if (m > 0) return `${m}m${pad(r)}s`;
  return `${r}s`;
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return v
    .toPrecision(4)
    .replace(/(\.\d*?)0+$/, "$1")
    .replace(/\.$/, "");
}

/** Short labels for the keys worth a glance (conventions §2 names). */
const SUMMARY_KEYS: [key: string, label: string, scale?: number, unit?: string][] = [
  ["reward/mean", "reward"],
  ["actor/pg_loss", "loss"],
  ["loss", "loss"],
  ["trust_region/kl_quantile", "kl"],
  ["trust_region/accepted", "accepted"],
  ["trust_region/backtracks", "backtracks"],
  ["actor/entropy", "entropy"],
  ["perf/throughput", "tok/s"],
  ["timing_s/step", "", 1000, "ms"],
  ["timing_s/update_actor", "", 1000, "ms"],
];

/** `step 12 | agent 1 | loss 1.234 | kl 0.004 | 45 ms` from a metrics record. */
export function summarizeMetrics(record: MetricsRecord, maxFields = 6): string {
  const parts = [`step ${record.step}`];
  if (typeof record.agent === "number") parts.push(`agent ${record.agent}`);
  const shown = new Set<string>();
  for (const [key, label, scale, unit] of SUMMARY_KEYS) {
    const v = record[key];
    if (typeof v !== "number" || shown.has(label || unit!)) continue;
    shown.add(label || unit!);
    const x = formatNumber(v * (scale ?? 1));
    parts.push(unit ? `${label ? label + " " : ""}${x} ${unit}` : `${label} ${x}`);
  }
  if (shown.size === 0) {
    // Unknown record shape: show its first numeric fields under their own names.
    for (const [key, v] of Object.entries(record)) {
      if (parts.length > maxFields + 1) break;
      if (key === "step" || key === "agent" || key === "time" || key === "epoch" || typeof v !== "number")
        continue;
      parts.push(`${key} ${formatNumber(v)}`);
    }
  }
  return parts.join(" | ");
}

/** Shared bookkeeping for a phase: done/total, tokens/s and ETA. */
class PhaseState {
  done = 0;
  tokens = 0;
  readonly start: number;
  constructor(
    readonly name: string,
    readonly total: number,
    private readonly now: () => number,
  ) {
    this.start = now();
  }
  elapsedS(): number {
    return (this.now() - this.start) / 1000;
  }
  tokensPerS(): number | null {
    const t = this.elapsedS();
    return this.tokens > 0 && t > 0 ? this.tokens / t : null;
  }
  etaS(): number | null {
    if (this.done <= 0 || this.total <= 0) return null;
    return (this.elapsedS() * Math.max(0, this.total - this.done)) / this.done;
  }
  line(): string {
    const pct = this.total > 0 ? ` (${Math.floor((100 * this.done) / this.total)}%)` : "";
    const rate = this.tokensPerS();
    const eta = this.etaS();
    const parts = [`${this.name} ${this.done}/${this.total}${pct}`];
    if (rate !== null) parts.push(`${formatNumber(Math.round(rate))} tok/s`);
    if (this.done >= this.total) parts.push(`took ${formatDuration(this.elapsedS())}`);
    else if (eta !== null) parts.push(`eta ${formatDuration(eta)}`);
    return parts.join(" | ");
  }
  json(event: string): object {
    return {
      event,
      phase: this.name,
      done: this.done,
      total: this.total,
      elapsed_s: this.elapsedS(),
      tokens_per_s: this.tokensPerS(),
      eta_s: this.etaS(),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Plain lines and JSON lines

class LineProgress implements Progress {
  private readonly stream: NodeJS.WritableStream;
  private readonly loggingSteps: number;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(
    opts: ProgressOptions,
    private readonly json: boolean,
  ) {
    this.stream = opts.stream ?? process.stdout;
    this.loggingSteps = opts.loggingSteps ?? 1;
    this.intervalMs = opts.intervalMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  private write(text: string): void {
    this.stream.write(text.endsWith("\n") ? text : text + "\n");
  }

  phase(name: string, total: number): PhaseBar {
    const state = new PhaseState(name, total, this.now);
    let lastPrint = this.now();
    this.write(this.json ? toJsonLine(state.json("phase_start")) : state.line());
    let ended = false;
    return {
      tick: (n = 1, tokens = 0) => {
        state.done += n;
        state.tokens += tokens;
        if (this.now() - lastPrint >= this.intervalMs && state.done < state.total) {
          lastPrint = this.now();
          this.write(this.json ? toJsonLine(state.json("phase")) : state.line());
        }
      },
      done: () => {
        if (ended) return;
        ended = true;
        this.write(this.json ? toJsonLine(state.json("phase_end")) : state.line());
      },
    };
  }

  log(line: string): void {
    this.write(this.json ? toJsonLine({ event: "log", message: line }) : line);
  }

  metrics(record: MetricsRecord): void {
    if (this.json) this.write(toJsonLine({ event: "metrics", ...record }));
    else if (record.step % this.loggingSteps === 0) this.write(summarizeMetrics(record));
  }

  close(): void {}
}

// ---------------------------------------------------------------------------------------------
// Terminal bars

class TtyProgress implements Progress {
  private readonly stream: NodeJS.WritableStream;
  private readonly loggingSteps: number;
  private readonly now: () => number;
  private bars: cliProgress.MultiBar | null = null;
  private active = 0;

  constructor(opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stdout;
    this.loggingSteps = opts.loggingSteps ?? 1;
    this.now = opts.now ?? Date.now;
  }

  private multibar(): cliProgress.MultiBar {
    this.bars ??= new cliProgress.MultiBar(
      {
        stream: this.stream,
        format: "{phase} |{bar}| {value}/{total} | {rate} | ETA {eta_formatted}",
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        etaBuffer: 20,
        fps: 5,
        gracefulExit: false, // Ctrl-C belongs to the CLI's handler, which lets the current write finish
      },
      cliProgress.Presets.shades_classic,
    );
    return this.bars;
  }

  phase(name: string, total: number): PhaseBar {
    const state = new PhaseState(name, total, this.now);
    const payload = () => {
      const r = state.tokensPerS();
      return { phase: name, rate: r === null ? "- tok/s" : `${formatNumber(Math.round(r))} tok/s` };
    };
    const bar = this.multibar().create(total, 0, payload());
    this.active++;
    let ended = false;
    return {
      tick: (n = 1, tokens = 0) => {
        state.done += n;
        state.tokens += tokens;
        bar.update(state.done, payload());
      },
      done: () => {
        if (ended) return;
        ended = true;
        bar.update(state.done, payload());
        if (--this.active === 0) this.stop();
      },
    };
  }

  private stop(): void {
    if (!this.bars) return;
    this.bars.update(); // flushes log lines still buffered for the next redraw
    this.bars.stop();
    this.bars = null;
  }

  log(line: string): void {
    if (this.bars) this.bars.log(line + "\n");
    else this.stream.write(line + "\n");
  }

  metrics(record: MetricsRecord): void {
    if (record.step % this.loggingSteps === 0) this.log(summarizeMetrics(record));
  }

  close(): void {
    this.stop();
    this.active = 0;
  }
}
