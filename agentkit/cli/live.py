"""The CLI's live view of a run: each step as it happens (thought, calls, observations, timings).

Example:
    >>> from rich.console import Console
    >>> from agentkit.types import Observation, Step, ToolCall
    >>> step = Step(index=1, calls=[ToolCall(id="call_1", name="calculator", arguments={"expression": "17 * 23"})],
    ...             observations=[Observation(call_id="call_1", name="calculator", content="391")])
    >>> print_step(Console(width=80), step)
    step 1 (0 tokens, 0.00 s)
      calculator({"expression": "17 * 23"})
        → 391 0.00 s
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from agentkit.types import RunResult, Step

OBSERVATION_PREVIEW_CHARS = 400


def print_step(console: Console, step: Step) -> None:
    """One step: the header with timings, then the thought, the calls and what each returned."""
    usage = step.usage
    timing = f"{usage.completion_tokens} tokens, {usage.generation_seconds:.2f} s"
    if step.tool_seconds:
        timing += f", tools {step.tool_seconds:.2f} s"
    if step.rejected_outputs:
        timing += f", {len(step.rejected_outputs)} invalid replies retried"
    console.print(f"[bold cyan]step {step.index}[/] [dim]({timing})[/]")
    if step.thought:
        console.print(f"  [italic dim]{escape(step.thought)}[/]")
    for call, observation in zip(step.calls, step.observations):
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        console.print(f"  [bold]{escape(call.name)}[/]({escape(arguments)})")
        style = "red" if observation.is_error else "green"
        content = observation.content
        if len(content) > OBSERVATION_PREVIEW_CHARS:
            content = content[:OBSERVATION_PREVIEW_CHARS] + f"… [{len(observation.content)} chars]"
        console.print(f"    [{style}]→ {escape(content)}[/] [dim]{observation.duration_seconds:.2f} s[/]")
    for discarded in step.discarded:
        call = discarded.call
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        console.print(f"  [dim strike]{escape(call.name)}({escape(arguments)})[/] [dim](not run: {escape(discarded.reason)})[/]")
    if step.is_final:
        console.print(Panel(escape(_render_output(step.output)), title="answer", border_style="green", expand=False))


def print_summary(console: Console, result: RunResult) -> None:
    """The last line of a run: steps, model calls, tokens and time.

    Example:
        >>> from rich.console import Console
        >>> print_summary(Console(width=120), RunResult())
        0 steps, 0 model calls, 0 prompt + 0 generated tokens, 0.00 s
    """
    usage = result.usage
    console.print(
        f"[dim]{len(result.steps)} steps, {usage.model_calls} model calls, {usage.prompt_tokens} prompt + "
        f"{usage.completion_tokens} generated tokens, {result.seconds:.2f} s[/]"
    )


def result_json(result: RunResult) -> str:
    """The run as JSON for scripts: output, steps (calls, observations), usage and time.

    Example:
        >>> import json
        >>> run = json.loads(result_json(RunResult(output="391")))
        >>> run["output"], "messages" in run     # the conversation is left out: it repeats the steps
        ('391', False)
    """
    return result.model_dump_json(indent=2, exclude={"messages"})


def _render_output(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, BaseModel):  # a run with output_type: its fields, indented
        return output.model_dump_json(indent=2)
    return json.dumps(output, ensure_ascii=False, indent=2, default=str)
