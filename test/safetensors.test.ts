/**
 * safetensors reader/writer: round trips, byte-exact agreement with files written by the official
 * Python library, the golden fixtures' documented invariants, every validation error, and
 * F16/BF16/I64 decoding against hand-computed values.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  encodeSafetensors,
  halfToFloat,
  parseSafetensors,
  readSafetensors,
  writeSafetensors,
  type SafeTensor,
} from "../src/model/safetensors.js";
import { Rng } from "../src/engine/rng.js";

const GOLDEN = fileURLToPath(new URL("../../test/golden/", import.meta.url));
const MODELS = ["gpt2", "llama", "qwen3"].filter((m) => existsSync(join(GOLDEN, m, "expected.safetensors")));

/** Builds a file by hand from a header object and raw data bytes (independent of the writer). */
function rawFile(header: unknown, data: Uint8Array | number[], headerText?: string): Uint8Array {
  const text = Buffer.from(headerText ?? JSON.stringify(header), "utf8");
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data instanceof Uint8Array ? data : Uint8Array.from(data), 8 + text.length);
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

function u16le(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => new DataView(out.buffer).setUint16(2 * i, v, true));
  return out;
}

function one(bytes: Uint8Array, name: string): SafeTensor {
  const t = parseSafetensors(bytes, "t.safetensors").tensors.get(name);
  assert.ok(t, `tensor ${name} missing`);
  return t;
}

test("write then read round-trips F32, F64 and I32 (scalar, empty and odd-sized tensors) and metadata", () => {
  const rng = new Rng(11);
  const f32 = Float32Array.from({ length: 3 * 5 }, () => rng.normal());
  f32[0] = -0;
  f32[1] = Infinity;
  f32[2] = NaN;
  const f64 = Float64Array.from({ length: 7 }, () => rng.normal() * 1e300);
  const i32 = Int32Array.from([0, -1, 2147483647, -2147483648, 39]);
  const dir = mkdtempSync(join(tmpdir(), "st-"));
  try {
    const path = join(dir, "a.safetensors");
    const meta = { lr: "0.01", note: "héllo" };
    writeSafetensors(
      path,
      {
        "w.f32": { shape: [3, 5], data: f32 },
        "b.f64": { shape: [7], data: f64 },
        "c.i32": { dtype: "I32", shape: [5], data: i32 },
        "d.scalar": { shape: [], data: Float32Array.of(3.5) },
        "e.empty": { shape: [0, 4], data: new Float32Array(0) },
        "f.byte": { shape: [1], data: Int32Array.of(7) },
      },
      meta,
    );
    assert.deepEqual(readdirSync(dir), ["a.safetensors"], "no temporary file left behind");
    const bytes = readFileSync(path);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + headerLen) % 8, 0, "data section starts 8-byte aligned");
    const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString("utf8"));
    const names = Object.keys(header).filter((k) => k !== "__metadata__");
    assert.deepEqual(names, ["b.f64", "c.i32", "d.scalar", "e.empty", "f.byte", "w.f32"]);
    const starts = names.map((n) => header[n].data_offsets[0]);
    assert.deepEqual(
      starts,
      [...starts].sort((a, b) => a - b),
      "data laid out in name order",
    );

    const file = readSafetensors(path);
    assert.deepEqual(file.metadata, meta);
    const w = file.tensors.get("w.f32")!;
    assert.equal(w.dtype, "F32");
    assert.deepEqual(w.shape, [3, 5]);
    assert.ok(w.data instanceof Float32Array);
    assert.ok(Object.is(w.data[0], -0) && w.data[1] === Infinity && Number.isNaN(w.data[2]));
    assert.deepEqual(Array.from(w.data.subarray(3)), Array.from(f32.subarray(3)));
    const b = file.tensors.get("b.f64")!;
    assert.ok(b.data instanceof Float64Array && b.dtype === "F64");
    assert.deepEqual(Array.from(b.data), Array.from(f64));
    const c = file.tensors.get("c.i32")!;
    assert.ok(c.data instanceof Int32Array && c.dtype === "I32");
    assert.deepEqual(Array.from(c.data), Array.from(i32));
    assert.deepEqual(file.tensors.get("d.scalar")!.shape, []);
    assert.equal(file.tensors.get("d.scalar")!.data[0], 3.5);
    assert.deepEqual(file.tensors.get("e.empty")!.shape, [0, 4]);
    assert.equal(file.tensors.get("e.empty")!.data.length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the writer rejects inconsistent input with the tensor named", () => {
  assert.throws(
    () => encodeSafetensors({ x: { shape: [2, 3], data: new Float32Array(5) } }),
    /tensor "x": shape \[2,3\] has 6 elements, data has 5/,
  );
  assert.throws(
    () => encodeSafetensors({ y: { dtype: "F64", shape: [1], data: new Float32Array(1) } }),
    /tensor "y": dtype F64 but data is F32/,
  );
  assert.throws(
    () => encodeSafetensors({ __metadata__: { shape: [0], data: new Float32Array(0) } }),
    /invalid tensor name/,
  );
});

