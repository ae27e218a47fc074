/**
 * Writing a config back out as YAML (for `sat config`, `--print-defaults` and the run directory's
 * config.resolved.yaml), optionally with each key's help and type as a comment above it. The output
 * loads back to the same config with `--config`.
 */
import YAML from "yaml";
import { listKeys, parsedDefaults, SECTION_NAMES } from "./schema.js";

export interface RenderOptions {
  /** Put each key's description and type above it as a comment. */
  comments?: boolean;
  /** First comment line(s) of the file. */
  header?: string;
}

function scalarYaml(value: unknown): string {
  // Flow style for lists and mappings keeps one key per line; JSON is valid YAML flow syntax.
  if (Array.isArray(value) || (typeof value === "object" && value !== null)) return JSON.stringify(value);
  return YAML.stringify(value).trimEnd();
}

/** Renders a config object (resolved or raw defaults) section by section, in schema order. */
export function configToYaml(config: object, opts: RenderOptions = {}): string {
  const cfg = config as Record<string, Record<string, unknown>>;
  const keys = listKeys();
  const lines: string[] = [];
  if (opts.header) for (const h of opts.header.split("\n")) lines.push(`# ${h}`);
  for (const section of SECTION_NAMES) {
    if (lines.length > 0 && opts.comments) lines.push("");
    lines.push(`${section}:`);
    for (const k of keys.filter((k) => k.section === section)) {
      if (opts.comments) lines.push(`  # ${k.description} [${k.type}]`);
      lines.push(`  ${k.name}: ${scalarYaml(cfg[section]?.[k.name])}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The full default config as commented YAML (`sat config --print-defaults`). */
export function defaultsYaml(): string {
  return configToYaml(parsedDefaults(), {
    comments: true,
    header:
      "sat-llm default configuration. Every key is optional; override with --config FILE or --set section.key=value.",
  });
}
