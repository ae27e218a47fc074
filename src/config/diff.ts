/**
 * Differences between two resolved configs, key by key, for `--resume`: a resumed run is
 * bit-identical to an uninterrupted one only if its settings are the same, so every difference is
 * refused unless named in `--allow-config-change`. Keys that cannot change results (run length,
 * where and how often to save and log, threads; results do not depend on the thread count) may
 * change freely, but are still recorded.
 */
import { listKeys, type ResolvedConfig } from "./schema.js";

export interface ConfigDifference {
  key: string;
  from: unknown;
  to: unknown;
}

/** Keys whose change leaves every result of the stages already run, and of later ones, as it was. */
export const RESUME_FREE_KEYS: ReadonlySet<string> = new Set([
  "run.max_steps",
  "run.output_dir",
  "run.threads",
  "run.logging_steps",
  "run.save_steps",
  "run.save_total_limit",
  "run.save_interval_s",
]);

function valueAt(cfg: ResolvedConfig, path: string): unknown {
  const [section, name] = path.split(".");
  return (cfg as unknown as Record<string, Record<string, unknown>>)[section]?.[name];
}

/** Every key whose value differs between `before` and `after`, in schema order. */
export function configDifferences(before: ResolvedConfig, after: ResolvedConfig): ConfigDifference[] {
  const out: ConfigDifference[] = [];
  for (const k of listKeys()) {
    const from = valueAt(before, k.path);
    const to = valueAt(after, k.path);
    if (JSON.stringify(from) !== JSON.stringify(to)) out.push({ key: k.path, from, to });
  }
  return out;
}

/** "algo.kl_radius 0.3 → 0.02" */
export function formatDifference(d: ConfigDifference): string {
  const show = (v: unknown) => (v === undefined ? "unset" : JSON.stringify(v));
  return `${d.key} ${show(d.from)} → ${show(d.to)}`;
}
