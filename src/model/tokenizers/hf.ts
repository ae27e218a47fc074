/**
 * A Hugging Face tokenizer (`tokenizer.json` + `tokenizer_config.json` [+ `chat_template.jinja`])
 * behind the project's Tokenizer interface. The pipeline pieces (normalizer, pre-tokenizer,
 * BPE/Unigram/WordPiece model, decoder) come from `@huggingface/tokenizers` (why that library:
 * README.md in this folder); the added-token split is ours (added-tokens.ts), because it carries
 * the rule that data text never produces a special token.
 *
 * Special tokens:
 * - bos: the token the tokenizer's post-processor puts first (Llama), else `bos_token` when
 *   `add_bos_token` is true, else none (GPT-2, Qwen).
 * - eot (ends a relay turn) and eos (ends an episode) must be single, distinct ids. Defaults: eot is
 *   the first chat end-of-turn token the vocabulary has (TURN_TOKENS); eos is `eos_token` unless
 *   that is the turn token (instruct models), then the first document-end token (DOCUMENT_TOKENS).
 *   Either can be set by its text (`eotToken`, `eosToken`): a token of the vocabulary, or text
 *   that encodes to exactly one token ("\n\n").
 * - pad: `pad_token`, else eos.
 *
 * decode() follows the `tokenizers` library: no clean-up of spaces, ids without a token (a model's
 * padding rows beyond the vocabulary) are dropped.
 */
import { createHash } from "node:crypto";
import { Tokenizer as HfPipeline } from "@huggingface/tokenizers";
import { AddedTokenSplitter, type AddedTokenSpec } from "./added-tokens.js";
import { ChatTemplate, templateSource } from "./chat-template.js";
import type { ChatMessage, DecodeOptions, Prompt, Tokenizer } from "./types.js";

/** Chat end-of-turn tokens, most common first: ChatML (Qwen, SmolLM), Llama 3, Gemma, Phi-3. */
export const TURN_TOKENS = ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"] as const;
/** Document-end tokens of base models: GPT-2/Qwen, Llama 3, Llama 2/Mistral, Gemma. */
export const DOCUMENT_TOKENS = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"] as const;

export interface HfTokenizerFiles {
  /** The parsed `tokenizer.json`. */
  tokenizer: Record<string, unknown>;
  /** The parsed `tokenizer_config.json`, or null when the model directory has none. */
  config: Record<string, unknown> | null;
  /** `chat_template.jinja` when present; it takes precedence over config.chat_template. */
  chatTemplate?: string | null;
}

export interface HfTokenizerOptions {
  /** Text of the end-of-turn token; null/undefined = the default (file header). */
  eotToken?: string | null;
  /** Text of the end-of-episode token; null/undefined = the default (file header). */
  eosToken?: string | null;
  /** false: never apply the chat template, encodePrompt is BOS + encode(text). Default true. */
  chatTemplate?: boolean;
  /** Extra variables for the chat template (e.g. { enable_thinking: false }). */
  chatTemplateKwargs?: Readonly<Record<string, unknown>>;
  /** Names the files in error messages (a directory or path). */
  source?: string;
}

/** Config keys that change what the tokenizer does here; part of the hash. */
const CONFIG_IDENTITY_KEYS = ["bos_token", "eos_token", "pad_token", "unk_token", "add_bos_token"] as const;

/**
 * The content hash of a Hugging Face tokenizer's files (see Tokenizer.hash), computed without
 * building the pipeline; `files.chatTemplate` must already hold the template in use, if any.
 */
export function hfTokenizerHash(files: HfTokenizerFiles): string {
  const config = files.config ?? {};
  const identity = {
    kind: "hf",
    tokenizer: files.tokenizer,
    config: Object.fromEntries(CONFIG_IDENTITY_KEYS.map((k) => [k, config[k] ?? null])),
    chatTemplate: files.chatTemplate ?? templateSource(config.chat_template, "tokenizer_config.json"),
  };
  return createHash("sha256").update(JSON.stringify(identity)).digest("hex");
}

/** True when a tokenizer.json component (or a Sequence of them) has a step of type `type`. */
function hasStep(component: unknown, type: string): boolean {
  const c = component as { type?: string; decoders?: unknown[] } | null;
  if (!c || typeof c !== "object") return false;
  return c.type === type || (Array.isArray(c.decoders) && c.decoders.some((d) => hasStep(d, type)));
}

