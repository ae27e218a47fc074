/**
 * The `sat` command line: builds the commander program from the command specs, normalizes
 * upstream-style flags, validates the config once, builds the handler context and maps every
 * failure to one stderr line and an exit code (2 usage/config, 1 runtime). `runCli` never calls
 * process.exit, so tests can run it in-process.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { loadConfig, type FlagOverride } from "../config/load.js";
import { closest, UPSTREAM_NAMES } from "../config/names.js";
import { configToYaml } from "../config/render.js";
import { listKeys, type ResolvedConfig } from "../config/schema.js";
import {
  configDifferences,
  formatDifference,
  RESUME_FREE_KEYS,
  type ConfigDifference,
} from "../config/diff.js";
import { createProgress, type ProgressMode } from "../io/progress.js";
import { assertResumable, openRunDir, RUN_FILES, type RunDir } from "../io/rundir.js";
import type { CommandContext, CommandSpec, CommonFlags, Invocation } from "./command.js";
import { COMMANDS } from "./commands/index.js";
import { EXIT_OK, EXIT_USAGE, formatError, oneLine, UsageError } from "./errors.js";

export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  cwd: string;
  now: () => Date;
}

export interface RunCliOptions {
  io?: Partial<CliIO>;
  signal?: AbortSignal;
  /** The command set (default: the built-in commands); tests and embedders may pass their own. */
  commands?: readonly CommandSpec[];
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

/** Dedicated flags that stand for one config key each (conventions.md §3: shortcuts for --set). */
const KEY_FLAGS: { option: string; flag: string; path: string; raw?: boolean }[] = [
  { option: "outputDir", flag: "--output-dir", path: "run.output_dir", raw: true },
  { option: "seed", flag: "--seed", path: "run.seed" },
  { option: "maxSteps", flag: "--max-steps", path: "run.max_steps" },
  { option: "threads", flag: "--threads", path: "run.threads" },
];

function addCommonOptions(cmd: Command, group: CommandSpec["flags"]): void {
  if (group === "run" || group === "config") {
    cmd.option("-c, --config <file>", "YAML or JSON config file (see `sat config --print-defaults`)");
    cmd.option(
      "-s, --set <key=value>",
      "set one config key, e.g. --set algo.kl_radius=0.02 (repeatable; value parsed as JSON)",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    );
  }
  if (group === "run") {
    cmd.option("-o, --output-dir <dir>", "run directory (run.output_dir; --output_dir also accepted)");
    cmd.option("--seed <n>", "root random seed (run.seed)");
    cmd.option("--max-steps <n>", "stages to run (run.max_steps)");
    cmd.option("--threads <n>", "kernel worker threads (run.threads)");
    cmd.option(
      "--resume [path]",
      "continue from the newest complete checkpoint in the output dir, or from <path>",
    );
    cmd.option("--force", "empty an existing run directory and start over");
    cmd.option(
      "--allow-config-change <keys>",
      "with --resume: accept these changed config keys (comma-separated), recorded in overrides.json",
    );
  }
  cmd.option("-q, --quiet", "no progress output (errors still go to stderr)");
  cmd.option("--json", "progress and results as JSON lines on stdout");
}

/** Upstream spellings of our flags (HF `overwrite_output_dir`, conventions.md `--overwrite`). */
const FLAG_ALIASES: Record<string, string> = {
  "--overwrite": "--force",
  "--overwrite-output-dir": "--force",
};

/** Every long option name any command knows (for --snake_case normalization). */
function knownLongOptions(program: Command): Set<string> {
  const out = new Set<string>(["--help", "--version", "--debug"]);
  const visit = (c: Command) => {
    for (const o of c.options) if (o.long) out.add(o.long);
    c.commands.forEach(visit);
  };
  visit(program);
  return out;
}

/**
 * Accepts `--output_dir` for `--output-dir` (TRL spelling) and turns config-key-looking flags
 * (`--num_generations 8`, `--kl_radius 0.02`) into a pointed usage error naming the --set form.
 */
