"""`python -m sat_worker.ray_driver`: the worker protocol served by Ray actors. The TypeScript side
starts this driver and talks to it exactly as to a local worker; the driver puts each agent's
worker on the cluster as an actor (or one actor for the whole team with --workers shared) and
routes every request to the actor that holds its agent or session. Requests are answered one at a
time, in order; the stage loop and every decision stay on the TypeScript side.

With --ship-files, model and checkpoint directories are read and written here and travel to and
from the actors as bytes, so the cluster needs no file system shared with this machine.
With no --address, Ray starts on this machine (ray.init()), with enough logical CPUs for the team.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import traceback

from . import PROTOCOL_VERSION, __version__
from .server import _one_line


def _read_dir(path: str) -> dict:
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            full = os.path.join(root, f)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, path)] = fh.read()
    return out


def _write_dir(path: str, files: dict) -> None:
    for rel, data in files.items():
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(data)


def _with_dirs(msg: dict, fn) -> dict:
    """msg with every directory it names (path, optimizer_state, lora.base, lora.adapter) mapped by fn."""
    out = dict(msg)
    for key in ("path", "optimizer_state"):
        if isinstance(out.get(key), str):
            out[key] = fn(out[key])
    if isinstance(out.get("lora"), dict):
        out["lora"] = {k: (fn(v) if k in ("base", "adapter") and isinstance(v, str) else v) for k, v in out["lora"].items()}
    return out


class _Actor:
    """The body of a worker actor: a Worker, plus loading from and saving to shipped bytes."""

    def __init__(self):
        from .server import Worker

        self.worker = Worker()
        # Imported now, while the other actors start too, rather than at the first load.
        import torch  # noqa: F401
        import transformers  # noqa: F401

    def handle(self, msg: dict) -> dict:
        return self.worker.handle(msg)

    def load_shipped(self, msg: dict, dirs: dict) -> dict:
        """`load` with its directories sent as bytes: dirs maps each directory named in msg to its files."""
        tmp = tempfile.mkdtemp(prefix="sat-load-")
        try:
            local = {}
            for k, (path, files) in enumerate(dirs.items()):
                local[path] = os.path.join(tmp, f"d{k}")
                _write_dir(local[path], files)
            return self.worker.handle(_with_dirs(msg, lambda p: local.get(p, p)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def save_shipped(self, msg: dict):
        tmp = tempfile.mkdtemp(prefix="sat-save-")
        try:
            reply = self.worker.handle({**msg, "path": tmp})
            return reply, (_read_dir(tmp) if reply.get("ok") else {})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Driver:
    def __init__(self, args):
        import ray

        self.ray = ray
        self.args = args
        self.actors: dict[int, object] = {}  # agent → actor
        self.pool: list = []  # the actors, started at hello
        self.sessions: dict[int, tuple] = {}  # driver session id → (actor, worker session id)
        self.next_session = 1
        here = os.path.dirname(os.path.abspath(__file__))
        env = {k: v for k, v in os.environ.items() if k.startswith(("SAT_WORKER_", "TRANSFORMERS_", "HF_"))}
        # The job's runtime environment ships this package to every node and passes the worker settings.
        init = {"include_dashboard": False, "configure_logging": False, "log_to_driver": True,
                "runtime_env": {"py_modules": [here], "env_vars": env}}
        if args.address:
            ray.init(address=args.address, **init)
        else:
            cpus = max(os.cpu_count() or 1, args.agents * args.num_cpus)
            ray.init(num_cpus=cpus, **init)
        self.remote_cls = ray.remote(_Actor)

    def start_actors(self, hello: dict) -> list:
        """One actor per agent (or one for the team), started together; each answers hello."""
        count = 1 if self.args.workers == "shared" else self.args.agents
        opts = {"num_cpus": self.args.num_cpus, "num_gpus": self.args.num_gpus}
        actors = [self.remote_cls.options(**opts).remote() for _ in range(count)]
        for reply in self.ray.get([a.handle.remote(hello) for a in actors]):
            if not reply.get("ok"):
                raise RuntimeError(reply.get("error"))
        return actors

    def handle(self, msg: dict) -> dict:
        ray = self.ray
        op, rid = msg.get("op"), msg.get("id")
        if op == "hello":
            if msg.get("protocol") != PROTOCOL_VERSION:
                return {"id": rid, "ok": False, "error": f"protocol {msg.get('protocol')!r} requested, this driver speaks {PROTOCOL_VERSION}"}
            self.pool = self.start_actors(msg)
            return {"id": rid, "ok": True, "protocol": PROTOCOL_VERSION, "worker": __version__, "ray": ray.__version__,
                    "pid": os.getpid(), "nodes": len(ray.nodes()), "resources": ray.cluster_resources()}
        if op == "shutdown":
            return {"id": rid, "ok": True}
        if op in ("write_turn", "close_session"):
            sid = msg.get("session")
            if sid not in self.sessions:
                return {"id": rid, "ok": False, "error": f"session {sid} is not open"}
            actor, local = self.sessions[sid]
            if op == "close_session":
                del self.sessions[sid]
            return ray.get(actor.handle.remote({**msg, "session": local}))
        agent = msg.get("agent")
        if op == "load" and agent not in self.actors:
            if not isinstance(agent, int) or not 0 <= agent < self.args.agents:
                return {"id": rid, "ok": False, "error": f"agent {agent!r} outside the driver's {self.args.agents}"}
            self.actors[agent] = self.pool[0 if len(self.pool) == 1 else agent]
        actor = self.actors.get(agent)
        if actor is None:
            return {"id": rid, "ok": False, "error": f"agent {agent} is not loaded"}
        if op == "load" and self.args.ship_files:
            dirs = {}  # each directory once, however many fields name it

            def collect(path: str) -> str:
                if path not in dirs and os.path.isdir(path):
                    dirs[path] = _read_dir(path)
                return path

            _with_dirs(msg, collect)
            return ray.get(actor.load_shipped.remote(msg, dirs))
        if op == "save" and self.args.ship_files:
            reply, files = ray.get(actor.save_shipped.remote(msg))
            if reply.get("ok"):
                _write_dir(msg["path"], files)
            return reply
        reply = ray.get(actor.handle.remote(msg))
        if op == "open_session" and reply.get("ok"):
            sid = self.next_session
            self.next_session += 1
            self.sessions[sid] = (actor, reply["session"])
            reply = {**reply, "session": sid}
        return reply


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m sat_worker.ray_driver")
    p.add_argument("--address", default=None)
    p.add_argument("--agents", type=int, default=1)
    p.add_argument("--num-cpus", type=float, default=1)
    p.add_argument("--num-gpus", type=float, default=0)
    p.add_argument("--workers", choices=["per_agent", "shared"], default="per_agent")
    p.add_argument("--ship-files", action="store_true")
    args = p.parse_args()
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    driver = None
    try:
        driver = Driver(args)
        # Ctrl-C reaches the whole process group; sat decides when the run stops and closes stdin.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for line in sys.stdin:
            if not line.strip():
                continue
            msg = None
            try:
                msg = json.loads(line)
                reply = driver.handle(msg)
            except Exception as e:  # an actor died or the cluster went away: one line back
                traceback.print_exc(file=sys.stderr)
                rid = msg.get("id") if isinstance(msg, dict) else None
                reply = {"id": rid, "ok": False, "error": f"ray: {type(e).__name__}: {_one_line(str(e))[:400]}"}
            channel.write(json.dumps(reply, allow_nan=False) + "\n")
            channel.flush()
            if isinstance(msg, dict) and msg.get("op") == "shutdown":
                break
    finally:
        if driver is not None:
            driver.ray.shutdown()


if __name__ == "__main__":
    main()
