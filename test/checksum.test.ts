/**
 * Damaged checkpoints are caught, named and worked around (issue 11, point 2), with real files and
 * processes: a same-size bit flip in a checkpoint's weights, a truncated file, and NaN weights.
 * `--resume` and `sat eval <run>` name the damaged file and say which stage they use instead; an
 * explicitly named damaged checkpoint is refused; non-finite weights are refused on load and on
 * save, naming the tensor.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { referenceEngine } from "../src/engine/engine.js";
import { Rng } from "../src/engine/rng.js";
import { readJsonl } from "../src/io/jsonl.js";
import { listCheckpoints, RUN_FILES } from "../src/io/rundir.js";
import { CheckpointError, loadModel, saveModel, saveOptimizer } from "../src/model/checkpoint.js";
import { presetConfig } from "../src/model/config.js";
import { CharTokenizer } from "../src/model/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { completes, errorLines, fixtureAgent, hashTree, sets, startSat, TINY } from "./sat-process.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-checksum-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const TRAIN = [
  ...["train", "-q", "--threads", "1", "--max-steps", "3"],
  ...sets({ ...TINY, "run.save_steps": 1, "run.save_total_limit": null }),
];
const ref = join(tmp, "reference");
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const ck = (dir: string, step: number) => join(dir, RUN_FILES.checkpoints, `stage-${step}`);

/** Byte offset of the first tensor byte of a safetensors file (after the 8-byte length and the header). */
function dataStart(path: string): number {
  return 8 + Number(readFileSync(path).readBigUInt64LE(0));
}

/** Flips the lowest bit of the first float's mantissa: same size, a still-finite weight. */
function flipBit(path: string): void {
  const bytes = readFileSync(path);
  bytes[dataStart(path)] ^= 0x01;
  writeFileSync(path, bytes);
}

function copyRun(name: string): string {
  const dir = join(tmp, name);
  cpSync(ref, dir, { recursive: true });
  return dir;
}

test("safety 2 checksum: a reference run with a checkpoint per stage", async () => {
  await completes(startSat([...TRAIN, "--output-dir", ref], tmp));
  assert.deepEqual(
    listCheckpoints(ref).map((c) => c.step),
    [1, 2, 3],
  );
  const manifest = JSON.parse(readFileSync(join(ck(ref, 3), RUN_FILES.manifest), "utf8")) as {
    files: { path: string; sha256: string }[];
  };
  const weights = manifest.files.find((f) => f.path === "agent-1/model.safetensors")!;
  assert.equal(
    weights.sha256,
    createHash("sha256")
      .update(readFileSync(join(ck(ref, 3), weights.path)))
      .digest("hex"),
  );
});

test("safety 2 checksum: a same-size bit flip in the newest weights: --resume names the file, uses stage 2 and redoes stage 3 bit for bit", async () => {
  const dir = copyRun("flipped");
  const damaged = join(ck(dir, 3), "agent-1", "model.safetensors");
  flipBit(damaged);
  const r = await completes(startSat(["train", "--resume", "--output-dir", dir, "-q"], tmp));
  const lines = errorLines(r);
  assert.equal(
    lines[0],
    `sat: warning: ${damaged}: SHA-256 differs from the manifest (the file is damaged); using stage-2 instead`,
  );
  assert.ok(
    lines.includes(
      `sat: warning: ${ck(dir, 3)}: damaged, moved to ${join(dir, RUN_FILES.checkpoints, "damaged-stage-3")} (delete it when you no longer need it)`,
    ),
    lines.join("\n"),
  );
  // Stage 3 was redone from stage 2: its checkpoint equals the reference's, byte for byte.
  const redone = hashTree(ck(dir, 3));
  const reference = hashTree(ck(ref, 3));
  delete redone[RUN_FILES.manifest];
  delete reference[RUN_FILES.manifest];
  assert.deepEqual(redone, reference);
  assert.ok(existsSync(join(dir, RUN_FILES.checkpoints, "damaged-stage-3", "agent-1", "model.safetensors")));
});

test("safety 2 checksum: a bit flip in an explicitly named checkpoint is refused in one line that names the file and an intact one", async () => {
  const dir = copyRun("flipped-explicit");
  const damaged = join(ck(dir, 3), "agent-0", "optimizer.safetensors");
  flipBit(damaged);
  const before = hashTree(dir);
  const r = await startSat(["train", "--resume", ck(dir, 3), "-q"], tmp).done;
  assert.equal(r.code, 1);
  assert.deepEqual(errorLines(r), [
    `sat: --resume ${ck(dir, 3)}: ${damaged}: SHA-256 differs from the manifest (the file is damaged); use ${ck(dir, 2)}`,
  ]);
  assert.deepEqual(hashTree(dir), before);
});

