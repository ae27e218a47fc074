#!/usr/bin/env python3
"""PyTorch reference for `npm run bench`: the same models (GPT-2 and Llama shaped), training step,
KV-cache sampling and big matmul as bench/workloads.ts, timed the same way, printed as one JSON
object. Each model also reports the process's peak resident memory (run one model per process to
get that model's peak).

bench/run.ts pipes a spec on stdin ({"threads", "settings", "models": [{"name", "config"}]}, with
the TypeScript ModelConfig and BenchSettings field names). Run by hand without --spec it measures
the engine-bakeoff model with the full settings:

    /tmp/bench-venv/bin/python scripts/bench/torch_bench.py [--threads 2] [--spec spec.json|-]

Attention uses F.scaled_dot_product_attention (what nanoGPT and Hugging Face's sdpa path use, with
enable_gqa for grouped-query heads); the optimizer is torch.optim.AdamW with its default
implementation for CPU tensors.
"""
import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time

BOS = 0

DEFAULT_SPEC = {
    "threads": 2,
    "settings": {
        "batch": 16, "seq": 64, "warmupSteps": 3, "trainSteps": 15,
        "sampleSequences": 16, "sampleSteps": 64, "sampleWarmup": 1, "sampleRepeats": 7,
        "matmul": {"M": 1024, "K": 512, "N": 2048, "warmup": 2, "repeats": 10},
        "lr": 3e-4, "seed": 1337,
    },
    "models": [{
        "name": "bakeoff",
        "config": {
            "arch": "gpt2", "vocabSize": 32, "dModel": 128, "nLayers": 4, "nHeads": 4, "nKvHeads": 4,
            "headDim": 32, "dFF": 512, "maxSeqLen": 64, "normEps": 1e-5, "tiedEmbeddings": False,
            "valueHead": False,
        },
    }],
}


def init_weights(model, L, residual_names, norm_names):
    """GPT-2 initialisation, as src/model/transformer.ts: N(0, 0.02), residual projections scaled by
    1/sqrt(2L), norm weights 1, biases 0."""
    import torch.nn as nn
    for name, p in model.named_parameters():
        if p.dim() == 1:
            nn.init.ones_(p) if any(name.endswith(n) for n in norm_names) else nn.init.zeros_(p)
        else:
            residual = any(name.endswith(n) for n in residual_names)
            nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L) if residual else 0.02)


def build_llama(torch, cfg):
    nn = torch.nn
    F = torch.nn.functional
    C, Hq, Hkv, hd, Fd, L = cfg["dModel"], cfg["nHeads"], cfg["nKvHeads"], cfg["headDim"], cfg["dFF"], cfg["nLayers"]
    eps = cfg["normEps"]
    # Hugging Face Llama RoPE: rotate_half pairs i and i + hd/2, inv_freq_i = theta^(-2i/hd).
    inv_freq = 1.0 / (cfg["ropeTheta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    angles = torch.outer(torch.arange(cfg["maxSeqLen"], dtype=torch.float64), inv_freq)
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1).float()  # (P, hd)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1).float()

    def rope(x, c, s):  # x (B,H,T,hd); c, s (T,hd)
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * c + rot * s

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = nn.RMSNorm(C, eps=eps)
            self.q_proj = nn.Linear(C, Hq * hd, bias=False)
            self.k_proj = nn.Linear(C, Hkv * hd, bias=False)
            self.v_proj = nn.Linear(C, Hkv * hd, bias=False)
            self.o_proj = nn.Linear(Hq * hd, C, bias=False)
            self.post_attention_layernorm = nn.RMSNorm(C, eps=eps)
            self.gate_proj = nn.Linear(C, Fd, bias=False)
            self.up_proj = nn.Linear(C, Fd, bias=False)
            self.down_proj = nn.Linear(Fd, C, bias=False)

        def mlp(self, x):
            h = self.post_attention_layernorm(x)
            return self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

        def qkv(self, x, T, c, s):
            B = x.shape[0]
            h = self.input_layernorm(x)
            q = self.q_proj(h).view(B, T, Hq, hd).transpose(1, 2)
            k = self.k_proj(h).view(B, T, Hkv, hd).transpose(1, 2)
            v = self.v_proj(h).view(B, T, Hkv, hd).transpose(1, 2)
            return rope(q, c, s), rope(k, c, s), v

        def forward(self, x):  # (B,T,C)
            B, T, _ = x.shape
            q, k, v = self.qkv(x, T, cos[:T], sin[:T])
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=Hq != Hkv)
            x = x + self.o_proj(y.transpose(1, 2).reshape(B, T, Hq * hd))
            return x + self.mlp(x)

        def decode(self, x, kc, vc, pos):  # x (B,1,C); kc, vc (B,Hkv,Tmax,hd)
            B = x.shape[0]
            q, k, v = self.qkv(x, 1, cos[pos : pos + 1], sin[pos : pos + 1])
            kc[:, :, pos] = k[:, :, 0]
            vc[:, :, pos] = v[:, :, 0]
            y = F.scaled_dot_product_attention(q, kc[:, :, : pos + 1], vc[:, :, : pos + 1], enable_gqa=Hq != Hkv)
            x = x + self.o_proj(y.transpose(1, 2).reshape(B, 1, Hq * hd))
            return x + self.mlp(x)

    class Llama(nn.Module):
        kv_heads = Hkv

        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(cfg["vocabSize"], C)
            self.layers = nn.ModuleList(Block() for _ in range(L))
            self.norm = nn.RMSNorm(C, eps=eps)
            self.lm_head = nn.Linear(C, cfg["vocabSize"], bias=False)
            if cfg["tiedEmbeddings"]:
                self.lm_head.weight = self.embed_tokens.weight
            init_weights(self, L, ("o_proj.weight", "down_proj.weight"), ("layernorm.weight", "norm.weight"))

        def forward(self, idx):
            x = self.embed_tokens(idx)
            for block in self.layers:
                x = block(x)
            return self.lm_head(self.norm(x))

        def decode(self, tokens, caches, pos):
            x = self.embed_tokens(tokens).unsqueeze(1)
            for block, (kc, vc) in zip(self.layers, caches):
                x = block.decode(x, kc, vc, pos)
            return self.lm_head(self.norm(x))[:, 0]

    return Llama()


