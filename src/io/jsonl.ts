/**
 * JSON Lines files for run logs (stages.jsonl, eval.jsonl): an appender that writes one record per
 * line and fsyncs it, so a crash loses at most the record being written, and a reader that names
 * file:line on a bad line and drops a torn last line (the crash case) with a warning.
 * Non-finite numbers become null (JSON has no NaN) and typed arrays become plain lists.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  fstatSync,
  writeSync,
} from "node:fs";
import { writeFileAtomic } from "./atomic.js";

/** A bad JSONL file; the CLI prints the message (it names file:line) and exits with code 1. */
export class JsonlError extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "JsonlError";
  }
}

export type Warn = (message: string) => void;

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) return null;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number | bigint>, (v) =>
      typeof v === "bigint" ? Number(v) : v,
    );
  }
  if (typeof value === "bigint") return Number(value);
  return value;
}

/** One record as a JSON line (with the trailing newline). */
export function toJsonLine(record: unknown): string {
  return JSON.stringify(record, replacer) + "\n";
}

export class JsonlWriter {
  private fd: number | null;

  /**
   * Opens `path` for appending, creating it if needed. If the file ends in a torn line (a crash
   * mid-write), that line is cut off first, so new records never get glued onto it.
   */
  constructor(
    readonly path: string,
    warn: Warn = () => {},
  ) {
    this.fd = openSync(path, "a+");
    const size = fstatSync(this.fd).size;
    if (size > 0) {
      const tail = tornTailStart(this.fd, size);
      if (tail !== null) {
        warn(`${path}: cut a torn last line (${size - tail} bytes, left by an interrupted write)`);
        ftruncateSync(this.fd, tail);
        fsyncSync(this.fd);
      }
    }
  }

  /** Appends one record and fsyncs it. */
  append(record: object): void {
    if (this.fd === null) throw new Error(`${this.path}: append after close`);
    const buf = Buffer.from(toJsonLine(record));
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Offset where an unterminated last line starts, or null when the file ends with "\n". */
function tornTailStart(fd: number, size: number): number | null {
  const last = Buffer.alloc(1);
  readSync(fd, last, 0, 1, size - 1);
  if (last[0] === 0x0a) return null;
  // Scan backwards in chunks for the previous newline.
  const chunk = Buffer.alloc(64 * 1024);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - chunk.length);
    const n = readSync(fd, chunk, 0, end - start, start);
    const i = chunk.subarray(0, n).lastIndexOf(0x0a);
    if (i >= 0) return start + i + 1;
    end = start;
  }
  return 0;
}

export interface ReadJsonlOptions {
  /** Called for a torn last line that was skipped. */
  warn?: Warn;
}

/**
 * Reads every record. A line that is not valid JSON is an error naming file:line, except an
 * unterminated last line, which an interrupted append leaves behind: it is skipped with a warning.
 * Blank lines are skipped. A missing file reads as no records.
 */
export function readJsonl<T = Record<string, unknown>>(path: string, opts: ReadJsonlOptions = {}): T[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  const terminated = text.endsWith("\n");
  const out: T[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const isTornCandidate = i === lines.length - 1 && !terminated;
    let record: unknown;
    let problem: string | null = null;
    try {
      record = JSON.parse(line);
      if (typeof record !== "object" || record === null || Array.isArray(record))
        problem = "not a JSON object";
    } catch (err) {
      problem = `not valid JSON (${(err as Error).message.split("\n")[0]})`;
    }
    if (problem === null) out.push(record as T);
    else if (isTornCandidate)
      opts.warn?.(`${path}:${i + 1}: ignoring a torn last line (an interrupted write)`);
    else throw new JsonlError(`${path}:${i + 1}: ${problem}; fix or delete that line`);
  }
  return out;
}

/** Atomically rewrites `path` keeping only the records `keep` accepts; returns how many were dropped. */
export function filterJsonl(
  path: string,
  keep: (record: Record<string, unknown>) => boolean,
  opts: ReadJsonlOptions = {},
): number {
  if (!existsSync(path)) return 0;
  const records = readJsonl(path, opts);
  const kept = records.filter(keep);
  writeFileAtomic(path, kept.map(toJsonLine).join(""));
  return records.length - kept.length;
}
