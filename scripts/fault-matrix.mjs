#!/usr/bin/env node
// The fault matrix of docs/reliability.md: real `sat` processes on real files, faults injected at
// seeded random moments, every outcome checked against an uninterrupted reference run.
//
//   node scripts/fault-matrix.mjs [--runs N] [--seed S] [--only name,name]   (after npm run build)
//
// Rows: SIGKILL during `sat train` and `sat pretrain`, Ctrl-C during `sat train`, a damaged newest
// checkpoint (bit flip, truncation, zero-filled, deleted file, NaN weights with a matching checksum),
// two writers on one directory, and a full disk (a small tmpfs; needs root, else skipped). A resume
// is "bit-identical" when every checkpoint file (manifest times aside) and the logs (timing fields
// aside) equal the reference's. Prints one markdown table; exit code 1 if any run went wrong.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("..", import.meta.url));
const satJs = join(repo, "bin", "sat.js");
const agent = join(repo, "test", "fixtures", "agents", "add2-tiny");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const RUNS = Number(opt("--runs", "8"));
let seed = Number(opt("--seed", "1")) >>> 0;
const only = opt("--only", null)?.split(",");
const tmp = mkdtempSync(join(tmpdir(), "sat-faults-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

/** mulberry32: reproducible fault moments and damage for a given --seed. */
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(random() * xs.length)];

const sets = (o) =>
  Object.entries(o).flatMap(([k, v]) => ["--set", `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`]);
const STAGES = 4;
const TRAIN = [
  ...["train", "-q", "--threads", "1", "--max-steps", String(STAGES)],
  ...sets({
    "team.n_agents": 2,
    "team.agent_checkpoints": [agent, agent],
    "tasks.difficulty": 2,
    "rollout.max_prompt_length": 16,
    "rollout.max_completion_length": 40,
    "rollout.prompts_per_step": 4,
    "rollout.n": 4,
    "algo.ppo_mini_batch_size": 2,
    "algo.kl_radius": 0.3,
    "run.save_steps": 1,
    "run.save_total_limit": null,
    "eval.steps": 2,
    "eval.n_prompts": 8,
    "eval.n": 1,
    "eval.k": [1],
  }),
];
const PRETRAIN = [
  ...["pretrain", "-q", "--threads", "1"],
  ...sets({
    "pretrain.agents": 2,
    "pretrain.steps": 30,
    "pretrain.batch_size": 8,
    "pretrain.eval_steps": 10,
    "pretrain.target_accuracy": null,
    "tasks.difficulty": 2,
    "eval.n_prompts": 8,
    "run.save_steps": 5,
    "run.save_total_limit": null,
  }),
];

function start(argv, cwd = tmp) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [satJs, ...argv], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise((resolve) =>
    child.on("close", (code, signal) =>
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 }),
    ),
  );
  return { child, done };
}
const run = (argv, cwd) => start(argv, cwd).done;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const sha = (p) => createHash("sha256").update(readFileSync(p)).digest("hex");
function filesBelow(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesBelow(p) : [p];
  });
}
const TIMING = /^time$|timing|throughput|seconds/;
function withoutTiming(v) {
  if (Array.isArray(v)) return v.map(withoutTiming);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => !TIMING.test(k))
        .map(([k, x]) => [k, withoutTiming(x)]),
    );
  return v;
}
const jsonl = (p) =>
  existsSync(p)
    ? readFileSync(p, "utf8")
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l))
    : [];

/** What must not depend on faults: checkpoint files (manifests aside), agents, logs without timing. */
function fingerprint(dir) {
  const files = {};
  for (const sub of ["checkpoints", "agents"]) {
    for (const p of filesBelow(join(dir, sub))) {
      const rel = relative(dir, p);
      if (/checkpoint\.json$|\/latest$|damaged-stage/.test(rel)) continue;
      files[rel] = sha(p);
    }
  }
  return JSON.stringify({
    files,
    stages: withoutTiming(jsonl(join(dir, "stages.jsonl"))),
    pretrain: withoutTiming(jsonl(join(dir, "pretrain.jsonl"))),
    evals: jsonl(join(dir, "eval.jsonl")),
  });
}
const leftovers = (dir) =>
  [dir, join(dir, "checkpoints"), join(dir, "agents")]
    .filter(existsSync)
    .flatMap((d) => readdirSync(d).filter((n) => /\.(tmp|del)-|^run\.lock/.test(n)));

