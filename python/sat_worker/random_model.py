"""`python -m sat_worker.random_model --arch llama|qwen3 --out DIR`: a small randomly initialised
transformers model saved in Hugging Face layout, for parity checks between the engine and the
PyTorch backend (both load the same directory). Matrices are drawn from N(0, std²) so that the
next-token distributions are far from uniform; norms keep their unit weights."""

import argparse

import torch
import transformers


def build(arch: str, vocab: int, context: int, hidden: int = 32, layers: int = 2, heads: int = 4):
    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=heads // 2, max_position_embeddings=context,
                  rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                  attention_bias=False, attention_dropout=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if arch == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**common, mlp_bias=False, tie_word_embeddings=False))
    if arch == "qwen3":
        return transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**common, head_dim=hidden // heads, tie_word_embeddings=True))
    raise SystemExit(f"unknown arch {arch!r} (llama or qwen3)")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m sat_worker.random_model")
    p.add_argument("--arch", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--std", type=float, default=0.15)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    model = build(a.arch, a.vocab, a.context, a.hidden, a.layers, a.heads)
    with torch.no_grad():
        for _, w in model.named_parameters():
            if w.dim() >= 2:
                w.normal_(0.0, a.std)
    model.save_pretrained(a.out, safe_serialization=True)


if __name__ == "__main__":
    main()