function normalizeArgv(argv: string[], known: Set<string>): string[] {
  const out: string[] = [];
  const leafPaths = new Map<string, string[]>();
  for (const k of listKeys()) leafPaths.set(k.name, [...(leafPaths.get(k.name) ?? []), k.path]);
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i];
    if (tok === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (!tok.startsWith("--") || tok.length < 3) {
      out.push(tok);
      continue;
    }
    const eq = tok.indexOf("=");
    const name = eq >= 0 ? tok.slice(0, eq) : tok;
    const kebab = FLAG_ALIASES[name.replace(/_/g, "-")] ?? name.replace(/_/g, "-");
    if (known.has(name)) out.push(tok);
    else if (known.has(kebab)) out.push(eq >= 0 ? kebab + tok.slice(eq) : kebab);
    else {
      const bare = name.slice(2).replace(/-/g, "_");
      const value =
        eq >= 0 ? tok.slice(eq + 1) : argv[i + 1] && !argv[i + 1].startsWith("-") ? argv[i + 1] : "VALUE";
      const ours = Object.hasOwn(UPSTREAM_NAMES, bare) ? [UPSTREAM_NAMES[bare][0]] : leafPaths.get(bare);
      if (ours) {
        const who = Object.hasOwn(UPSTREAM_NAMES, bare) ? ` (${UPSTREAM_NAMES[bare][1]} name)` : "";
        const uses = ours.map((p) => `--set ${p}=${value}`).join(" or ");
        throw new UsageError(`unknown option '${name}'${who}; config keys are set with --set, e.g. ${uses}`);
      }
      out.push(tok);
    }
  }
  return out;
}

function commanderMessage(err: CommanderError): string {
  const msg = oneLine(err.message.replace(/^error: /, "")).replace(
    /\(Did you mean ([^)]*)\)/,
    "(did you mean $1)",
  );
  if (err.code === "commander.unknownCommand") return `${msg}; see sat --help for the commands`;
  return msg;
}

function progressMode(flags: CommonFlags, stdout: CliIO["stdout"]): ProgressMode {
  if (flags.quiet) return "silent";
  if (flags.json) return "json";
  return stdout.isTTY ? "tty" : "plain";
}

function timestamp(d: Date): string {
  const p = (x: number) => String(x).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** The run directory a --resume path belongs to: the path itself, or <run> of <run>/checkpoints/stage-K. */
function runDirOf(resumePath: string): string | null {
  if (existsSync(join(resumePath, RUN_FILES.config))) return resumePath;
  if (basename(dirname(resumePath)) === RUN_FILES.checkpoints) return dirname(dirname(resumePath));
  return null;
}

/** The run a checkpoint path comes from (the path, its parent or grandparent holding the run's config), or null. */
function runOfCheckpoint(path: string): string | null {
  for (let p = path, up = 0; up <= 2; up++, p = dirname(p)) {
    if (existsSync(join(p, RUN_FILES.config))) return p;
  }
  return null;
}

/** --allow-config-change a.b,c.d → checked key paths. */
function allowedChanges(value: unknown): Set<string> {
  const keys = new Set<string>();
  if (typeof value !== "string") return keys;
  const known = listKeys().map((k) => k.path);
  for (const key of value
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean)) {
    if (!known.includes(key)) {
      const near = closest(key, known);
      throw new UsageError(
        `--allow-config-change ${key}: no such config key${near ? `; did you mean ${near}?` : ""} (sat config --list-keys)`,
      );
    }
    keys.add(key);
  }
  return keys;
}

/**
 * The differences between the resumed run's config and the new one; refuses (one line listing
 * them) unless each is harmless or named in --allow-config-change.
 */
function checkResumeChanges(
  before: ResolvedConfig,
  after: ResolvedConfig,
  allowed: Set<string>,
  runConfigFile: string,
): ConfigDifference[] {
  const diffs = configDifferences(before, after);
  const refused = diffs.filter((d) => !RESUME_FREE_KEYS.has(d.key) && !allowed.has(d.key));
  if (refused.length > 0) {
    throw new UsageError(
      `--resume: the config differs from the run's (${runConfigFile}): ${refused.map(formatDifference).join(", ")}; ` +
        `a run resumed with other settings is no longer the run it continues; to accept, add --allow-config-change ${refused.map((d) => d.key).join(",")}`,
    );
  }
  return diffs;
}

interface Parsed {
  spec: CommandSpec;
  path: string;
  args: string[];
  opts: Record<string, unknown>;
}

