/**
 * The `sat` CLI: a table of bad inputs, each with its one-line message and exit code (run in-process
 * through `runCli`, and a sample through the real `bin/sat.js` entry); help, config printing, task
 * export, run-directory wiring, --resume, and Ctrl-C.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { repo, runSat } from "./sat-process.js";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig, loadConfig } from "../src/config/index.js";
import type { CommandSpec } from "../src/cli/command.js";
import { COMMANDS } from "../src/cli/commands/index.js";
import { runCli } from "../src/cli/program.js";
import { readJsonl } from "../src/io/jsonl.js";
import { RUN_FILES } from "../src/io/rundir.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-cli-"));
const write = (name: string, text: string) => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

const badYaml = write("bad.yaml", "algo:\n  kl_radius: 0.02\n  order: [static\n");
const typo = write("typo.yaml", "algo:\n  kl_radus: 0.1\n");
const upstream = write("upstream.yaml", "rollout:\n  num_generations: 4\n");
const flat = write("flat.yaml", "seed: 3\n");
const list = write("list.yaml", "- a\n- b\n");
const crossFile = write("cross.yaml", "eval:\n  n: 4\n");
const usedRun = join(tmp, "used-run");
mkdirSync(usedRun);
writeFileSync(join(usedRun, "stages.jsonl"), '{"step": 1}\n');
const corrupt = write("corrupt.jsonl", '{"step": 1}\n{"step": 2,\n{"step": 3}\n');

/** Test-only commands that exercise the context the real handlers will get. */
const FAKES: CommandSpec[] = [
  {
    name: "fake-train",
    summary: "opens the run dir, logs max_steps stages, stops on abort",
    flags: "run",
    async run(ctx) {
      const run = ctx.openRunDir();
      const log = run.openStages();
      const start = run.resumeFrom ? run.resumeFrom.step + 1 : 1;
      const bar = ctx.progress.phase("train", ctx.config!.run.max_steps);
      for (let step = start; step <= ctx.config!.run.max_steps; step++) {
        ctx.signal.throwIfAborted();
        log.append({ step, agent: null, "reward/mean": step / 10 });
        ctx.progress.metrics({ step, agent: null, "reward/mean": step / 10 });
        await run.publishCheckpoint(step, (d) => writeFileSync(join(d, "w.bin"), "w"), {
          keep: ctx.config!.run.save_total_limit,
        });
        bar.tick(1, 100);
      }
      bar.done();
      log.close();
    },
  },
  {
    name: "fake-read",
    summary: "reads a JSONL file",
    flags: "none",
    args: [{ syntax: "<file>", description: "file" }],
    run: (ctx) => void readJsonl(ctx.args[0]),
  },
  { name: "fake-crash", summary: "a bug", flags: "none", run: () => void JSON.parse("{") },
];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function sat(argv: string[], signal?: AbortSignal): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const sink = (append: (s: string) => void) =>
    ({
      write: (s: string | Uint8Array) => (append(String(s)), true),
      isTTY: false,
    }) as unknown as NodeJS.WritableStream;
  const code = await runCli(argv, {
    io: {
      stdout: sink((s) => (stdout += s)),
      stderr: sink((s) => (stderr += s)),
      now: () => new Date(2026, 0, 2, 3, 4, 5),
    },
    commands: [...COMMANDS, ...FAKES],
    signal,
  });
  return { code, stdout, stderr };
}

/** A node script (not sat) run as a child process, interrupted `sigintAfterMs` after it prints "ready". */
function runScript(script: string, sigintAfterMs: number): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: tmp,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    let signalled = false;
    child.stderr.on("data", (d) => {
      stderr += d;
      if (!signalled && stderr.includes("ready")) {
        signalled = true;
        setTimeout(() => child.kill("SIGINT"), sigintAfterMs);
      }
    });
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const spawnSat = async (argv: string[]): Promise<Result> => {
  const r = await runSat(argv, { cwd: tmp });
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
};

function assertOneLine(r: Result, code: number, line: RegExp, what: string): void {
  assert.equal(r.code, code, `${what}: exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `${what}: expected one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0], line, what);
  assert.doesNotMatch(r.stderr, /\n\s+at |Error:/, `${what}: stack trace leaked`);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** [name, argv, exit code, the whole stderr line]. */
