"""`python -m sat_worker.doctor`: one JSON object describing this Python for `sat doctor` — the
versions of the backend's packages (null when missing), CUDA and the GPUs torch sees."""

import importlib.metadata as metadata
import json
import platform
import sys

PACKAGES = ["torch", "transformers", "tokenizers", "safetensors", "peft", "accelerate", "ray", "numpy"]


def main() -> None:
    out = {"python": platform.python_version(), "executable": sys.executable, "packages": {}}
    for p in PACKAGES:
        try:
            out["packages"][p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out["packages"][p] = None
    out["cuda"] = None
    out["gpus"] = []
    if out["packages"]["torch"]:
        try:
            import torch

            out["torch_threads"] = torch.get_num_threads()
            out["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
            for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
                prop = torch.cuda.get_device_properties(i)
                out["gpus"].append({"name": prop.name, "memory_gb": round(prop.total_memory / 2**30, 1)})
        except Exception as e:  # a broken install is itself something to report
            out["torch_error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
