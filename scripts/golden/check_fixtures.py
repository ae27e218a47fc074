"""Re-derives every number in test/golden/*/expected.safetensors from model.safetensors using only
the conventions written in test/golden/README.md (plain float64 tensor ops, no transformers
model code, a hand-written clip and AdamW), and prints the largest differences. If this passes,
the README is a sufficient spec for the engine.

Run: /tmp/golden-venv/bin/python scripts/golden/check_fixtures.py [--dir test/golden]
"""

import argparse
import json
import math
import os

import torch
from safetensors.torch import load_file

D = torch.float64


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rms_norm(x, w, eps=1e-6):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def attention(q, k, v):
    # q: (B, H, T, d); k, v: (B, H, T, d) after kv-head expansion
    T, d = q.shape[2], q.shape[3]
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gpt2_forward(p, cfg, ids):
    B, T = ids.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    d = C // H
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][torch.arange(T)]
    for i in range(cfg["n_layer"]):
        pre = f"transformer.h.{i}."
        h = layer_norm(x, p[pre + "ln_1.weight"], p[pre + "ln_1.bias"])
        qkv = h @ p[pre + "attn.c_attn.weight"] + p[pre + "attn.c_attn.bias"]  # Conv1D (in, out)
        q, k, v = (qkv[..., j * C : (j + 1) * C].reshape(B, T, H, d).transpose(1, 2) for j in range(3))
        a = attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + a @ p[pre + "attn.c_proj.weight"] + p[pre + "attn.c_proj.bias"]
        h = layer_norm(x, p[pre + "ln_2.weight"], p[pre + "ln_2.bias"])
        h = gelu_new(h @ p[pre + "mlp.c_fc.weight"] + p[pre + "mlp.c_fc.bias"])
        x = x + h @ p[pre + "mlp.c_proj.weight"] + p[pre + "mlp.c_proj.bias"]
    x = layer_norm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"])
    return x @ p["transformer.wte.weight"].T


def rope(x, theta=10000.0):
    # x: (B, H, T, d); rotate_half convention: dimension i pairs with i + d/2.
    T, d = x.shape[2], x.shape[3]
    inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=D) / d)
    ang = torch.arange(T, dtype=D)[:, None] * inv_freq[None, :]  # (T, d/2)
    cos, sin = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def llama_forward(p, cfg, ids, qk_norm):
    B, T = ids.shape
    C, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    x = p["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = (h @ p[pre + "self_attn.q_proj.weight"].T).reshape(B, T, H, d)
        k = (h @ p[pre + "self_attn.k_proj.weight"].T).reshape(B, T, KV, d)
        v = (h @ p[pre + "self_attn.v_proj.weight"].T).reshape(B, T, KV, d)
        if qk_norm:
            q = rms_norm(q, p[pre + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, p[pre + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = rope(q), rope(k)
        kv_of = torch.arange(H) // (H // KV)  # query head h uses kv head h // (H/KV)
        a = attention(q, k[:, kv_of], v[:, kv_of]).transpose(1, 2).reshape(B, T, H * d)
        x = x + a @ p[pre + "self_attn.o_proj.weight"].T
        h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        g = h @ p[pre + "mlp.gate_proj.weight"].T
        u = h @ p[pre + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ p[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, p["model.norm.weight"], eps)
    out = p["lm_head.weight"] if "lm_head.weight" in p else p["model.embed_tokens.weight"]
    return x @ out.T


def loss_of(logits, ids):
    V = logits.shape[-1]
    logp = torch.log_softmax(logits[:, :-1].reshape(-1, V), -1)
    return -logp.gather(1, ids[:, 1:].reshape(-1, 1)).mean()


def maxdiff(a, b):
    return (a.to(D) - b.to(D)).abs().max().item()


def check(model, root):
    d = os.path.join(root, model)
    cfg = json.load(open(os.path.join(d, "config.json")))
    exp = load_file(os.path.join(d, "expected.safetensors"))
    params = {k: v.to(D).requires_grad_(True) for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    ids = exp["input_ids"].long()
    fwd = (lambda p: gpt2_forward(p, cfg, ids)) if model == "gpt2" else (lambda p: llama_forward(p, cfg, ids, model == "qwen3"))

    logits = fwd(params)
    loss = loss_of(logits, ids)
    grads = torch.autograd.grad(loss, list(params.values()))
    grad_diff = max(maxdiff(g, exp[f"grad.{k}"]) / (exp[f"grad.{k}"].abs().max().item() + 1e-12) for k, g in zip(params, grads))

    # Hand-written clip + AdamW, as the README states them.
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.95, 1e-8, 0.1
    p = {k: v.detach().clone() for k, v in params.items()}
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    v2 = {k: torch.zeros_like(v) for k, v in p.items()}
    losses, norms = [], []
    for t in range(1, 4):
        pp = {k: x.clone().requires_grad_(True) for k, x in p.items()}
        l = loss_of(fwd(pp), ids)
        g = dict(zip(pp, torch.autograd.grad(l, list(pp.values()))))
        norm = math.sqrt(sum((x * x).sum().item() for x in g.values()))
        coef = min(1.0, 1.0 / (norm + 1e-6))
        losses.append(l.item())
        norms.append(norm)
        for k in p:
            gk = g[k] * coef
            p[k] = p[k] * (1 - lr * wd)
            m[k] = b1 * m[k] + (1 - b1) * gk
            v2[k] = b2 * v2[k] + (1 - b2) * gk * gk
            p[k] = p[k] - lr * (m[k] / (1 - b1**t)) / (torch.sqrt(v2[k] / (1 - b2**t)) + eps)
    after_diff = max(maxdiff(p[k], exp[f"after.{k}"]) for k in p)
    print(
        f"{model}: logits {maxdiff(logits, exp['logits']):.2e}  loss {abs(loss.item() - exp['loss'].item()):.2e}  "
        f"grads (rel. to max |g|) {grad_diff:.2e}  step_losses {maxdiff(torch.tensor(losses), exp['step_losses']):.2e}  "
        f"grad_norms {maxdiff(torch.tensor(norms), exp['grad_norms']):.2e}  after {after_diff:.2e}"
    )
    ok = maxdiff(logits, exp["logits"]) < 1e-4 and grad_diff < 1e-3 and after_diff < 1e-3
    assert ok, f"{model}: the README conventions do not reproduce the fixture"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "test", "golden"))
    args = ap.parse_args()
    for model in ["gpt2", "llama", "qwen3"]:
        if os.path.exists(os.path.join(args.dir, model, "expected.safetensors")):
            check(model, os.path.normpath(args.dir))


if __name__ == "__main__":
    main()
