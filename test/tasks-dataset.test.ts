import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_TEST_PERCENT,
  ProblemStream,
  TASKS,
  canonicalKey,
  makeProblems,
  solveAdd,
  splitOf,
  type Problem,
} from "../src/tasks/index.js";

const keys = (ps: Problem[]) => new Set(ps.map((p) => canonicalKey(p.family, p.prompt)));

test("train and test splits are disjoint, for every family (makeProblems and the stream)", () => {
  for (const family of Object.values(TASKS)) {
    const d = family.defaultDifficulty;
    const train = makeProblems(family, { split: "train", n: 3000, seed: 1, difficulty: d });
    const test_ = makeProblems(family, { split: "test", n: 300, seed: 1, difficulty: d });
    const streamed = new ProblemStream(family, { seed: 1, difficulty: d }).take(3000);
    const testKeys = keys(test_);
    for (const p of [...train, ...streamed])
      assert.ok(!testKeys.has(canonicalKey(p.family, p.prompt)), p.prompt);
    assert.ok(test_.every((p) => splitOf(p) === "test"));
    assert.ok(train.every((p) => splitOf(p) === "train"));
    // Another seed's test set is still disjoint from this train set.
    const otherTest = keys(makeProblems(family, { split: "test", n: 300, seed: 77, difficulty: d }));
    assert.ok(train.every((p) => !otherTest.has(canonicalKey(p.family, p.prompt))));
  }
});

test("the test split holds about testPercent of the problems", () => {
  const rng = new ProblemStream("add", { seed: 3, testPercent: 0 }); // a stream over every problem
  const n = 20000;
  let inTest = 0;
  for (let i = 0; i < n; i++) if (splitOf(rng.next()) === "test") inTest++;
  const frac = inTest / n;
  // 10% ± 5 standard deviations (sd = sqrt(0.09 / n) ≈ 0.0021).
  assert.ok(Math.abs(frac - DEFAULT_TEST_PERCENT / 100) < 0.011, `test fraction ${frac}`);
  let inTest30 = 0;
  for (let i = 0; i < n; i++) if (splitOf(rng.next(), 30) === "test") inTest30++;
  assert.ok(Math.abs(inTest30 / n - 0.3) < 0.017, `test fraction ${inTest30 / n} at 30%`);
});

test("makeProblems: deterministic from the seed, no duplicates, seeds differ", () => {
  const a = makeProblems("multistep", { split: "train", n: 500, seed: 5 });
  const b = makeProblems("multistep", { split: "train", n: 500, seed: 5 });
  const c = makeProblems("multistep", { split: "train", n: 500, seed: 6 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.equal(keys(a).size, 500);
  assert.equal(new Set(a.map((p) => p.id)).size, 500);
  assert.ok(a.every((p) => p.difficulty === TASKS.multistep.defaultDifficulty));
  assert.ok(
    makeProblems("sort", { split: "test", n: 50, seed: 1, difficulty: 6 }).every((p) => p.difficulty === 6),
  );
  assert.deepEqual(makeProblems("add", { split: "test", n: 0, seed: 1 }), []);
});

test("makeProblems can take a whole small split, and errors clearly past it", () => {
  // add at difficulty 1 has exactly the 100 prompts a+b with a, b in 0..9: count each split directly.
  const all = [];
  for (let a = 0; a <= 9; a++)
    for (let b = 0; b <= 9; b++) all.push({ family: "add", prompt: `${a}+${b}\n` });
  const nTest = all.filter((p) => splitOf(p) === "test").length;
  const nTrain = all.length - nTest;
  assert.ok(nTest > 0 && nTrain > 0);
  const train = makeProblems("add", { split: "train", n: nTrain, seed: 2, difficulty: 1 });
  assert.equal(keys(train).size, nTrain);
  const test_ = makeProblems("add", { split: "test", n: nTest, seed: 2, difficulty: 1 });
  assert.deepEqual(
    [...keys(test_)].sort(),
    all
      .filter((p) => splitOf(p) === "test")
      .map((p) => canonicalKey(p.family, p.prompt))
      .sort(),
  );
  assert.ok(test_.every((p) => p.answer === solveAdd(p.prompt[0], p.prompt[2]).answer));
  assert.throws(() => makeProblems("add", { split: "test", n: nTest + 1, seed: 2, difficulty: 1 }), {
    message: `task add (difficulty 1): split "test" gave only ${nTest} distinct problems, asked for ${nTest + 1}; lower n or raise the difficulty`,
  });
});

test("makeProblems and ProblemStream validate their options", () => {
  assert.throws(
    () => makeProblems("add", { split: "test", n: 5, seed: 1, testPercent: 0 }),
    /split "test" is empty: testPercent is 0/,
  );
  assert.throws(
    () => makeProblems("add", { split: "train", n: 5, seed: 1, testPercent: 100 }),
    /split "train" is empty/,
  );
  assert.throws(
    () => makeProblems("add", { split: "val" as any, n: 5, seed: 1 }),
    /split must be "train" or "test", got "val"/,
  );
  assert.throws(
    () => makeProblems("add", { split: "train", n: -1, seed: 1 }),
    /n must be a non-negative integer/,
  );
  assert.throws(
    () => makeProblems("add", { split: "train", n: 1, seed: 1, difficulty: 99 }),
    /difficulty 99 is not an integer in \[1, 8\]/,
  );
  assert.throws(() => makeProblems("addd", { split: "train", n: 1, seed: 1 }), /did you mean "add"/);
  assert.throws(() => new ProblemStream("add", { seed: 1, testPercent: 100 }), /split "train" is empty/);
  assert.throws(
    () => new ProblemStream("add", { seed: 1, testPercent: -3 }),
    /testPercent must be in \[0, 100\]/,
  );
});

test("ProblemStream: deterministic, train only, state save/restore continues exactly", () => {
  const s1 = new ProblemStream("sort", { seed: 11 });
  const s2 = new ProblemStream("sort", { seed: 11 });
  assert.deepEqual(s1.take(100), s2.take(100));
  assert.equal(s1.drawn, 100);
  const saved = JSON.parse(JSON.stringify(s1.getState()));
  const next = s1.take(50);
  const s3 = new ProblemStream("sort", { seed: 999 });
  s3.setState(saved);
  assert.deepEqual(s3.take(50), next);
  assert.equal(s3.drawn, 150);
  assert.ok(next.every((p) => splitOf(p) === "train"));
});