export async function runCli(argv: string[], options: RunCliOptions = {}): Promise<number> {
  const io: CliIO = {
    stdout: options.io?.stdout ?? process.stdout,
    stderr: options.io?.stderr ?? process.stderr,
    cwd: options.io?.cwd ?? process.cwd(),
    now: options.io?.now ?? (() => new Date()),
  };
  const signal = options.signal ?? new AbortController().signal;
  const debug = argv.includes("--debug");
  const writeOut = (s: string) => io.stdout.write(s.endsWith("\n") ? s : s + "\n");

  let parsed: Parsed | null = null;
  const program = new Command("sat");
  program
    .description("Train teams of small language models with SAT (Sequential Agent Tuning) on a CPU")
    .version(version(), "-V, --version")
    .option("--debug", "show stack traces on errors")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: () => {},
    })
    .showSuggestionAfterError(true)
    .addHelpText(
      "after",
      "\nRun `sat <command> --help` for a command's flags. Config keys: `sat config --list-keys`.",
    );

  const register = (parent: Command, spec: CommandSpec, prefix: string) => {
    const cmd = parent
      .command(spec.name)
      .summary(spec.summary)
      .description(spec.description ?? spec.summary);
    const path = prefix ? `${prefix} ${spec.name}` : spec.name;
    if (spec.subcommands) {
      for (const sub of spec.subcommands) register(cmd, sub, path);
      return;
    }
    for (const a of spec.args ?? []) cmd.argument(a.syntax, a.description);
    if (spec.flags !== "none")
      cmd.argument("[overrides...]", "config overrides as key=value (Hydra style), same as --set");
    addCommonOptions(cmd, spec.flags);
    for (const o of spec.options ?? []) cmd.addOption(new Option(o.flags, o.description).default(o.default));
    cmd.action((...actionArgs: unknown[]) => {
      const command = actionArgs[actionArgs.length - 1] as Command;
      const positional = (actionArgs.slice(0, -2) as (string | string[] | undefined)[]).flatMap((a) =>
        a === undefined ? [] : Array.isArray(a) ? a : [a],
      );
      parsed = { spec, path, args: positional, opts: command.opts() };
    });
  };
  for (const spec of options.commands ?? COMMANDS) register(program, spec, "");

  try {
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT_OK;
    }
    await program.parseAsync(normalizeArgv(argv, knownLongOptions(program)), { from: "user" });
    if (parsed === null) return EXIT_OK; // help or version was printed
    return (await execute(parsed, argv, io, signal, writeOut)) ?? EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return EXIT_OK;
      if (err.code === "commander.help") return EXIT_USAGE; // a command group without its subcommand
      io.stderr.write(`sat: ${commanderMessage(err)}\n`);
      return EXIT_USAGE;
    }
    if (signal.aborted) {
      // The command stopped for Ctrl-C; it may say where (InterruptedError, exit code 130).
      if ((err as { exitCode?: unknown })?.exitCode === 130)
        io.stderr.write(`sat: ${oneLine((err as Error).message)}\n`);
      return 130;
    }
    const f = formatError(err, debug);
    io.stderr.write(f.lines.join("\n") + "\n");
    return f.exitCode;
  }
}

