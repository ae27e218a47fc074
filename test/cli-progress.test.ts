/** Progress output: plain lines (rate, ETA, cadence), JSON lines, silence, the metrics one-liner. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createProgress, formatDuration, summarizeMetrics, type ProgressMode } from "../src/io/progress.js";

function capture(mode: ProgressMode, loggingSteps = 1, tty = false) {
  let text = "";
  let clock = 1_000_000;
  const stream = {
    write: (s: string) => ((text += s), true),
    isTTY: tty,
    columns: 80,
    on() {},
    removeListener() {},
  } as unknown as NodeJS.WritableStream;
  const progress = createProgress(mode, { stream, loggingSteps, intervalMs: 10_000, now: () => clock });
  return { progress, advance: (ms: number) => (clock += ms), text: () => text };
}

test("plain lines: start, one line per interval with tokens/s and ETA, and the end", () => {
  const { progress, advance, text } = capture("plain");
  const bar = progress.phase("train", 10);
  for (let i = 0; i < 10; i++) {
    advance(4_000); // 4 s per stage, 2000 tokens per stage ⇒ 500 tok/s
    bar.tick(1, 2000);
  }
  bar.done();
  bar.done(); // idempotent
  const lines = text().trimEnd().split("\n");
  // Printed at start, then whenever ≥ 10 s passed (after stages 3, 6, 9), then at the end.
  assert.deepEqual(lines, [
    "train 0/10 (0%)",
    "train 3/10 (30%) | 500 tok/s | eta 28s",
    "train 6/10 (60%) | 500 tok/s | eta 16s",
    "train 9/10 (90%) | 500 tok/s | eta 4s",
    "train 10/10 (100%) | 500 tok/s | took 40s",
  ]);
});

test("metrics one-liner follows logging_steps; logs pass through", () => {
  const { progress, text } = capture("plain", 2);
  for (let step = 1; step <= 4; step++) {
    progress.metrics({
      step,
      agent: 1,
      "actor/pg_loss": 1.23456,
      "trust_region/kl_quantile": 0.0042,
      "timing_s/step": 0.045,
      other: 3,
    });
  }
  progress.log("saved checkpoint");
  assert.deepEqual(text().trimEnd().split("\n"), [
    "step 2 | agent 1 | loss 1.235 | kl 0.0042 | 45 ms",
    "step 4 | agent 1 | loss 1.235 | kl 0.0042 | 45 ms",
    "saved checkpoint",
  ]);
});

test("summary of an unknown record shows its own numeric fields; NaN stays visible", () => {
  assert.equal(
    summarizeMetrics({ step: 3, agent: null, time: 5, foo: 2.5, bar: "x", baz: NaN }),
    "step 3 | foo 2.5 | baz NaN",
  );
  assert.equal(
    summarizeMetrics({ step: 1, "reward/mean": 0.123456, "perf/throughput": 1234.5 }),
    "step 1 | reward 0.1235 | tok/s 1235",
  );
});

test("JSON lines: every line parses; metrics are not thinned; NaN becomes null", () => {
  const { progress, advance, text } = capture("json", 5);
  const bar = progress.phase("eval", 2);
  advance(1000);
  bar.tick(1, 10);
  advance(1000);
  bar.tick(1, 10);
  bar.done();
  progress.metrics({ step: 1, agent: 0, "reward/mean": NaN });
  progress.log("hello");
  const events = text()
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    events.map((e) => e.event),
    ["phase_start", "phase_end", "metrics", "log"],
  );
  assert.equal(events[1].done, 2);
  assert.equal(events[1].tokens_per_s, 10);
  assert.equal(events[2]["reward/mean"], null);
  assert.equal(events[3].message, "hello");
});

test("silent mode writes nothing; the tty mode still delivers logs", () => {
  const quiet = capture("silent");
  const bar = quiet.progress.phase("train", 3);
  bar.tick();
  bar.done();
  quiet.progress.log("x");
  quiet.progress.metrics({ step: 1, loss: 1 });
  assert.equal(quiet.text(), "");
  const tty = capture("tty", 1, true);
  const b = tty.progress.phase("train", 2);
  tty.progress.log("between bars");
  b.tick(2, 100);
  b.done();
  tty.progress.close();
  assert.match(tty.text(), /between bars/);
});

test("durations", () => {
  assert.equal(formatDuration(7.2), "7s");
  assert.equal(formatDuration(65), "1m05s");
  assert.equal(formatDuration(3725), "1h02m05s");
  assert.equal(formatDuration(NaN), "?");
});