const rows = [];
function row(name, fault) {
  const r = { name, fault, runs: 0, faults: 0, handled: 0, identical: 0, caught: 0, wrong: [], fresh: 0 };
  rows.push(r);
  return r;
}

/** Polls until `ready()` or the process ends; true if ready. */
async function until(p, ready) {
  let ended = false;
  void p.done.then(() => (ended = true));
  while (!ready() && !ended) await sleep(5);
  return ready();
}

/** An uninterrupted run; `ms` its duration, `openMs` when its run directory had its config. */
async function reference(argv, name) {
  const dir = join(tmp, name);
  const p = start([...argv, "--output-dir", dir]);
  const t0 = performance.now();
  await until(p, () => existsSync(join(dir, "config.resolved.yaml")));
  const openMs = performance.now() - t0;
  const r = await p.done;
  if (r.code !== 0) throw new Error(`reference ${name} failed: ${r.stderr}`);
  return { dir, fp: fingerprint(dir), ms: r.ms, openMs };
}

/**
 * Stops a run with `signal` at a random moment after its run directory exists (one run in eight
 * at a random moment of start-up instead), resumes it, and half the time stops the resumed run
 * too; then resumes to the end and compares with the reference.
 */
async function killAndResume(r, ref, argv, command, signal) {
  for (let i = 0; i < RUNS; i++) {
    r.runs++;
    const dir = join(tmp, `${r.name.replace(/\W+/g, "-")}-${i}`);
    let argvNow = [...argv, "--output-dir", dir];
    let stops = 0;
    let failed = null;
    let fresh = false;
    for (let attempt = 0; attempt < 3; attempt++) {
      const p = start(argvNow);
      const stopHere = attempt === 0 || (attempt === 1 && random() < 0.5);
      if (!stopHere) {
        const done = await p.done;
        if (done.code !== 0) failed = `resume failed: ${done.stderr.trim().split("\n").pop()}`;
        break;
      }
      const early = attempt === 0 && i % 8 === 7;
      const t0 = performance.now();
      if (!early) await until(p, () => existsSync(join(dir, "config.resolved.yaml")));
      const span = early ? ref.openMs : Math.max(50, ref.ms - ref.openMs);
      await Promise.race([sleep(random() * 0.8 * span), p.done]);
      p.child.kill(signal);
      const res = await p.done;
      if (res.code === 0) break; // finished before the fault
      stops++;
      // SIGINT before node installed its handler (start-up) ends the process like a kill.
      const expected = res.signal === signal || (signal === "SIGINT" && res.code === 130);
      if (!expected) {
        failed = `ended with ${res.code ?? res.signal}: ${res.stderr.trim().split("\n").pop()}`;
        break;
      }
      if (!existsSync(join(dir, "config.resolved.yaml"))) {
        // Stopped before the run directory was made: --resume must refuse; a fresh start follows.
        const refused = await run([command, "--resume", "--output-dir", dir, "-q"]);
        if (refused.code !== 2 || !/no run to continue/.test(refused.stderr)) {
          failed = `stopped at start-up after ${(performance.now() - t0).toFixed(0)} ms; --resume said: ${refused.stderr.trim()}`;
          break;
        }
        fresh = true;
        argvNow = [...argv, "--output-dir", dir];
      } else argvNow = [command, "--resume", "--output-dir", dir, "-q"];
      if (attempt === 2) {
        const last = await run(argvNow);
        if (last.code !== 0) failed = `resume failed: ${last.stderr.trim().split("\n").pop()}`;
      }
    }
    r.faults += stops;
    if (failed) {
      r.wrong.push(`run ${i}: ${failed}`);
      continue;
    }
    const same = fingerprint(dir) === ref.fp && leftovers(dir).length === 0;
    if (!same) {
      r.wrong.push(`run ${i}: the finished run differs from the reference (${stops} stop(s))`);
      continue;
    }
    if (stops > 0) r.handled++;
    if (stops > 0 && !fresh) r.identical++;
    if (fresh) r.fresh = (r.fresh ?? 0) + 1;
  }
}

