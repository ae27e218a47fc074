"""Generates the golden fixtures in test/golden/ from Hugging Face transformers (the reference
implementation our TypeScript engine must match): tiny GPT-2, Llama (GQA), Qwen3, Qwen2 (q/k/v
biases), Llama with attention and MLP biases, Llama with Llama-3 RoPE scaling and Mistral (sliding
window) models, their HF checkpoints, logits, loss, gradients and three AdamW steps with gradient
clipping; plus the Qwen2 checkpoint saved again in shards (sharded/, no expected file of its own).

Run (from the repo root, in a venv with torch, transformers and safetensors installed):
    python scripts/golden/make_fixtures.py [--out test/golden]

Everything is float32 on CPU with fixed seeds, so a re-run reproduces the same numbers on the
same library versions (recorded in each expected.safetensors __metadata__).
"""

import argparse
import json
import os
import platform
import struct

import safetensors
import torch
import transformers
from safetensors.torch import load_file

# One seed per purpose, so changing one piece does not shift the others' random streams.
INIT_SEED = 1234  # library initialisation of the weights (torch global RNG)
PERTURB_SEED = 2345  # the perturbation added to every parameter
INPUT_SEED = 3456  # the input_ids
PERTURB_STD = 0.02
FIXTURE_VERSION = "1"  # bump when the layout or meaning of expected.safetensors changes

BATCH, SEQ, VOCAB = 2, 16, 40
OPTIM = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
MAX_GRAD_NORM = 1.0
STEPS = 3


def gpt2_model():
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        summary_first_dropout=0.0,
        activation_function="gelu_new",
        bos_token_id=None,  # the default 50256 lies outside our 40-token vocabulary
        eos_token_id=None,
    )
    return transformers.GPT2LMHeadModel(config)


def llama_model():
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
    )
    return transformers.LlamaForCausalLM(config)


def qwen3_model():
    config = transformers.Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        attention_bias=False,
        attention_dropout=0.0,
        use_sliding_window=False,
    )
    return transformers.Qwen3ForCausalLM(config)


def qwen2_model():
    config = transformers.Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,  # as Qwen2.5-0.5B
        attention_dropout=0.0,
        use_sliding_window=False,
    )
    return transformers.Qwen2ForCausalLM(config)


def llama_bias_model():
    # A key bias shifts every score of a query by the same amount except for its rotation by RoPE,
    # so its gradient lives on the rotation: with theta 10000 the slowest pair turns by 0.015 rad
    # over 16 positions and its gradient (~3e-8) sits at Adam's eps, where the after-step
    # comparison measures float32 noise. Theta 100 turns every pair by at least 0.47 rad.
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 100.0},
        tie_word_embeddings=False,
        attention_bias=True,
        mlp_bias=True,
        attention_dropout=0.0,
    )
    return transformers.LlamaForCausalLM(config)


def llama3_rope_model():
    # rope_theta 100 with head_dim 8 gives wavelengths 6.3, 19.9, 62.8 and 199 positions; against
    # an original context of 32 (low/high frequency wavelengths 32 and 8) the first is kept, the
    # second blended and the last two divided by the factor: every branch of the scaling is used.
    # Weights 5x larger than the default make attention position-sensitive (random 0.02 weights
    # give nearly uniform attention), so the frequencies show in the logits.
    config = transformers.LlamaConfig(
        initializer_range=0.1,
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 100.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
    )
    return transformers.LlamaForCausalLM(config)


def mistral_model():
    # A window as long as the test sequence: every token still sees all earlier ones.
    config = transformers.MistralConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=32,
        sliding_window=SEQ,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        attention_dropout=0.0,
    )
    return transformers.MistralForCausalLM(config)


MODELS = {
    "gpt2": gpt2_model,
    "llama": llama_model,
    "qwen3": qwen3_model,
    "qwen2": qwen2_model,
    "llama-bias": llama_bias_model,
    "llama3-rope": llama3_rope_model,
    "mistral": mistral_model,
}
SHARDED_FROM = "qwen2"  # sharded/ holds this model's checkpoint split into shards
SHARD_SIZE = "30KB"


def build(name):
    torch.manual_seed(INIT_SEED)
    model = MODELS[name]()
    # Eager attention is the plain softmax(QK^T/sqrt(d) + mask) V; SDPA would give the same math
    # with different rounding.
    model.config._attn_implementation = "eager"
    model = model.float().cpu()
    gen = torch.Generator().manual_seed(PERTURB_SEED)
    with torch.no_grad():
        # named_parameters() lists a tied parameter once, so it is perturbed once.
        for _, p in sorted(model.named_parameters()):
            p.add_(PERTURB_STD * torch.randn(p.shape, generator=gen, dtype=torch.float32))
    return model


def forward_loss(model, input_ids):
    # labels=input_ids: HF shifts internally (position t predicts token t+1) and averages the
    # cross-entropy over the BATCH*(SEQ-1) predicted tokens.
    out = model(input_ids=input_ids, labels=input_ids)
    return out.logits, out.loss


