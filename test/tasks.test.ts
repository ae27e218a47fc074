import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/engine/rng.js";
import { CharTokenizer, SPECIAL_TOKENS } from "../src/model/tokenizer.js";
import {
  TASKS,
  extractAnswer,
  getTask,
  solveAdd,
  solveChain,
  solveSort,
  verifyExact,
  verifyProblem,
  type Problem,
  type TaskFamily,
} from "../src/tasks/index.js";

function* everyProblem(family: TaskFamily, perDifficulty: number): Generator<Problem> {
  const [lo, hi] = family.difficulties;
  for (let d = lo; d <= hi; d++) {
    const rng = new Rng(`${family.name}/${d}`);
    for (let i = 0; i < perDifficulty; i++) yield family.generate(rng, d);
  }
}

test("registry: at least add, multistep and one logic family; names match", () => {
  for (const name of ["add", "multistep", "sort"]) assert.equal(getTask(name).name, name);
  for (const [key, fam] of Object.entries(TASKS)) {
    assert.equal(fam.name, key);
    const [lo, hi] = fam.difficulties;
    assert.ok(lo <= fam.defaultDifficulty && fam.defaultDifficulty <= hi, key);
  }
  assert.throws(() => getTask("ad"), {
    message: 'unknown task "ad"; did you mean "add"? known tasks: add, multistep, sort',
  });
  assert.throws(() => getTask("multstep"), /did you mean "multistep"\?/);
  assert.throws(
    () => getTask("zzzzzzzz"),
    (e: Error) => !/did you mean/.test(e.message) && /known tasks/.test(e.message),
  );
  assert.throws(() => getTask("toString"), /unknown task "toString"/);
});

test("every generated solution verifies, for every family, difficulty and many seeds", () => {
  for (const family of Object.values(TASKS)) {
    for (const p of everyProblem(family, 300)) {
      const v = family.verify(p, p.solution);
      assert.equal(v.correct, true, `${p.id}: ${v.reason}`);
      assert.equal(v.reward, 1);
      assert.equal(v.extracted, p.answer);
      assert.equal(extractAnswer(p.solution), p.answer);
      assert.ok(p.prompt.endsWith("\n") && !p.solution.endsWith("\n"), p.id);
      assert.equal(p.family, family.name);
      assert.match(p.id, new RegExp(`^${family.name}-[0-9a-f]{16}$`));
    }
  }
});

test("every character of every generated problem is in the tokenizer vocabulary", () => {
  const tok = new CharTokenizer();
  for (const family of Object.values(TASKS)) {
    for (const p of everyProblem(family, 100)) {
      assert.equal(tok.decode(tok.encode(p.prompt + p.solution)), p.prompt + p.solution);
    }
  }
});

test("default difficulties fit the small-model budget (prompt + solution <= 50 chars)", () => {
  for (const family of Object.values(TASKS)) {
    const rng = new Rng(9);
    for (let i = 0; i < 500; i++) {
      const p = family.generate(rng, family.defaultDifficulty);
      assert.ok(p.prompt.length + p.solution.length <= 50, `${p.prompt}${p.solution}`);
    }
  }
});

test("add: answers are the true sums and every column line is consistent", () => {
  assert.deepEqual(solveAdd("47", "85"), { solution: "7+5+0=12\n4+8+1=13\n#132", answer: "132" });
  assert.deepEqual(solveAdd("0", "0"), { solution: "0+0+0=00\n#0", answer: "0" });
  for (const p of everyProblem(TASKS.add, 200)) {
    const m = /^(\d+)\+(\d+)\n$/.exec(p.prompt)!;
    assert.ok(m, p.prompt);
    const [a, b] = [m[1], m[2]];
    assert.equal(a.length, p.difficulty);
    assert.equal(b.length, p.difficulty);
    assert.equal(p.answer, (BigInt(a) + BigInt(b)).toString());
    const lines = p.solution.split("\n");
    assert.equal(lines.length, p.difficulty + 1);
    let carry = 0;
    for (let i = 0; i < p.difficulty; i++) {
      const col = /^(\d)\+(\d)\+([01])=(\d\d)$/.exec(lines[i])!;
      assert.ok(col, lines[i]);
      assert.equal(Number(col[1]), Number(a[a.length - 1 - i]));
      assert.equal(Number(col[2]), Number(b[b.length - 1 - i]));
      assert.equal(Number(col[3]), carry);
      assert.equal(Number(col[4]), Number(col[1]) + Number(col[2]) + carry);
      carry = Number(col[4][0]);
    }
  }
});

function evalLeftToRight(prompt: string): number {
  const toks = prompt.replace(/[()\n]/g, "").match(/\d+|[+\-*]/g)!;
  let v = Number(toks[0]);
  for (let i = 1; i < toks.length; i += 2) {
    const y = Number(toks[i + 1]);
    v = toks[i] === "+" ? v + y : toks[i] === "-" ? v - y : v * y;
  }
  return v;
}

