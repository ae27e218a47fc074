"""The Python side of sat-llm's PyTorch backend: a long-lived worker that holds agents (transformers
models, optionally PEFT LoRA adapters on a shared base) and serves the TypeScript side's learner and
team-member interfaces over JSON lines (docs/worker-protocol.md). Tensors stay here; the stage loop
and every decision stay in TypeScript."""

PROTOCOL_VERSION = 1
__version__ = "0.1.0"
