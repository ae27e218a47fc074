/**
 * Character-level tokenizer shared by every agent of a team: one token per character of a small,
 * fixed character set, plus four special tokens. It can be written as a Hugging Face
 * `tokenizer.json` (tokenizers format 1.0: a WordLevel model over the characters, a Split
 * pre-tokenizer that isolates every character, the specials as added tokens, a Fuse decoder) and
 * read back from one.
 *
 * Ids (default vocabulary, 64 tokens, stable: new characters may only be appended):
 *   0 <pad>, 1 <bos>, 2 <eos>, 3 <eot>, then DEFAULT_CHARS in order from id 4
 *   ("\n" = 4, " " = 5, "0".."9" = 6..15, punctuation, then "a".."z" = 38..63).
 *
 * encode() maps characters only: the text "<eot>" encodes as five characters, never as the special
 * token, so data cannot inject control tokens. decode() renders special tokens as their names
 * ("<eot>") for readable logs, or drops them with { skipSpecial: true }.
 *
 * Its `tokenizer_config.json` names the class `PreTrainedTokenizerFast` and the specials, so
 * `transformers.AutoTokenizer` loads the files as this tokenizer (without it, transformers picks a
 * byte-level tokenizer from the model type and gets the ids wrong).
 *
 * Left out: byte fallback and an unknown token. A character outside the vocabulary is an error
 * (here and, since the HF file names an `<unk>` absent from its vocabulary, in HF tokenizers too).
 */
import { createHash } from "node:crypto";
import type { DecodeOptions, Prompt, Tokenizer } from "./types.js";

/** Special tokens, in id order (ids 0..3). */
export const SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<eot>"] as const;

/**
 * The characters every built-in task uses (and a little headroom for user data): newline, space,
 * digits, common punctuation, lowercase letters. 60 characters, 64 tokens with the specials.
 */
export const DEFAULT_CHARS = "\n 0123456789+-*/=<>()[],.:;?!#_'\"|abcdefghijklmnopqrstuvwxyz";

/** The pre-tokenizer regex: any single character, newline included (Oniguruma and JS alike). */
const SPLIT_EVERY_CHAR = "[\\s\\S]";
const UNK_TOKEN = "<unk>";

function describeChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  return `${JSON.stringify(ch)} (U+${cp.toString(16).toUpperCase().padStart(4, "0")})`;
}

/** True when a `tokenizer.json` object has the character tokenizer's pre-tokenizer and model type. */
export function isCharTokenizerJSON(obj: unknown): boolean {
  const root = obj as Record<string, any> | null;
  return (
    typeof root === "object" &&
    root !== null &&
    root.model?.type === "WordLevel" &&
    root.pre_tokenizer?.type === "Split" &&
    root.pre_tokenizer?.pattern?.Regex === SPLIT_EVERY_CHAR
  );
}

export class CharTokenizer implements Tokenizer {
  readonly pad = 0;
  readonly bos = 1;
  readonly eos = 2;
  readonly eot = 3;
  readonly usesChatTemplate = false;
  readonly vocabSize: number;
  readonly hash: string;
  /** The characters, in id order starting at SPECIAL_TOKENS.length. */
  readonly chars: readonly string[];
  private readonly idOf = new Map<string, number>();
  // Fast path for ASCII: charCode -> id, -1 when absent.
  private readonly asciiId = new Int16Array(128).fill(-1);

  constructor(chars: string = DEFAULT_CHARS) {
    const list = Array.from(chars);
    if (list.length === 0) throw new Error("CharTokenizer: empty character set");
    for (let i = 0; i < list.length; i++) {
      const ch = list[i];
      if (this.idOf.has(ch)) throw new Error(`CharTokenizer: character ${describeChar(ch)} listed twice`);
      const id = SPECIAL_TOKENS.length + i;
      this.idOf.set(ch, id);
      const code = ch.codePointAt(0)!;
      if (code < 128) this.asciiId[code] = id;
    }
    this.chars = list;
    this.vocabSize = SPECIAL_TOKENS.length + list.length;
    this.hash = createHash("sha256")
      .update(JSON.stringify({ kind: "char", chars: list }))
      .digest("hex");
  }

