/**
 * `npm run bench`: measures the engine on every kernel tier present (training and sampling
 * tokens/s, peak memory, big-matmul GFLOP/s against the machine's FMA peak, step profiles, the
 * cost of a SAT stage) and the PyTorch reference in the same run. Prints one JSON object on stdout
 * (see bench/README.md) and a short table on stderr.
 *
 *   node dist/bench/run.js [--quick] [--out file.json] [--models bakeoff,small,llama-135m]
 *                          [--tiers native,wasm] [--threads 1,2] [--no-torch] [--python PATH]
 *                          [--torch-threads 2] [--no-profile] [--no-stages]
 */
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeFileAtomic } from "../src/io/atomic.js";
import { formatTable, validateReport } from "./report.js";
import { runSuite } from "./suite.js";
import { benchPythonCandidates } from "./torch.js";
import { FULL_SETTINGS, QUICK_SETTINGS } from "./workloads.js";

const USAGE = `usage: node dist/bench/run.js [options]
  --quick             short smoke run (few steps, small matmul, bakeoff model only)
  --out FILE          also write the JSON report to FILE
  --models LIST       comma-separated: bakeoff, small, llama-135m, tiny, tiny-llama
                      (default: bakeoff,small,llama-135m; quick: bakeoff)
  --tiers LIST        kernel tiers that train and sample: native, wasm (default: both; an absent
                      tier is left out and the report says why)
  --threads LIST      thread counts per tier (default: 1,2)
  --no-torch          skip the PyTorch reference
  --python PATH       Python with torch (default: $SAT_BENCH_PYTHON, else $SAT_PYTHON, else .venv/bin/python, python3)
  --torch-threads N   torch.set_num_threads (default: 2)
  --no-profile        skip the step profiles
  --no-stages         skip the SAT stage-scaling measurement
  --gguf FILE         llama-135m's weights as GGUF: sample them with node-llama-cpp too (needs it installed)
`;

function positiveInts(flag: string, v: string): number[] {
  const xs = v.split(",").map((x) => Number(x.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 1))
    throw new UsageError(`${flag}: expected positive integers, got "${v}"`);
  return xs;
}

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: "boolean", default: false },
        out: { type: "string" },
        models: { type: "string" },
        threads: { type: "string", default: "1,2" },
        tiers: { type: "string", default: "wasm,native" },
        "no-stages": { type: "boolean", default: false },
        gguf: { type: "string" },
        "no-torch": { type: "boolean", default: false },
        python: { type: "string" },
        "torch-threads": { type: "string", default: "2" },
        "no-profile": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const quick = values.quick;
  try {
    const threads = positiveInts("--threads", values.threads);
    const [torchThreads] = positiveInts("--torch-threads", values["torch-threads"]);
    const pythons = values["no-torch"] ? [] : values.python ? [values.python] : benchPythonCandidates();
    const tiers = values.tiers.split(",").map((t) => t.trim());
    for (const t of tiers)
      if (t !== "wasm" && t !== "native")
        throw new UsageError(`--tiers: expected wasm or native, got "${t}"`);
    const report = await runSuite({
      mode: quick ? "quick" : "full",
      models: (values.models ?? (quick ? "bakeoff" : "bakeoff,small,llama-135m"))
        .split(",")
        .map((m) => m.trim()),
      engines: tiers.flatMap((impl) => threads.map((t) => ({ impl: impl as "wasm" | "native", threads: t }))),
      matmulOnly: [{ impl: "ts", threads: 1 }],
      settings: quick ? QUICK_SETTINGS : FULL_SETTINGS,
      profile: !values["no-profile"],
      stages: values["no-stages"]
        ? null
        : quick
          ? { agents: [1, 2, 3], lengths: [8, 16], stages: 1 }
          : { agents: [1, 2, 3, 6], lengths: [16, 32, 64], stages: 2 },
      pythons,
      torchOffReason: "disabled with --no-torch",
      torchThreads,
      gguf: values.gguf,
      command: ["node", "dist/bench/run.js", ...argv].join(" "),
      log: (line) => process.stderr.write(line + "\n"),
    });
    const problems = validateReport(report);
    if (problems.length > 0) {
      // Still print it: a malformed report is a bug in the harness, the numbers may help find it.
      process.stderr.write(`bench: the report failed its own schema check:\n  ${problems.join("\n  ")}\n`);
    }
    const json = JSON.stringify(report, null, 2) + "\n";
    if (values.out) {
      const out = resolve(values.out);
      mkdirSync(dirname(out), { recursive: true });
      writeFileAtomic(out, json);
    }
    process.stdout.write(json);
    process.stderr.write("\n" + formatTable(report));
    return problems.length > 0 ? 1 : 0;
  } catch (err) {
    // Bad arguments and settings: one line, exit code 2. Anything else is a bug: let it throw.
    const msg = (err as Error).message;
    if (err instanceof UsageError || msg.startsWith("bench: ")) {
      process.stderr.write(`${msg.startsWith("bench: ") ? msg : `bench: ${msg}`}\n`);
      return 2;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));
