/**
 * The tokenizers, re-exported from src/model/tokenizers/ so that every user imports one path: the
 * Tokenizer interface, the built-in character tokenizer, Hugging Face tokenizer.json support and
 * reading/writing a model directory's tokenizer files.
 */
export type { ChatMessage, DecodeOptions, Prompt, Tokenizer } from "./tokenizers/types.js";
export { CharTokenizer, DEFAULT_CHARS, SPECIAL_TOKENS, isCharTokenizerJSON } from "./tokenizers/char.js";
export {
  DOCUMENT_TOKENS,
  HfTokenizer,
  TURN_TOKENS,
  type HfTokenizerFiles,
  type HfTokenizerOptions,
} from "./tokenizers/hf.js";
export {
  CHAT_TEMPLATE_FILE,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  hasTokenizer,
  readTokenizer,
  readTokenizerHash,
  saveTokenizer,
  type TokenizerOptions,
} from "./tokenizers/load.js";
