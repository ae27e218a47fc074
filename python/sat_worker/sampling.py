"""The sampling rule of contracts/member.ts, so a worker given the engine's weights and uniforms
writes the engine's tokens: softmax(logits / T) in float64, top-p truncated to the smallest set of
most likely tokens (ties by id) whose mass reaches p and renormalised, then the inverse CDF in
token-id order at the request's uniform. T = 0 is greedy (lowest id on ties), log-prob 0."""

import torch


def sample_rows(logits: torch.Tensor, temperature: float, top_p: float, uniforms: torch.Tensor):
    """logits (R, V) of any float dtype, uniforms (R,) float64 → (tokens (R,) int64, logp (R,) float64)."""
    if temperature == 0:
        tokens = torch.argmax(logits, dim=1)  # first maximum, as the engine's strict '>' scan
        return tokens, torch.zeros(tokens.shape[0], dtype=torch.float64, device=tokens.device)
    z = logits.double()
    top = z.max(dim=1, keepdim=True).values
    e = torch.exp((z - top) * (1.0 / temperature))
    probs = e / e.sum(dim=1, keepdim=True)
    if top_p < 1:
        # Descending probability, ties by ascending id (a stable sort of the negated values).
        order = torch.sort(-probs, dim=1, stable=True).indices
        sorted_p = torch.gather(probs, 1, order)
        cum = torch.cumsum(sorted_p, dim=1)
        # The engine adds tokens while the running mass is < top_p: keep = 1 + #(cum[k-1] < top_p).
        before = torch.cat([torch.zeros_like(cum[:, :1]), cum[:, :-1]], dim=1)
        keep_sorted = before < top_p
        kept_mass = torch.where(keep_sorted, sorted_p, torch.zeros_like(sorted_p)).sum(dim=1, keepdim=True)
        keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
        probs = torch.where(keep, probs, torch.zeros_like(probs)) / kept_mass
    total = probs.sum(dim=1, keepdim=True)
    cdf = torch.cumsum(probs, dim=1)
    target = uniforms.to(device=probs.device, dtype=torch.float64).view(-1, 1) * total
    above = cdf > target
    has = above.any(dim=1)
    first = torch.argmax(above.to(torch.int8), dim=1)
    # Rounding can leave no index above u·total: the last index with non-zero weight, as the engine.
    V = probs.shape[1]
    last_nonzero = V - 1 - torch.argmax(torch.flip(probs > 0, dims=[1]).to(torch.int8), dim=1)
    tokens = torch.where(has, first, last_nonzero)
    logp = torch.log(torch.gather(probs, 1, tokens.view(-1, 1)).view(-1))
    return tokens, logp
