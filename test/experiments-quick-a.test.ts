/**
 * The team-vs-single and swap experiments' --quick variants run end to end through the compiled
 * scripts; their results have the documented shape, budgets, sizes and costs agree with each other,
 * and the stored verdicts follow the rules from the stored numbers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { VERDICTS, mean } from "../experiments/stats.js";
import { checkShape, experiment, quickDir, type Row } from "./experiments-quick.js";
import { verdictOf as tvsVerdict } from "../experiments/team-vs-single.js";
import { verdictOf as swapVerdict } from "../experiments/swap.js";

const d = quickDir();
test.after(() => rmSync(d.dir, { recursive: true, force: true }));

test("experiments: team-vs-single --quick matches budgets, sizes and pretraining tokens, and its verdict", () => {
  experiment(d, "team-vs-single");
  const r = checkShape(d.results, "team-vs-single.json", ["accuracy", "team-minus-single", "per-seed"]);
  const rs = r.runs as Row[];
  for (const seed of [1, 2]) {
    const of = (arm: string) => rs.find((x) => x.arm === arm && x.seed === seed)!;
    const team = of("team 3×S");
    const big = of("single ≈8×S");
    assert.ok(
      (big.params as number) >= 2.7 * (team.params_total as number),
      "≈8×S is ≥ 2.7× the team's total",
    );
    assert.ok((of("single ≈3×S").params as number) >= 2.7 * (team.params as number), "≈3×S is ≥ 2.7·S");
    for (const arm of ["single S", "single ≈3×S", "single ≈8×S"]) {
      const s = of(arm);
      assert.equal(s.pretrain_tokens, team.pretrain_tokens, `${arm}: same pretraining tokens`);
      assert.ok((s.rl_tokens as number) >= (team.rl_tokens as number), `${arm} stops at the team's budget`);
      const perStage = (s.rl_tokens as number) / (s.rl_stages as number);
      assert.ok(
        (s.rl_tokens as number) < (team.rl_tokens as number) + 2 * perStage,
        `${arm} overshoots < 1 stage`,
      );
    }
  }
  assert.deepEqual(JSON.parse(JSON.stringify(tvsVerdict(rs))), r.verdict);
  assert.ok(VERDICTS.includes((r.verdict as Row).verdict as never));
});

test("experiments: swap --quick reports gains, compute and a fraction that agree with its per-seed numbers", () => {
  experiment(d, "swap");
  const r = checkShape(d.results, "swap.json", ["accuracy", "gains", "stage-0", "per-seed"]);
  const rs = r.runs as Row[];
  const acc = (x: Row, k: string) => (((x.eval as Row)[k] as Row).metrics as Record<string, number>)["avg@1"];
  const gains = r.tables.find((t) => t.id === "gains")!;
  const row = gains.rows.find((x) => String(x[0]).startsWith("swap +"))!;
  const g = mean(rs.map((x) => acc(x, "C") - acc(x, "A")));
  assert.ok(Math.abs((row[1] as number) - g) < 1e-4, "swap gain = mean(C − A)");
  const scratch = mean(rs.map((x) => acc(x, "D") - acc(x, "A")));
  const fraction = row[gains.columns.indexOf("fraction recovered")];
  if (scratch !== 0) assert.ok(Math.abs((fraction as number) - g / scratch) < 1e-3);
  else assert.equal(fraction, null, "no from-scratch gain: no fraction");
  for (const x of rs) {
    const c = x.cost as Record<string, Row>;
    assert.ok(
      (c.C.tokens as number) < (c.D.tokens as number),
      "continuing T_c stages costs fewer tokens than T",
    );
    assert.equal(c.D_Tc.stages, c.C.stages);
  }
  const distill = r.distillation as Row;
  assert.equal(typeof distill.accepted, "boolean");
  assert.deepEqual(JSON.parse(JSON.stringify(swapVerdict(rs))), r.verdict);
});
