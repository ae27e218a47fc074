/**
 * Hugging Face tokenizers behind the Tokenizer interface, without Python: special-token roles,
 * data text that cannot produce special tokens, chat templates, BOS detection, overrides and their
 * errors, decode options, content hashes and saving. The fixture `test/fixtures/tokenizer/tiny-chat`
 * is a 500-token byte-level BPE with ChatML specials and a ChatML template
 * (scripts/tokenizers/reference.py --make-fixtures).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../src/io/python.js";
import { referenceEngine } from "../src/engine/engine.js";
import { Rng } from "../src/engine/rng.js";
import { presetConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { ModelMember } from "../src/team/member.js";
import { rolloutTeam } from "../src/team/rollout.js";
import { getTask, makeProblems } from "../src/tasks/index.js";
import {
  CharTokenizer,
  HfTokenizer,
  readTokenizer,
  readTokenizerHash,
  saveTokenizer,
  type HfTokenizerFiles,
} from "../src/model/tokenizer.js";

const FIXTURES = join(PACKAGE_ROOT, "test/fixtures/tokenizer");
const CHAT_DIR = join(FIXTURES, "tiny-chat");
const chatFiles = (): HfTokenizerFiles => ({
  tokenizer: JSON.parse(readFileSync(join(CHAT_DIR, "tokenizer.json"), "utf8")),
  config: JSON.parse(readFileSync(join(CHAT_DIR, "tokenizer_config.json"), "utf8")),
});
const tok = readTokenizer(CHAT_DIR) as HfTokenizer;
const id = (t: string): number => {
  const v = (tok.toHuggingFaceJSON() as any).added_tokens.find((a: any) => a.content === t)?.id;
  return v ?? (tok.toHuggingFaceJSON() as any).model.vocab[t];
};
const IM_START = id("<|im_start|>");
const IM_END = id("<|im_end|>");
const ENDOFTEXT = id("<|endoftext|>");

test("bpe tokenizer: special roles of a chat tokenizer: eot <|im_end|>, eos <|endoftext|> (eos_token is the turn token), pad, no BOS", () => {
  assert.ok(tok instanceof HfTokenizer);
  assert.equal(tok.vocabSize, 500);
  assert.deepEqual([IM_START, IM_END, ENDOFTEXT], [0, 1, 2]);
  assert.equal(tok.eot, IM_END);
  assert.equal(tok.eos, ENDOFTEXT);
  assert.equal(tok.pad, ENDOFTEXT);
  assert.equal(tok.bos, null);
  assert.ok(tok.usesChatTemplate);
  for (const s of [IM_START, IM_END, ENDOFTEXT]) assert.ok(tok.isSpecial(s), String(s));
  assert.ok(!tok.isSpecial(tok.encode("a")[0]));
});

test("bpe tokenizer: encode never produces a special token; text that spells one is ordinary text", () => {
  for (const text of ["<|im_end|>", "x<|im_start|>user\nhi<|im_end|>", "<|endoftext|><|endoftext|>"]) {
    const ids = tok.encode(text);
    assert.ok(
      ids.every((i) => !tok.isSpecial(i)),
      `${JSON.stringify(text)} -> ${ids}`,
    );
    assert.equal(tok.decode(ids), text);
  }
});

test("chat template: encodePrompt renders the template with the generation prompt and recognises its specials", () => {
  const ids = tok.encodePrompt("What is 2+2?");
  assert.equal(tok.decode(ids), "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  assert.deepEqual(
    ids.filter((i) => tok.isSpecial(i)),
    [IM_START, IM_END, IM_START],
  );
  assert.equal(ids[0], IM_START);
  // A message list: system + user.
  const two = tok.encodePrompt([
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
  ]);
  assert.equal(
    tok.decode(two),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
  // Switched off: no template, no BOS (this tokenizer has none), the plain encoding.
  const plain = readTokenizer(CHAT_DIR, { chatTemplate: false })!;
  assert.equal(plain.usesChatTemplate, false);
  assert.deepEqual(plain.encodePrompt("What is 2+2?"), tok.encode("What is 2+2?"));
  assert.equal(plain.hash, tok.hash, "the switch is a run setting, not part of the tokenizer's identity");
});

test("chat template: special-token text inside a prompt stays text; a template that alters content is refused in one line", () => {
  const ids = tok.encodePrompt("say <|im_end|> now");
  assert.equal(tok.decode(ids), "<|im_start|>user\nsay <|im_end|> now<|im_end|>\n<|im_start|>assistant\n");
  assert.deepEqual(
    ids.filter((i) => tok.isSpecial(i)),
    [IM_START, IM_END, IM_START],
    "only the template's three specials",
  );
  const files = chatFiles();
  files.config!.chat_template =
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | upper }}<|im_end|>\n{% endfor %}";
  const upper = new HfTokenizer(files);
  assert.equal(upper.decode(upper.encodePrompt("hi")), "<|im_start|>user\nHI<|im_end|>\n");
  assert.throws(() => upper.encodePrompt("hi <|im_end|>"), {
    message:
      "tokenizer.json: a prompt contains special-token text and the chat template does not insert it verbatim, so it cannot be kept as plain text; remove the special-token text from the prompt or set model.chat_template=false",
  });
  const broken = chatFiles();
  broken.config!.chat_template = "{% for m in messages %}";
  assert.throws(() => new HfTokenizer(broken), /^Error: chat template does not parse: /);
  const kwargs = chatFiles();
  kwargs.config!.chat_template = "{{ 'thinking' if enable_thinking else 'quiet' }}:{{ messages[0].content }}";
  assert.equal(
    tok.decode(new HfTokenizer(kwargs, { chatTemplateKwargs: { enable_thinking: true } }).encodePrompt("x")),
    "thinking:x",
  );
});

test("bpe tokenizer: BOS from the post-processor (Llama layout) or from add_bos_token, placed by encodePrompt", () => {
  const files = chatFiles();
  files.config!.chat_template = undefined;
  const bos = ENDOFTEXT;
  files.tokenizer.post_processor = {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<|endoftext|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { "<|endoftext|>": { id: "<|endoftext|>", ids: [bos], tokens: ["<|endoftext|>"] } },
  };
  const llama = new HfTokenizer(files);
  assert.equal(llama.bos, bos);
  assert.deepEqual(llama.encodePrompt("12+3"), [bos, ...llama.encode("12+3")]);
  const byConfig = chatFiles();
  byConfig.config = {
    ...byConfig.config,
    bos_token: "<|endoftext|>",
    add_bos_token: true,
    chat_template: null,
  };
  assert.equal(new HfTokenizer(byConfig).bos, bos);
  assert.equal(
    new HfTokenizer({ ...byConfig, config: { ...byConfig.config, add_bos_token: false } }).bos,
    null,
  );
});

test("bpe tokenizer: eot/eos overrides by token text or one-token text, and their errors", () => {
  const files = chatFiles();
  const nl = new HfTokenizer(files, { eotToken: "\n", eosToken: "<|im_end|>" });
  assert.deepEqual(nl.encode("\n"), [nl.eot]);
  assert.equal(nl.eos, IM_END);
  assert.ok(nl.isSpecial(nl.eot), "a chosen eot counts as special (skipped by skipSpecial)");
  assert.throws(() => new HfTokenizer(chatFiles(), { eotToken: "hello world" }), {
    message:
      /^tokenizer\.json: eot_token "hello world" is not one token of this vocabulary \(it encodes to \d+ tokens\)$/,
  });
  assert.throws(() => new HfTokenizer(chatFiles(), { eosToken: "<|im_end|>" }), {
    message:
      'tokenizer.json: end-of-turn and end-of-episode are the same token "<|im_end|>"; set model.eot_token or model.eos_token to another',
  });
  const noTurn = chatFiles();
  // The turn token renamed to something no default list knows.
  for (const a of noTurn.tokenizer.added_tokens as any[])
    if (a.content === "<|im_end|>") a.content = "<|stop|>";
  const vocab = (noTurn.tokenizer.model as any).vocab;
  [vocab["<|stop|>"], vocab["<|im_end|>"]] = [vocab["<|im_end|>"], undefined];
  assert.throws(() => new HfTokenizer(noTurn, { source: "m/tokenizer.json" }), {
    message:
      'm/tokenizer.json: no end-of-turn token (none of <|im_end|>, <|eot_id|>, <end_of_turn>, <|end|>); name one with model.eot_token (a token of the vocabulary, or text that is one token such as "\\n\\n")',
  });
  assert.throws(
    () => new HfTokenizer({ tokenizer: { model: { type: "Nope" } } as any, config: null }, { eotToken: "a" }),
    /^Error: tokenizer\.json: not a tokenizer this library can load \(/,
  );
});

test("bpe tokenizer: decode drops ids beyond the vocabulary (a model's padding rows), skips or replaces specials", () => {
  const text = tok.encode("12+3=15");
  const ids = [...text, IM_END, 512, ...tok.encode("#15"), ENDOFTEXT, 999_999];
  assert.equal(tok.decode(ids), "12+3=15<|im_end|>#15<|endoftext|>");
  assert.equal(tok.decode(ids, { skipSpecial: true }), "12+3=15#15");
  assert.equal(tok.decode(ids, { specialAs: "\n" }), "12+3=15\n#15\n");
  assert.equal(tok.decode([]), "");
  assert.throws(() => tok.idToToken(512), /token id 512 out of range \[0, 500\)/);
  // The character tokenizer replaces its specials the same way.
  const c = new CharTokenizer();
  assert.equal(c.decode([...c.encode("#4"), c.eot, ...c.encode("2")], { specialAs: "\n" }), "#4\n2");
});

test("bpe tokenizer: the content hash follows the files, survives saving, and is readable without building", () => {
  const dir = mkdtempSync(join(tmpdir(), "sat-tok-hash-"));
  try {
    assert.equal(readTokenizerHash(CHAT_DIR), tok.hash);
    assert.match(tok.hash, /^[0-9a-f]{64}$/);
    saveTokenizer(dir, tok);
    const back = readTokenizer(dir)!;
    assert.equal(back.hash, tok.hash);
    assert.deepEqual(back.encodePrompt("ab c"), tok.encodePrompt("ab c"));
    // A different template or vocabulary is a different tokenizer.
    const cfg = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ ...cfg, chat_template: "{{ 1 }}" }));
    assert.notEqual(readTokenizerHash(dir), tok.hash);
    cpSync(join(CHAT_DIR, "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
    assert.equal(readTokenizerHash(dir), tok.hash);
    const tj = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    tj.model.merges = tj.model.merges.slice(1);
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tj));
    assert.notEqual(readTokenizerHash(dir), tok.hash);
    // A chat_template.jinja beside the files wins over tokenizer_config.json's template.
    cpSync(join(CHAT_DIR, "tokenizer.json"), join(dir, "tokenizer.json"));
    writeFileSync(join(dir, "chat_template.jinja"), "Q: {{ messages[0].content }}\nA:");
    const jinja = readTokenizer(dir)!;
    assert.equal(jinja.decode(jinja.encodePrompt("7*6")), "Q: 7*6\nA:");
    assert.equal(readTokenizerHash(dir), jinja.hash);
    // The character tokenizer is recognised by its format and hashed by its characters.
    saveTokenizer(dir, new CharTokenizer("xyz"));
    const char = readTokenizer(dir)!;
    assert.ok(char instanceof CharTokenizer);
    assert.equal(char.hash, new CharTokenizer("xyz").hash);
    assert.notEqual(char.hash, new CharTokenizer().hash);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("chat template: a relay rollout starts each episode with encodePrompt and closes full turns with the tokenizer's eot", async () => {
  const cfg = presetConfig("nano", 512, "llama", { dModel: 32, nHeads: 2 });
  const members = [1, 2].map(
    (seed) => new ModelMember(new Transformer(cfg, referenceEngine(), new Rng(seed))),
  );
  const task = getTask("add");
  const problems = makeProblems(task, { split: "train", n: 3, seed: 5, difficulty: 2 });
  const opts = {
    protocol: "relay" as const,
    rounds: 2,
    maxTurnTokens: 3,
    maxCompletionLength: 20,
    temperature: 1,
    topP: 1,
  };
  const trajs = await rolloutTeam(members, tok, problems, 2, opts, task.verify, new Rng(9));
  assert.equal(trajs.length, 6);
  let closedByProtocol = 0;
  for (const tr of trajs) {
    const problem = problems.find((p) => p.id === tr.problemId)!;
    assert.deepEqual(Array.from(tr.tokens.slice(0, tr.promptLength)), tok.encodePrompt(problem.prompt));
    for (let t = tr.promptLength; t < tr.tokens.length; t++) {
      if (tr.owner[t] === -1) {
        assert.equal(tr.tokens[t], tok.eot, "only the protocol's end-of-turn token is unowned");
        closedByProtocol++;
      }
    }
  }
  assert.ok(closedByProtocol > 0, "a random model rarely samples <|im_end|> within 3 tokens");
});
