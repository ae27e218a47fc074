/**
 * Reading and writing a model directory's tokenizer files: `tokenizer.json`,
 * `tokenizer_config.json` and, when present, `chat_template.jinja` (Hugging Face names). A
 * `tokenizer.json` in the character tokenizer's format loads as a CharTokenizer, anything else as
 * an HfTokenizer.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../../io/atomic.js";
import { CharTokenizer, isCharTokenizerJSON } from "./char.js";
import { HfTokenizer, hfTokenizerHash, type HfTokenizerFiles, type HfTokenizerOptions } from "./hf.js";
import type { Tokenizer } from "./types.js";

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";

/** How a tokenizer is set up beyond its files (from the run config); see HfTokenizerOptions. */
export type TokenizerOptions = Omit<HfTokenizerOptions, "source">;

function readJsonObject(path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`${path}: invalid JSON (${(err as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new Error(`${path}: expected a JSON object`);
  return value as Record<string, unknown>;
}

/** True when `dir` holds a tokenizer.json. */
export function hasTokenizer(dir: string): boolean {
  return existsSync(join(dir, TOKENIZER_FILE));
}

type TokenizerFiles = { file: string } & ({ char: CharTokenizer } | { hf: HfTokenizerFiles });

/** The files of a model directory (or of a tokenizer.json path); null without a tokenizer.json. */
function readFiles(path: string): TokenizerFiles | null {
  const isFile = path.endsWith(".json");
  const dir = isFile ? join(path, "..") : path;
  const file = isFile ? path : join(dir, TOKENIZER_FILE);
  if (!existsSync(file)) return null;
  const tokenizer = readJsonObject(file);
  if (isCharTokenizerJSON(tokenizer)) {
    try {
      return { file, char: CharTokenizer.fromHuggingFaceJSON(tokenizer) };
    } catch (err) {
      throw new Error(`${file}: ${(err as Error).message}`);
    }
  }
  const configPath = join(dir, TOKENIZER_CONFIG_FILE);
  const templatePath = join(dir, CHAT_TEMPLATE_FILE);
  const hf: HfTokenizerFiles = {
    tokenizer,
    config: existsSync(configPath) ? readJsonObject(configPath) : null,
    chatTemplate: existsSync(templatePath) ? readFileSync(templatePath, "utf8") : null,
  };
  return { file, hf };
}

/**
 * The tokenizer of a model directory, or null when it has no tokenizer.json. `path` may also be
 * the tokenizer.json file itself.
 */
export function readTokenizer(path: string, opts: TokenizerOptions = {}): Tokenizer | null {
  const files = readFiles(path);
  if (files === null) return null;
  if ("char" in files) return files.char;
  return new HfTokenizer(files.hf, { ...opts, source: files.file });
}

// Hashes by file identity: a team's directories are hashed when the team is formed and again when
// each agent loads, and a large vocabulary takes a second or more to parse and hash.
const hashCache = new Map<string, { stamp: string; hash: string | null }>();

/** Tokenizer.hash of a model directory's tokenizer without building it; null without tokenizer.json. */
export function readTokenizerHash(path: string): string | null {
  const isFile = path.endsWith(".json");
  const dir = isFile ? join(path, "..") : path;
  const stamp = [
    isFile ? path : join(dir, TOKENIZER_FILE),
    join(dir, TOKENIZER_CONFIG_FILE),
    join(dir, CHAT_TEMPLATE_FILE),
  ]
    .map((f) => {
      const st = statSync(f, { throwIfNoEntry: false });
      return st ? `${st.size}:${st.mtimeMs}:${st.ino}` : "-";
    })
    .join("|");
  const cached = hashCache.get(path);
  if (cached && cached.stamp === stamp) return cached.hash;
  const files = readFiles(path);
  const hash = files === null ? null : "char" in files ? files.char.hash : hfTokenizerHash(files.hf);
  hashCache.set(path, { stamp, hash });
  return hash;
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (atomically each). */
export function saveTokenizer(dir: string, tok: Tokenizer): void {
  const text =
    tok instanceof HfTokenizer
      ? tok.tokenizerJsonText()
      : JSON.stringify(tok.toHuggingFaceJSON(), null, 2) + "\n";
  writeFileAtomic(join(dir, TOKENIZER_FILE), text);
  writeFileAtomic(join(dir, TOKENIZER_CONFIG_FILE), JSON.stringify(tok.tokenizerConfig(), null, 2) + "\n");
}
