/** Stage records as JSON without their timings (wall-clock seconds differ between identical runs). */
export function recordJson(r: unknown): string {
  return JSON.stringify(r, (key, value) => (key === "timing" ? undefined : value));
}