const DAMAGE = {
  "bit flip": (p) => {
    const b = readFileSync(p);
    const i = Math.floor(random() * b.length);
    b[i] ^= 1 << Math.floor(random() * 8);
    writeFileSync(p, b);
  },
  truncation: (p) => truncateSync(p, Math.floor(random() * statSync(p).size)),
  "zero-filled": (p) => writeFileSync(p, Buffer.alloc(statSync(p).size)),
  "deleted file": (p) => rmSync(p),
};

function nanWithChecksum(ck) {
  const p = join(ck, pick(["agent-0", "agent-1"]), "model.safetensors");
  const b = readFileSync(p);
  const data = 8 + Number(b.readBigUInt64LE(0));
  const k = Math.floor(random() * ((b.length - data) / 4));
  b.writeFloatLE(NaN, data + 4 * k);
  writeFileSync(p, b);
  const m = JSON.parse(readFileSync(join(ck, "checkpoint.json"), "utf8"));
  m.files.find((f) => join(ck, f.path) === p).sha256 = sha(p);
  writeFileSync(join(ck, "checkpoint.json"), JSON.stringify(m));
  return p;
}

async function corrupt(r, ref) {
  const kinds = [...Object.keys(DAMAGE), "NaN weights, checksum updated"];
  for (let i = 0; i < RUNS; i++) {
    r.runs++;
    r.faults++;
    const dir = join(tmp, `corrupt-${i}`);
    cpSync(ref.dir, dir, { recursive: true });
    const ck = join(dir, "checkpoints", `stage-${STAGES}`);
    const kind = kinds[i % kinds.length];
    let file;
    if (kind.startsWith("NaN")) file = nanWithChecksum(ck);
    else {
      const files = filesBelow(ck).filter((p) => !p.endsWith("checkpoint.json"));
      file = pick(files);
      DAMAGE[kind](file);
    }
    const res = await run(["train", "--resume", "--output-dir", dir, "-q"]);
    const named = res.stderr.includes(file);
    if (kind.startsWith("NaN")) {
      // Refused: a checkpoint with non-finite weights is never trained on.
      if (res.code === 1 && named && /non-finite/.test(res.stderr)) {
        r.caught++;
        r.handled++;
      } else r.wrong.push(`${kind}: ${res.code} ${res.stderr.trim()}`);
      continue;
    }
    if (res.code === 0 && named && /using stage-3 instead/.test(res.stderr)) {
      r.caught++;
      r.handled++;
      if (fingerprint(dir) === ref.fp) r.identical++;
      else r.wrong.push(`${kind} of ${relative(dir, file)}: the redone run differs`);
    } else r.wrong.push(`${kind} of ${relative(dir, file)}: ${res.code} ${res.stderr.trim().split("\n")[0]}`);
  }
}

async function concurrent(r) {
  for (let i = 0; i < RUNS; i++) {
    r.runs++;
    r.faults++;
    const dir = join(tmp, `concurrent-${i}`);
    const a = start([...TRAIN, "--output-dir", dir, "--seed", "1"]);
    // Half the rounds start together; the others start the second writer once the first has begun.
    if (i % 2 === 1) await sleep(300 + 500 * random());
    const b = start([...TRAIN, "--output-dir", dir, "--seed", "2"]);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    const codes = [ra.code, rb.code].sort().join(",");
    const loser = ra.code === 2 ? ra : rb;
    const steps = jsonl(join(dir, "stages.jsonl")).map((s) => s.step);
    const invocations = JSON.parse(readFileSync(join(dir, "overrides.json"), "utf8")).invocations.length;
    const lockLine = /is in use by another sat process \(pid \d+, started .*\)|is not empty; pass --resume/;
    if (codes === "0,2" && lockLine.test(loser.stderr) && steps.join() === "1,2,3,4" && invocations === 1) {
      r.handled++;
      r.caught++;
    } else
      r.wrong.push(
        `round ${i}: exits ${codes}, steps ${steps}, ${invocations} invocations: ${loser.stderr.trim()}`,
      );
  }
}