test(
  "re-encoding the Python-written files reproduces them byte for byte",
  { skip: MODELS.length === 0 },
  () => {
    // model.safetensors comes from the official library (save_pretrained), expected.safetensors from the
    // fixture script's own writer: matching both pins down the header layout, order and padding.
    for (const model of MODELS) {
      for (const file of ["model.safetensors", "expected.safetensors"]) {
        const path = join(GOLDEN, model, file);
        const original = readFileSync(path);
        const { tensors, metadata } = readSafetensors(path);
        const toWrite = new Map(
          [...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array | Int32Array }]),
        );
        const again = concat(encodeSafetensors(toWrite, metadata));
        assert.equal(
          Buffer.compare(Buffer.from(again), original),
          0,
          `${model}/${file} differs after re-encoding`,
        );
      }
    }
  },
);

for (const model of MODELS) {
  test(`golden ${model}: fixture shapes, names and invariants`, () => {
    const dir = join(GOLDEN, model);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    const params = readSafetensors(join(dir, "model.safetensors")).tensors;
    const { tensors: exp, metadata } = readSafetensors(join(dir, "expected.safetensors"));
    const V = config.vocab_size as number;
    assert.equal(V, 40);
    assert.equal(metadata.fixture_version, "1");
    assert.equal(metadata.lr, "0.01");
    assert.equal(metadata.weight_decay, "0.1");
    assert.equal(metadata.max_grad_norm, "1.0");

    const ids = exp.get("input_ids")!;
    assert.equal(ids.dtype, "I32");
    assert.deepEqual(ids.shape, [2, 16]);
    assert.ok(ids.data.every((v) => Number.isInteger(v) && v >= 0 && v < V));
    const [B, T] = ids.shape;
    const logits = exp.get("logits")!;
    assert.equal(logits.dtype, "F32");
    assert.deepEqual(logits.shape, [B, T, V]);

    // loss = mean over the B·(T-1) positions of -log softmax(logits[b,t])[ids[b,t+1]].
    let sum = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T - 1; t++) {
        const row = logits.data.subarray((b * T + t) * V, (b * T + t + 1) * V);
        const max = Math.max(...row);
        let z = 0;
        for (const x of row) z += Math.exp(x - max);
        sum += max + Math.log(z) - row[ids.data[b * T + t + 1]];
      }
    }
    const loss = exp.get("loss")!;
    assert.deepEqual(loss.shape, []);
    assert.ok(Number.isFinite(loss.data[0]));
    assert.ok(
      Math.abs(sum / (B * (T - 1)) - loss.data[0]) < 1e-5,
      `loss ${loss.data[0]} vs ${sum / (B * (T - 1))}`,
    );
    assert.ok(Math.abs(loss.data[0] - Math.log(V)) < 0.5, "an untrained model is near uniform");

    const stepLosses = exp.get("step_losses")!;
    const gradNorms = exp.get("grad_norms")!;
    assert.deepEqual(stepLosses.shape, [3]);
    assert.deepEqual(gradNorms.shape, [3]);
    assert.equal(stepLosses.data[0], loss.data[0], "step 1's loss is the fixture loss");
    assert.ok(
      stepLosses.data[1] < stepLosses.data[0] && stepLosses.data[2] < stepLosses.data[1],
      "AdamW on one batch",
    );

    // grad.* and after.* cover exactly the stored parameters, with their shapes.
    const gradNames = [...exp.keys()].filter((k) => k.startsWith("grad.")).map((k) => k.slice(5));
    const afterNames = [...exp.keys()].filter((k) => k.startsWith("after.")).map((k) => k.slice(6));
    const paramNames = [...params.keys()];
    assert.deepEqual([...gradNames].sort(), [...paramNames].sort());
    assert.deepEqual([...afterNames].sort(), [...paramNames].sort());
    assert.deepEqual(JSON.parse(metadata.parameters), [...paramNames].sort());
    let sq = 0;
    for (const name of paramNames) {
      const p = params.get(name)!;
      assert.equal(p.dtype, "F32");
      assert.deepEqual(exp.get(`grad.${name}`)!.shape, p.shape, name);
      assert.deepEqual(exp.get(`after.${name}`)!.shape, p.shape, name);
      for (const g of exp.get(`grad.${name}`)!.data) sq += g * g;
      const after = exp.get(`after.${name}`)!.data;
      assert.ok(
        after.some((x, i) => x !== p.data[i]),
        `${name} moved during training`,
      );
    }
    // grad_norms[0] is the pre-clip global L2 norm of the fixture gradients.
    assert.ok(
      Math.abs(Math.sqrt(sq) - gradNorms.data[0]) < 1e-5 * gradNorms.data[0],
      `${Math.sqrt(sq)} vs ${gradNorms.data[0]}`,
    );

    // Tied models store no lm_head.weight; the tie is recorded in the metadata.
    const tied = JSON.parse(metadata.tied_aliases) as Record<string, string>;
    const lmHead = "lm_head.weight";
    if (config.tie_word_embeddings) {
      assert.ok(!params.has(lmHead));
      assert.equal(tied[lmHead], model === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight");
    } else {
      assert.deepEqual(params.get(lmHead)!.shape, [V, config.hidden_size]);
      assert.deepEqual(tied, {});
    }
    // Layout facts the engine relies on.
    if (model === "gpt2") {
      const C = config.n_embd as number;
      assert.deepEqual(
        params.get("transformer.h.0.attn.c_attn.weight")!.shape,
        [C, 3 * C],
        "Conv1D is (in, out)",
      );
      assert.deepEqual(params.get("transformer.h.0.mlp.c_fc.weight")!.shape, [C, 4 * C]);
      assert.deepEqual(params.get("transformer.wpe.weight")!.shape, [config.n_positions, C]);
    } else {
      const C = config.hidden_size as number;
      const hd = config.head_dim as number;
      assert.deepEqual(params.get("model.layers.0.self_attn.q_proj.weight")!.shape, [
        config.num_attention_heads * hd,
        C,
      ]);
      assert.deepEqual(params.get("model.layers.1.self_attn.k_proj.weight")!.shape, [
        config.num_key_value_heads * hd,
        C,
      ]);
      assert.deepEqual(params.get("model.layers.0.mlp.gate_proj.weight")!.shape, [
        config.intermediate_size,
        C,
      ]);
      if (model === "qwen3")
        assert.deepEqual(params.get("model.layers.0.self_attn.q_norm.weight")!.shape, [hd]);
      // Norm weights were perturbed away from exactly 1.
      assert.ok(params.get("model.norm.weight")!.data.every((x) => x !== 1 && Math.abs(x - 1) < 0.2));
    }
  });
}

