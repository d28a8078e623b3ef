"""agentkit's own cost per agent step, without the model: the target is < 1 ms.

Measured in one run:
- loop: `Agent.run` driven by a `FunctionBackend` that answers instantly, 2 steps per run (a tool call,
  then the final answer): step parsing, argument validation, the tool call through the registry,
  observation rendering and bookkeeping. Six tools with varied schemas, like a real agent.
- engine glue: what `LocalEngine` adds before decoding: chat-template rendering and tokenisation
  of a ~2k-token conversation, and the prefix-cache lookup over 32 cached conversations.

Run: `.venv/bin/python benchmarks/bench_overhead.py`
"""

from __future__ import annotations

import datetime
import platform
import statistics
import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from agentkit import Agent, Message, tool
from agentkit.testing import FunctionBackend
from agentkit.tools import calculator


class Address(BaseModel):
    street: str
    city: str


@tool
def lookup(name: str, limit: int = 5) -> list[str]:
    """Find people by name."""
    return [name][:limit]


@tool
def ship(address: Address, items: list[str], express: bool = False) -> str:
    """Ship items to an address."""
    return f"shipped {len(items)} items to {address.city}"


@tool
def convert(amount: float, unit: Literal["km", "mi"]) -> float:
    """Convert a distance."""
    return amount * 1.609344 if unit == "mi" else amount / 1.609344


@tool
def tag(labels: dict[str, bool]) -> int:
    """Set labels."""
    return len(labels)


@tool
async def ping(host: str) -> str:
    """Ping a host."""
    return f"{host} is up"


TOOLS = [calculator, lookup, ship, convert, tag, ping]
CALL = {"calls": [{"name": "ship", "arguments": {"address": {"street": "1 Main St", "city": "Oslo"}, "items": ["a", "b"]}}]}
FINAL = {"final_answer": "shipped"}


def loop_overhead_ms(runs: int) -> float:
    backend = FunctionBackend(lambda request: FINAL if request.messages[-1].role == "tool" else CALL)
    agent = Agent(backend, tools=TOOLS, instructions="You ship things.")
    agent.run("warm up")
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = agent.run("Ship two items to Oslo.")
        samples.append((time.perf_counter() - started) / len(result.steps))
    return 1000 * statistics.median(samples)


def engine_glue_ms(repeats: int) -> tuple[float, float, float, int] | None:
    try:
        from transformers import AutoTokenizer

        from agentkit.engine.chat import render_prompt
        from agentkit.engine.kv_cache import PrefixCache
        from agentkit.engine.loading import cached_conversion, embedded_gguf_path

        tokenizer = AutoTokenizer.from_pretrained(str(cached_conversion(embedded_gguf_path())))
    except Exception as exc:
        print(f"engine glue skipped: {exc}")
        return None
    agent = Agent(FunctionBackend(lambda r: FINAL), tools=TOOLS)
    messages = agent.first_messages("Ship it.")
    for i in range(12):
        messages += [Message(role="assistant", content=str(CALL)), Message(role="tool", content=f"result {i}: " + "data " * 30)]
    render = []
    for _ in range(repeats):
        started = time.perf_counter()
        ids = tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]
        render.append(time.perf_counter() - started)

    class FakeKV:  # the lookup only compares token ids; the KV tensors play no part in its cost
        layers: ClassVar[list[Any]] = []

    # What the engine really does per step: the history up to the last reply is already tokenised
    # (remembered from the previous call), so only the new messages are.
    from transformers import LlamaConfig, LlamaForCausalLM

    from agentkit.engine import LocalEngine

    tiny = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
    ))
    engine = LocalEngine.from_model(tiny, tokenizer)
    previous = render_prompt(tokenizer, messages[:-2]) + messages[-2].content
    engine._remember(previous, engine._tokenize(previous))
    incremental = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine._prompt_ids(messages)
        incremental.append(time.perf_counter() - started)

    cache = PrefixCache(max_bytes=1 << 40, min_reuse=1)
    for i in range(32):
        cache._entries[i] = type("E", (), {"token_ids": ids[: len(ids) // 2] + [i] * 100, "kv": FakeKV(), "nbytes": 0})()
    lookup = []
    for _ in range(repeats):
        started = time.perf_counter()
        cache.take(ids, new_cache=FakeKV)
        lookup.append(time.perf_counter() - started)
    return 1000 * statistics.median(render), 1000 * statistics.median(incremental), 1000 * statistics.median(lookup), len(ids)


def main() -> None:
    print(f"date {datetime.date.today().isoformat()}, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"agent loop overhead per step (no model):      {loop_overhead_ms(300):.3f} ms")
    glue = engine_glue_ms(50)
    if glue:
        render, incremental, lookup, n = glue
        print(f"engine: render + tokenize a {n}-token prompt: {render:.3f} ms (from scratch)")
        print(f"engine: same, previous reply remembered:     {incremental:.3f} ms (what a step pays)")
        print(f"engine: prefix-cache lookup, 32 entries:      {lookup:.3f} ms")


if __name__ == "__main__":
    main()