const BAD_INPUTS: [string, string[], number, RegExp][] = [
  [
    "bad YAML",
    ["train", "--config", badYaml],
    2,
    new RegExp(`^sat: ${esc(badYaml)}:4:1: bad YAML/JSON: Flow sequence .*; fix the syntax there$`),
  ],
  [
    "unknown key in a file, with suggestion",
    ["train", "-c", typo],
    2,
    new RegExp(`^sat: ${esc(typo)}:2: unknown key algo\\.kl_radus; did you mean algo\\.kl_radius\\?$`),
  ],
  [
    "upstream name in a file",
    ["train", "-c", upstream],
    2,
    new RegExp(
      `^sat: ${esc(upstream)}:2: unknown key rollout\\.num_generations; num_generations is the TRL name; sat-llm uses rollout\\.n$`,
    ),
  ],
  [
    "upstream name via --set",
    ["train", "--set", "beta=0.1"],
    2,
    /^sat: --set beta=0\.1: unknown key beta; beta is the TRL name; sat-llm uses algo\.kl_coef$/,
  ],
  [
    "upstream name as a flag",
    ["train", "--learning_rate", "1e-5"],
    2,
    /^sat: unknown option '--learning_rate' \(TRL\/HF name\); config keys are set with --set, e.g\. --set optim\.lr=1e-5$/,
  ],
  [
    "config key as a flag",
    ["train", "--max_backtracks=3"],
    2,
    /^sat: unknown option '--max_backtracks'; config keys are set with --set, e\.g\. --set algo\.max_backtracks=3$/,
  ],
  [
    "config key of two sections as a flag",
    ["train", "--kl_radius", "0.02"],
    2,
    /^sat: unknown option '--kl_radius'; config keys are set with --set, e\.g\. --set team\.kl_radius=0\.02 or --set algo\.kl_radius=0\.02$/,
  ],
  [
    "flat key at the top of a file",
    ["train", "-c", flat],
    2,
    new RegExp(`^sat: ${esc(flat)}:1: unknown key seed; keys are grouped by section: use run\\.seed$`),
  ],
  [
    "wrong type",
    ["train", "--set", "rollout.n=abc"],
    2,
    /^sat: --set rollout\.n=abc: rollout\.n: expected integer in \[1, 1024\], got string "abc"$/,
  ],
  [
    "scalar for a list",
    ["eval", "--set", "eval.k=4"],
    2,
    /^sat: --set eval\.k=4: eval\.k: expected non-empty list of integers ≥ 1, got number 4$/,
  ],
  [
    "bad enum value (bare key=value)",
    ["train", "algo.order=greddy"],
    2,
    /^sat: algo\.order=greddy: algo\.order: expected one of static \| random \| greedy, got string "greddy"; did you mean "greedy"\?$/,
  ],
  [
    "out of range",
    ["train", "--set", "algo.clip_ratio_low=1.5"],
    2,
    /^sat: --set algo\.clip_ratio_low=1\.5: algo\.clip_ratio_low: expected number in \(0, 1\), got number 1\.5$/,
  ],
  [
    "negative seed flag",
    ["train", "--seed", "-1"],
    2,
    /^sat: --seed -1: run\.seed: expected integer in \[0, 4294967295\], got number -1$/,
  ],
  [
    "zero max-steps flag",
    ["train", "--max-steps", "0"],
    2,
    /^sat: --max-steps 0: run\.max_steps: expected integer in \[1, 100000000\], got number 0$/,
  ],
  [
    "eval.n below max k (file)",
    ["eval", "-c", crossFile],
    2,
    new RegExp(
      `^sat: ${esc(crossFile)}:2: eval\\.n \\(4\\) must be ≥ the largest k in eval\\.k \\(8\\); raise eval\\.n to 8 or drop k=8 from eval\\.k$`,
    ),
  ],
  [
    "group advantages need n ≥ 2",
    ["train", "--set", "rollout.n=1"],
    2,
    /^sat: --set rollout\.n=1: rollout\.n=1 leaves a single trajectory per group.*use rollout\.n ≥ 2 or algo\.adv_estimator=gae$/,
  ],
  [
    "epochs × minibatches ≥ 2",
    ["train", "--set", "algo.ppo_epochs=1", "--set", "algo.ppo_mini_batch_size=8"],
    2,
    /^sat: --set algo\.ppo_epochs=1: algo\.ppo_epochs × minibatches = 1: .*set algo\.ppo_epochs ≥ 2 or algo\.ppo_mini_batch_size < rollout\.prompts_per_step$/,
  ],
  [
    "per-agent list length",
    ["train", "--set", "team.kl_radius=[0.1,0.2]"],
    2,
    /^sat: --set team\.kl_radius=\[0\.1,0\.2\]: team\.kl_radius has 2 entries but team\.n_agents is 3; give one entry per agent \(null = default\) or \[\]$/,
  ],
  [
    "greedy eval with n > 1",
    ["eval", "--set", "eval.temperature=0"],
    2,
    /^sat: --set eval\.temperature=0: eval\.temperature=0 \(greedy\) makes all 8 samples identical; set eval\.n=1 and eval\.k=\[1\], or use a temperature > 0$/,
  ],
  [
    "minibatch larger than the batch",
    ["train", "--set", "algo.ppo_mini_batch_size=9"],
    2,
    /^sat: --set algo\.ppo_mini_batch_size=9: algo\.ppo_mini_batch_size \(9\) is larger than rollout\.prompts_per_step \(8\); lower it to at most 8$/,
  ],
  [
    "--set without =",
    ["train", "--set", "algo.kl_radius"],
    2,
    /^sat: --set algo\.kl_radius: expected key=value, e\.g\. --set algo\.kl_radius=0\.02$/,
  ],
  [
    "--set with an empty segment",
    ["train", "--set", "algo..x=1"],
    2,
    /^sat: --set algo\.\.x=1: "algo\.\.x" is not a key path; use dotted snake_case names such as rollout\.n$/,
  ],
  [
    "Hydra + prefix",
    ["train", "+algo.x=1"],
    2,
    /^sat: \+algo\.x=1: the schema is fixed, so Hydra's \+ and ~ prefixes do not apply; write key=value, e\.g\. algo\.kl_radius=0\.02$/,
  ],
  [
    "--set missing its value",
    ["train", "--set"],
    2,
    /^sat: option '-s, --set <key=value>' argument missing$/,
  ],
  [
    "stray positional argument",
    ["train", "foo"],
    2,
    /^sat: unexpected argument "foo"; config overrides are written key=value, e\.g\. algo\.kl_radius=0\.02$/,
  ],
  [
    "unknown command",
    ["trian"],
    2,
    /^sat: unknown command 'trian' \(did you mean train\?\); see sat --help for the commands$/,
  ],
  ["unknown flag", ["train", "--forse"], 2, /^sat: unknown option '--forse' \(did you mean --force\?\)$/],
  [
    "missing config file",
    ["train", "--config", join(tmp, "nope.yaml")],
    2,
    new RegExp(`^sat: ${esc(join(tmp, "nope.yaml"))}: config file not found; check the --config path$`),
  ],
  [
    "config file is a directory",
    ["config", "--config", tmp],
    2,
    new RegExp(
      `^sat: ${esc(tmp)}: is a directory, not a config file; pass a \\.yaml or \\.json file to --config$`,
    ),
  ],
  [
    "config file is a list",
    ["config", "-c", list],
    2,
    new RegExp(
      `^sat: ${esc(list)}: expected a mapping of sections \\(model:, algo:, run: …\\) at the top, got a list \\["a","b"\\]$`,
    ),
  ],
  [
    "section given a scalar",
    ["config", "--set", "model=3"],
    2,
    /^sat: --set model=3: model: expected a mapping of model keys, got number 3$/,
  ],
  [
    "setting below a value",
    ["config", "--set", "run.seed.x=1"],
    2,
    /^sat: --set run\.seed\.x=1: run\.seed: expected integer in \[0, 4294967295\], got a mapping$/,
  ],
  [
    "string for a number key hint",
    ["config", "--set", "tasks.name=7"],
    2,
    /^sat: --set tasks\.name=7: tasks\.name: expected non-empty string, got number 7; quote it to pass a string, e\.g\. --set tasks\.name='"7"'$/,
  ],
  [
    "--quiet with --json",
    ["config", "--quiet", "--json"],
    2,
    /^sat: --quiet and --json contradict each other; drop one$/,
  ],
  [
    "--resume without a run",
    ["train", "--resume"],
    2,
    /^sat: --resume needs the run to continue: pass --output-dir <run-dir> or --resume <run-dir>$/,
  ],
  [
    "non-empty output dir",
    ["fake-train", "--output-dir", usedRun],
    2,
    new RegExp(
      `^sat: output directory ${esc(usedRun)} is not empty; pass --resume to continue it, --force to start over, or choose another --output-dir$`,
    ),
  ],
  [
    "--overwrite (alias of --force) on a directory without a run",
    ["fake-train", "--output-dir", usedRun, "--overwrite"],
    2,
    /^sat: refusing to empty .*used-run: it does not hold a sat run/,
  ],
  [
    "--force on a directory without a run",
    ["fake-train", "--output-dir", usedRun, "--force"],
    2,
    new RegExp(
      `^sat: refusing to empty ${esc(usedRun)}: it does not hold a sat run \\(no config\\.resolved\\.yaml\\); choose another --output-dir$`,
    ),
  ],
  [
    "corrupt JSONL line",
    ["fake-read", corrupt],
    1,
    new RegExp(`^sat: ${esc(corrupt)}:2: not valid JSON \\(.*\\); fix or delete that line$`),
  ],
  [
    "unknown task",
    ["tasks", "export", "ad"],
    2,
    /^sat: unknown task "ad"; did you mean "add"\? known tasks: add, multistep, sort$/,
  ],
  [
    "bad split",
    ["tasks", "export", "add", "--split", "dev"],
    2,
    /^sat: --split dev: expected train or test$/,
  ],
  [
    "bad difficulty",
    ["tasks", "export", "add", "--difficulty", "99"],
    2,
    /^sat: task add: difficulty 99 is not an integer in \[1, 8\]$/,
  ],
  [
    "report on a missing run directory",
    ["report", "/nonexistent-run-dir"],
    1,
    /^sat: \/nonexistent-run-dir: no such run directory$/,
  ],
  [
    "unexpected internal error",
    ["fake-crash"],
    1,
    /^sat: .*JSON.* \(unexpected error; rerun with --debug for the stack trace\)$/,
  ],
];

