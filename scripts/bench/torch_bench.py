#!/usr/bin/env python3
"""PyTorch reference for `npm run bench`: the same GPT-2 style models, training step, KV-cache
sampling and big matmul as bench/workloads.ts, timed the same way, printed as one JSON object.

bench/run.ts pipes a spec on stdin ({"threads", "settings", "models": [{"name", "config"}]}, with
the TypeScript ModelConfig and BenchSettings field names). Run by hand without --spec it measures
the engine-bakeoff model with the full settings:

    /tmp/bench-venv/bin/python scripts/bench/torch_bench.py [--threads 2] [--spec spec.json|-]

Attention uses F.scaled_dot_product_attention (what nanoGPT uses); the optimizer is
torch.optim.AdamW with its default implementation for CPU tensors.
"""
import argparse
import json
import math
import os
import platform
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


def build_model(torch, cfg):
    nn = torch.nn
    F = torch.nn.functional
    if cfg["arch"] != "gpt2":
        raise SystemExit(f"torch_bench: model arch {cfg['arch']!r} is not supported (only gpt2)")
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
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(cfg["vocabSize"], C)
            self.wpe = nn.Embedding(cfg["maxSeqLen"], C)
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(C, eps=eps)
            self.lm_head = nn.Linear(C, cfg["vocabSize"], bias=False)
            if cfg["tiedEmbeddings"]:
                self.lm_head.weight = self.wte.weight
            # GPT-2 initialisation, as src/model/transformer.ts.
            for name, p in self.named_parameters():
                if p.dim() == 1:
                    nn.init.ones_(p) if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight" else nn.init.zeros_(p)
                else:
                    residual = name.endswith("c_proj.weight") or name.endswith("mlp_proj.weight")
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L) if residual else 0.02)

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
    H, hd = cfg["nHeads"], cfg["headDim"]
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
        model = build_model(torch, cfg)
        entry = {"params": sum(p.numel() for p in model.parameters())}
        if not args.params_only:
            entry["train"] = train_bench(torch, model, cfg, s)
            entry["sample"] = sample_bench(torch, model, cfg, s)
        out["models"][m["name"]] = entry
    if not args.params_only:
        out["matmul"] = matmul_bench(torch, s["matmul"])
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
