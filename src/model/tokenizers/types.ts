/**
 * The tokenizer seam: what the rollout, the trainers, checkpoints and data checks may ask of a
 * tokenizer without knowing its kind (the built-in character tokenizer or a Hugging Face
 * `tokenizer.json`). Interfaces only.
 */

export interface DecodeOptions {
  /** Drop special tokens (the tokenizer's added specials and bos/eos/eot/pad) from the text. */
  skipSpecial?: boolean;
  /**
   * Render every special token as this text instead of its name, e.g. "\n", so that answer
   * extraction sees a turn boundary the same way whatever the tokenizer calls its tokens.
   * Ignored when skipSpecial is set.
   */
  specialAs?: string;
}

/** One chat message, as in Hugging Face `apply_chat_template`. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** A prompt: plain text (one user message) or a list of chat messages. */
export type Prompt = string | readonly ChatMessage[];

export interface Tokenizer {
  /** Every id the tokenizer can produce or name is in [0, vocabSize); a model may have more rows. */
  readonly vocabSize: number;
  readonly pad: number;
  /** Beginning of sequence, placed by encodePrompt; null when the tokenizer uses none (GPT-2, Qwen). */
  readonly bos: number | null;
  /** Ends an episode. */
  readonly eos: number;
  /** Ends one agent's turn (segment) in a relay transcript; never equal to eos. */
  readonly eot: number;
  /** True when encodePrompt wraps prompts in a chat template. */
  readonly usesChatTemplate: boolean;
  /**
   * sha256 (hex) of what defines the tokenizer (vocabulary, pipeline, special tokens, chat
   * template); agents of a team must agree on it.
   */
  readonly hash: string;
  /**
   * Data text to ids. Never produces a special token: text that spells one ("<eot>", "<|im_end|>")
   * is encoded as ordinary text, so data cannot inject control tokens.
   */
  encode(text: string): number[];
  /**
   * What the model reads before it answers: the chat template with the generation prompt when the
   * tokenizer has one (and it is not switched off), else a BOS (when the tokenizer uses one) and
   * encode(text). Special-token text inside the prompt's own content stays ordinary text.
   */
  encodePrompt(prompt: Prompt): number[];
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  /** The token's string in the vocabulary; throws for an id out of range. */
  idToToken(id: number): string;
  /** True for the tokenizer's special tokens (added specials, bos, eos, eot, pad). */
  isSpecial(id: number): boolean;
  /** The Hugging Face `tokenizer.json` object. */
  toHuggingFaceJSON(): object;
  /** The Hugging Face `tokenizer_config.json` object (special tokens, chat template, class). */
  tokenizerConfig(): object;
}