test("multistep: parenthesised prompt equals left-to-right value; one checked step per line", () => {
  assert.deepEqual(solveChain(3, ["+", "*", "-"], [4, 2, 5]), {
    prompt: "((3+4)*2)-5\n",
    solution: "3+4=7\n7*2=14\n14-5=9\n#9",
    answer: "9",
  });
  for (const p of everyProblem(TASKS.multistep, 200)) {
    // The parenthesisation makes standard precedence agree with left-to-right evaluation.
    const standard = Function(`return (${p.prompt.trim()});`)() as number;
    assert.equal(standard, evalLeftToRight(p.prompt));
    assert.equal(p.answer, String(standard));
    const lines = p.solution.split("\n");
    assert.equal(lines.length, p.difficulty + 1);
    let prev: number | null = null;
    for (const line of lines.slice(0, -1)) {
      const m = /^(\d+)([+\-*])([1-9])=(\d+)$/.exec(line)!;
      assert.ok(m, line);
      const [x, op, y, r] = [Number(m[1]), m[2], Number(m[3]), Number(m[4])];
      if (prev !== null) assert.equal(x, prev, "each step starts from the previous result");
      assert.equal(r, op === "+" ? x + y : op === "-" ? x - y : x * y);
      assert.ok(r >= 0 && r <= 99);
      prev = r;
    }
    assert.equal(String(prev), p.answer);
  }
});

test("sort: answer is the sorted digits; each line is a sorted prefix plus the remaining digits", () => {
  assert.deepEqual(solveSort("3912"), { solution: "1 392\n12 39\n123 9\n#1239", answer: "1239" });
  const sorted = (s: string) => Array.from(s).sort().join("");
  for (const p of everyProblem(TASKS.sort, 200)) {
    const digits = /^sort (\d+)\n$/.exec(p.prompt)![1];
    assert.equal(digits.length, p.difficulty);
    assert.equal(p.answer, sorted(digits));
    const lines = p.solution.split("\n").slice(0, -1);
    assert.equal(lines.length, p.difficulty - 1);
    lines.forEach((line, k) => {
      const [prefix, rest] = line.split(" ");
      assert.equal(prefix, p.answer.slice(0, k + 1));
      assert.equal(sorted(prefix + rest), p.answer);
    });
  }
});

test("wrong, malformed and empty completions get reward 0 with a reason", () => {
  const p = TASKS.add.generate(new Rng(1), 3);
  const wrong = String(Number(p.answer) + 1);
  const cases: [string, RegExp, string | null][] = [
    [p.solution.replace(/#\d+$/, `#${wrong}`), /wrong answer: expected "\d+", got "\d+"/, wrong],
    [p.solution.replace(/#\d+$/, ""), /no final answer/, null],
    ["", /no final answer/, null],
    ["7+5+0=12\n#", /empty final answer/, ""],
    [`#${p.answer}0`, /wrong answer/, `${p.answer}0`],
    [`#0${p.answer}`, /wrong answer/, `0${p.answer}`],
  ];
  for (const [completion, reason, extracted] of cases) {
    const v = verifyProblem(p, completion);
    assert.equal(v.reward, 0, completion);
    assert.equal(v.correct, false);
    assert.equal(v.extracted, extracted);
    assert.match(v.reason, reason);
  }
});

test("extractAnswer: last marker wins; stops at end of line or a rendered special token; trims", () => {
  assert.equal(extractAnswer("no marker here"), null);
  assert.equal(extractAnswer("#12\nmore\n#13"), "13");
  assert.equal(extractAnswer("#12\n#  13  \ntrailing text"), "13");
  assert.equal(extractAnswer("x#5"), "5");
  for (const special of SPECIAL_TOKENS)
    assert.equal(extractAnswer(`1+1=2\n#42${special}junk`), "42", special);
  const p = TASKS.sort.generate(new Rng(4), 4);
  // An agent that corrects an earlier agent's answer is scored on the correction, and vice versa.
  assert.equal(verifyExact(p, `#9999\n${p.solution}`).correct, true);
  assert.equal(verifyExact(p, `${p.solution}\n#9999`).correct, false);
  // Relay transcript: segments joined by <eot>, the answer in the last one.
  const segs = p.solution.split("\n");
  const relay = segs.slice(0, 2).join("\n") + "<eot>" + segs.slice(2).join("\n") + "<eot>";
  assert.equal(verifyExact(p, relay).correct, true);
});

test("generate is deterministic from the rng and rejects difficulties out of range", () => {
  for (const family of Object.values(TASKS)) {
    const a = family.generate(new Rng(5), family.defaultDifficulty);
    const b = family.generate(new Rng(5), family.defaultDifficulty);
    assert.deepEqual(a, b);
    const [lo, hi] = family.difficulties;
    assert.throws(
      () => family.generate(new Rng(1), hi + 1),
      new RegExp(`task ${family.name}: difficulty ${hi + 1} is not an integer in \\[${lo}, ${hi}\\]`),
    );
    assert.throws(() => family.generate(new Rng(1), lo - 1), /is not an integer in/);
    assert.throws(() => family.generate(new Rng(1), lo + 0.5), /is not an integer in/);
  }
});
