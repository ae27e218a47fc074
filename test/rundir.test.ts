/** Run directory and JSONL logs: create/refuse, atomic checkpoints, latest, pruning, resume, torn lines. */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JsonlError, JsonlWriter, readJsonl, toJsonLine } from "../src/io/jsonl.js";
import {
  findLatestCheckpoint,
  listCheckpoints,
  openRunDir,
  resolveCheckpoint,
  RUN_FILES,
  RunDirError,
} from "../src/io/rundir.js";

const root = mkdtempSync(join(tmpdir(), "sat-rundir-"));
let n = 0;
const freshDir = () => join(root, `run${n++}`);

/** Opens `dir` as a run (creating it as a new run the first time) and publishes checkpoint `step`. */
async function publish(dir: string, step: number, keep?: number) {
  let run;
  if (existsSync(join(dir, RUN_FILES.config))) run = openRunDir(dir, { resume: true });
  else {
    run = openRunDir(dir);
    run.writeConfig("run: {}\n", {});
  }
  return run.publishCheckpoint(
    step,
    (d) => {
      mkdirSync(join(d, "agent_0"));
      writeFileSync(join(d, "agent_0", "weights.bin"), Buffer.alloc(100 + step));
      writeFileSync(join(d, "trainer_state.json"), JSON.stringify({ step }));
    },
    { keep },
  );
}

function runError(f: () => unknown): RunDirError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof RunDirError, String(err));
    assert.ok(!err.message.includes("\n"));
    return err;
  }
  assert.fail("no error");
}

test("a new run dir is created; a non-empty one needs --resume or --force", () => {
  const dir = freshDir();
  const run = openRunDir(dir);
  assert.ok(existsSync(dir));
  run.writeConfig("run:\n  seed: 1\n", { argv: ["train"] });
  assert.equal(
    runError(() => openRunDir(dir)).message,
    `output directory ${dir} is not empty; pass --resume to continue it, --force to start over, or choose another --output-dir`,
  );
  assert.match(runError(() => openRunDir(dir, { resume: true, force: true })).message, /contradict/);
  // --force empties a run directory ...
  writeFileSync(join(dir, "stages.jsonl"), toJsonLine({ step: 1 }));
  openRunDir(dir, { force: true });
  assert.deepEqual(readdirSync(dir), [RUN_FILES.lock], "only the lock this process holds is left");
  // ... but refuses a directory that holds no run.
  const other = freshDir();
  mkdirSync(other);
  writeFileSync(join(other, "notes.txt"), "mine");
  assert.match(
    runError(() => openRunDir(other, { force: true })).message,
    /^refusing to empty .*no config\.resolved\.yaml/,
  );
  assert.ok(existsSync(join(other, "notes.txt")));
});

test("writeConfig keeps every invocation in overrides.json", () => {
  const dir = freshDir();
  openRunDir(dir).writeConfig("a: 1\n", { set: ["x=1"] });
  openRunDir(dir, { resume: true }).writeConfig("a: 2\n", { set: ["x=2"] });
  const o = JSON.parse(readFileSync(join(dir, RUN_FILES.overrides), "utf8")) as {
    invocations: { set: string[] }[];
  };
  assert.deepEqual(
    o.invocations.map((i) => i.set[0]),
    ["x=1", "x=2"],
  );
  assert.equal(readFileSync(join(dir, RUN_FILES.config), "utf8"), "a: 2\n");
});

test("checkpoints publish atomically, `latest` follows, and only complete stages count", async () => {
  const dir = freshDir();
  for (const step of [1, 2, 3]) await publish(dir, step);
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [1, 2, 3],
  );
  assert.equal(readFileSync(join(dir, "checkpoints", RUN_FILES.latest), "utf8"), "stage-3\n");
  const manifest = JSON.parse(
    readFileSync(join(dir, "checkpoints", "stage-3", RUN_FILES.manifest), "utf8"),
  ) as { files: { path: string; bytes: number; sha256: string }[] };
  const sha = (b: string | Buffer) => createHash("sha256").update(b).digest("hex");
  assert.deepEqual(manifest.files, [
    { path: "agent_0/weights.bin", bytes: 103, sha256: sha(Buffer.alloc(103)) },
    {
      path: "trainer_state.json",
      bytes: JSON.stringify({ step: 3 }).length,
      sha256: sha(JSON.stringify({ step: 3 })),
    },
  ]);
  // A crash mid-build leaves a temp dir; a copy without a manifest or with a truncated file is half-written.
  const ck = join(dir, "checkpoints");
  mkdirSync(join(ck, ".stage-9.tmp-1-2"));
  writeFileSync(
    join(ck, ".stage-9.tmp-1-2", RUN_FILES.manifest),
    readFileSync(join(ck, "stage-3", RUN_FILES.manifest)),
  );
  mkdirSync(join(ck, "stage-7"));
  writeFileSync(join(ck, "stage-7", "trainer_state.json"), "{}");
  await publish(dir, 8);
  truncateSync(join(ck, "stage-8", "agent_0", "weights.bin"), 10);
  assert.deepEqual(findLatestCheckpoint(dir), { step: 3, dir: join(ck, "stage-3") });
  const warnings: string[] = [];
  assert.deepEqual(
    resolveCheckpoint(dir, "--resume", (m) => warnings.push(m)),
    {
      step: 3,
      dir: join(ck, "stage-3"),
    },
  );
  // Each damaged newer checkpoint is named with its damaged file and the stage used instead. The
  // resume that published stage 8 moved stage-7 (no manifest) aside, where nothing reads it.
  assert.deepEqual(warnings, [
    `${join(ck, "stage-8", "agent_0", "weights.bin")}: 10 bytes, the manifest says 108 (truncated or overwritten); using stage-3 instead`,
  ]);
  assert.ok(existsSync(join(ck, "damaged-stage-7", "trainer_state.json")));
  assert.equal(
    runError(() => resolveCheckpoint(join(ck, "stage-8"))).message,
    `--resume ${join(ck, "stage-8")}: ${join(ck, "stage-8", "agent_0", "weights.bin")}: 10 bytes, the manifest says 108 (truncated or overwritten); use ${join(ck, "stage-3")}`,
  );
  mkdirSync(join(ck, "stage-7"));
  assert.match(
    runError(() => resolveCheckpoint(join(ck, "stage-7"))).message,
    /stage-7\/checkpoint\.json: missing \(the checkpoint was never completed\); use .*stage-3$/,
  );
});

