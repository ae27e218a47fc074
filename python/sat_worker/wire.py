"""Wire format of the worker protocol (docs/worker-protocol.md): one JSON object per line; bulk
arrays travel as {"dtype": "i32" | "f32" | "f64", "b64": <base64 of the little-endian bytes>}."""

import base64
import math

import numpy as np

_DTYPES = {"i32": "<i4", "f32": "<f4", "f64": "<f8"}


class ProtocolError(Exception):
    """A request the worker cannot read (bad field, shape or type): reported back in one line."""


def encode(array, dtype: str) -> dict:
    a = np.ascontiguousarray(np.asarray(array, dtype=_DTYPES[dtype]))
    return {"dtype": dtype, "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode(value, field: str, dtype: str, length: int | None = None) -> np.ndarray:
    if not isinstance(value, dict) or value.get("dtype") != dtype or not isinstance(value.get("b64"), str):
        raise ProtocolError(f"field {field}: expected a {dtype} array ({{dtype, b64}})")
    raw = base64.b64decode(value["b64"])
    width = np.dtype(_DTYPES[dtype]).itemsize
    if len(raw) % width:
        raise ProtocolError(f"field {field}: {len(raw)} bytes is not a whole number of {dtype} values")
    out = np.frombuffer(raw, dtype=_DTYPES[dtype])
    if length is not None and out.shape[0] != length:
        raise ProtocolError(f"field {field}: {out.shape[0]} values, expected {length}")
    return out


def number(msg: dict, field: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    v = msg.get(field)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi):
        raise ProtocolError(f"field {field}: expected a number in [{lo}, {hi}], got {v!r}")
    return float(v)


def integer(msg: dict, field: str, lo: int = 0) -> int:
    v = msg.get(field)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ProtocolError(f"field {field}: expected an integer ≥ {lo}, got {v!r}")
    return v


def ragged(tokens: np.ndarray, lengths: np.ndarray, field: str) -> list[np.ndarray]:
    """Splits a concatenation into pieces of the given lengths."""
    if lengths.sum() != tokens.shape[0]:
        raise ProtocolError(f"field {field}: lengths add up to {int(lengths.sum())}, got {tokens.shape[0]} tokens")
    ends = np.cumsum(lengths)
    return [tokens[e - n : e] for n, e in zip(lengths, ends)]