def build_model(torch, cfg):
    nn = torch.nn
    F = torch.nn.functional
    if cfg["arch"] == "llama":
        return build_llama(torch, cfg)
    if cfg["arch"] != "gpt2":
        raise SystemExit(f"torch_bench: model arch {cfg['arch']!r} is not supported (gpt2, llama)")
    C, H, hd, Fd, L = cfg["dModel"], cfg["nHeads"], cfg["headDim"], cfg["dFF"], cfg["nLayers"]
    eps = cfg["normEps"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C, eps=eps)
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)
            self.ln_2 = nn.LayerNorm(C, eps=eps)
            self.c_fc = nn.Linear(C, Fd)
            self.mlp_proj = nn.Linear(Fd, C)

        def mlp(self, x):
            return self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

        def forward(self, x):  # x (B,T,C)
            B, T, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))  # (B,H,T,hd)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.c_proj(y.transpose(1, 2).reshape(B, T, C))
            return x + self.mlp(x)

        def decode(self, x, kc, vc, pos):  # x (B,1,C); kc, vc (B,H,Tmax,hd)
            B = x.shape[0]
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, 1, H, hd).transpose(1, 2) for t in (q, k, v))  # (B,H,1,hd)
            kc[:, :, pos] = k[:, :, 0]
            vc[:, :, pos] = v[:, :, 0]
            y = F.scaled_dot_product_attention(q, kc[:, :, : pos + 1], vc[:, :, : pos + 1])
            x = x + self.c_proj(y.transpose(1, 2).reshape(B, 1, C))
            return x + self.mlp(x)

    class GPT(nn.Module):
        kv_heads = H

        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(cfg["vocabSize"], C)
            self.wpe = nn.Embedding(cfg["maxSeqLen"], C)
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(C, eps=eps)
            self.lm_head = nn.Linear(C, cfg["vocabSize"], bias=False)
            if cfg["tiedEmbeddings"]:
                self.lm_head.weight = self.wte.weight
            init_weights(self, L, ("c_proj.weight", "mlp_proj.weight"), ("ln_1.weight", "ln_2.weight", "ln_f.weight"))

        def forward(self, idx):  # idx (B,T) -> logits (B,T,V)
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T))
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

        def decode(self, tokens, caches, pos):  # tokens (B,) -> logits (B,V)
            x = (self.wte(tokens) + self.wpe.weight[pos]).unsqueeze(1)
            for block, (kc, vc) in zip(self.h, caches):
                x = block.decode(x, kc, vc, pos)
            return self.lm_head(self.ln_f(x))[:, 0]

    return GPT()


