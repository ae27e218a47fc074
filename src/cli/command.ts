/**
 * What a command handler sees. Handlers live in `commands/<name>.ts`, each exporting a
 * `CommandSpec`; the program (program.ts) parses flags, validates the config once, builds the
 * context and calls `run`. Wiring a library entry point into a command is then a few lines:
 *
 *   run: async (ctx) => {
 *     const run = ctx.openRunDir();               // refuses a used dir, writes config + overrides
 *     await train(ctx.config!, { runDir: run, progress: ctx.progress, signal: ctx.signal });
 *   }
 */
import type { ResolvedConfig } from "../config/schema.js";
import type { Progress } from "../io/progress.js";
import type { CheckpointInfo, OpenRunDirOptions, RunDir } from "../io/rundir.js";

/**
 * Which shared flags a command takes:
 * - "run": --config, --set, key=value args, --output-dir, --seed, --max-steps, --threads,
 *          --resume [path], --force, --allow-config-change, --quiet, --json (a command that
 *          writes a run directory; it holds the directory's lock while it runs)
 * - "config": --config, --set, key=value args, --quiet, --json
 * - "none": --quiet, --json
 * `--debug` is global.
 */
export type FlagGroup = "run" | "config" | "none";

export interface OptionSpec {
  /** Commander syntax, e.g. "--split <name>" or "--agent <i>". */
  flags: string;
  description: string;
  default?: string | boolean | string[];
}

export interface CommandSpec {
  name: string;
  /** One line for `sat --help`. */
  summary: string;
  /** Longer help shown by `sat <name> --help`. */
  description?: string;
  /** Positional arguments in commander syntax ("<name>", "[run-dir]"). */
  args?: { syntax: string; description: string }[];
  flags: FlagGroup;
  options?: OptionSpec[];
  subcommands?: CommandSpec[];
  /**
   * The option (commander name) holding a checkpoint whose run's config.resolved.yaml this command
   * uses when --config is not given (sat eval --checkpoint <run>).
   */
  configFromOption?: string;
  /** Config values (dotted paths) this command uses where the user's file and flags set none. */
  defaults?: Readonly<Record<string, unknown>>;
  run?: (ctx: CommandContext) => Promise<number | void> | number | void;
}

export interface CommonFlags {
  /** true = newest complete checkpoint in the output dir; a string = that checkpoint or run dir. */
  resume: boolean | string;
  force: boolean;
  quiet: boolean;
  json: boolean;
  debug: boolean;
}

/** The invocation as given, stored in overrides.json. */
export interface Invocation {
  time: string;
  command: string;
  argv: string[];
  cwd: string;
  config_file: string | null;
  set: string[];
  flags: Record<string, string>;
  resume: boolean | string;
  force: boolean;
}

export interface CommandContext {
  /** "train", "tasks export", … */
  command: string;
  /** Positional arguments declared by the spec (key=value overrides removed). */
  args: string[];
  /** The command's own options (commander camelCase names), e.g. { split: "test", n: "20" }. */
  options: Record<string, unknown>;
  flags: CommonFlags;
  /** Validated config for "run" and "config" commands; null for "none". */
  config: ResolvedConfig | null;
  invocation: Invocation;
  progress: Progress;
  /** Aborted on Ctrl-C: long loops check it between steps and stop after the current write. */
  signal: AbortSignal;
  /** Result output (stdout), one call per line or block. */
  out(text: string): void;
  /** A warning on stderr, prefixed "sat: warning:". */
  warn(text: string): void;
  /**
   * Creates (or, with --resume/--force, reuses) run.output_dir and writes the config files there.
   * `onResume` sees the checkpoint to resume from first and may refuse it (throw) with the run untouched.
   */
  openRunDir(opts?: {
    onResume?: (from: CheckpointInfo) => void;
    dropAfterResume?: OpenRunDirOptions["dropAfterResume"];
  }): RunDir;
}