def make(name, out_root):
    out_dir = os.path.join(out_root, name)
    os.makedirs(out_dir, exist_ok=True)
    model = build(name)
    model.train()  # all dropout probabilities are 0, so train() is deterministic
    params = dict(model.named_parameters())

    model.save_pretrained(out_dir, safe_serialization=True)
    # Check the checkpoint holds exactly the parameters (minus the tied lm_head alias).
    stored = load_file(os.path.join(out_dir, "model.safetensors"))
    for k, v in stored.items():
        assert k in params, f"{name}: checkpoint tensor {k} is not a parameter"
        assert torch.equal(v, params[k].detach()), f"{name}: checkpoint tensor {k} differs"
    missing = sorted(set(params) - set(stored))
    assert not missing, f"{name}: parameters missing from checkpoint: {missing}"

    gen = torch.Generator().manual_seed(INPUT_SEED)
    input_ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen, dtype=torch.int64)

    logits, loss = forward_loss(model, input_ids)
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = {f"grad.{k}": p.grad.detach().clone() for k, p in params.items()}
    # Independent check of the loss convention before it is written down anywhere.
    manual = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB), input_ids[:, 1:].reshape(-1), reduction="mean"
    )
    assert torch.allclose(manual, loss, atol=1e-6), (manual, loss)

    opt = torch.optim.AdamW(model.parameters(), foreach=False, **OPTIM)
    step_losses, grad_norms = [], []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        _, step_loss = forward_loss(model, input_ids)
        step_loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=MAX_GRAD_NORM)
        opt.step()
        step_losses.append(step_loss.item())
        grad_norms.append(norm.item())
    assert step_losses[0] == loss.item()

    tensors = {
        "input_ids": input_ids.to(torch.int32),
        "logits": logits.detach().float().contiguous(),
        "loss": loss.detach().float().reshape(()),
        "step_losses": torch.tensor(step_losses, dtype=torch.float32),
        "grad_norms": torch.tensor(grad_norms, dtype=torch.float32),
        **grads,
        **{f"after.{k}": p.detach().clone() for k, p in params.items()},
    }
    if name == "llama3-rope":
        # The scaled RoPE frequencies as transformers computes them (a buffer, not in the checkpoint).
        tensors["rope_inv_freq"] = model.model.rotary_emb.inv_freq.detach().float().clone()
    tied = [k for k in model.state_dict() if k not in params]
    metadata = {
        "fixture_version": FIXTURE_VERSION,
        "model": name,
        "model_class": type(model).__name__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "safetensors_version": safetensors.__version__,
        "python_version": platform.python_version(),
        "init_seed": str(INIT_SEED),
        "perturb_seed": str(PERTURB_SEED),
        "perturb_std": str(PERTURB_STD),
        "input_seed": str(INPUT_SEED),
        "batch": str(BATCH),
        "seq_len": str(SEQ),
        "attn_implementation": "eager",
        "loss": "mean cross-entropy over batch*(seq_len-1) tokens; logits[:, t] predicts input_ids[:, t+1]",
        "optimizer": "torch.optim.AdamW",
        "lr": str(OPTIM["lr"]),
        "beta1": str(OPTIM["betas"][0]),
        "beta2": str(OPTIM["betas"][1]),
        "eps": str(OPTIM["eps"]),
        "weight_decay": str(OPTIM["weight_decay"]),
        "weight_decay_applies_to": "all parameters",
        "max_grad_norm": str(MAX_GRAD_NORM),
        "clip": "torch.nn.utils.clip_grad_norm_ (L2 over all grads, coef=min(1, max_norm/(norm+1e-6)))",
        "steps": str(STEPS),
        "step_batch": "the same input_ids at every step",
        "tied_aliases": json.dumps({k: tied_target(model, k) for k in tied}),
        "parameters": json.dumps(sorted(params)),
    }
    expected_path = os.path.join(out_dir, "expected.safetensors")
    save_sorted(tensors, expected_path, metadata)
    back = load_file(expected_path)  # the official reader must agree with what was meant
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)
    if name == SHARDED_FROM:
        save_sharded(build(name), os.path.join(out_dir, "model.safetensors"), os.path.join(out_root, "sharded"))
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(
        f"{name}: {len(params)} parameters, {sum(p.numel() for p in params.values())} weights, "
        f"loss {loss.item():.6f}, step_losses {[round(x, 6) for x in step_losses]}, "
        f"grad_norms {[round(x, 6) for x in grad_norms]}, stored {sorted(set(model.state_dict()) - set(stored))} "
        f"dropped, {total} bytes"
    )


def save_sharded(model, unsharded_path, out_dir):
    """The same initial weights as the unsharded fixture, saved in several files with an index."""
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size=SHARD_SIZE)
    with open(os.path.join(out_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1, f"sharded: only {shards}"
    stored = {}
    for shard in shards:
        stored.update(load_file(os.path.join(out_dir, shard)))
    unsharded = load_file(unsharded_path)
    assert stored.keys() == unsharded.keys()
    assert all(torch.equal(stored[k], unsharded[k]) for k in stored)
    print(f"sharded: {SHARDED_FROM} in {len(shards)} shards")


DTYPE_NAMES = {torch.float32: "F32", torch.int32: "I32", torch.int64: "I64", torch.float64: "F64"}


def save_sorted(tensors, path, metadata):
    """Writes a safetensors file whose bytes depend only on its contents: keys sorted, tensors laid
    out in name order (the safetensors library orders its metadata map arbitrarily, so regenerating
    would otherwise change the file on every run)."""
    header = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().tobytes()  # little-endian on every machine we run on
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the spec pads the header with spaces to an 8-byte boundary
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def tied_target(model, key):
    """Name of the parameter a state_dict alias (e.g. the tied lm_head.weight) shares storage with."""
    t = model.state_dict()[key]
    for k, p in model.named_parameters():
        if p.data_ptr() == t.data_ptr():
            return k
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "test", "golden"))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for name in MODELS:
        make(name, os.path.normpath(args.out))


if __name__ == "__main__":
    main()
