/**
 * The PyTorch backend's configuration and plumbing that need no Python: its keys and cross-field
 * rules with their exact messages, the wire encoding of bulk arrays, and a checkpoint of the other
 * backend refused before anything is loaded.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig, loadConfig } from "../src/config/index.js";
import { decodeF64, decodeI32, encodeArray, f64, i32 } from "../src/backend/torch/wire.js";
import { torchSourcesOf } from "../src/app/torch-team.js";

const fails = (sets: string[], message: string) =>
  assert.throws(
    () => loadConfig({ sets }),
    (e: Error) => {
      assert.equal(e.message, message);
      return true;
    },
  );

test("torch backend: model.backend and the backend.torch_*/ray_* keys have defaults and checked values", () => {
  const c = defaultConfig();
  assert.equal(c.model.backend, "engine");
  assert.equal(c.backend.torch_device, "auto");
  assert.equal(c.backend.torch_dtype, "float32");
  assert.equal(c.backend.torch_launcher, "process");
  assert.equal(c.backend.ray_address, null);
  const t = loadConfig({
    sets: ["model.backend=torch", "backend.torch_launcher=ray", "backend.ray_num_gpus=1"],
  });
  assert.equal(t.backend.ray_num_gpus, 1);
  fails(
    ["model.backend=pytorch"],
    '--set model.backend=pytorch: model.backend: expected one of engine | torch, got string "pytorch"',
  );
  fails(
    ["backend.torch_dtype=float16"],
    '--set backend.torch_dtype=float16: backend.torch_dtype: expected one of float32 | bfloat16, got string "float16"; did you mean "bfloat16"?',
  );
});

test("torch backend: cross-field rules name the key and the fix", () => {
  fails(
    ["backend.torch_lora_rank=8"],
    "--set backend.torch_lora_rank=8: backend.torch_lora_rank applies to the PyTorch backend; set model.backend=torch or drop backend.torch_lora_rank",
  );
  fails(
    ["model.backend=torch", "algo.adv_estimator=gae"],
    "--set algo.adv_estimator=gae: algo.adv_estimator=gae needs a critic, which only the engine backend has; use algo.adv_estimator=group or model.backend=engine",
  );
  fails(
    ["model.backend=torch", "backend.ray_address=auto"],
    "--set backend.ray_address=auto: backend.ray_address is set but backend.torch_launcher=process; set backend.torch_launcher=ray",
  );
  fails(
    ["model.backend=torch", "backend.torch_lora_rank=8", 'team.agent_checkpoints=["a", null, "c"]'],
    '--set team.agent_checkpoints=["a", null, "c"]: backend.torch_lora_rank=8 trains adapters on a pretrained base: give team.agent_checkpoints for all 3 agents',
  );
});

test("torch backend: wire arrays round-trip bit for bit and a malformed one names its field", () => {
  const x = Float64Array.from([0, -0, 1e-300, Math.PI, NaN, -Infinity]);
  const back = decodeF64(f64(x), "x", 6);
  assert.deepEqual(new Uint8Array(back.buffer), new Uint8Array(x.buffer));
  assert.deepEqual(decodeI32(i32([3, -7, 2 ** 31 - 1]), "ids"), Int32Array.from([3, -7, 2 ** 31 - 1]));
  const sub = new Float64Array([9, 1, 2]).subarray(1);
  assert.deepEqual(decodeF64(encodeArray(sub), "sub"), Float64Array.from([1, 2]));
  assert.throws(
    () => decodeF64(i32([1]), "kl"),
    /^Error: field kl: expected a f64 array \(\{dtype, b64\}\)$/,
  );
  assert.throws(() => decodeF64(f64([1, 2]), "kl", 3), /^Error: field kl: 2 values, expected 3$/);
  assert.throws(
    () => decodeI32({ dtype: "i32", b64: Buffer.from([1, 2, 3]).toString("base64") }, "tokens"),
    /^Error: field tokens: 3 bytes is not a whole number of i32 values$/,
  );
});

test("torch backend: resuming with model.backend=torch refuses an engine checkpoint before loading anything", () => {
  const dir = mkdtempSync(join(tmpdir(), "sat-torch-ckpt-"));
  try {
    mkdirSync(join(dir, "agent-0"));
    writeFileSync(join(dir, "agent-0", "optimizer.safetensors"), "");
    const cfg = loadConfig({ sets: ["model.backend=torch", "team.n_agents=1", "algo.name=single"] });
    assert.throws(
      () => torchSourcesOf(cfg, dir, 1),
      (e: Error) =>
        e.message ===
        `${join(dir, "agent-0")}: written by the engine backend; resume it with model.backend=engine`,
    );
    assert.throws(
      () => torchSourcesOf(cfg, join(dir, "elsewhere"), 1),
      /agent-0: missing; the checkpoint does not hold agent 0 of the configured 1-agent team$/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