/** A token given in tokenizer_config.json: a string, an AddedToken object {content}, or null. */
function tokenText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as any).content === "string")
    return (value as any).content;
  return null;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly pad: number;
  readonly bos: number | null;
  readonly eos: number;
  readonly eot: number;
  readonly hash: string;
  readonly usesChatTemplate: boolean;
  private readonly pipeline: HfPipeline;
  private readonly files: HfTokenizerFiles;
  private readonly raw: AddedTokenSplitter; // added tokens matched on the raw text
  private readonly normalized: AddedTokenSplitter; // matched after the normalizer
  private readonly specialTokens: AddedTokenSplitter; // special added tokens only
  private readonly specialIds = new Set<number>();
  private readonly template: ChatTemplate | null;
  private readonly where: string;
  /** Ids of <0xEF>, <0xBF>, <0xBD> (U+FFFD in UTF-8) when the decoder has a ByteFallback step. */
  private readonly replacementBytes: number[] | null;

  constructor(files: HfTokenizerFiles, opts: HfTokenizerOptions = {}) {
    this.where = opts.source ?? "tokenizer.json";
    const fail = (what: string): never => {
      throw new Error(`${this.where}: ${what}`);
    };
    const tj = files.tokenizer;
    if (typeof tj !== "object" || tj === null || Array.isArray(tj)) fail("expected a JSON object");
    if (typeof tj.model !== "object" || tj.model === null) fail('missing field "model"');
    const config = files.config ?? {};
    if (config.remove_space === true || config.do_lowercase_and_remove_accent === true)
      fail("tokenizer_config.json options remove_space / do_lowercase_and_remove_accent are not supported");
    const templateText = files.chatTemplate ?? templateSource(config.chat_template, this.where);
    this.files = { tokenizer: tj, config: files.config, chatTemplate: templateText };
    this.hash = hfTokenizerHash(this.files);
    try {
      this.pipeline = new HfPipeline(tj, { ...config });
    } catch (err) {
      fail(`not a tokenizer this library can load (${(err as Error).message})`);
    }
    const vocab = this.pipeline!.model!.vocab;
    this.vocabSize = vocab.length;

    const added: AddedTokenSpec[] = [];
    for (const a of (Array.isArray(tj.added_tokens) ? tj.added_tokens : []) as any[]) {
      if (typeof a?.content !== "string" || !Number.isInteger(a?.id))
        fail("added_tokens entry without id/content");
      added.push({
        id: a.id,
        content: a.content,
        special: a.special === true,
        singleWord: a.single_word === true,
        lstrip: a.lstrip === true,
        rstrip: a.rstrip === true,
        normalized: a.normalized === true && tj.normalizer !== null && tj.normalizer !== undefined,
      });
      if (a.special === true) this.specialIds.add(a.id);
    }
    this.raw = new AddedTokenSplitter(added.filter((t) => !t.normalized));
    this.normalized = new AddedTokenSplitter(added.filter((t) => t.normalized));
    this.specialTokens = new AddedTokenSplitter(added.filter((t) => t.special));

    const idOf = (text: string): number | null => this.pipeline.token_to_id(text) ?? null;
    const named = (key: string): number | null => {
      const text = tokenText(config[key]);
      return text === null ? null : idOf(text);
    };
    const chosen = (text: string, key: string): number => {
      const id = idOf(text);
      if (id !== null) return id;
      const ids = this.encode(text);
      if (ids.length !== 1)
        fail(
          `${key} ${JSON.stringify(text)} is not one token of this vocabulary (it encodes to ${ids.length} tokens)`,
        );
      return ids[0];
    };
    const firstPresent = (list: readonly string[]): number | null => {
      for (const t of list) if (idOf(t) !== null) return idOf(t);
      return null;
    };

    const eot = opts.eotToken != null ? chosen(opts.eotToken, "eot_token") : firstPresent(TURN_TOKENS);
    if (eot === null)
      fail(
        `no end-of-turn token (none of ${TURN_TOKENS.join(", ")}); name one with model.eot_token (a token of the vocabulary, or text that is one token such as "\\n\\n")`,
      );
    this.eot = eot!;
    let eos: number | null;
    if (opts.eosToken != null) eos = chosen(opts.eosToken, "eos_token");
    else {
      eos = named("eos_token");
      if (eos === null || eos === this.eot)
        eos = firstPresent(DOCUMENT_TOKENS.filter((t) => idOf(t) !== this.eot));
    }
    if (eos === null)
      fail(
        `no end-of-episode token (eos_token, ${DOCUMENT_TOKENS.join(", ")}); name one with model.eos_token`,
      );
    if (eos === this.eot)
      fail(
        `end-of-turn and end-of-episode are the same token ${JSON.stringify(this.idToToken(eos!))}; set model.eot_token or model.eos_token to another`,
      );
    this.eos = eos!;
    this.pad = named("pad_token") ?? this.eos;
    this.bos = this.detectBos(named("bos_token"), config.add_bos_token === true);
    for (const id of [this.eos, this.eot, this.pad, this.bos]) if (id !== null) this.specialIds.add(id);

    this.template =
      templateText !== null
        ? new ChatTemplate(templateText, {
            bos_token: tokenText(config.bos_token) ?? "",
            eos_token: tokenText(config.eos_token) ?? "",
            pad_token: tokenText(config.pad_token) ?? "",
            unk_token: tokenText(config.unk_token) ?? "",
            ...(opts.chatTemplateKwargs ?? {}),
          })
        : null;
    this.usesChatTemplate = this.template !== null && opts.chatTemplate !== false;
    const fffd = ["<0xEF>", "<0xBF>", "<0xBD>"].map(idOf);
    this.replacementBytes =
      hasStep(tj.decoder, "ByteFallback") && fffd.every((id) => id !== null) ? (fffd as number[]) : null;
  }

  /** The single special id the post-processor puts before a text (Llama's <s>), if any. */
  private detectBos(configBos: number | null, addBos: boolean): number | null {
    const plain: number[] = this.pipeline.encode("a", { add_special_tokens: false }).ids;
    const withSpecials: number[] = this.pipeline.encode("a", { add_special_tokens: true }).ids;
    const at = withSpecials.findIndex((_, i) => plain.every((id, j) => withSpecials[i + j] === id));
    if (at === 1) return withSpecials[0];
    if (at > 1)
      throw new Error(
        `${this.where}: the post-processor puts ${at} tokens before a text; only a single BOS is supported`,
      );
    return addBos ? configBos : null;
  }

  encode(text: string): number[] {
    return this.encodeWith(text, () => false);
  }

  encodePrompt(prompt: Prompt): number[] {
    const messages: readonly ChatMessage[] =
      typeof prompt === "string" ? [{ role: "user", content: prompt }] : prompt;
    if (!this.usesChatTemplate) {
      const text = messages.map((m) => m.content).join("\n");
      return this.bos === null ? this.encode(text) : [this.bos, ...this.encode(text)];
    }
    const rendered = this.template!.render(messages, true);
    // Exactly transformers' apply_chat_template(tokenize=True) when no content spells a special token.
    const injects = messages.some((m) =>
      this.specialTokens.split(m.content, () => true).some((p) => p.kind === "token"),
    );
    if (!injects) return this.encodeWith(rendered, () => true);
    // Otherwise the contents' spans in the rendered text are found and kept as plain text.
    const spans = this.contentSpans(messages, rendered);
    return this.encodeWith(rendered, (start, end) => spans.every(([s, e]) => end <= s || start >= e));
  }

  /** Where each message's content sits in `rendered`, when the template inserts contents verbatim. */
  private contentSpans(messages: readonly ChatMessage[], rendered: string): Array<[number, number]> {
    const marks = messages.map((_, i) => `\u{F0000}${i}\u{F0001}`);
    const skeleton = this.template!.render(
      messages.map((m, i) => ({ role: m.role, content: marks[i] })),
      true,
    );
    const spans: Array<[number, number]> = [];
    let rebuilt = "";
    let from = 0;
    for (let i = 0; i < marks.length; i++) {
      const at = skeleton.indexOf(marks[i], from);
      if (at < 0) break;
      rebuilt += skeleton.slice(from, at);
      spans.push([rebuilt.length, rebuilt.length + messages[i].content.length]);
      rebuilt += messages[i].content;
      from = at + marks[i].length;
    }
    rebuilt += skeleton.slice(from);
    if (rebuilt !== rendered || spans.length !== messages.length) {
      throw new Error(
        `${this.where}: a prompt contains special-token text and the chat template does not insert it verbatim, so it cannot be kept as plain text; remove the special-token text from the prompt or set model.chat_template=false`,
      );
    }
    return spans;
  }

  /** Ids of `text`; a special added token counts only where `specialAllowed(start, end)`. */
  private encodeWith(text: string, specialAllowed: (start: number, end: number) => boolean): number[] {
    const ids: number[] = [];
    const { normalizer, pre_tokenizer: preTokenizer, model } = this.pipeline;
    for (const piece of this.raw.split(text, (t, s, e) => !t.special || specialAllowed(s, e))) {
      if (piece.kind === "token") {
        ids.push(piece.token.id);
        continue;
      }
      const norm = normalizer ? normalizer.normalize(piece.text) : piece.text;
      const allowHere = specialAllowed(piece.start, piece.end);
      for (const sub of this.normalized.split(norm, (t) => !t.special || allowHere)) {
        if (sub.kind === "token") {
          ids.push(sub.token.id);
          continue;
        }
        // Metaspace's prepend_scheme "first" marks only the text at the very start.
        const words = preTokenizer
          ? preTokenizer.pre_tokenize(sub.text, {
              section_index: piece.start === 0 && sub.start === 0 ? 0 : 1,
            })
          : [sub.text];
        for (const tok of model!._call(words)) {
          const id = model!.tokens_to_ids.get(tok) ?? model!.unk_token_id;
          if (id === undefined)
            throw new Error(
              `tokenizer: ${JSON.stringify(sub.text.slice(0, 40))} has a piece ${JSON.stringify(tok)} with no token, and the vocabulary has no unknown token`,
            );
          ids.push(id);
        }
      }
    }
    return ids;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    let out = "";
    let run: number[] = [];
    const flush = (): void => {
      if (this.replacementBytes) run = this.replaceInvalidByteRuns(run);
      if (run.length) out += this.pipeline.decode(run, { clean_up_tokenization_spaces: false });
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      // As in `tokenizers`, an id with no token (a model's padding rows) decodes to nothing.
      if (
        !Number.isInteger(id) ||
        id < 0 ||
        id >= this.vocabSize ||
        this.pipeline.id_to_token(id) === undefined
      )
        continue;
      if (this.specialIds.has(id)) {
        if (opts.skipSpecial) continue;
        if (opts.specialAs !== undefined) {
          flush();
          out += opts.specialAs;
          continue;
        }
      }
      run.push(id);
    }
    flush();
    return out;
  }

  /**
   * `tokenizers`' ByteFallback decodes a run of byte tokens that is not valid UTF-8 as one U+FFFD
   * per byte token; @huggingface/tokenizers replaces maximal invalid subsequences instead. Such a
   * run is swapped for the byte tokens of that many U+FFFD, which both decode alike.
   */
  private replaceInvalidByteRuns(ids: number[]): number[] {
    const out: number[] = [];
    const utf8 = new TextDecoder("utf-8", { fatal: true });
    for (let i = 0; i < ids.length;) {
      let j = i;
      const bytes: number[] = [];
      for (; j < ids.length; j++) {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(this.pipeline.id_to_token(ids[j]) ?? "");
        if (!m) break;
        bytes.push(parseInt(m[1], 16));
      }
      if (j === i) {
        out.push(ids[i++]);
        continue;
      }
      let valid = true;
      try {
        utf8.decode(Uint8Array.from(bytes));
      } catch {
        valid = false;
      }
      for (let k = i; k < j; k++) {
        if (valid) out.push(ids[k]);
        else out.push(...this.replacementBytes!);
      }
      i = j;
    }
    return out;
  }

  idToToken(id: number): string {
    const tok =
      Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.pipeline.id_to_token(id) : undefined;
    if (tok === undefined) throw new Error(`tokenizer: token id ${id} out of range [0, ${this.vocabSize})`);
    return tok;
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  toHuggingFaceJSON(): object {
    return this.files.tokenizer;
  }

  private jsonText: string | null = null;

  /** tokenizer.json as written to disk, serialized once (Qwen3's is 11 MB, saved with every agent). */
  tokenizerJsonText(): string {
    this.jsonText ??= JSON.stringify(this.files.tokenizer, null, 2) + "\n";
    return this.jsonText;
  }

  tokenizerConfig(): object {
    const config: Record<string, unknown> = { ...(this.files.config ?? {}) };
    if (this.files.chatTemplate !== null) config.chat_template = this.files.chatTemplate;
    return config;
  }
}