def train_bench(torch, model, cfg, s):
    F = torch.nn.functional
    V, B, T = cfg["vocabSize"], s["batch"], s["seq"]
    g = torch.Generator().manual_seed(s["seed"])
    data = torch.randint(V, (B, T + 1), generator=g)
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    step_ms, losses = [], []
    phases = {"zero_grad": [], "forward": [], "loss": [], "backward": [], "optimizer": []}
    for i in range(s["warmupSteps"] + s["trainSteps"]):
        t = [time.perf_counter()]
        opt.zero_grad(set_to_none=True)
        t.append(time.perf_counter())
        logits = model(x)
        t.append(time.perf_counter())
        loss = F.cross_entropy(logits.view(-1, V), y.view(-1))
        t.append(time.perf_counter())
        loss.backward()
        t.append(time.perf_counter())
        opt.step()
        t.append(time.perf_counter())
        losses.append(loss.item())
        if i >= s["warmupSteps"]:
            step_ms.append((t[-1] - t[0]) * 1000)
            for j, p in enumerate(phases):
                phases[p].append((t[j + 1] - t[j]) * 1000)
    med = statistics.median(step_ms)
    return {
        "tokens_per_step": B * T,
        "warmup_steps": s["warmupSteps"],
        "step_ms": step_ms,
        "median_ms": med,
        "tok_s": B * T / med * 1000,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "phases_ms": {p: statistics.median(v) for p, v in phases.items()},
    }


def sample_bench(torch, model, cfg, s):
    S, steps = s["sampleSequences"], s["sampleSteps"]
    H, hd = model.kv_heads, cfg["headDim"]
    g = torch.Generator().manual_seed(s["seed"])
    round_ms = []
    with torch.inference_mode():
        caches = [(torch.zeros(S, H, steps, hd), torch.zeros(S, H, steps, hd)) for _ in range(cfg["nLayers"])]
        for r in range(s["sampleWarmup"] + s["sampleRepeats"]):
            tokens = torch.full((S,), BOS, dtype=torch.long)
            t0 = time.perf_counter()
            for pos in range(steps):
                logits = model.decode(tokens, caches, pos)
                tokens = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=g)[:, 0]
            dt = (time.perf_counter() - t0) * 1000
            if r >= s["sampleWarmup"]:
                round_ms.append(dt)
    med = statistics.median(round_ms)
    return {"tokens": S * steps, "round_ms": round_ms, "median_ms": med, "tok_s": S * steps / med * 1000}


def matmul_bench(torch, m):
    M, K, N = m["M"], m["K"], m["N"]
    g = torch.Generator().manual_seed(1)
    A = torch.rand(M, K, generator=g) * 2 - 1
    B = torch.rand(K, N, generator=g) * 2 - 1
    C = torch.empty(M, N)
    run_ms = []
    for i in range(m["warmup"] + m["repeats"]):
        t0 = time.perf_counter()
        torch.matmul(A, B, out=C)
        dt = (time.perf_counter() - t0) * 1000
        if i >= m["warmup"]:
            run_ms.append(dt)
    med = statistics.median(run_ms)
    return {"run_ms": run_ms, "median_ms": med, "gflops": 2 * M * N * K / (med * 1e6)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", help="spec JSON file, '-' for stdin (default: the bakeoff model)")
    ap.add_argument("--threads", type=int, help="torch threads (overrides the spec)")
    ap.add_argument("--params-only", action="store_true", help="only build the models and print parameter counts")
    args = ap.parse_args()
    if args.spec is None:
        spec = DEFAULT_SPEC
    elif args.spec == "-":
        spec = json.load(sys.stdin)
    else:
        with open(args.spec) as f:
            spec = json.load(f)
    threads = args.threads or spec.get("threads", 2)

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(spec["settings"]["seed"])
    out = {
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "attention": "F.scaled_dot_product_attention",
        "optimizer": "torch.optim.AdamW (default implementation)",
        # OpenMP threads spin while waiting by default; on a busy machine that slows torch a lot.
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "models": {},
    }
    s = spec["settings"]
    for m in spec["models"]:
        cfg = m["config"]
        ms = {**s, **m.get("settings", {})}
        model = build_model(torch, cfg)
        entry = {"params": sum(p.numel() for p in model.parameters())}
        if not args.params_only:
            entry["train"] = train_bench(torch, model, cfg, ms)
            entry["sample"] = sample_bench(torch, model, cfg, ms)
            # ru_maxrss is in KiB on Linux (bytes on macOS): the process's peak so far.
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            entry["peak_rss_mib"] = rss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        out["models"][m["name"]] = entry
        del model
    if not args.params_only and spec.get("matmul", True):
        out["matmul"] = matmul_bench(torch, s["matmul"])
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
