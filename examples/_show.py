"""Shared by the examples: read the command line, load the model and print a run step by step.

Every example takes `--model PATH` (a .gguf file or an HF folder) anywhere on its command line, e.g.
    .venv/bin/python examples/math_assistant.py --model ~/.cache/agentkit/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
(`make models` fetches the reference models); without it they run on the embedded SmolLM2-135M.
"""

from __future__ import annotations

import sys
import time

from agentkit import Agent, Step
from agentkit.engine import LocalEngine

_model: str | None = None


def question(default: str) -> str:
    """The question from the command line (its first argument that is not `--model PATH`), else `default`."""
    global _model
    args = sys.argv[1:]
    if "--model" in args:
        at = args.index("--model")
        if at + 1 >= len(args):
            sys.exit("--model needs a path: a .gguf file or a Hugging Face model folder")
        _model = args[at + 1]
        args = args[:at] + args[at + 2 :]
    return args[0] if args else default


def load_engine() -> LocalEngine:
    started = time.perf_counter()
    if _model:
        print(f"loading {_model}...")
        engine = LocalEngine.from_pretrained(_model)
    else:
        print("loading the embedded model...")
        engine = LocalEngine.default()
    engine_kind = getattr(engine, "backend", "torch")
    hint = "" if engine_kind == "llama.cpp" else " (`make llama-cpp` builds the faster llama.cpp engine for GGUF files)"
    print(f"loaded {engine.name} on the {engine_kind} engine in {time.perf_counter() - started:.1f} s{hint}")
    return engine


def print_step(step: Step) -> None:
    """One step: what the model wrote, what the tools returned, what was not run, and the answer."""
    print(f"step {step.index} ({step.usage.completion_tokens} tokens, {step.usage.generation_seconds:.1f} s): {step.raw_output}")
    for observation in step.observations:
        print(f"  -> {observation.name}: {observation.content[:300]}")
    for discarded in step.discarded:
        print(f"  (not run, {discarded.reason}: {discarded.call.name}({discarded.call.arguments}))")
    if step.is_final:
        print(f"answer: {step.output!r}" if not isinstance(step.output, str) else f"answer: {step.output}")


def show_run(agent: Agent, task: str) -> object:
    """Run `task`, printing each step as it completes; return the final answer."""
    started = time.perf_counter()
    print(f"task: {task}")
    output = None
    for step in agent.iter(task):
        print_step(step)
        if step.is_final:
            output = step.output
    print(f"total {time.perf_counter() - started:.1f} s")
    return output
