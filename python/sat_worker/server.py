"""The worker: holds agents and turn sessions, and answers protocol requests
(docs/worker-protocol.md). `Worker.handle` maps one decoded request to one reply; `serve` runs it
over JSON lines on stdin/stdout (a Ray actor calls `handle` directly). Everything a request gets
wrong is answered with ok = false and one line; the worker keeps running."""

import json
import math
import os
import platform
import signal
import sys
import time
import traceback

import numpy as np

from . import PROTOCOL_VERSION, __version__
from .wire import ProtocolError, encode, integer, number


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_device(name: str, index: int):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ProtocolError("device cuda requested but torch sees no CUDA device (backend.torch_device=cpu runs on the CPU)")
        return torch.device("cuda", index % torch.cuda.device_count())
    if name != "cpu":
        raise ProtocolError(f"field device: expected cpu, cuda or auto, got {name!r}")
    return torch.device("cpu")


class Faults:
    """Test hook: SAT_WORKER_FAULT="op:n:kind[,…]" makes the n-th call of op exit, hang or return NaN."""

    def __init__(self, spec: str):
        self.rules = []
        for part in filter(None, spec.split(",")):
            op, n, kind = part.split(":")
            self.rules.append((op, int(n), kind))
        self.calls: dict[str, int] = {}

    def before(self, op: str) -> str | None:
        self.calls[op] = self.calls.get(op, 0) + 1
        for rop, n, kind in self.rules:
            if rop == op and n == self.calls[op]:
                if kind == "exit":
                    print(f"sat_worker: injected fault: exit during {op}", file=sys.stderr, flush=True)
                    os._exit(3)
                if kind == "hang":
                    time.sleep(10**6)
                return kind
        return None


