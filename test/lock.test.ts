/**
 * One writer per run directory (issue 11, point 1), with real processes: two `sat train` started at
 * once on one directory give one run and one refusal naming the holder's pid and start time; a
 * `--resume` while the run is live is refused; every writing command (train, pretrain, eval with an
 * output dir, swap) refuses a directory another live process holds; a lock whose process died is
 * taken over with a warning, and a recycled pid is not mistaken for the old owner.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { readJsonl } from "../src/io/jsonl.js";
import { lockRunDir, LOCK_FILE, ownerAlive, RunLockedError, type LockOwner } from "../src/io/lock.js";
import { RUN_FILES } from "../src/io/rundir.js";
import {
  completes,
  errorLines,
  fixtureAgent,
  hashTree,
  sets,
  startSat,
  TINY,
  waitUntil,
  type Result,
} from "./sat-process.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-lock-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const train = (dir: string, steps: number, ...extra: string[]) =>
  startSat(
    [
      "train",
      "-q",
      "--threads",
      "1",
      "--max-steps",
      String(steps),
      ...sets(TINY),
      "--output-dir",
      dir,
      ...extra,
    ],
    tmp,
  );

/** The one-line refusal of a second writer, with the holder's pid. */
const LOCKED = (dir: string) =>
  new RegExp(
    `^sat: ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is in use by another sat process \\(pid (\\d+), started \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC, sat (train|pretrain|eval|swap)\\); wait for it to finish or stop it, or choose another --output-dir$`,
  );

function holderPid(r: Result, dir: string): number {
  const lines = errorLines(r);
  assert.equal(lines.length, 1, r.stderr);
  const m = LOCKED(dir).exec(lines[0]);
  assert.ok(m, `not the lock refusal: ${lines[0]}`);
  return Number(m[1]);
}

test("safety 1 lock: a second sat train on a live run directory is refused in one line naming the holder's pid and start time; the run is not disturbed", async () => {
  const dir = join(tmp, "held");
  // Long enough to outlive both refusals; stopped with Ctrl-C at the end.
  const first = train(dir, 500, "--set", "run.save_steps=1");
  await waitUntil(first, () => existsSync(join(dir, RUN_FILES.stages)), "the first stage record");
  const second = await train(dir, 6, "--seed", "3").done;
  assert.equal(second.code, 2);
  assert.equal(holderPid(second, dir), first.child.pid);
  // --resume while the run is live: refused the same way, nothing rewound.
  const resumed = await startSat(["train", "--resume", "--output-dir", dir, "-q"], tmp).done;
  assert.equal(resumed.code, 2, resumed.stderr);
  assert.equal(holderPid(resumed, dir), first.child.pid);
  first.child.kill("SIGINT");
  const r = await first.done;
  assert.equal(r.code, 130, r.stderr);
  const steps = readJsonl(join(dir, RUN_FILES.stages)).map((x) => x.step as number);
  assert.deepEqual(
    steps,
    steps.map((_, i) => i + 1),
    "one record per stage, in order: nothing interleaved",
  );
  const o = JSON.parse(readFileSync(join(dir, RUN_FILES.overrides), "utf8")) as { invocations: unknown[] };
  assert.equal(o.invocations.length, 1, "only the holder wrote overrides.json");
  assert.ok(!existsSync(join(dir, LOCK_FILE)), "the lock is released at the end");
});

test("safety 1 lock: two sat train started at the same moment on one new directory: exactly one runs, the logs hold one run", async () => {
  for (let round = 0; round < 2; round++) {
    const dir = join(tmp, `race-${round}`);
    const a = train(dir, 3, "--seed", "1");
    const b = train(dir, 3, "--seed", "2");
    const [ra, rb] = await Promise.all([a.done, b.done]);
    const codes = [ra.code, rb.code].sort();
    assert.deepEqual(codes, [0, 2], `round ${round}: ${ra.stderr} | ${rb.stderr}`);
    const loser = ra.code === 2 ? ra : rb;
    const winner = ra.code === 2 ? b : a;
    const line = errorLines(loser)[0];
    // The loser either met the lock or, if the winner was already done, a used directory.
    assert.ok(LOCKED(dir).test(line) || /is not empty; pass --resume/.test(line), `round ${round}: ${line}`);
    if (LOCKED(dir).test(line)) assert.equal(holderPid(loser, dir), winner.child.pid);
    const stages = readJsonl(join(dir, RUN_FILES.stages));
    assert.deepEqual(
      stages.map((r) => r.step),
      [1, 2, 3],
      `round ${round}: one run's stages`,
    );
    const o = JSON.parse(readFileSync(join(dir, RUN_FILES.overrides), "utf8")) as {
      invocations: { flags: Record<string, string> }[];
    };
    assert.equal(o.invocations.length, 1);
  }
});

