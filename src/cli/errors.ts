/**
 * Errors the CLI turns into one line on stderr: `UsageError` (exit 2: fix the command line or the
 * config), `RunError` (exit 1: the run itself failed). Any error carrying a numeric `exitCode`
 * (ConfigError, RunDirError, JsonlError) is treated the same way, and so are the model-file errors
 * (CheckpointError, SafetensorsError: exit 1), whose messages name the file and what is wrong;
 * anything else is unexpected and shows its stack only with --debug.
 */
import { CheckpointError } from "../model/checkpoint.js";
import { SafetensorsError } from "../model/safetensors.js";

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export class UsageError extends Error {
  readonly exitCode = EXIT_USAGE;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export class RunError extends Error {
  readonly exitCode = EXIT_RUNTIME;
  constructor(message: string) {
    super(message);
    this.name = "RunError";
  }
}

/** The error a command throws while its library part does not exist yet. */
export function notImplemented(command: string, needs: string): RunError {
  return new RunError(`${command} is not available yet: it needs ${needs}, which is not wired to the CLI`);
}

/** Collapses a message to one line. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, " ").trim();
}

export interface FormattedError {
  exitCode: number;
  /** Lines for stderr: one, or the stack as well with --debug. */
  lines: string[];
}

/** What to do about an operating-system error while reading or writing files, by errno code. */
const SYSTEM_ERRORS: Record<string, string> = {
  ENOSPC:
    "no space left on the device; free some space or choose another --output-dir (completed checkpoints are intact)",
  EDQUOT:
    "disk quota exceeded; free some space or choose another --output-dir (completed checkpoints are intact)",
  EROFS: "the file system is read-only; choose another --output-dir",
  EACCES: "permission denied; check the permissions or choose another path",
  EPERM: "operation not permitted; check the permissions or choose another path",
  EMFILE: "too many open files; raise the limit (ulimit -n)",
};

function systemErrorMessage(e: Error): string | null {
  const { code, path, syscall } = e as NodeJS.ErrnoException;
  if (!code || !(code in SYSTEM_ERRORS)) return null;
  return `${syscall ?? "file operation"}${path ? ` ${path}` : ""}: ${SYSTEM_ERRORS[code]}`;
}

export function formatError(err: unknown, debug: boolean): FormattedError {
  const e = err instanceof Error ? err : new Error(String(err));
  const modelFile = e instanceof CheckpointError || e instanceof SafetensorsError;
  const system = systemErrorMessage(e);
  const code = modelFile || system ? EXIT_RUNTIME : (e as { exitCode?: unknown }).exitCode;
  const known = typeof code === "number" && code > 0;
  const message = system ?? oneLine(e.message || e.name);
  const suffix = known
    ? ""
    : debug
      ? " (unexpected error)"
      : " (unexpected error; rerun with --debug for the stack trace)";
  const lines = [`sat: ${message}${suffix}`];
  if (debug && e.stack) lines.push(e.stack);
  return { exitCode: known ? (code as number) : EXIT_RUNTIME, lines };
}
