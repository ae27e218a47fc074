/**
 * Splitting text on a tokenizer's added tokens (`tokenizer.json` `added_tokens`), as the Hugging
 * Face `tokenizers` library does before its normalizer and model run: leftmost-longest matches,
 * non-overlapping, with the `single_word`, `lstrip` and `rstrip` rules. The caller decides per
 * match whether it counts (`accept`); a refused match is skipped over whole, which is what
 * `tokenizers` does for special tokens when `encode_special_tokens` is on. That hook is how data
 * text is kept from producing special tokens while a chat template's own specials are recognised.
 *
 * Offsets are UTF-16 indices into the text given.
 */

export interface AddedTokenSpec {
  id: number;
  content: string;
  special: boolean;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  /** Matched on the normalized text (true) or on the raw text (false). */
  normalized: boolean;
}

/** A run of text for the model pipeline, or one added token; [start, end) in the split text. */
export type Piece =
  | { kind: "text"; text: string; start: number; end: number }
  | { kind: "token"; token: AddedTokenSpec; start: number; end: number };

interface TrieNode {
  next: Map<number, TrieNode>;
  token: AddedTokenSpec | null;
}

const WHITESPACE = /\p{White_Space}/u;
const WORD_CHAR = /[\p{Alphabetic}\p{N}_]/u;

export class AddedTokenSplitter {
  private readonly root: TrieNode = { next: new Map(), token: null };
  readonly size: number;

  constructor(tokens: readonly AddedTokenSpec[]) {
    for (const t of tokens) {
      if (t.content.length === 0) continue;
      let node = this.root;
      for (let i = 0; i < t.content.length; i++) {
        const c = t.content.charCodeAt(i);
        let child = node.next.get(c);
        if (!child) {
          child = { next: new Map(), token: null };
          node.next.set(c, child);
        }
        node = child;
      }
      node.token ??= t; // the first of two tokens with the same content wins, as in tokenizers
    }
    this.size = tokens.length;
  }

  /** The longest token starting at `at`, with its end. */
  private longestAt(text: string, at: number): { token: AddedTokenSpec; end: number } | null {
    let node: TrieNode | undefined = this.root;
    let best: { token: AddedTokenSpec; end: number } | null = null;
    for (let i = at; i < text.length; i++) {
      node = node.next.get(text.charCodeAt(i));
      if (!node) break;
      if (node.token) best = { token: node.token, end: i + 1 };
    }
    return best;
  }

  /**
   * Splits `text` into text runs and accepted added tokens (empty runs left out). `accept` gets
   * each candidate match before the single_word rule and whitespace stripping.
   */
  split(text: string, accept: (token: AddedTokenSpec, start: number, end: number) => boolean): Piece[] {
    const pieces: Piece[] = [];
    if (this.size === 0) return text.length ? [{ kind: "text", text, start: 0, end: text.length }] : [];
    let textStart = 0; // start of the pending text run
    let i = 0;
    while (i < text.length) {
      const m = this.longestAt(text, i);
      if (!m) {
        i++;
        continue;
      }
      let start = i;
      let end = m.end;
      i = m.end; // refused or not, the match is consumed (non-overlapping search)
      if (!accept(m.token, start, end)) continue;
      if (m.token.singleWord) {
        const before = start > 0 && WORD_CHAR.test(charBefore(text, start));
        const after = end < text.length && WORD_CHAR.test(charAt(text, end));
        if (before || after) continue;
      }
      if (m.token.lstrip) {
        while (start > textStart && WHITESPACE.test(charBefore(text, start)))
          start -= charBefore(text, start).length;
      }
      if (m.token.rstrip) {
        while (end < text.length && WHITESPACE.test(charAt(text, end))) end += charAt(text, end).length;
        i = end;
      }
      if (start > textStart)
        pieces.push({ kind: "text", text: text.slice(textStart, start), start: textStart, end: start });
      pieces.push({ kind: "token", token: m.token, start, end });
      textStart = end;
    }
    if (textStart < text.length)
      pieces.push({ kind: "text", text: text.slice(textStart), start: textStart, end: text.length });
    return pieces;
  }
}

function charAt(text: string, i: number): string {
  return String.fromCodePoint(text.codePointAt(i)!);
}

function charBefore(text: string, i: number): string {
  const low = text.charCodeAt(i - 1);
  if (i >= 2 && low >= 0xdc00 && low <= 0xdfff) {
    const high = text.charCodeAt(i - 2);
    if (high >= 0xd800 && high <= 0xdbff) return text.slice(i - 2, i);
  }
  return text.slice(i - 1, i);
}
