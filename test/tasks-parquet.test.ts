/**
 * Parquet datasets: the committed fixtures (test/fixtures/gsm8k-mini.parquet, verl-mini.parquet,
 * written by scripts/fixtures/make_math_parquet.py) under their presets, parity of our reader with
 * pyarrow on every column type and compression codec (skipped without pyarrow), and one-line
 * errors for files that are not Parquet or do not match the layout.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findPython } from "../src/io/python.js";
import {
  DatasetError,
  RowErrors,
  loadDataset,
  parseParquetRecords,
  problemsFromRecords,
  resolveLayout,
  verifyMath,
} from "../src/tasks/index.js";

const FIXTURES = new URL("../../test/fixtures/", import.meta.url);
const GSM8K = new URL("gsm8k-mini.parquet", FIXTURES).pathname;
const VERL = new URL("verl-mini.parquet", FIXTURES).pathname;
const dir = mkdtempSync(join(tmpdir(), "sat-parquet-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const probe = findPython(["pyarrow"]);

test("parquet: the GSM8K fixture under the gsm8k preset: prompts, '#### n' answers, worked solutions", async () => {
  const data = await loadDataset(GSM8K, resolveLayout({ preset: "gsm8k" }));
  assert.equal(data.format, "parquet");
  assert.equal(data.problems.length, 60);
  assert.equal(data.where[6], `${GSM8K} row 7`);
  for (const [i, p] of data.problems.entries()) {
    assert.equal(p.id, `gsm8k-mini.parquet:${i + 1}`);
    assert.equal(p.family, "jsonl");
    assert.match(p.answer, /^\d+$/);
    assert.ok(p.solution.endsWith(`\n#### ${p.answer}`), p.solution);
    assert.ok(p.prompt.endsWith("?"), p.prompt);
    assert.equal(p.messages, undefined);
    // The worked solution is a correct completion under the math verifier.
    assert.equal(verifyMath(p, p.solution).correct, true, p.solution);
  }
});

test("parquet: the verl fixture (chat messages, nested ground truth, zstd pages) holds the GSM8K fixture's problems", async () => {
  const gsm8k = await loadDataset(GSM8K, resolveLayout({ preset: "gsm8k" }));
  const verl = await loadDataset(VERL, resolveLayout({ preset: "verl" }));
  assert.equal(verl.problems.length, gsm8k.problems.length);
  verl.problems.forEach((p, i) => {
    const q = gsm8k.problems[i];
    assert.equal(p.answer, q.answer);
    assert.deepEqual(
      p.messages!.map((m) => m.role),
      ["system", "user"],
    );
    assert.ok(p.messages![1].content.startsWith(q.prompt), p.messages![1].content);
    assert.equal(p.prompt, `${p.messages![0].content}\n\n${p.messages![1].content}`);
    assert.equal(p.solution, `#### ${p.answer}`, "no solution field: the answer alone");
  });
});

/** Writes a Parquet file with pyarrow and returns pyarrow's own reading of it as JSON rows. */
function pyarrowWrite(path: string, compression: string, rowGroupSize: number): unknown[] {
  if (!probe.ok) throw new Error(probe.reason);
  const script = `
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
path, compression, rgs = sys.argv[1], sys.argv[2], int(sys.argv[3])
msg = pa.struct([("role", pa.string()), ("content", pa.string())])
t = pa.table({
  "s": pa.array(["a", "ünï ∑ 数学 🙂", None, "", "x\\ny", "last"], pa.string()),
  "i64": pa.array([1, -2**40, None, 0, 7, 2**53 - 1], pa.int64()),
  "i32": pa.array([1, 2, 3, None, -5, 6], pa.int32()),
  "f": pa.array([1.5, None, -0.25, 1e300, 0.0, 3.0], pa.float64()),
  "b": pa.array([True, False, None, True, True, False]),
  "nested": pa.array([{"ground_truth": "72", "style": "rule"}, None, {"ground_truth": "\\\\frac{1}{2}", "style": None},
                      {"ground_truth": "", "style": "rule"}, {"ground_truth": "5", "style": "x"}, {"ground_truth": None, "style": None}]),
  "msgs": pa.array([[{"role": "user", "content": "hi"}], [], None,
                    [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], [{"role": "user", "content": None}],
                    [{"role": "user", "content": "z"}]], pa.list_(msg)),
  "ints": pa.array([[1, 2], None, [], [3], [None, 4], [5]], pa.list_(pa.int32())),
})
pq.write_table(t, path, compression=compression, row_group_size=rgs)
rows = pq.read_table(path).to_pylist()
print(json.dumps(rows, default=str))
`;
  const r = spawnSync(probe.python, ["-c", script, path, compression, String(rowGroupSize)], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as unknown[];
}

/** Our values in pyarrow's JSON form: 64-bit integers as numbers. */
function plain(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

test(
  "parquet: rows read exactly as pyarrow reads them, every codec, several row groups",
  { skip: probe.ok ? false : probe.reason },
  async () => {
    for (const compression of ["none", "snappy", "gzip", "brotli", "zstd", "lz4"]) {
      const path = join(dir, `types-${compression}.parquet`);
      const expected = pyarrowWrite(path, compression, 4);
      const file = await parseParquetRecords(readFileSync(path), path);
      assert.deepEqual(file.columns, ["s", "i64", "i32", "f", "b", "nested", "msgs", "ints"]);
      assert.deepEqual(
        file.records.map((r) => plain(r.fields)),
        expected,
        compression,
      );
      assert.equal(file.records[3].where, `${path} row 4`);
    }
  },
);

test(
  "parquet: bad rows name their row; nulls and non-text fields are caught",
  { skip: probe.ok ? false : probe.reason },
  async () => {
    const path = join(dir, "types-snappy.parquet");
    pyarrowWrite(path, "snappy", 2);
    // Prompts in `msgs`, answers in nested.ground_truth: rows 2 (empty list), 3 (null), 5 (null content)
    // and 6 (null answer) are bad; row 4's answer is the empty string.
    const layout = resolveLayout({
      promptField: "msgs",
      answerField: "nested.ground_truth",
      verifier: "math",
    });
    await assert.rejects(loadDataset(path, layout), {
      name: "DatasetError",
      message:
        `${path} row 2: field "msgs" is an empty list of messages ` +
        `(and 4 more bad rows: ${path} row 3, ${path} row 4, ${path} row 5, …)`,
    });
    // Integer answers are text (-5 → "-5"); row 3 has a null prompt, row 4 an empty one.
    await assert.rejects(loadDataset(path, resolveLayout({ promptField: "s", answerField: "i32" })), {
      message: `${path} row 3: missing field "s" (and 1 more bad row: ${path} row 4)`,
    });
    const rows = await parseParquetRecords(readFileSync(path), path);
    const good = rows.records.filter((r) => r.index !== 3 && r.index !== 4);
    const ok = problemsFromRecords(
      { ...rows, records: good },
      resolveLayout({ promptField: "s", answerField: "i32" }),
      new RowErrors(),
    );
    assert.deepEqual(
      ok.problems.map((p) => [p.prompt, p.answer]),
      [
        ["a", "1"],
        ["ünï ∑ 数学 🙂", "2"],
        ["x\ny", "-5"],
        ["last", "6"],
      ],
    );
  },
);

test("parquet: files that are not Parquet, or do not match the layout, fail in one line", async () => {
  const notParquet = join(dir, "text.parquet");
  writeFileSync(notParquet, '{"prompt": "p", "answer": "1"}\n');
  await assert.rejects(loadDataset(notParquet, resolveLayout()), {
    message: `${notParquet}: not a Parquet file (it does not start with "PAR1")`,
  });
  const truncated = join(dir, "truncated.parquet");
  const bytes = readFileSync(GSM8K);
  writeFileSync(truncated, bytes.subarray(0, bytes.length >> 1));
  await assert.rejects(loadDataset(truncated, resolveLayout({ preset: "gsm8k" })), (e: Error) => {
    assert.ok(e instanceof DatasetError);
    assert.match(
      e.message,
      new RegExp(`^${truncated.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: not a readable Parquet file \\(`),
    );
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  await assert.rejects(loadDataset(GSM8K, resolveLayout({ preset: "math" })), {
    message: `${GSM8K}: no row has the prompt field "problem" (columns: question, answer); set tasks.prompt_field or a tasks.preset (gsm8k, math, verl) that matches the file`,
  });
  await assert.rejects(loadDataset(VERL, resolveLayout()), {
    message: `${VERL}: no row has the answer field "answer" (columns: data_source, prompt, ability, reward_model, extra_info); set tasks.answer_field or a tasks.preset (gsm8k, math, verl) that matches the file`,
  });
  // A name without the extension is sniffed by its magic bytes.
  const renamed = join(dir, "gsm8k.data");
  writeFileSync(renamed, bytes);
  assert.equal((await loadDataset(renamed, resolveLayout({ preset: "gsm8k" }))).problems.length, 60);
});
