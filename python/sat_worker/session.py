"""Turn sessions (contracts/member.ts) on a transformers model with one batched KV cache over all of
a session's episodes. Episodes advance independently: every forward appends the same number of
cache slots to every row, a row's real tokens are right-aligned in its slots and the rest are
masked out (attention mask 0) with explicit per-row positions, so a row's cache holds exactly its
transcript. At its turn the agent catches up on the tokens written since it last spoke in one
forward, then samples with the request's uniforms (sampling.py)."""

import numpy as np
import torch
from transformers import DynamicCache

from .sampling import sample_rows
from .wire import ProtocolError, decode, integer, number, ragged


class Session:
    def __init__(self, agent, episodes: int, max_length: int):
        self.agent = agent
        self.episodes = episodes
        self.max_length = max_length
        self.reset()

    def reset(self) -> None:
        self.cache = DynamicCache()
        self.mask = torch.zeros((self.episodes, 0), dtype=torch.long, device=self.agent.device)
        self.fed: list[list[int]] = [[] for _ in range(self.episodes)]

    def forward(self, chunks: list[list[int]]) -> torch.Tensor:
        """Appends chunks[ep] to each row (right-aligned, the rest masked); returns the last logits (E, V)."""
        E = self.episodes
        q = max(len(c) for c in chunks)
        ids = torch.zeros((E, q), dtype=torch.long)
        new_mask = torch.zeros((E, q), dtype=torch.long)
        pos = torch.zeros((E, q), dtype=torch.long)
        for ep, c in enumerate(chunks):
            start = len(self.fed[ep])
            off = q - len(c)
            pos[ep, :off] = start
            if c:
                ids[ep, off:] = torch.tensor(c)
                new_mask[ep, off:] = 1
                pos[ep, off:] = torch.arange(start, start + len(c))
                self.fed[ep].extend(c)
        dev = self.agent.device
        self.mask = torch.cat([self.mask, new_mask.to(dev)], dim=1)
        with torch.no_grad():
            out = self.agent.model(input_ids=ids.to(dev), attention_mask=self.mask, position_ids=pos.to(dev),
                                   past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.cache = out.past_key_values
        return out.logits[:, -1, :]

    def write_turn(self, msg: dict) -> dict:
        agent = self.agent
        eps = [int(e) for e in decode(msg.get("episodes"), "episodes", "i32")]
        n = len(eps)
        transcripts = ragged(decode(msg.get("tokens"), "tokens", "i32"), decode(msg.get("lengths"), "lengths", "i32", n), "tokens")
        max_tokens = integer(msg, "max_tokens", 0)
        max_length = decode(msg.get("max_length"), "max_length", "i32", n)
        uniforms = torch.from_numpy(decode(msg.get("uniforms"), "uniforms", "f64", n * max_tokens).copy())
        temperature = number(msg, "temperature", 0)
        top_p = number(msg, "top_p", 0, 1)
        stops = set(int(t) for t in msg.get("end_turn", [])) | set(int(t) for t in msg.get("end_episode", []))
        if len(set(eps)) != n or any(e < 0 or e >= self.episodes for e in eps):
            raise ProtocolError(f"field episodes: ids must be distinct and in [0, {self.episodes})")
        for i, tr in enumerate(transcripts):
            if len(tr) == 0 or len(tr) > self.max_length or len(tr) > agent.max_seq_len:
                raise ProtocolError(f"episode {eps[i]}: a transcript of {len(tr)} tokens does not fit the session ({self.max_length})")
            if tr.min() < 0 or tr.max() >= agent.vocab_size:
                raise ProtocolError(f"episode {eps[i]}: a token lies outside the vocabulary [0, {agent.vocab_size})")
        trs = [tr.tolist() for tr in transcripts]
        # A cache that is not a prefix of the transcript (another caller's history) is rebuilt.
        if any(len(self.fed[ep]) >= len(tr) or self.fed[ep] != tr[: len(self.fed[ep])] for ep, tr in zip(eps, trs)):
            self.reset()
        agent.activate()
        chunks = [[] for _ in range(self.episodes)]
        for ep, tr in zip(eps, trs):
            chunks[ep] = tr[len(self.fed[ep]):]
        logits = self.forward(chunks)
        written = [[] for _ in range(n)]
        logps = [[] for _ in range(n)]
        open_ = [len(tr) < int(max_length[i]) for i, tr in enumerate(trs)]
        for k in range(max_tokens):
            live = [i for i in range(n) if open_[i]]
            if not live:
                break
            rows = torch.tensor([eps[i] for i in live], device=logits.device)
            u = uniforms[torch.tensor(live) * max_tokens + k]
            tokens, logp = sample_rows(logits[rows], temperature, top_p, u)
            tokens, logp = tokens.tolist(), logp.tolist()  # one transfer from the device per step
            feed = [[] for _ in range(self.episodes)]
            for j, i in enumerate(live):
                t = tokens[j]
                written[i].append(t)
                logps[i].append(logp[j])
                if t in stops or len(trs[i]) + len(written[i]) >= int(max_length[i]):
                    open_[i] = False
                else:
                    feed[eps[i]] = [t]
            if k + 1 < max_tokens and any(feed):
                logits = self.forward(feed)
            else:
                break
        # Tokens sampled but not fed (the last of the turn) are caught up at the agent's next turn.
        return {
            "lengths": np.array([len(w) for w in written], dtype=np.int32),
            "tokens": np.array([t for w in written for t in w], dtype=np.int32),
            "logp": np.array([x for l in logps for x in l], dtype=np.float64),
        }
