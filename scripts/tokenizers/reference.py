"""Reference tokenization for the tokenizer parity tests (test/tokenizer-parity.test.ts).

Reads one JSON request on stdin, writes one JSON answer on stdout. Commands (field "command"):

- "encode": the Python `tokenizers` library on `tokenizer` (a tokenizer.json path). For every
  string: ids with special tokens treated as text (`encode_special_tokens = True`, what our
  `encode` does) and without added BOS/EOS; for every id list in `decode`: the decoded text with and
  without special tokens.
- "chat": transformers `AutoTokenizer.from_pretrained(dir)`: for each of `parts` ({strings,
  kwargs}), the `apply_chat_template` ids of each string as one user message with the generation
  prompt and the part's template variables.
- "auto": transformers `AutoTokenizer.from_pretrained(d)` for each of `dirs`: class name, special
  tokens, ids of each string (no added specials) and the decoded text.
- "build": trains small tokenizers with `tokenizers` on `corpus` into `out/<kind>/tokenizer.json`:
  "sentencepiece-bpe" (Llama-2 style: Prepend/Replace normalizer, BPE with byte fallback),
  "metaspace-unigram" (T5 style: Metaspace pre-tokenizer, Unigram), "wordpiece" (BERT style).

`python scripts/tokenizers/reference.py --make-fixtures` (from the repository root) writes the
SentencePiece-style BPE and Unigram fixtures of test/fixtures/tokenizer/, trained on the parity
strings (Unigram training is not deterministic: a new run gives a different vocabulary; name the
kinds to remake, e.g. `--make-fixtures sentencepiece-bpe`), and
`tiny-chat/`: a 500-token byte-level BPE with ChatML specials and a ChatML chat template, a small
stand-in for a chat model's tokenizer (Qwen layout).
"""
import json
import os
import sys


def encode(req):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(req["tokenizer"])
    tok.encode_special_tokens = True
    plain = [tok.encode(s, add_special_tokens=False).ids for s in req["strings"]]
    dec = [tok.decode(ids, skip_special_tokens=False) for ids in req["decode"]]
    dec_skip = [tok.decode(ids, skip_special_tokens=True) for ids in req["decode"]]
    return {"plain": plain, "decode": dec, "decode_skip": dec_skip}


def chat(req):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(req["dir"])
    results = []
    for part in req["parts"]:
        out = []
        for s in part["strings"]:
            ids = tok.apply_chat_template(
                [{"role": "user", "content": s}], add_generation_prompt=True, tokenize=True, **part.get("kwargs", {})
            )
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
            out.append(list(ids))
        results.append(out)
    return {"ids": results}


def auto(req):
    from transformers import AutoTokenizer

    results = []
    for d in req["dirs"]:
        tok = AutoTokenizer.from_pretrained(d)
        ids = [tok.encode(s, add_special_tokens=False) for s in req["strings"]]
        results.append(
            {
                "class": type(tok).__name__,
                "bos": tok.bos_token,
                "eos": tok.eos_token,
                "pad": tok.pad_token,
                "ids": ids,
                "decode": [tok.decode(i) for i in ids],
            }
        )
    return {"results": results}


def build(req):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    corpus = req["corpus"]
    made = {}
    for kind in req["kinds"]:
        if kind == "sentencepiece-bpe":
            tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
            tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
            tok.decoder = decoders.Sequence(
                [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
            )
            specials = ["<unk>", "<s>", "</s>"]
            byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
            trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials + byte_tokens, show_progress=False)
        elif kind == "metaspace-unigram":
            tok = Tokenizer(models.Unigram())
            tok.normalizer = normalizers.NFKC()
            tok.pre_tokenizer = pre_tokenizers.Metaspace()
            tok.decoder = decoders.Metaspace()
            specials = ["<pad>", "</s>", "<unk>"]
            trainer = trainers.UnigramTrainer(
                vocab_size=400, special_tokens=specials, unk_token="<unk>", show_progress=False
            )
        elif kind == "wordpiece":
            tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
            tok.normalizer = normalizers.BertNormalizer(lowercase=True)
            tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tok.decoder = decoders.WordPiece()
            specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
            trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials, show_progress=False)
        else:
            raise SystemExit(f"unknown kind {kind}")
        tok.train_from_iterator(corpus, trainer)
        d = os.path.join(req["out"], kind)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        tok.save(path)
        if kind == "sentencepiece-bpe":
            # As in Llama-2's file, the byte tokens belong to the model's vocabulary, not to the
            # added (special) tokens the trainer was given them as.
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
            j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] in specials]
            with open(path, "w", encoding="utf-8") as f:
                json.dump(j, f, ensure_ascii=False)
        made[kind] = path
    return {"made": made}


def make_fixtures():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    fixtures = os.path.join(root, "test", "fixtures", "tokenizer")
    with open(os.path.join(fixtures, "parity-strings.json"), encoding="utf-8") as f:
        texts = [s["text"] for s in json.load(f)["strings"]]
    corpus = texts + [t.lower() for t in texts]
    kinds = sys.argv[2:] or ["sentencepiece-bpe", "metaspace-unigram"]
    made = build({"corpus": corpus, "kinds": kinds, "out": fixtures})["made"]

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    # Byte-level BPE as in GPT-2/Qwen: every text is encodable, decode inverts encode.
    chat = Tokenizer(models.BPE())
    chat.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    chat.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=CHATML_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    chat.train_from_iterator(corpus, trainer)
    d = os.path.join(fixtures, "tiny-chat")
    os.makedirs(d, exist_ok=True)
    chat.save(os.path.join(d, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHATML_TEMPLATE,
    }
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    print(json.dumps(sorted(list(made) + ["tiny-chat"])))


CHATML_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
# ChatML: every message as <|im_start|>role\ncontent<|im_end|>\n, then the assistant header.
CHATML_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make-fixtures"]:
        make_fixtures()
        sys.exit(0)
    request = json.load(sys.stdin)
    handler = {"encode": encode, "chat": chat, "auto": auto, "build": build}[request["command"]]
    json.dump(handler(request), sys.stdout, ensure_ascii=False)
