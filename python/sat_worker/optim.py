"""AdamW over named tensors with the engine's exact arithmetic (src/engine/adamw.ts, torch.optim.AdamW
semantics): decoupled decay p·(1 − lr·wd) on matrices and embeddings (tensors of rank ≥ 2), bias
corrections, eps outside the square root, gradient-norm clipping as clip_grad_norm_. On CPU the
update is computed in float64 and rounded into the stored dtypes, as the engine does, so the two
backends take the same steps; on GPU it runs in float32. First moments can be scaled (the trust
region's kept fraction); second moments and the step count are never rewound."""

import math

import torch


class AdamW:
    def __init__(self, params: list, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, max_grad_norm: float):
        self.params = params  # [(name, Parameter)]
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.weight_decay, self.max_grad_norm = weight_decay, max_grad_norm
        self.step_count = 0
        moment = lambda p: torch.zeros_like(p, dtype=torch.float32 if p.dtype != torch.float64 else p.dtype)
        self.m = {n: moment(p) for n, p in params}
        self.v = {n: moment(p) for n, p in params}

    def _math(self, p: torch.Tensor) -> torch.dtype:
        return torch.float64 if p.device.type == "cpu" else torch.float32

    def zero_grad(self) -> None:
        for _, p in self.params:
            p.grad = None

    def clip_and_step(self) -> float:
        """Clips the gradients' global norm, takes one step when it is finite; returns the norm."""
        grads = [(p.grad if p.grad is not None else torch.zeros_like(p)) for _, p in self.params]
        sq = sum(float(torch.sum(g.to(self._math(g)) ** 2)) for g in grads)
        norm = math.sqrt(sq)
        if not math.isfinite(norm):
            return norm
        if self.max_grad_norm > 0:
            coef = self.max_grad_norm / (norm + 1e-6)
            if coef < 1:
                grads = [(g.to(self._math(g)) * coef).to(g.dtype) for g in grads]
        self.step_count += 1
        t = self.step_count
        bc1 = 1 - self.beta1 ** t
        bc2_sqrt = math.sqrt(1 - self.beta2 ** t)
        step_size = self.lr / bc1
        decay = 1 - self.lr * self.weight_decay
        with torch.no_grad():
            for (name, p), g in zip(self.params, grads):
                dt = self._math(p)
                pd = p.to(dt)
                if self.weight_decay != 0 and p.dim() >= 2:
                    pd = pd * decay
                gd = g.to(dt)
                m, v = self.m[name], self.v[name]
                m.copy_(self.beta1 * m.to(dt) + (1 - self.beta1) * gd)
                v.copy_(self.beta2 * v.to(dt) + (1 - self.beta2) * gd * gd)
                # The stored (rounded) moments enter the update, as in the engine and torch.
                p.copy_(pd - (step_size * m.to(dt)) / (torch.sqrt(v.to(dt)) / bc2_sqrt + self.eps))
        return norm

    def scale_first_moment(self, factor: float) -> None:
        with torch.no_grad():
            for m in self.m.values():
                if factor == 0:
                    m.zero_()
                elif factor != 1:
                    m.copy_(m.to(self._math(m)) * factor)

    def snapshot(self) -> dict:
        return {"step": self.step_count,
                "m": {n: t.detach().to("cpu", copy=True) for n, t in self.m.items()},
                "v": {n: t.detach().to("cpu", copy=True) for n, t in self.v.items()}}

    def restore(self, s: dict) -> None:
        with torch.no_grad():
            for n in self.m:
                self.m[n].copy_(s["m"][n])
                self.v[n].copy_(s["v"][n])
        self.step_count = s["step"]

    def tensors(self) -> dict:
        """The state as named tensors (exp_avg.<param>, exp_avg_sq.<param>) for a safetensors file."""
        out = {}
        for n in self.m:
            out[f"exp_avg.{n}"] = self.m[n].detach().to("cpu").contiguous()
            out[f"exp_avg_sq.{n}"] = self.v[n].detach().to("cpu").contiguous()
        return out

    def load_tensors(self, tensors: dict, step: int, where: str) -> None:
        missing = [n for n in self.m if f"exp_avg.{n}" not in tensors or f"exp_avg_sq.{n}" not in tensors]
        if missing:
            raise ValueError(f"{where}: optimizer state lacks {missing[0]} (it belongs to another model)")
        with torch.no_grad():
            for n in self.m:
                for key, dst in ((f"exp_avg.{n}", self.m[n]), (f"exp_avg_sq.{n}", self.v[n])):
                    src = tensors[key]
                    if tuple(src.shape) != tuple(dst.shape):
                        raise ValueError(f"{where}: {key} has shape {list(src.shape)}, the model {list(dst.shape)}")
                    dst.copy_(src)
        self.step_count = step
