/**
 * The registry of built-in task families, lookup by name with a "did you mean" hint, and the
 * verifier dispatch used for any problem (built-in family, else exact match for users' problems).
 */
import { add } from "./families/add.js";
import { multistep } from "./families/multistep.js";
import { sort } from "./families/sort.js";
import { verifyExact, type Problem, type TaskFamily, type Verdict } from "./types.js";

export const TASKS: Record<string, TaskFamily> = { add, multistep, sort };

export const DEFAULT_TASK = "add";

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

export function getTask(name: string): TaskFamily {
  const task = Object.hasOwn(TASKS, name) ? TASKS[name] : undefined;
  if (task) return task;
  const names = Object.keys(TASKS);
  let best = names[0];
  for (const n of names) if (editDistance(name, n) < editDistance(name, best)) best = n;
  const close = editDistance(name.toLowerCase(), best) <= Math.max(2, Math.floor(best.length / 3));
  const hint = close || best.startsWith(name.toLowerCase()) ? ` did you mean "${best}"?` : "";
  throw new Error(`unknown task "${name}";${hint} known tasks: ${names.join(", ")}`);
}

/**
 * Verify with the problem's own family when it is built in, else by exact answer match. A dataset
 * loaded with the math verifier carries it as its TaskFamily's `verify`: use that for its problems.
 */
export function verifyProblem(problem: Problem, completion: string): Verdict {
  const task = Object.hasOwn(TASKS, problem.family) ? TASKS[problem.family] : undefined;
  return (task?.verify ?? verifyExact)(problem, completion);
}
