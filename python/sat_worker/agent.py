"""One agent in a worker: a transformers causal LM (or one PEFT LoRA adapter on a base shared with
other agents), its AdamW state, and the learner side of contracts/learner.ts — begin_update,
step, measure, set_step_scale, end_update, snapshot/restore — with the surrogate's exact formula:
clipped sequence or token ratios, β · exact full-vocabulary KL(π_θ ‖ π_cur), prior-weighted means.

The state before token t of a trajectory is its prefix tokens[0..t); its policy is
softmax(logits / temperature). Log-prob rows are computed in float64 from the model's logits when
the model is float32 (float32 otherwise), the precision the engine uses, so both backends agree.
π_cur's rows are cached for the update when they fit in ref_cache_mb, else recomputed from θ_cur;
rows are formed a block of states at a time, so memory does not grow with states × vocabulary.
"""

import contextlib
import math
import os

import numpy as np
import torch

from .optim import AdamW
from .wire import ProtocolError, decode, integer, number, ragged

OPTIMIZER_FILE = "torch_optimizer.safetensors"
MAX_SNAPSHOTS = 4
# Log-prob rows are formed this many elements at a time (states × vocabulary).
ROW_BLOCK_ELEMENTS = 1 << 22


class Agent:
    def __init__(self, model, adapter: str | None, device: torch.device, temperature: float, optim: dict,
                 micro_batch: int, ref_cache_mb: float, row_block: int = ROW_BLOCK_ELEMENTS):
        self.model = model  # a transformers model, or the PeftModel holding this agent's adapter
        self.adapter = adapter
        self.device = device
        self.temperature = temperature
        self.micro_batch = micro_batch
        self.ref_cache_bytes = ref_cache_mb * 2**20
        self.row_block = row_block
        base = model.get_base_model() if adapter else model
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        self.vocab_size = int(self.head.weight.shape[0])
        cfg = base.config
        self.max_seq_len = int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions"))
        if adapter:
            self.params = [(n, p) for n, p in model.named_parameters() if f".{adapter}." in n]
        else:
            self.params = [(n, p) for n, p in model.named_parameters()]
        for _, p in self.params:
            p.requires_grad_(True)
        param_dtype = self.params[0][1].dtype
        # float64 rows from float32/float64 logits (the engine's precision); float32 from bfloat16 ones.
        self.row_dtype = torch.float32 if torch.bfloat16 in (param_dtype, self.head.weight.dtype) else torch.float64
        self.optim = AdamW(self.params, optim["lr"], optim["beta1"], optim["beta2"], optim["eps"],
                           optim["weight_decay"], optim["max_grad_norm"])
        self.update = None  # the update in progress (begin_update … end_update)
        self.snapshots: dict[int, dict] = {}
        self.next_snapshot = 1

    def activate(self) -> None:
        if self.adapter:
            self.model.set_adapter(self.adapter)
            for _, p in self.params:
                p.requires_grad_(True)

    # ------------------------------------------------------------------------------------------
    # Log-prob rows. One decoder forward per chunk of trajectories (micro_batch_size) gives the
    # hidden states at the scored positions; the output layer and the log-softmax then run over
    # blocks of states (ROW_BLOCK_ELEMENTS / V each), so a 150k-token vocabulary never needs all
    # of a chunk's rows at once.

    def hidden(self, trajs: list, traj_ids, state_t: np.ndarray, offsets: np.ndarray, grad: bool):
        """Final hidden states (S_sub, H) at the states of trajectories traj_ids (in that order)."""
        ks = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in traj_ids])
        T = int(state_t[ks].max())
        ids = torch.zeros((len(traj_ids), T), dtype=torch.long)
        b_of = np.empty(ks.size, dtype=np.int64)
        row = 0
        for b, i in enumerate(traj_ids):
            tok = trajs[i][:T]
            ids[b, : len(tok)] = torch.from_numpy(tok.astype(np.int64))
            n = offsets[i + 1] - offsets[i]
            b_of[row: row + n] = b
            row += n
        with torch.set_grad_enabled(grad):
            out = self.decoder(input_ids=ids.to(self.device), use_cache=False).last_hidden_state
            b_idx = torch.from_numpy(b_of).to(self.device)
            pos = torch.from_numpy(state_t[ks].astype(np.int64) - 1).to(self.device)
            return out[b_idx, pos], ks

    def log_rows(self, h: torch.Tensor) -> torch.Tensor:
        """log softmax(head(h) / T) in the row dtype."""
        return torch.log_softmax(self.head(h).to(self.row_dtype) * (1.0 / self.temperature), dim=1)

    def blocks(self, n: int):
        size = max(1, self.row_block // self.vocab_size)
        for b in range(0, n, size):
            yield slice(b, min(n, b + size))

    def chunks(self, traj_ids):
        for c in range(0, len(traj_ids), self.micro_batch):
            yield traj_ids[c: c + self.micro_batch]

    @contextlib.contextmanager
    def at_theta_cur(self):
        """Parameters temporarily replaced by θ_cur (no copy: the storages are swapped)."""
        u = self.update
        with torch.no_grad():
            for (_, p), cur in zip(self.params, u["cur"]):
                p.data, cur.data = cur.data, p.data
        try:
            yield
        finally:
            with torch.no_grad():
                for (_, p), cur in zip(self.params, u["cur"]):
                    p.data, cur.data = cur.data, p.data

    def cur_source(self, traj_ids):
        """π_cur's rows for a chunk: the cached rows, or the chunk's hidden states under θ_cur."""
        u = self.update
        if u["cur_rows"] is not None:
            return None
        with self.at_theta_cur(), torch.no_grad():
            h, _ = self.hidden(u["trajs"], traj_ids, u["state_t"], u["offsets"], grad=False)
        return h

    def cur_block(self, h_cur, ks: np.ndarray, blk: slice) -> torch.Tensor:
        u = self.update
        if h_cur is None:
            return u["cur_rows"][torch.from_numpy(ks[blk]).to(self.device)]
        with self.at_theta_cur(), torch.no_grad():
            return self.log_rows(h_cur[blk])

    def acted(self) -> list:
        o = self.update["offsets"]
        return [i for i in range(len(o) - 1) if o[i + 1] > o[i]]

    # ------------------------------------------------------------------------------------------
    # The learner (contracts/learner.ts)

    def begin_update(self, msg: dict) -> dict:
        lengths = decode(msg.get("lengths"), "lengths", "i32")
        trajs = ragged(decode(msg.get("tokens"), "tokens", "i32"), lengths, "tokens")
        N = len(trajs)
        offsets = decode(msg.get("offsets"), "offsets", "i32", N + 1).astype(np.int64)
        S = int(offsets[-1]) if N else 0
        state_traj = decode(msg.get("state_traj"), "state_traj", "i32", S).astype(np.int64)
        state_t = decode(msg.get("state_t"), "state_t", "i32", S).astype(np.int64)
        owner = np.repeat(np.arange(N), np.diff(offsets)) if N else np.zeros(0, dtype=np.int64)
        lens = np.array([len(t) for t in trajs], dtype=np.int64)
        bad = np.nonzero((state_traj != owner) | (state_t < 1) | (state_t >= lens[state_traj] if S else False))[0]
        if bad.size:
            k = int(bad[0])
            raise ProtocolError(f"state {k} (trajectory {state_traj[k]}, t={state_t[k]}) is not a scored position of trajectory {owner[k]}")
        ratio = msg.get("ratio")
        if ratio not in ("sequence", "token"):
            raise ProtocolError(f"field ratio: expected sequence or token, got {ratio!r}")
        f64 = lambda field: torch.from_numpy(decode(msg.get(field), field, "f64", N).copy())
        chosen_tok = torch.from_numpy(np.array([trajs[state_traj[k]][state_t[k]] for k in range(S)], dtype=np.int64))
        if S and (chosen_tok.min() < 0 or chosen_tok.max() >= self.vocab_size):
            raise ProtocolError(f"a chosen token lies outside the vocabulary [0, {self.vocab_size})")
        self.update = u = {
            "trajs": trajs, "offsets": offsets, "state_t": state_t, "tokens": chosen_tok.to(self.device),
            "adv": f64("adv"), "w": f64("w"), "prior": f64("prior"),
            "clip_low": number(msg, "clip_low", 0, 1), "clip_high": number(msg, "clip_high", 0),
            "beta": number(msg, "beta", 0), "ratio": ratio,
            "cur": [p.detach().clone() for _, p in self.params], "end": None, "cur_rows": None,
        }
        keep_rows = S * self.vocab_size * 8 <= self.ref_cache_bytes
        if keep_rows:
            u["cur_rows"] = torch.zeros((S, self.vocab_size), dtype=self.row_dtype, device=self.device)
        chosen = torch.zeros(S, dtype=torch.float64)
        entropy = torch.zeros(S, dtype=torch.float64)
        with torch.no_grad():
            for c in self.chunks(self.acted()):
                h, ks = self.hidden(trajs, c, state_t, offsets, grad=False)
                for blk in self.blocks(ks.size):
                    rows = self.log_rows(h[blk])
                    kb = torch.from_numpy(ks[blk])
                    chosen[kb] = rows.gather(1, u["tokens"][kb.to(self.device)].view(-1, 1)).view(-1).double().cpu()
                    p = torch.exp(rows)
                    entropy[kb] = (-torch.where(p > 0, p * rows, torch.zeros_like(rows)).sum(1)).double().cpu()
                    if keep_rows:
                        u["cur_rows"][kb.to(self.device)] = rows
        u["cur_chosen"] = chosen.to(self.device)
        return {"chosen": chosen.numpy(), "entropy": entropy.numpy()}

    def _current(self) -> dict:
        if self.update is None:
            raise ProtocolError("step, measure, set_step_scale or end_update outside an update (begin_update first)")
        return self.update

    def step(self, msg: dict) -> dict:
        """One optimizer step on the surrogate over the minibatch. The clip term depends on the chosen
        tokens' log-probs only: its gradient with respect to them is taken first, then each block of
        rows is back-propagated with that gradient and its share of β·KL, and the decoder once."""
        u = self._current()
        offsets = u["offsets"]
        N = len(u["trajs"])
        mb = [int(i) for i in decode(msg.get("minibatch"), "minibatch", "i32")]
        if any(i < 0 or i >= N for i in mb):
            raise ProtocolError(f"field minibatch: trajectory index outside [0, {N})")
        counts = {i: int(offsets[i + 1] - offsets[i]) for i in mb}
        if sum(counts.values()) == 0:
            return {"grad_norm": None}
        token = u["ratio"] == "token"
        prior = u["prior"]
        norm_clip = sum(float(prior[i]) * (counts[i] if token else 1) for i in mb)
        norm_kl = sum(float(prior[i]) * counts[i] for i in mb)
        log_lo, log_hi = math.log(1 - u["clip_low"]), math.log(1 + u["clip_high"])
        beta = u["beta"]
        need_kl = beta != 0 and norm_kl > 0
        self.optim.zero_grad()
        for c in self.chunks([i for i in mb if counts[i] > 0]):
            h_cur = self.cur_source(c) if need_kl else None
            h, ks = self.hidden(u["trajs"], c, u["state_t"], offsets, grad=True)
            leaf = h.detach().requires_grad_(True)
            kd = torch.from_numpy(ks).to(self.device)
            tokens = u["tokens"][kd].view(-1, 1)
            with torch.no_grad():
                chosen = torch.cat([self.log_rows(leaf[blk]).gather(1, tokens[blk]).view(-1).double()
                                    for blk in self.blocks(ks.size)])
            # d(−clip objective)/d(chosen log-probs), exactly as the whole objective would give it.
            x = chosen.clone().requires_grad_(True)
            diff = x - u["cur_chosen"][kd]
            n = torch.tensor([counts[i] for i in c], device=self.device)
            ci = torch.tensor(c)
            A = u["adv"][ci].to(self.device)
            # An all-zero prior leaves the clip term without a gradient, as in the engine.
            ww = (u["w"][ci] * prior[ci]).to(self.device) / norm_clip if norm_clip > 0 else torch.zeros_like(A)
            if token:
                objective = (ww.repeat_interleave(n) * clipped(diff, A.repeat_interleave(n), log_lo, log_hi)).sum()
            else:
                seg = torch.arange(len(c), device=self.device).repeat_interleave(n)
                usum = torch.zeros(len(c), dtype=torch.float64, device=self.device).index_add(0, seg, diff)
                objective = (ww * clipped(usum, A, log_lo, log_hi)).sum()
            (g_chosen,) = torch.autograd.grad(-objective, x)
            sw = (prior[ci].to(self.device) / norm_kl).repeat_interleave(n) if need_kl else None
            for blk in self.blocks(ks.size):
                cur = self.cur_block(h_cur, ks, blk) if need_kl else None
                rows = self.log_rows(leaf[blk])
                loss = (g_chosen[blk].to(rows.dtype) * rows.gather(1, tokens[blk]).view(-1)).sum()
                if cur is not None:
                    loss = loss + beta * (sw[blk].to(rows.dtype) * kl_rows(rows, cur)).sum()
                loss.backward()
            h.backward(leaf.grad)
        norm = self.optim.clip_and_step()
        self.optim.zero_grad()  # gradients are not kept between steps (memory during rollouts)
        return {"grad_norm": norm if math.isfinite(norm) else None}

    def measure(self, msg: dict) -> dict:
        u = self._current()
        S = int(u["offsets"][-1])
        chosen = torch.zeros(S, dtype=torch.float64)
        kl = torch.zeros(S, dtype=torch.float64)
        tv = torch.zeros(S, dtype=torch.float64)
        with torch.no_grad():
            for c in self.chunks(self.acted()):
                h_cur = self.cur_source(c)
                h, ks = self.hidden(u["trajs"], c, u["state_t"], u["offsets"], grad=False)
                for blk in self.blocks(ks.size):
                    rows = self.log_rows(h[blk])
                    cur = self.cur_block(h_cur, ks, blk)
                    kb = torch.from_numpy(ks[blk])
                    chosen[kb] = rows.gather(1, u["tokens"][kb.to(self.device)].view(-1, 1)).view(-1).double().cpu()
                    kl[kb] = torch.clamp(kl_rows(rows, cur), min=0).double().cpu()
                    tv[kb] = (0.5 * (torch.exp(rows) - torch.exp(cur)).abs().sum(1)).double().cpu()
        return {"chosen": chosen.numpy(), "kl": kl.numpy(), "tv": tv.numpy()}

    def set_step_scale(self, msg: dict) -> dict:
        u = self._current()
        scale = number(msg, "scale", 0, 1)
        with torch.no_grad():
            if u["end"] is None:
                u["end"] = [p.detach().clone() for _, p in self.params]
            for (_, p), cur, end in zip(self.params, u["cur"], u["end"]):
                if scale == 1:
                    p.copy_(end)
                elif scale == 0:
                    p.copy_(cur)
                else:
                    dt = torch.float64 if p.device.type == "cpu" else torch.float32
                    p.copy_(cur.to(dt) + scale * (end.to(dt) - cur.to(dt)))
        return {}

    def end_update(self, msg: dict) -> dict:
        self._current()
        self.optim.scale_first_moment(number(msg, "kept", 0, 1))
        self.update = None
        return {}

    def snapshot(self, msg: dict) -> dict:
        sid = self.next_snapshot
        self.next_snapshot += 1
        self.snapshots[sid] = {"params": [p.detach().to("cpu", copy=True) for _, p in self.params],
                               "optim": self.optim.snapshot()}
        # Remote snapshots cannot be freed by the caller's garbage collector: keep the newest few.
        while len(self.snapshots) > MAX_SNAPSHOTS:
            del self.snapshots[min(self.snapshots)]
        return {"snapshot": sid}

    def restore(self, msg: dict) -> dict:
        sid = integer(msg, "snapshot", 1)
        s = self.snapshots.get(sid)
        if s is None:
            raise ProtocolError(f"snapshot {sid} is unknown or was released (a worker keeps the newest {MAX_SNAPSHOTS})")
        with torch.no_grad():
            for (_, p), saved in zip(self.params, s["params"]):
                p.copy_(saved)
        self.optim.restore(s["optim"])
        return {}

    def score(self, msg: dict) -> dict:
        """Log-probs of chosen tokens at given positions, outside any update."""
        lengths = decode(msg.get("lengths"), "lengths", "i32")
        trajs = ragged(decode(msg.get("tokens"), "tokens", "i32"), lengths, "tokens")
        state_traj = decode(msg.get("state_traj"), "state_traj", "i32").astype(np.int64)
        state_t = decode(msg.get("state_t"), "state_t", "i32", state_traj.shape[0]).astype(np.int64)
        order = np.argsort(state_traj, kind="stable")
        st, tt = state_traj[order], state_t[order]
        offsets = np.searchsorted(st, np.arange(len(trajs) + 1)).astype(np.int64)
        for k in range(st.size):
            if not (0 <= st[k] < len(trajs)) or not (1 <= tt[k] < len(trajs[st[k]])):
                raise ProtocolError(f"state (trajectory {st[k]}, t={tt[k]}) is not a scored position")
        out = np.zeros(st.size)
        with torch.no_grad():
            for c in self.chunks([i for i in range(len(trajs)) if offsets[i + 1] > offsets[i]]):
                h, ks = self.hidden(trajs, c, tt, offsets, grad=False)
                tok = torch.tensor([int(trajs[st[k]][tt[k]]) for k in ks], device=self.device).view(-1, 1)
                for blk in self.blocks(ks.size):
                    out[ks[blk]] = self.log_rows(h[blk]).gather(1, tok[blk]).view(-1).double().cpu().numpy()
        result = np.zeros(st.size)
        result[order] = out
        return {"logp": result}

    # ------------------------------------------------------------------------------------------
    # Checkpoints

    def save(self, path: str) -> None:
        from safetensors.torch import save_file

        os.makedirs(path, exist_ok=True)
        if self.adapter:
            from peft import get_peft_model_state_dict

            state = get_peft_model_state_dict(self.model, adapter_name=self.adapter)
            save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()},
                      os.path.join(path, "adapter_model.safetensors"), metadata={"format": "pt"})
            self.model.peft_config[self.adapter].save_pretrained(path)
        else:
            self.model.save_pretrained(path, safe_serialization=True)
        # The step count is a tensor: safetensors writes metadata keys in no fixed order, and a
        # checkpoint must be the same bytes whenever it holds the same state.
        tensors = {**self.optim.tensors(), "step": torch.tensor(self.optim.step_count, dtype=torch.int64)}
        save_file(tensors, os.path.join(path, OPTIMIZER_FILE), metadata={"format": "pt"})

    def load_optimizer(self, path: str) -> None:
        from safetensors import safe_open

        file = os.path.join(path, OPTIMIZER_FILE)
        if not os.path.exists(file):
            raise FileNotFoundError(f"{file}: file not found (a checkpoint of a torch agent holds its optimizer state there)")
        with safe_open(file, framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        step = tensors.pop("step", None)
        if step is None or step.dim() != 0:
            raise ValueError(f"{file}: no step count (a 0-d tensor named step)")
        self.optim.load_tensors({k: v.to(self.device) for k, v in tensors.items()}, int(step), file)


def clipped(u: torch.Tensor, A: torch.Tensor, log_lo: float, log_hi: float) -> torch.Tensor:
    """min(e^u·A, e^clip(u)·A); on a tie the unclipped branch carries the gradient (PPO convention)."""
    unclipped = torch.exp(u) * A
    clip = torch.exp(torch.clamp(u, log_lo, log_hi)) * A
    return torch.where(unclipped <= clip, unclipped, clip)


def kl_rows(rows: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-row KL(exp(rows) ‖ exp(ref)); zero-probability entries contribute nothing."""
    p = torch.exp(rows)
    return torch.where(p > 0, p * (rows - ref), torch.zeros_like(rows)).sum(1)