async function execute(
  p: Parsed,
  argv: string[],
  io: CliIO,
  signal: AbortSignal,
  writeOut: (s: string) => void,
): Promise<number | void> {
  const { spec, opts } = p;
  const declared = (spec.args ?? []).length;
  const args = p.args.slice(0, declared);
  const overrides = p.args.slice(declared);
  for (const tok of overrides) {
    if (!tok.includes("="))
      throw new UsageError(
        `unexpected argument "${tok}"; config overrides are written key=value, e.g. algo.kl_radius=0.02`,
      );
  }
  let resume = (opts.resume as boolean | string | undefined) ?? false;
  if (typeof resume === "string" && resume.includes("=") && !existsSync(resume)) {
    // `--resume a.b=1`: the optional value swallowed an override.
    overrides.unshift(resume);
    resume = true;
  }
  const flags: CommonFlags = {
    resume,
    force: Boolean(opts.force),
    quiet: Boolean(opts.quiet),
    json: Boolean(opts.json),
    debug: argv.includes("--debug"),
  };
  if (flags.quiet && flags.json) throw new UsageError("--quiet and --json contradict each other; drop one");
  const sets = [...((opts.set as string[] | undefined) ?? []), ...overrides];
  const flagSets = (opts.set as string[] | undefined) ?? [];
  const keyFlags: FlagOverride[] = [];
  const givenFlags: Record<string, string> = {};
  for (const k of KEY_FLAGS) {
    const v = opts[k.option];
    if (typeof v === "string") {
      keyFlags.push({ flag: k.flag, path: k.path, value: v, raw: k.raw });
      givenFlags[k.flag] = v;
    }
  }
  const warn = (text: string) => io.stderr.write(`sat: warning: ${oneLine(text)}\n`);
  const allowed = allowedChanges(opts.allowConfigChange);
  if (opts.allowConfigChange !== undefined && !flags.resume)
    throw new UsageError("--allow-config-change applies to --resume only; drop it or add --resume");
  // Resuming: the run being continued supplies the output dir and, without --config, the config.
  const resumedRun =
    typeof flags.resume === "string"
      ? runDirOf(flags.resume)
      : ((opts.outputDir as string | undefined) ?? null);
  if (flags.resume === true && resumedRun) assertResumable(resumedRun);
  // A resumed run continues where it lives now, even if it was moved or copied since its config
  // was written (that config names the old place).
  if (typeof flags.resume === "string" && resumedRun && !keyFlags.some((f) => f.path === "run.output_dir"))
    keyFlags.push({ flag: "--resume", path: "run.output_dir", value: resumedRun, raw: true });
  let configFile = (opts.config as string | undefined) ?? null;
  let configNote: string | null = null;
  const runConfig = resumedRun && flags.resume ? join(resumedRun, RUN_FILES.config) : null;
  if (!configFile && runConfig && existsSync(runConfig)) configFile = runConfig;
  const freshDir = join("runs", `${spec.name}-${timestamp(io.now())}`);
  // A command reading a checkpoint (sat eval) takes that run's config unless --config is given;
  // the run's own output dir is not this command's.
  const source = spec.configFromOption ? opts[spec.configFromOption] : undefined;
  const sourceRun = !configFile && typeof source === "string" ? runOfCheckpoint(source) : null;
  if (sourceRun) {
    configFile = join(sourceRun, RUN_FILES.config);
    configNote = `using the config of ${sourceRun} (${RUN_FILES.config}); --config or --set override it`;
    if (!keyFlags.some((f) => f.path === "run.output_dir"))
      keyFlags.push({ flag: "run.output_dir (default)", path: "run.output_dir", value: freshDir, raw: true });
  }
  let config: ResolvedConfig | null = null;
  let changes: ConfigDifference[] = [];
  if (spec.flags !== "none") {
    config = loadConfig({
      file: configFile,
      sets: flagSets,
      bareSets: overrides,
      flags: keyFlags,
      fallbacks: {
        ...(spec.defaults ?? {}),
        ...(spec.flags === "run" ? { "run.output_dir": resumedRun ?? freshDir } : {}),
      },
      warn,
    });
    if (flags.resume === true && config.run.output_dir === freshDir) {
      throw new UsageError(
        "--resume needs the run to continue: pass --output-dir <run-dir> or --resume <run-dir>",
      );
    }
    if (flags.resume && runConfig && existsSync(runConfig)) {
      changes = checkResumeChanges(loadConfig({ file: runConfig }), config, allowed, runConfig);
    }
  }
  const invocation: Invocation = {
    time: io.now().toISOString(),
    command: p.path,
    argv,
    cwd: io.cwd,
    config_file: configFile,
    set: sets,
    flags: givenFlags,
    resume: flags.resume,
    force: flags.force,
  };
  const progress = createProgress(progressMode(flags, io.stdout), {
    stream: io.stdout,
    loggingSteps: config?.run.logging_steps ?? 1,
    warn,
  });
  if (configNote) progress.log(configNote);
  let runDir: RunDir | null = null;
  const ctx: CommandContext = {
    command: p.path,
    args,
    options: opts,
    flags,
    config,
    invocation,
    progress,
    signal,
    out: writeOut,
    warn,
    openRunDir(opts = {}) {
      if (runDir) return runDir;
      if (!config || spec.flags !== "run")
        throw new Error(`sat ${p.path}: openRunDir needs a command with run flags`);
      const run = openRunDir(config.run.output_dir!, {
        resume: flags.resume,
        force: flags.force,
        warn,
        onResume: opts.onResume,
        dropAfterResume: opts.dropAfterResume,
        command: `sat ${p.path}`,
      });
      try {
        run.writeConfig(
          configToYaml(config, {
            comments: true,
            header: `sat-llm resolved config (sat ${p.path}); reload with --config`,
          }),
          invocation,
          changes,
        );
      } catch (err) {
        run.close();
        throw err;
      }
      runDir = run;
      return run;
    },
  };
  if (!spec.run) throw new Error(`sat ${p.path}: no handler`);
  try {
    return await spec.run(ctx);
  } finally {
    progress.close();
    (runDir as RunDir | null)?.close();
  }
}