test("a failing build publishes nothing and leaves `latest` alone", async () => {
  const dir = freshDir();
  await publish(dir, 1);
  const run = openRunDir(dir, { resume: true });
  await assert.rejects(
    run.publishCheckpoint(2, (d) => {
      writeFileSync(join(d, "half"), "x");
      throw new Error("disk full");
    }),
    /disk full/,
  );
  assert.deepEqual(readdirSync(join(dir, "checkpoints")).sort(), ["latest", "stage-1"]);
  assert.equal(readFileSync(join(dir, "checkpoints", "latest"), "utf8"), "stage-1\n");
});

test("save_total_limit keeps the newest stages and clears temp dirs; re-publishing replaces", async () => {
  const dir = freshDir();
  for (const step of [1, 2, 3, 4]) await publish(dir, step);
  mkdirSync(join(dir, "checkpoints", ".stage-5.tmp-99-1"));
  await publish(dir, 5, 2);
  assert.deepEqual(readdirSync(join(dir, "checkpoints")).sort(), ["latest", "stage-4", "stage-5"]);
  await publish(dir, 5, 2);
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [4, 5],
  );
});

test("resume rewinds logs and drops checkpoints newer than the resumed stage", async () => {
  const dir = freshDir();
  for (const step of [2, 4, 6]) await publish(dir, step);
  const w = new JsonlWriter(join(dir, RUN_FILES.stages));
  for (let step = 1; step <= 7; step++) w.append({ step, agent: 0, "reward/mean": step / 10 });
  w.close();
  appendFileSync(join(dir, RUN_FILES.stages), '{"step": 8, "agent"'); // torn by a crash
  const warnings: string[] = [];
  const run = openRunDir(dir, { resume: join(dir, "checkpoints", "stage-4"), warn: (m) => warnings.push(m) });
  assert.deepEqual(run.resumeFrom, { step: 4, dir: join(dir, "checkpoints", "stage-4") });
  assert.deepEqual(
    readJsonl(join(dir, RUN_FILES.stages)).map((r) => r.step),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    listCheckpoints(dir).map((c) => c.step),
    [2, 4],
  );
  assert.ok(
    warnings.some((m) => /torn last line/.test(m)),
    warnings.join(" / "),
  );
  assert.ok(
    warnings.some((m) => /dropped 3 record/.test(m)),
    warnings.join(" / "),
  );
  // Auto-resume picks the newest complete checkpoint.
  assert.equal(openRunDir(dir, { resume: true }).resumeFrom?.step, 4);
});

test("JSONL: non-finite numbers become null, typed arrays lists; one fsynced line per record", () => {
  const p = join(root, "m.jsonl");
  const w = new JsonlWriter(p);
  w.append({ step: 1, a: NaN, b: Infinity, c: -Infinity, d: new Float32Array([0.5, 1.5]), e: 2 });
  w.append({ step: 2, nested: { x: NaN } });
  w.close();
  const text = readFileSync(p, "utf8");
  assert.equal(text.split("\n").length, 3);
  assert.deepEqual(readJsonl(p), [
    { step: 1, a: null, b: null, c: null, d: [0.5, 1.5], e: 2 },
    { step: 2, nested: { x: null } },
  ]);
  assert.deepEqual(readJsonl(join(root, "missing.jsonl")), []);
});

test("JSONL: a torn last line is skipped with a warning and repaired before appending; a bad middle line is an error", () => {
  const p = join(root, "torn.jsonl");
  const torn = '{"step": 3, "re';
  writeFileSync(p, toJsonLine({ step: 1 }) + toJsonLine({ step: 2 }) + torn);
  const warnings: string[] = [];
  assert.deepEqual(readJsonl(p, { warn: (m) => warnings.push(m) }), [{ step: 1 }, { step: 2 }]);
  assert.deepEqual(warnings, [`${p}:3: ignoring a torn last line (an interrupted write)`]);
  const w = new JsonlWriter(p, (m) => warnings.push(m));
  w.append({ step: 3 });
  w.close();
  assert.match(warnings[1], new RegExp(`cut a torn last line \\(${torn.length} bytes`));
  assert.deepEqual(readJsonl(p), [{ step: 1 }, { step: 2 }, { step: 3 }]);

  const bad = join(root, "bad.jsonl");
  writeFileSync(bad, toJsonLine({ step: 1 }) + "{oops\n" + toJsonLine({ step: 3 }));
  assert.throws(
    () => readJsonl(bad),
    (e: unknown) =>
      e instanceof JsonlError &&
      e.message.startsWith(`${bad}:2: not valid JSON (`) &&
      !e.message.includes("\n"),
  );
  writeFileSync(bad, toJsonLine({ step: 1 }) + "[1, 2]\n");
  assert.throws(
    () => readJsonl(bad),
    new RegExp(`^JsonlError: ${bad}:2: not a JSON object; fix or delete that line$`),
  );
});