test(`${BAD_INPUTS.length} bad inputs each give one stderr line and the right exit code`, async () => {
  assert.ok(BAD_INPUTS.length >= 25);
  for (const [name, argv, code, line] of BAD_INPUTS) assertOneLine(await sat(argv), code, line, name);
  assert.ok(existsSync(join(usedRun, "stages.jsonl")), "a refused directory is left untouched");
});

test("the real entry point (bin/sat.js) gives the same lines and exit codes", async () => {
  const sample = BAD_INPUTS.filter(([name]) =>
    [
      "bad YAML",
      "upstream name as a flag",
      "eval.n below max k (file)",
      "unknown command",
      "unknown flag",
      "missing config file",
      "report on a missing run directory",
      "unknown task",
    ].includes(name),
  );
  const results = await Promise.all(sample.map(([, argv]) => spawnSat(argv)));
  sample.forEach(([name, , code, line], i) => assertOneLine(results[i], code, line, `spawned: ${name}`));
  const debug = await spawnSat(["report", "/nonexistent-run-dir", "--debug"]);
  assert.equal(debug.code, 1);
  assert.match(
    debug.stderr,
    /^sat: \/nonexistent-run-dir: no such run directory\n\w*Error: .*\n\s+at /,
    "--debug shows the stack",
  );
});