test("F16 decodes to the exact IEEE values, including subnormals, infinities and NaN", () => {
  const cases: [number, number][] = [
    [0x3c00, 1],
    [0xc000, -2],
    [0x3555, 0.333251953125],
    [0x7bff, 65504],
    [0x0400, 2 ** -14],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
    [0x0000, 0],
  ];
  const bytes = u16le([...cases.map((c) => c[0]), 0x8000, 0x7e00]);
  const n = cases.length + 2;
  const t = one(rawFile({ h: { dtype: "F16", shape: [n], data_offsets: [0, 2 * n] } }, bytes), "h");
  assert.ok(t.data instanceof Float32Array && t.dtype === "F16");
  cases.forEach(([, v], i) => assert.equal(t.data[i], v, `case ${i}`));
  assert.ok(Object.is(t.data[n - 2], -0));
  assert.ok(Number.isNaN(t.data[n - 1]));
  assert.equal(halfToFloat(0xbc00), -1);
});

test("BF16 decodes as the top 16 bits of a float32", () => {
  const cases: [number, number][] = [
    [0x3f80, 1],
    [0xc040, -3],
    [0x3eab, 0.333984375],
    [0x4049, 3.140625],
    [0x7f7f, 3.3895313892515355e38],
    [0x0001, 2 ** -133],
    [0x7f80, Infinity],
    [0xff80, -Infinity],
  ];
  const bytes = u16le(cases.map((c) => c[0]));
  const n = cases.length;
  // Offsets not a multiple of 4 inside the data section must still decode (a U8 tensor first).
  const file = rawFile(
    {
      a: { dtype: "U8", shape: [1], data_offsets: [0, 1] },
      b: { dtype: "BF16", shape: [n], data_offsets: [1, 1 + 2 * n] },
    },
    [9, ...bytes],
  );
  const t = one(file, "b");
  assert.ok(t.data instanceof Float32Array && t.dtype === "BF16");
  cases.forEach(([, v], i) => assert.equal(t.data[i], v, `case ${i}`));
  assert.deepEqual(Array.from(one(file, "a").data), [9]);
});

