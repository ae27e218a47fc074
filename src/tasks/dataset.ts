/**
 * Seeded train/test splits. A problem belongs to the test split iff a hash of its canonical
 * content (family + prompt) falls below `testPercent` out of 100, so the split is a property of
 * the problem itself: a test problem can never be drawn for training, whatever the seeds.
 *
 * makeProblems draws distinct problems of one split by rejection (deterministic from the seed), or
 * for a dataset (a family with a fixed problem list) takes a seeded shuffle of the list's split;
 * ProblemStream draws training problems forever (repeats allowed) and can save/restore its state.
 */
import { Rng, hashString, type RngState } from "../engine/rng.js";
import { getTask } from "./registry.js";
import { canonicalKey, checkDifficulty, fmix32, type Problem, type TaskFamily } from "./types.js";

export type Split = "train" | "test";

export const DEFAULT_TEST_PERCENT = 10;

/** Draws without a new problem after which a split is declared exhausted. */
const MAX_MISSES = 20000;

/** 0..99, uniform over problems; the test split is bucket < testPercent. */
export function splitBucket(family: string, prompt: string): number {
  return fmix32(hashString(`split/${canonicalKey(family, prompt)}`)) % 100;
}

export function splitOf(
  problem: Pick<Problem, "family" | "prompt">,
  testPercent = DEFAULT_TEST_PERCENT,
): Split {
  return splitBucket(problem.family, problem.prompt) < testPercent ? "test" : "train";
}

function resolveFamily(family: TaskFamily | string): TaskFamily {
  return typeof family === "string" ? getTask(family) : family;
}

function checkTestPercent(testPercent: number, split: Split): void {
  if (!(testPercent >= 0 && testPercent <= 100)) {
    throw new Error(`testPercent must be in [0, 100], got ${testPercent}`);
  }
  if (split === "test" && testPercent === 0) throw new Error('split "test" is empty: testPercent is 0');
  if (split === "train" && testPercent === 100) throw new Error('split "train" is empty: testPercent is 100');
}

export interface MakeProblemsOptions {
  split: Split;
  n: number;
  seed: number;
  /** Defaults to the family's defaultDifficulty. */
  difficulty?: number;
  testPercent?: number;
}

/** The distinct problems (first occurrence of each family + prompt) of a list that fall in `split`. */
export function splitProblems(
  problems: readonly Problem[],
  split: Split,
  testPercent = DEFAULT_TEST_PERCENT,
): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = canonicalKey(p.family, p.prompt);
    if (seen.has(key)) return false;
    seen.add(key);
    return splitOf(p, testPercent) === split;
  });
}

/** n distinct problems of one split, the same for the same arguments. */
export function makeProblems(familyOrName: TaskFamily | string, opts: MakeProblemsOptions): Problem[] {
  const family = resolveFamily(familyOrName);
  const difficulty = opts.difficulty ?? family.defaultDifficulty;
  const testPercent = opts.testPercent ?? DEFAULT_TEST_PERCENT;
  if (opts.split !== "train" && opts.split !== "test")
    throw new Error(`split must be "train" or "test", got "${opts.split}"`);
  checkDifficulty(family, difficulty);
  checkTestPercent(testPercent, opts.split);
  if (!Number.isInteger(opts.n) || opts.n < 0)
    throw new Error(`n must be a non-negative integer, got ${opts.n}`);
  const rng = new Rng(opts.seed).fork(`${family.name}/${difficulty}/${opts.split}`);
  if (family.problems) {
    // A dataset: a seeded shuffle of its split, so the whole split can be used, never a miss.
    const pool = splitProblems(family.problems, opts.split, testPercent);
    if (pool.length < opts.n) {
      throw new Error(
        `task ${family.name}: split "${opts.split}" has ${pool.length} distinct problems ` +
          `(${testPercent}% of ${family.problems.length} held out for test by content hash), asked for ${opts.n}`,
      );
    }
    return rng.shuffle([...pool]).slice(0, opts.n);
  }
  const seen = new Set<string>();
  const out: Problem[] = [];
  let misses = 0;
  while (out.length < opts.n) {
    const p = family.generate(rng, difficulty);
    const key = canonicalKey(p.family, p.prompt);
    if (seen.has(key) || splitOf(p, testPercent) !== opts.split) {
      if (++misses > MAX_MISSES) {
        throw new Error(
          `task ${family.name} (difficulty ${difficulty}): split "${opts.split}" gave only ${out.length} distinct ` +
            `problems, asked for ${opts.n}; lower n or raise the difficulty`,
        );
      }
      continue;
    }
    misses = 0;
    seen.add(key);
    out.push(p);
  }
  return out;
}

export interface ProblemStreamOptions {
  seed: number;
  difficulty?: number;
  testPercent?: number;
}

export interface ProblemStreamState {
  rng: RngState;
  drawn: number;
}

/** An endless stream of training problems (i.i.d. draws restricted to the train split). */
export class ProblemStream {
  readonly family: TaskFamily;
  readonly difficulty: number;
  readonly testPercent: number;
  private readonly rng: Rng;
  /** Problems returned so far. */
  drawn = 0;

  constructor(familyOrName: TaskFamily | string, opts: ProblemStreamOptions) {
    this.family = resolveFamily(familyOrName);
    this.difficulty = opts.difficulty ?? this.family.defaultDifficulty;
    this.testPercent = opts.testPercent ?? DEFAULT_TEST_PERCENT;
    checkDifficulty(this.family, this.difficulty);
    checkTestPercent(this.testPercent, "train");
    this.rng = new Rng(opts.seed).fork(`${this.family.name}/${this.difficulty}/stream`);
  }

  next(): Problem {
    for (let tries = 0; tries <= MAX_MISSES; tries++) {
      const p = this.family.generate(this.rng, this.difficulty);
      if (splitOf(p, this.testPercent) === "train") {
        this.drawn++;
        return p;
      }
    }
    throw new Error(`task ${this.family.name} (difficulty ${this.difficulty}): no training problem found`);
  }

  take(n: number): Problem[] {
    const out: Problem[] = [];
    for (let i = 0; i < n; i++) out.push(this.next());
    return out;
  }

  getState(): ProblemStreamState {
    return { rng: this.rng.getState(), drawn: this.drawn };
  }

  setState(state: ProblemStreamState): void {
    this.rng.setState(state.rng);
    this.drawn = state.drawn;
  }
}
