import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DATASET_FAMILY,
  TASKS,
  makeProblems,
  parseProblemsJSONL,
  problemsToJSONL,
  readProblemsJSONL,
  verifyProblem,
} from "../src/tasks/index.js";

const dir = mkdtempSync(join(tmpdir(), "sat-jsonl-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function writeFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test("JSONL round trip of generated problems, every family", () => {
  const problems = Object.keys(TASKS).flatMap((name) =>
    makeProblems(name, { split: "test", n: 20, seed: 1 }),
  );
  const text = problemsToJSONL(problems);
  assert.equal(text.split("\n").length, problems.length + 1);
  assert.ok(text.endsWith("\n"));
  const back = readProblemsJSONL(writeFile("gen.jsonl", text));
  assert.deepEqual(back, problems);
  for (const p of back) assert.equal(verifyProblem(p, p.solution).correct, true);
  assert.equal(problemsToJSONL([]), "");
});

test("user problems: defaults for id, solution, family, difficulty; exact-match verifier", () => {
  const path = writeFile(
    "data.jsonl",
    '{"prompt": "capital of france?\\n", "answer": "paris"}\r\n\n' +
      '{"prompt": "2*3\\n", "answer": " 6 ", "solution": "2*3=6\\n#6", "id": "q2", "extra": 1}\n',
  );
  const [a, b] = readProblemsJSONL(path);
  assert.deepEqual(a, {
    id: "data.jsonl:1",
    family: DATASET_FAMILY,
    difficulty: 0,
    prompt: "capital of france?\n",
    solution: "#paris",
    answer: "paris",
  });
  assert.equal(b.id, "q2");
  assert.equal(b.answer, "6");
  assert.equal(verifyProblem(a, "i think\n#paris").correct, true);
  assert.equal(verifyProblem(a, "#Paris").reason, 'wrong answer: expected "paris", got "Paris"');
  assert.equal(verifyProblem(b, "#6<eot>").reward, 1);
  assert.equal(verifyProblem(b, "6").reward, 0);
});

test("bad lines name the file, the line and the field", () => {
  const ok = '{"prompt": "p", "answer": "1"}';
  const cases: [string, string][] = [
    [`${ok}\n\n${ok}\n{"prompt": "p"}\n`, 'bad.jsonl:4: missing field "answer"'],
    [`${ok}\n{"answer": "1"}\n`, 'bad.jsonl:2: missing field "prompt"'],
    [`${ok}\n{"prompt": "p", "answer": [7]}\n`, 'bad.jsonl:2: field "answer" must be text, got array'],
    [`${ok}\n{"prompt": "p", "answer": "1",}\n`, "bad.jsonl:2: invalid JSON"],
    [`[1, 2]\n`, "bad.jsonl:1: expected a JSON object, got array"],
    [`{"prompt": "p", "answer": "   "}\n`, 'bad.jsonl:1: field "answer" is empty'],
    [`{"prompt": "p", "answer": "a#b"}\n`, 'bad.jsonl:1: field "answer" must be one line without "#"'],
    [
      `{"prompt": "p", "answer": "5", "solution": "2+3=5"}\n`,
      'bad.jsonl:1: field "solution" has no final answer marker "#"',
    ],
    [
      `{"prompt": "p", "answer": "5", "solution": "#6"}\n`,
      'bad.jsonl:1: field "solution" ends with answer "6" but "answer" is "5"',
    ],
    [
      `{"prompt": "p", "answer": "5", "difficulty": "hard"}\n`,
      'bad.jsonl:1: field "difficulty" must be a number, got string',
    ],
    [
      `{"id": "x", "prompt": "p", "answer": "5"}\n{"id": "x", "prompt": "q", "answer": "5"}\n`,
      'bad.jsonl:2: duplicate id "x" (first on line 1)',
    ],
    ["", "bad.jsonl: empty file, expected one JSON object per line"],
    ["\n  \n", "bad.jsonl: empty file"],
  ];
  for (const [text, message] of cases) {
    const path = writeFile("bad.jsonl", text);
    assert.throws(
      () => readProblemsJSONL(path),
      (e: Error) => {
        // `path` is the full temp path; the message must start with it and then say the rest exactly.
        const expected = path + message.slice("bad.jsonl".length);
        assert.ok(e.message.startsWith(expected), `${e.message}\nshould start with ${expected}`);
        assert.ok(!e.message.includes("\n"), "one line");
        return true;
      },
    );
  }
  assert.throws(() => parseProblemsJSONL('{"prompt": 1, "answer": "1"}', "mem"), {
    message: 'mem:1: field "prompt" must be text or a list of chat messages, got number',
  });
  assert.throws(
    () => readProblemsJSONL(join(dir, "missing.jsonl")),
    /missing\.jsonl: cannot read \(ENOENT\)/,
  );
});