test("I64 narrows to Int32Array and refuses values outside int32", () => {
  const data = new Uint8Array(8 * 4);
  const dv = new DataView(data.buffer);
  [-5n, 2147483647n, -2147483648n, 39n].forEach((v, i) => dv.setBigInt64(8 * i, v, true));
  const header = { ids: { dtype: "I64", shape: [2, 2], data_offsets: [0, 32] } };
  const t = one(rawFile(header, data), "ids");
  assert.ok(t.data instanceof Int32Array && t.dtype === "I64");
  assert.deepEqual(Array.from(t.data), [-5, 2147483647, -2147483648, 39]);
  dv.setBigInt64(16, 2147483648n, true);
  assert.throws(
    () => parseSafetensors(rawFile(header, data), "ids.safetensors"),
    /^SafetensorsError: ids\.safetensors: tensor "ids": I64 value 2147483648 at index 2 does not fit in int32$/,
  );
});

test("BOOL and U8 decode to Uint8Array; BOOL must be 0 or 1", () => {
  const ok = rawFile({ m: { dtype: "BOOL", shape: [3], data_offsets: [0, 3] } }, [1, 0, 1]);
  assert.deepEqual(Array.from(one(ok, "m").data), [1, 0, 1]);
  const bad = rawFile({ m: { dtype: "BOOL", shape: [3], data_offsets: [0, 3] } }, [1, 2, 1]);
  assert.throws(
    () => parseSafetensors(bad, "m.st"),
    /m\.st: tensor "m": BOOL value 2 at index 1 is not 0 or 1/,
  );
});

test("malformed files fail with one-line errors naming the file and tensor", () => {
  const good = concat(
    encodeSafetensors({
      a: { shape: [2], data: Float32Array.of(1, 2) },
      b: { shape: [3], data: Float32Array.of(3, 4, 5) },
    }),
  );
  const cases: [string, Uint8Array, RegExp][] = [
    ["too short", good.subarray(0, 5), /f\.st: file is 5 bytes, too short for the 8-byte header length/],
    [
      "truncated data",
      good.subarray(0, good.length - 4),
      /f\.st: tensor "b": data_offsets \[8, 20\] exceed the 16-byte data section \(file truncated\?\)/,
    ],
    [
      "header length beyond the file",
      (() => {
        const x = new Uint8Array(good);
        new DataView(x.buffer).setBigUint64(0, 1n << 40n, true);
        return x;
      })(),
      /f\.st: header length 1099511627776 exceeds the \d+ bytes after the length field/,
    ],
    ["not JSON", rawFile(null, [], "{not json}   "), /f\.st: header is not valid JSON/],
    ["not an object", rawFile(null, [], "[1, 2]"), /f\.st: header does not start with '\{'/],
    [
      "overlap",
      rawFile(
        {
          x: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          y: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
      /f\.st: tensor "y" \[4, 12\) overlaps tensor "x" \[0, 8\)/,
    ],
    [
      "gap",
      rawFile(
        {
          x: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
          y: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
        },
        new Uint8Array(12),
      ),
      /f\.st: tensor "y" starts at 8, leaving unused bytes \[4, 8\)/,
    ],
    [
      "trailing bytes",
      rawFile({ x: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(6)),
      /f\.st: data section has 2 unused bytes after the last tensor \(at 4\)/,
    ],
    [
      "unknown dtype",
      rawFile({ q: { dtype: "Q8", shape: [1], data_offsets: [0, 1] } }, [0]),
      /f\.st: tensor "q": unsupported dtype "Q8" \(supported: F64, F32, F16, BF16, I64, I32, U8, BOOL\)/,
    ],
    [
      "byte length vs shape",
      rawFile({ w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(12)),
      /f\.st: tensor "w": 12 bytes but shape \[2,2\] of F32 needs 4 x 4 = 16/,
    ],
    [
      "bad shape",
      rawFile({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /f\.st: tensor "w": shape \[-1\] is not a list of non-negative integers/,
    ],
    [
      "reversed offsets",
      rawFile({ w: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }, new Uint8Array(4)),
      /f\.st: tensor "w": data_offsets \[4,0\] is not \[begin, end\]/,
    ],
    [
      "non-string metadata",
      rawFile({ __metadata__: { lr: 0.1 } }, []),
      /f\.st: __metadata__ key "lr" is not a string/,
    ],
    [
      "unknown key",
      rawFile({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4], extra: 1 } }, new Uint8Array(4)),
      /f\.st: tensor "w": unknown key "extra"/,
    ],
  ];
  assert.doesNotThrow(() => parseSafetensors(good, "f.st"));
  for (const [what, bytes, expected] of cases) {
    let message = "";
    try {
      parseSafetensors(bytes, "f.st");
    } catch (err) {
      message = (err as Error).message;
    }
    assert.match(message, expected, what);
    assert.ok(!message.includes("\n"), `${what}: one line`);
  }
});
