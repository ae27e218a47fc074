import { test } from "node:test";
import assert from "node:assert/strict";
import { CharTokenizer, DEFAULT_CHARS, SPECIAL_TOKENS } from "../src/model/tokenizer.js";
import { Rng } from "../src/engine/rng.js";

const tok = new CharTokenizer();

test("vocabulary: small, specials at 0..3, every character has its own id", () => {
  assert.ok(tok.vocabSize <= 64, `vocabSize ${tok.vocabSize}`);
  assert.equal(tok.vocabSize, SPECIAL_TOKENS.length + Array.from(DEFAULT_CHARS).length);
  assert.deepEqual([tok.pad, tok.bos, tok.eos, tok.eot], [0, 1, 2, 3]);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => tok.idToToken(i)),
    ["<pad>", "<bos>", "<eos>", "<eot>"],
  );
  const ids = tok.encode(DEFAULT_CHARS);
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(ids.every((id) => id >= 4 && id < tok.vocabSize));
  // Digits are contiguous, so digit d has id encode("0") + d.
  const zero = tok.encode("0")[0];
  for (let d = 0; d <= 9; d++) assert.equal(tok.encode(String(d))[0], zero + d);
});

test("encode/decode round trip on random text over the vocabulary", () => {
  const rng = new Rng(3);
  const chars = Array.from(DEFAULT_CHARS);
  for (let trial = 0; trial < 200; trial++) {
    let s = "";
    const len = rng.int(60);
    for (let i = 0; i < len; i++) s += chars[rng.int(chars.length)];
    const ids = tok.encode(s);
    assert.equal(ids.length, len);
    assert.equal(tok.decode(ids), s);
    assert.equal(tok.decode(Int32Array.from(ids)), s);
  }
});

test("decode renders special tokens by name, or skips them", () => {
  const ids = [tok.bos, ...tok.encode("12+3"), tok.eot, ...tok.encode("#15"), tok.eos, tok.pad];
  assert.equal(tok.decode(ids), "<bos>12+3<eot>#15<eos><pad>");
  assert.equal(tok.decode(ids, { skipSpecial: true }), "12+3#15");
  // Text that spells a special token stays characters: data cannot inject control tokens.
  assert.ok(!tok.encode("<eot>").includes(tok.eot));
  assert.equal(tok.encode("<eot>").length, 5);
});

test("encode names the offending character and its position", () => {
  assert.throws(() => tok.encode("12+é3"), {
    message: 'tokenizer: character "é" (U+00E9) at position 3 is not in the vocabulary',
  });
  assert.throws(() => tok.encode("ab\tc"), /character "\\t" \(U\+0009\) at position 2/);
  assert.throws(() => tok.encode("Abc"), /character "A" \(U\+0041\) at position 0/);
  // Position counts characters (code points), not UTF-16 units.
  const custom = new CharTokenizer("ab😀");
  assert.deepEqual(custom.encode("a😀b"), [4, 6, 5]);
  assert.throws(() => custom.encode("😀😀c"), /"c" \(U\+0063\) at position 2/);
});

test("idToToken and decode reject ids out of range", () => {
  assert.throws(() => tok.idToToken(tok.vocabSize), /token id 64 out of range \[0, 64\)/);
  assert.throws(() => tok.decode([5, -1]), /token id -1 out of range/);
  assert.throws(() => new CharTokenizer("abca"), /"a" .* listed twice/);
});

test("Hugging Face tokenizer.json: structure, its own pipeline matches encode, round trip", () => {
  const json = JSON.parse(JSON.stringify(tok.toHuggingFaceJSON()));
  assert.equal(json.version, "1.0");
  assert.equal(json.model.type, "WordLevel");
  assert.equal(Object.keys(json.model.vocab).length, tok.vocabSize);
  assert.equal(
    json.model.vocab[json.model.unk_token],
    undefined,
    "unknown characters must fail, not map to a token",
  );
  assert.deepEqual(
    json.added_tokens.map((t: any) => [t.id, t.content, t.special]),
    SPECIAL_TOKENS.map((s, i) => [i, s, true]),
  );
  assert.equal(json.decoder.type, "Fuse");
  // Emulate the HF pipeline: isolate every regex match, look each piece up in model.vocab.
  const text = "((3+4)*2)-5\n3+4=7\n#9 sort 3912";
  const re = new RegExp(json.pre_tokenizer.pattern.Regex, "gu");
  assert.equal(json.pre_tokenizer.behavior, "Isolated");
  const pieces = text.match(re)!;
  assert.equal(pieces.join(""), text);
  assert.deepEqual(
    pieces.map((p) => json.model.vocab[p]),
    tok.encode(text),
  );
  const back = CharTokenizer.fromHuggingFaceJSON(json);
  assert.equal(back.vocabSize, tok.vocabSize);
  assert.deepEqual(back.encode(DEFAULT_CHARS), tok.encode(DEFAULT_CHARS));
  const custom = new CharTokenizer("xyz\n");
  const customBack = CharTokenizer.fromHuggingFaceJSON(
    JSON.parse(JSON.stringify(custom.toHuggingFaceJSON())),
  );
  assert.deepEqual(customBack.chars, ["x", "y", "z", "\n"]);
});

test("fromHuggingFaceJSON explains why a file is not one of ours", () => {
  const good = () => JSON.parse(JSON.stringify(tok.toHuggingFaceJSON()));
  const cases: [string, (j: any) => any, RegExp][] = [
    ["not an object", () => [1, 2], /expected a JSON object/],
    ["BPE model", (j) => ((j.model.type = "BPE"), j), /model.type is "BPE", expected "WordLevel"/],
    [
      "other pre-tokenizer",
      (j) => ((j.pre_tokenizer = { type: "Whitespace" }), j),
      /pre_tokenizer is not a Split/,
    ],
    ["specials moved", (j) => ((j.model.vocab["<eot>"] = 99), j), /id 3 is undefined, expected "<eot>"/],
    [
      "multi-character token",
      (j) => ((j.model.vocab["ab"] = tok.vocabSize), j),
      /token "ab" \(id 64\) is not one character/,
    ],
    ["gap in ids", (j) => ((j.model.vocab["~"] = tok.vocabSize + 1), j), /no token with id 64/],
    ["duplicate id", (j) => ((j.model.vocab["~"] = 10), j), /id 10 is used by/],
    ["no added tokens", (j) => ((j.added_tokens = []), j), /added_tokens lacks special <pad>/],
    ["version", (j) => ((j.version = "2.0"), j), /version is "2.0"/],
  ];
  for (const [name, mutate, re] of cases) {
    assert.throws(
      () => CharTokenizer.fromHuggingFaceJSON(mutate(good())),
      (e: Error) => {
        assert.match(e.message, /^tokenizer.json is not a sat-llm character tokenizer: /, name);
        assert.match(e.message, re, name);
        return true;
      },
    );
  }
});