test("help: `sat`, `sat --help` and every command's --help exit 0 and describe it", async () => {
  const top = await sat([]);
  assert.equal(top.code, 0);
  for (const c of COMMANDS) assert.match(top.stdout, new RegExp(`\\n  ${c.name} `), `sat lists ${c.name}`);
  for (const c of COMMANDS) {
    const r = await sat([c.name, "--help"]);
    assert.equal(r.code, 0, c.name);
    assert.equal(r.stderr, "");
    assert.ok(
      r.stdout.includes(c.summary.slice(0, 30)) || r.stdout.includes((c.description ?? "").slice(0, 30)),
      c.name,
    );
  }
  const train = await sat(["train", "--help"]);
  for (const flag of [
    "--config",
    "--set",
    "--output-dir",
    "--seed",
    "--max-steps",
    "--resume",
    "--force",
    "--quiet",
    "--json",
    "--threads",
  ]) {
    assert.ok(train.stdout.includes(flag), `train --help lists ${flag}`);
  }
  assert.equal((await sat(["tasks"])).code, 2, "a command group without its subcommand is a usage error");
});

test("sat config: resolved config, defaults that reload, key list", async () => {
  const defaults = await sat(["config", "--print-defaults"]);
  assert.equal(defaults.code, 0);
  const file = write("defaults.yaml", defaults.stdout);
  assert.deepEqual(loadConfig({ file }), defaultConfig());
  const resolved = await sat(["config", "--json", "-c", file, "--set", "algo.kl_radius=0.05", "run.seed=3"]);
  const parsed = JSON.parse(resolved.stdout) as { algo: { kl_radius: number }; run: { seed: number } };
  assert.equal(parsed.algo.kl_radius, 0.05);
  assert.equal(parsed.run.seed, 3);
  const yaml = await sat(["config", "--set", "eval.k=[1,2]", "eval.n=2"]);
  assert.deepEqual(loadConfig({ file: write("resolved.yaml", yaml.stdout) }).eval.k, [1, 2]);
  const keys = JSON.parse((await sat(["config", "--list-keys", "--json"])).stdout) as {
    key: string;
    type: string;
  }[];
  assert.ok(keys.some((k) => k.key === "algo.kl_radius" && k.type === "number in (0, 10]"));
});