test("safety 1 lock: two sat train --resume started together on one run: one continues it, the other is refused; every stage is logged once", async () => {
  const dir = join(tmp, "double-resume");
  await completes(train(dir, 2, "--set", "run.save_steps=1"));
  // Both extend the run (run.max_steps may change on resume) far enough to overlap.
  const resume = () => startSat(["train", "--resume", "--output-dir", dir, "-q", "--max-steps", "200"], tmp);
  const a = resume();
  const b = resume();
  const firstDone = await Promise.race([a.done.then(() => a), b.done.then(() => b)]);
  const loser = await firstDone.done;
  const winner = firstDone === a ? b : a;
  assert.equal(loser.code, 2, `the second resume ran: ${loser.stderr}`);
  assert.equal(holderPid(loser, dir), winner.child.pid);
  winner.child.kill("SIGINT");
  const w = await winner.done;
  assert.equal(w.code, 130, w.stderr);
  const steps = readJsonl(join(dir, RUN_FILES.stages)).map((x) => x.step as number);
  assert.deepEqual(
    steps,
    steps.map((_, i) => i + 1),
    "each stage logged once, in order",
  );
  assert.ok(steps.length >= 2);
});

test("safety 1 lock: pretrain, eval with an output dir and swap refuse a directory a live process holds", async () => {
  // A live process that is not sat holds the lock (as a running sat would).
  const holder = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
  try {
    const dir = join(tmp, "held-by-other");
    mkdirSync(dir);
    const procStart = readFileSync(`/proc/${holder.pid}/stat`, "utf8").split(") ")[1].split(" ")[19];
    const owner: LockOwner = {
      pid: holder.pid!,
      host: hostname(),
      started: new Date().toISOString(),
      proc_start: procStart,
      command: "sat train",
    };
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify(owner));
    const before = hashTree(dir);
    const team = join(tmp, "team");
    mkdirSync(team);
    for (const i of [0, 1]) mkdirSync(join(team, `agent-${i}`));
    for (const i of [0, 1])
      for (const f of ["model.safetensors", "config.json", "tokenizer.json"])
        writeFileSync(join(team, `agent-${i}`, f), readFileSync(join(fixtureAgent, f)));
    const small = sets({ ...TINY, "team.agent_checkpoints": [] });
    const commands: [string, string[]][] = [
      ["pretrain", ["pretrain", "-q", "--output-dir", dir, "--set", "pretrain.steps=2"]],
      ["eval", ["eval", "-q", "--output-dir", dir, "--checkpoint", team, ...small]],
      [
        "swap",
        [
          "swap",
          "-q",
          "--output-dir",
          dir,
          "--checkpoint",
          team,
          "--agent",
          "1",
          "--with",
          fixtureAgent,
          ...small,
        ],
      ],
      ["train", ["train", "-q", "--output-dir", dir, ...sets(TINY)]],
    ];
    for (const [name, argv] of commands) {
      const r = await startSat(argv, tmp).done;
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.equal(holderPid(r, dir), holder.pid, name);
    }
    assert.deepEqual(hashTree(dir), before, "the refused commands changed the directory");
  } finally {
    holder.kill("SIGKILL");
  }
});

test("safety 1 lock: a stale lock (dead pid, or a recycled pid with another start time) is taken over with a warning; a live one is refused", () => {
  const dir = join(tmp, "unit");
  mkdirSync(dir);
  const path = join(dir, LOCK_FILE);
  const me = readFileSync(`/proc/${process.pid}/stat`, "utf8").split(") ")[1].split(" ")[19];
  const write = (o: Partial<LockOwner>) =>
    writeFileSync(
      path,
      JSON.stringify({ host: hostname(), started: "2020-01-01T00:00:00.000Z", command: "sat train", ...o }),
    );
  // pid 1 is alive; with its real start time it is the owner, with another it is a recycled pid.
  const initStart = readFileSync("/proc/1/stat", "utf8").split(") ")[1].split(" ")[19];
  write({ pid: 1, proc_start: initStart });
  assert.throws(
    () => lockRunDir(dir, "sat train"),
    (err: unknown) =>
      err instanceof RunLockedError && /pid 1, started 2020-01-01 00:00:00 UTC, sat train/.test(err.message),
  );
  assert.equal(ownerAlive({ pid: 1, proc_start: initStart } as LockOwner), true);
  assert.equal(ownerAlive({ pid: 1, proc_start: initStart + "0" } as LockOwner), false);
  const warnings: string[] = [];
  write({ pid: 1, proc_start: initStart + "0" });
  let lock = lockRunDir(dir, "sat train", (m) => warnings.push(m));
  assert.match(
    warnings[0],
    /^removed the lock of a sat process that is gone \(pid 1, .*\); taking over the run$/,
  );
  const owner = JSON.parse(readFileSync(path, "utf8")) as LockOwner;
  assert.equal(owner.pid, process.pid);
  assert.equal(owner.proc_start, me);
  // Re-entrant within the process; released when the last holder lets go.
  const again = lockRunDir(dir, "sat train");
  again.release();
  assert.ok(existsSync(path));
  lock.release();
  assert.ok(!existsSync(path));
  // A dead pid: the exit status of a finished child is gone.
  const dead = spawn(process.execPath, ["-e", ""]);
  const deadPid = dead.pid!;
  return new Promise<void>((resolve) =>
    dead.on("close", () => {
      write({ pid: deadPid, proc_start: null });
      lock = lockRunDir(dir, "sat train", (m) => warnings.push(m));
      assert.match(warnings[1], new RegExp(`pid ${deadPid}`));
      lock.release();
      resolve();
    }),
  );
});