class Worker:
    def __init__(self):
        _quiet_libraries()
        self.agents: dict[int, object] = {}
        self.bases: dict[tuple, object] = {}  # (base path, dtype, device) → PeftModel shared by LoRA agents
        self.sessions: dict[int, object] = {}
        self.next_session = 1
        self.faults = Faults(os.environ.get("SAT_WORKER_FAULT", ""))

    # ------------------------------------------------------------------------------------------

    def handle(self, msg: dict) -> dict:
        rid = msg.get("id") if isinstance(msg, dict) else None
        try:
            if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
                raise ProtocolError("a request is a JSON object with an op")
            op = msg["op"]
            fn = getattr(self, "op_" + op, None)
            if fn is None:
                raise ProtocolError(f"unknown op {op!r}")
            fault = self.faults.before(op)
            result = fn(msg)
            if fault == "nan":
                result = _poison(result)
            return {"id": rid, "ok": True, **_encode_result(result)}
        except ProtocolError as e:
            return {"id": rid, "ok": False, "error": str(e)}
        except Exception as e:  # an internal failure: one line back, the trace on stderr
            traceback.print_exc(file=sys.stderr)
            return {"id": rid, "ok": False, "error": f"{type(e).__name__}: {_one_line(str(e))}"}

    def _agent(self, msg: dict):
        a = integer(msg, "agent", 0)
        if a not in self.agents:
            raise ProtocolError(f"agent {a} is not loaded in this worker")
        agent = self.agents[a]
        agent.activate()
        return agent

    # ------------------------------------------------------------------------------------------
    # Ops

    def op_hello(self, msg: dict) -> dict:
        if msg.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(f"protocol {msg.get('protocol')!r} requested, this worker speaks {PROTOCOL_VERSION}")
        import torch
        import transformers

        threads = msg.get("threads")
        if threads is not None:
            torch.set_num_threads(integer(msg, "threads", 1))
        return {"protocol": PROTOCOL_VERSION, "worker": __version__, "python": platform.python_version(),
                "torch": torch.__version__, "transformers": transformers.__version__,
                "cuda": torch.cuda.is_available(), "pid": os.getpid(), "threads": torch.get_num_threads()}

    def op_load(self, msg: dict) -> dict:
        import torch
        from transformers import AutoModelForCausalLM

        from .agent import ROW_BLOCK_ELEMENTS, Agent

        a = integer(msg, "agent", 0)
        if a in self.agents:
            raise ProtocolError(f"agent {a} is already loaded")
        path = msg.get("path")
        if not isinstance(path, str) or not path:
            raise ProtocolError("field path: expected a model directory or hub id")
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}.get(msg.get("dtype"))
        if dtype is None:
            raise ProtocolError(f"field dtype: expected float32, bfloat16 or float64, got {msg.get('dtype')!r}")
        device = resolve_device(msg.get("device", "cpu"), integer(msg, "gpu_index", 0) if "gpu_index" in msg else 0)
        optim = msg.get("optim")
        keys = ("lr", "beta1", "beta2", "eps", "weight_decay", "max_grad_norm")
        if not isinstance(optim, dict):
            raise ProtocolError("field optim: expected {" + ", ".join(keys) + "}")
        optim = {k: number(optim, k, 0) for k in keys}
        lora = msg.get("lora")
        adapter = None
        load = lambda p: AutoModelForCausalLM.from_pretrained(p, dtype=dtype).to(device).eval()
        if lora:
            from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

            base_path = lora.get("base") or path
            key = (os.path.abspath(base_path) if os.path.exists(base_path) else base_path, str(dtype), str(device))
            adapter = f"agent-{a}"
            targets = lora.get("target_modules", "all-linear")
            config = LoraConfig(r=integer(lora, "rank", 1), lora_alpha=number(lora, "alpha", 0),
                                target_modules=targets, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
            torch.manual_seed(integer(lora, "seed", 0))
            shared = key in self.bases
            if shared:
                model = self.bases[key]
                model.add_adapter(adapter, config)
            else:
                model = get_peft_model(load(base_path), config, adapter_name=adapter).eval()
                self.bases[key] = model
            if lora.get("adapter"):
                from safetensors.torch import load_file

                file = os.path.join(lora["adapter"], "adapter_model.safetensors")
                result = set_peft_model_state_dict(model, load_file(file, device=str(device)), adapter_name=adapter)
                if getattr(result, "unexpected_keys", None):
                    raise ValueError(f"{file}: tensors {result.unexpected_keys[:3]} do not fit the adapter")
            model.set_adapter(adapter)
        else:
            shared = False
            model = load(path)
        agent = Agent(model, adapter, device, number(msg, "temperature", 1e-6), optim,
                      integer(msg, "micro_batch_size", 1), number(msg, "ref_cache_mb", 0),
                      integer(msg, "row_block_elements", 1) if "row_block_elements" in msg else ROW_BLOCK_ELEMENTS)
        if msg.get("optimizer_state"):
            agent.load_optimizer(msg["optimizer_state"])
        self.agents[a] = agent
        n_params = sum(p.numel() for p in model.parameters())
        return {"vocab_size": agent.vocab_size, "max_seq_len": agent.max_seq_len, "device": str(device),
                "dtype": str(dtype).replace("torch.", ""), "params": int(n_params),
                "trainable": int(sum(p.numel() for _, p in agent.params)), "shared_base": shared,
                "pid": os.getpid()}

    def op_unload(self, msg):
        a = integer(msg, "agent", 0)
        agent = self.agents.pop(a, None)
        if agent is None:
            return {}
        for sid in [s for s, sess in self.sessions.items() if sess.agent is agent]:
            del self.sessions[sid]
        if agent.adapter:
            for key, model in list(self.bases.items()):
                if model is agent.model:
                    if any(o.model is model for o in self.agents.values()):
                        model.delete_adapter(agent.adapter)
                    else:  # its last adapter: the base goes too
                        del self.bases[key]
        return {}

    def op_begin_update(self, msg):
        return self._agent(msg).begin_update(msg)

    def op_step(self, msg):
        return self._agent(msg).step(msg)

    def op_measure(self, msg):
        return self._agent(msg).measure(msg)

    def op_set_step_scale(self, msg):
        return self._agent(msg).set_step_scale(msg)

    def op_end_update(self, msg):
        return self._agent(msg).end_update(msg)

    def op_snapshot(self, msg):
        return self._agent(msg).snapshot(msg)

    def op_restore(self, msg):
        return self._agent(msg).restore(msg)

    def op_score(self, msg):
        return self._agent(msg).score(msg)

    def op_save(self, msg):
        path = msg.get("path")
        if not isinstance(path, str) or not path:
            raise ProtocolError("field path: expected a directory")
        self._agent(msg).save(path)
        return {}

    def op_open_session(self, msg):
        from .session import Session

        agent = self._agent(msg)
        sid = self.next_session
        self.next_session += 1
        self.sessions[sid] = Session(agent, integer(msg, "episodes", 1), integer(msg, "max_length", 1))
        return {"session": sid}

    def _session(self, msg):
        sid = integer(msg, "session", 1)
        if sid not in self.sessions:
            raise ProtocolError(f"session {sid} is not open")
        return self.sessions[sid]

    def op_write_turn(self, msg):
        return self._session(msg).write_turn(msg)

    def op_close_session(self, msg):
        self.sessions.pop(integer(msg, "session", 1), None)
        return {}

    def op_shutdown(self, msg):
        return {}


def _encode_result(result: dict) -> dict:
    out = {}
    for k, v in result.items():
        if isinstance(v, np.ndarray):
            out[k] = encode(v, "i32" if v.dtype.kind in "iu" else "f64")
        elif isinstance(v, float) and not math.isfinite(v):
            out[k] = None  # JSON has no NaN; arrays carry them through base64
        else:
            out[k] = v
    return out


def _poison(result: dict) -> dict:
    for k, v in result.items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size:
            v = v.copy()
            v[0] = np.nan
            return {**result, k: v}
    return result


def _one_line(s: str) -> str:
    return " ".join(s.split())


def serve() -> None:
    """JSON lines on stdin → replies on stdout; anything else the process prints goes to stderr."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Ctrl-C reaches the whole process group; sat decides when the run stops and closes stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = Worker()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as e:
            msg, reply = None, {"id": None, "ok": False, "error": f"request is not JSON ({e.msg})"}
        else:
            reply = worker.handle(msg)
        channel.write(json.dumps(reply, allow_nan=False) + "\n")
        channel.flush()
        if isinstance(msg, dict) and msg.get("op") == "shutdown":
            break
    # stdin closed (the TypeScript side exited or was killed): nothing left to serve.