test("safety 2 checksum: sat eval <run> with a truncated newest checkpoint names the file and evaluates stage 2", async () => {
  const dir = copyRun("truncated");
  const damaged = join(ck(dir, 3), "agent-0", "model.safetensors");
  truncateSync(damaged, 1000);
  const out = join(tmp, "eval-out");
  const r = await completes(startSat(["eval", "-q", "--checkpoint", dir, "--output-dir", out], tmp));
  const size = JSON.parse(readFileSync(join(ck(ref, 3), RUN_FILES.manifest), "utf8")).files.find(
    (f: { path: string }) => f.path === "agent-0/model.safetensors",
  ).bytes;
  assert.deepEqual(errorLines(r), [
    `sat: warning: ${damaged}: 1000 bytes, the manifest says ${size} (truncated or overwritten); using stage-2 instead`,
  ]);
  assert.deepEqual(
    readJsonl(join(out, RUN_FILES.eval)).map((e) => e.step),
    [2],
  );
});

/** An agent dir whose first weight is NaN, with `tamper` applied to the checkpoint it sits in. */
function nanWeights(path: string): void {
  const bytes = readFileSync(path);
  bytes.writeFloatLE(NaN, dataStart(path));
  writeFileSync(path, bytes);
}

test("safety 2 checksum: NaN weights are refused on load, naming the tensor: a starting agent, and a checkpoint whose manifest matches them", async () => {
  const agent = join(tmp, "nan-agent");
  cpSync(fixtureAgent, agent, { recursive: true });
  nanWeights(join(agent, "model.safetensors"));
  const r = await startSat(
    [
      ...TRAIN,
      "--output-dir",
      join(tmp, "nan-run"),
      ...sets({ "team.agent_checkpoints": [agent, fixtureAgent] }),
    ],
    tmp,
  ).done;
  assert.equal(r.code, 1);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(
    lines[0],
    new RegExp(
      `^sat: team\\.agent_checkpoints\\[0\\]: ${esc(join(agent, "model.safetensors"))}: refusing to load: tensor "[\\w.]+" holds 1 non-finite value\\(s\\) \\(NaN or Inf\\) of \\d+; the weights diverged; use an earlier checkpoint$`,
    ),
  );
  assert.ok(!existsSync(join(tmp, "nan-run")), "no run directory for a refused start");
  // A checkpoint saved with NaN weights by some other means (its checksums match them).
  const dir = copyRun("nan-checkpoint");
  const weights = join(ck(dir, 3), "agent-1", "model.safetensors");
  nanWeights(weights);
  const manifestPath = join(ck(dir, 3), RUN_FILES.manifest);
  const m = JSON.parse(readFileSync(manifestPath, "utf8")) as { files: { path: string; sha256: string }[] };
  m.files.find((f) => f.path === "agent-1/model.safetensors")!.sha256 = createHash("sha256")
    .update(readFileSync(weights))
    .digest("hex");
  writeFileSync(manifestPath, JSON.stringify(m));
  const resumed = await startSat(["train", "--resume", "--output-dir", dir, "-q", "--max-steps", "4"], tmp)
    .done;
  assert.equal(resumed.code, 1);
  assert.match(
    errorLines(resumed)[0],
    new RegExp(`^sat: ${esc(weights)}: refusing to load: tensor "[\\w.]+" holds 1 non-finite value\\(s\\)`),
  );
});

test("safety 2 checksum: non-finite weights or optimizer moments are refused on save, naming the tensor", () => {
  const engine = referenceEngine();
  const tok = new CharTokenizer();
  const model = new Transformer(presetConfig("nano", tok.vocabSize, "gpt2"), engine, new Rng(1));
  const dir = mkdtempSync(join(tmp, "save-"));
  const FC = "transformer.h.0.mlp.c_fc.weight";
  model.w(FC)[5] = Infinity;
  assert.throws(
    () => saveModel(dir, model, tok),
    (err: unknown) =>
      err instanceof CheckpointError &&
      err.message ===
        `${join(dir, "model.safetensors")}: refusing to save: tensor "${FC}" holds 1 non-finite value(s) (NaN or Inf) of ${model.w(FC).length}; the weights diverged; lower optim.lr or resume from an earlier checkpoint`,
  );
  assert.ok(!existsSync(join(dir, "model.safetensors")), "nothing written");
  model.w(FC)[5] = 0;
  saveModel(dir, model, tok);
  assert.equal(loadModel(dir, engine, tok).params.length, model.params.length);
  const m = new Float32Array(model.params.length);
  const v = new Float32Array(model.params.length);
  v[3] = NaN;
  assert.throws(() => saveOptimizer(dir, { step: 1, m, v }), /exp_avg_sq holds 1 non-finite value/);
});