test("sat tasks: list, and export is deterministic with disjoint splits", async () => {
  const listed = await sat(["tasks", "list"]);
  assert.equal(listed.code, 0);
  assert.match(listed.stdout, /^add\s+difficulty 1-8/m);
  const out = join(tmp, "add-train.jsonl");
  const a = await sat(["tasks", "export", "add", "--n", "20", "--out", out, "--quiet"]);
  assert.equal(a.code, 0, a.stderr);
  const again = await sat(["tasks", "export", "add", "--n", "20"]);
  assert.equal(again.stdout, readFileSync(out, "utf8"), "same seed ⇒ same problems");
  const train = readJsonl<{ id: string }>(out);
  assert.equal(train.length, 20);
  const test_ = (await sat(["tasks", "export", "add", "--n", "20", "--split", "test"])).stdout
    .trim()
    .split("\n")
    .map((l) => (JSON.parse(l) as { id: string }).id);
  assert.equal(test_.length, 20);
  assert.equal(
    test_.filter((id) => train.some((t) => t.id === id)).length,
    0,
    "train and test share no problem",
  );
});

test("a run command gets a run dir with the resolved config, overrides and progress; --resume continues it", async () => {
  const dir = join(tmp, "run-a");
  const first = await sat([
    "fake-train",
    "--output_dir",
    dir,
    "--max-steps",
    "3",
    "--set",
    "run.save_total_limit=2",
    "algo.kl_radius=0.02",
  ]);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(
    readJsonl(join(dir, RUN_FILES.stages)).map((r) => r.step),
    [1, 2, 3],
  );
  assert.match(first.stdout, /^step 3 \| reward 0\.3$/m, "plain progress prints the metrics one-liner");
  assert.match(first.stdout, /^train 3\/3 \(100%\)/m);
  const saved = loadConfig({ file: join(dir, RUN_FILES.config) });
  assert.equal(saved.algo.kl_radius, 0.02);
  assert.equal(saved.run.output_dir, dir);
  const overrides = JSON.parse(readFileSync(join(dir, RUN_FILES.overrides), "utf8")) as {
    invocations: { set: string[]; flags: Record<string, string> }[];
  };
  assert.deepEqual(overrides.invocations[0].set, ["run.save_total_limit=2", "algo.kl_radius=0.02"]);
  assert.deepEqual(overrides.invocations[0].flags, { "--output-dir": dir, "--max-steps": "3" });

  // Resume with only the dir: the run's own config (kl_radius 0.02) is the base; --max-steps extends it.
  const second = await sat(["fake-train", "--output-dir", dir, "--resume", "--max-steps", "5", "--json"]);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(
    readJsonl(join(dir, RUN_FILES.stages)).map((r) => r.step),
    [1, 2, 3, 4, 5],
  );
  assert.equal(loadConfig({ file: join(dir, RUN_FILES.config) }).algo.kl_radius, 0.02);
  const events = second.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { event: string; step?: number });
  assert.deepEqual(
    events.filter((e) => e.event === "metrics").map((e) => e.step),
    [4, 5],
  );
  assert.ok(
    existsSync(join(dir, "checkpoints", "stage-5")) && !existsSync(join(dir, "checkpoints", "stage-3")),
    "save_total_limit=2 pruned",
  );
});

test("Ctrl-C: one line, exit 130, after the current write finished", async () => {
  const marker = join(tmp, "finished.txt");
  const script = `
    import { runMain } from ${JSON.stringify(join(repo, "dist/src/cli/interrupt.js"))};
    import { writeFileAtomic } from ${JSON.stringify(join(repo, "dist/src/io/atomic.js"))};
    runMain(async (signal) => {
      const busy = setInterval(() => {}, 1000); // stands for a long computation
      process.stderr.write("ready\\n");
      await new Promise((r) => signal.addEventListener("abort", r));
      clearInterval(busy);
      await new Promise((r) => setTimeout(r, 50));
      writeFileAtomic(${JSON.stringify(marker)}, "done");
      return 0;
    });`;
  const r = await runScript(script, 50);
  assert.equal(r.code, 130);
  assert.equal(
    r.stderr,
    "ready\nsat: interrupted; stopping after the current write (Ctrl-C again to quit at once)\n",
  );
  assert.equal(readFileSync(marker, "utf8"), "done");
});