async function diskFull(r, ref) {
  const probe = mkdtempSync(join(tmp, "probe-"));
  if (
    process.getuid?.() !== 0 ||
    spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]).status !== 0
  ) {
    r.skipped = "needs root to mount a small tmpfs";
    return;
  }
  spawnSync("umount", [probe]);
  for (let i = 0; i < RUNS; i++) {
    r.runs++;
    const mnt = mkdtempSync(join(tmp, "full-"));
    const kb = 300 + Math.floor(random() * 900);
    spawnSync("mount", ["-t", "tmpfs", "-o", `size=${kb}k`, "tmpfs", mnt]);
    try {
      const dir = join(mnt, "run");
      const res = await run([...TRAIN, "--output-dir", dir]);
      if (res.code === 0) {
        if (fingerprint(dir) !== ref.fp) r.wrong.push(`${kb} KB: completed but differs`);
        continue;
      }
      r.faults++;
      const lines = res.stderr.split("\n").filter((l) => l && !l.startsWith("sat: warning: stage "));
      const clear = lines.length === 1 && /no space left on the device/.test(lines[0]);
      // Move the run where there is room and continue it.
      const moved = join(tmp, `disk-full-${i}`);
      cpSync(dir, moved, { recursive: true });
      if (!clear || leftovers(moved).some((n) => /\.(tmp|del)-/.test(n))) {
        r.wrong.push(`${kb} KB: ${lines.join(" | ")}`);
        continue;
      }
      r.handled++;
      const resumed = await run(["train", "--resume", "--output-dir", moved, "-q"]);
      if (resumed.code === 0 && fingerprint(moved) === ref.fp) r.identical++;
      else r.wrong.push(`${kb} KB: resume ${resumed.code}: ${resumed.stderr.trim().split("\n").pop()}`);
    } finally {
      spawnSync("umount", [mnt]);
    }
  }
}

const want = (name) => !only || only.some((o) => name.includes(o));
const t0 = performance.now();
const trainRef = await reference(TRAIN, "train-reference");
if (want("train kill"))
  await killAndResume(
    row("train kill", "SIGKILL at a random moment (half the time again during the resume), then --resume"),
    trainRef,
    TRAIN,
    "train",
    "SIGKILL",
  );
if (want("train ctrl-c"))
  await killAndResume(
    row("train ctrl-c", "SIGINT at a random moment (half the time again during the resume), then --resume"),
    trainRef,
    TRAIN,
    "train",
    "SIGINT",
  );
if (want("pretrain kill")) {
  const preRef = await reference(PRETRAIN, "pretrain-reference");
  await killAndResume(
    row("pretrain kill", "SIGKILL at a random moment (half the time again during the resume), then --resume"),
    preRef,
    PRETRAIN,
    "pretrain",
    "SIGKILL",
  );
}
if (want("corrupt"))
  await corrupt(
    row("corrupt", "newest checkpoint damaged (flip, truncate, zero, delete, NaN), then --resume"),
    trainRef,
  );
if (want("concurrent")) await concurrent(row("concurrent", "two sat train on one directory"));
if (want("disk full"))
  await diskFull(row("disk full", "tmpfs of 300-1200 KB, then --resume elsewhere"), trainRef);

console.log(
  `fault matrix: --runs ${RUNS} --seed ${opt("--seed", "1")}, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
);
console.log("");
console.log(
  "| row | fault | runs | faults injected | handled as specified | bit-identical resumes | corruptions / conflicts caught | wrong |",
);
console.log("|---|---|---|---|---|---|---|---|");
const total = { runs: 0, faults: 0, handled: 0, identical: 0, caught: 0, wrong: 0 };
for (const r of rows) {
  if (r.skipped) {
    console.log(`| ${r.name} | ${r.fault} | skipped: ${r.skipped} | | | | | |`);
    continue;
  }
  console.log(
    `| ${r.name} | ${r.fault} | ${r.runs} | ${r.faults} | ${r.handled} | ${r.identical} | ${r.caught} | ${r.wrong.length} |`,
  );
  for (const k of Object.keys(total)) total[k] += k === "wrong" ? r.wrong.length : r[k];
}
console.log(
  `| **total** | | ${total.runs} | ${total.faults} | ${total.handled} | ${total.identical} | ${total.caught} | ${total.wrong} |`,
);
for (const r of rows)
  if (r.fresh)
    console.log(
      `${r.name}: ${r.fresh} run(s) were stopped before their run directory existed; --resume refused them (no run to continue) and a fresh start matched the reference`,
    );
for (const r of rows) for (const w of r.wrong) console.log(`wrong: ${r.name}: ${w}`);
process.exitCode = total.wrong > 0 ? 1 : 0;