  /** True when every character of `text` is in the vocabulary. */
  covers(text: string): boolean {
    for (const ch of text) if (!this.idOf.has(ch)) return false;
    return true;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    let pos = 0; // in code points, so the position matches what a reader counts
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      let id = code < 128 ? this.asciiId[code] : -1;
      if (id < 0) {
        const ch = String.fromCodePoint(text.codePointAt(i)!);
        id = this.idOf.get(ch) ?? -1;
        if (id < 0) {
          throw new Error(
            `tokenizer: character ${describeChar(ch)} at position ${pos} is not in the vocabulary`,
          );
        }
        i += ch.length - 1;
      }
      ids.push(id);
      pos++;
    }
    return ids;
  }

  /** <bos> then the text's characters; a message list is its contents joined by newlines. */
  encodePrompt(prompt: Prompt): number[] {
    const text = typeof prompt === "string" ? prompt : prompt.map((m) => m.content).join("\n");
    return [this.bos, ...this.encode(text)];
  }

  isSpecial(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < SPECIAL_TOKENS.length;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    let out = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < SPECIAL_TOKENS.length && id >= 0 && Number.isInteger(id)) {
        if (!opts.skipSpecial) out += opts.specialAs ?? SPECIAL_TOKENS[id];
      } else {
        out += this.idToToken(id);
      }
    }
    return out;
  }

  idToToken(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new Error(`tokenizer: token id ${id} out of range [0, ${this.vocabSize})`);
    }
    return id < SPECIAL_TOKENS.length ? SPECIAL_TOKENS[id] : this.chars[id - SPECIAL_TOKENS.length];
  }

  /** A Hugging Face `tokenizer.json` object (tokenizers serialization format "1.0"). */
  toHuggingFaceJSON(): object {
    const vocab: Record<string, number> = {};
    SPECIAL_TOKENS.forEach((tok, id) => (vocab[tok] = id));
    this.chars.forEach((ch, i) => (vocab[ch] = SPECIAL_TOKENS.length + i));
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: SPECIAL_TOKENS.map((content, id) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: {
        type: "Split",
        pattern: { Regex: SPLIT_EVERY_CHAR },
        behavior: "Isolated",
        invert: false,
      },
      // No template: the training code places <bos>/<eot>/<eos> itself.
      post_processor: null,
      decoder: { type: "Fuse" },
      model: { type: "WordLevel", vocab, unk_token: UNK_TOKEN },
    };
  }

  /**
   * `tokenizer_config.json` for transformers: the fast tokenizer class (the pipeline is all in
   * tokenizer.json), the specials by role, no BOS/EOS added on encode and no space clean-up on
   * decode (both would change ids or text).
   */
  tokenizerConfig(): object {
    return {
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: SPECIAL_TOKENS[this.bos],
      eos_token: SPECIAL_TOKENS[this.eos],
      pad_token: SPECIAL_TOKENS[this.pad],
      unk_token: null,
      additional_special_tokens: [SPECIAL_TOKENS[this.eot]],
      add_bos_token: false,
      add_eos_token: false,
      clean_up_tokenization_spaces: false,
      model_max_length: 1_000_000,
    };
  }

  /** Read back a `tokenizer.json` written by toHuggingFaceJSON (possibly with another character set). */
  static fromHuggingFaceJSON(obj: unknown): CharTokenizer {
    const fail = (what: string): never => {
      throw new Error(`tokenizer.json is not a sat-llm character tokenizer: ${what}`);
    };
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) fail("expected a JSON object");
    const root = obj as Record<string, any>;
    if (root.version !== "1.0") fail(`version is ${JSON.stringify(root.version)}, expected "1.0"`);
    const model = root.model;
    if (typeof model !== "object" || model === null) fail('missing field "model"');
    if (model.type !== "WordLevel") fail(`model.type is ${JSON.stringify(model.type)}, expected "WordLevel"`);
    const pre = root.pre_tokenizer;
    if (
      typeof pre !== "object" ||
      pre === null ||
      pre.type !== "Split" ||
      pre.pattern?.Regex !== SPLIT_EVERY_CHAR ||
      pre.behavior !== "Isolated" ||
      pre.invert !== false
    ) {
      fail(`pre_tokenizer is not a Split on ${JSON.stringify(SPLIT_EVERY_CHAR)} with behavior "Isolated"`);
    }
    if (root.normalizer !== null && root.normalizer !== undefined) fail("it has a normalizer");
    const vocab = model.vocab;
    if (typeof vocab !== "object" || vocab === null || Array.isArray(vocab))
      fail("model.vocab is not an object");
    const byId: string[] = [];
    for (const [tok, id] of Object.entries(vocab as Record<string, unknown>)) {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0)
        fail(`model.vocab[${JSON.stringify(tok)}] = ${id}`);
      const i = id as number;
      if (byId[i] !== undefined)
        fail(`model.vocab id ${i} is used by ${JSON.stringify(byId[i])} and ${JSON.stringify(tok)}`);
      byId[i] = tok;
    }
    SPECIAL_TOKENS.forEach((tok, id) => {
      if (byId[id] !== tok)
        fail(`model.vocab id ${id} is ${JSON.stringify(byId[id])}, expected ${JSON.stringify(tok)}`);
    });
    const added = root.added_tokens;
    if (!Array.isArray(added)) fail("added_tokens is not an array");
    for (const [id, tok] of SPECIAL_TOKENS.entries()) {
      const entry = added.find((a: any) => a?.content === tok);
      if (!entry || entry.id !== id || entry.special !== true)
        fail(`added_tokens lacks special ${tok} with id ${id}`);
    }
    let chars = "";
    for (let id = SPECIAL_TOKENS.length; id < byId.length; id++) {
      const tok = byId[id];
      if (tok === undefined) fail(`model.vocab has no token with id ${id} (ids must be contiguous)`);
      if (Array.from(tok).length !== 1)
        fail(`model.vocab token ${JSON.stringify(tok)} (id ${id}) is not one character`);
      chars += tok;
    }
    return new CharTokenizer(chars);
  }
}
