/**
 * Majority vote for the `independent` team protocol (sat-method §2): the most frequent non-null
 * answer; ties go to the answer given by the lowest agent index. All null → null.
 */
export function majorityVote(answers: readonly (string | null)[]): string | null {
  const count = new Map<string, number>();
  const first = new Map<string, number>();
  answers.forEach((a, i) => {
    if (a === null) return;
    count.set(a, (count.get(a) ?? 0) + 1);
    if (!first.has(a)) first.set(a, i);
  });
  let best: string | null = null;
  for (const [a, c] of count) {
    if (best === null) {
      best = a;
      continue;
    }
    const cb = count.get(best)!;
    if (c > cb || (c === cb && first.get(a)! < first.get(best)!)) best = a;
  }
  return best;
}
