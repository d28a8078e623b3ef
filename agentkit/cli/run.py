"""The agent commands: `run` a task, `chat`, check a model with `models`, `replay` a saved trace.

    agentkit run "What is 17 * 23?"                       # the embedded SmolLM2, calculator tool
    agentkit run "Which file mentions Rome?" --tools files --workspace docs/
    agentkit chat --model ~/models/Llama-3.1-8B-Instruct --device cuda
    agentkit models ~/models/qwen2.5-7b-instruct-q4_k_m.gguf
    agentkit replay run.jsonl --rerun-tools

`agentkit.cli` registers these functions as the app's commands.

Example:
    >>> from typer.testing import CliRunner
    >>> from agentkit.cli import app
    >>> "--rerun-tools" in CliRunner().invoke(app, ["replay", "--help"], terminal_width=200).output
    True
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from agentkit.agent import Agent
from agentkit.backend import Backend
from agentkit.cli.common import (
    TOOL_NAMES,
    AllowWriteOption,
    BackendOption,
    ContextOption,
    DatabaseOption,
    DebugOption,
    DeviceOption,
    DtypeOption,
    FormatOption,
    HostOption,
    InstructionsOption,
    ModelOption,
    RemoteModelOption,
    RemoteOption,
    StepsOption,
    ToolsOption,
    TraceOption,
    WorkspaceOption,
    console,
    errors,
    errors_as_one_line,
    load_backend,
    spinner,
)
from agentkit.cli.live import print_step, print_summary, result_json
from agentkit.errors import AgentkitError, MaxStepsExceeded
from agentkit.formats import format_for_convention
from agentkit.prompting import Example
from agentkit.tool import Tool
from agentkit.types import RunResult


def run(
    task: str = typer.Argument(..., help="what the agent should do"),
    model: Path | None = ModelOption,
    remote: str | None = RemoteOption,
    remote_model: str = RemoteModelOption,
    device: str = DeviceOption,
    dtype: str | None = DtypeOption,
    backend_name: str = BackendOption,
    tools: str = ToolsOption,
    workspace: Path = WorkspaceOption,
    allow_write: bool = AllowWriteOption,
    allow_host: list[str] | None = HostOption,
    database: Path | None = DatabaseOption,
    max_steps: int = StepsOption,
    instructions: str = InstructionsOption,
    trace: Path | None = TraceOption,
    json_output: bool = typer.Option(False, "--json", help="print the run as JSON (no live view)"),
    tool_format: str = FormatOption,
    context: str = ContextOption,
    image: list[Path] | None = typer.Option(None, "--image", help="an image file shown with the task (vision models; repeat the option)"),
    debug: bool = DebugOption,
) -> None:
    """Run an agent on TASK and show each step live, then the answer."""
    with errors_as_one_line(debug):
        selected = build_tools(tools, workspace=workspace, allow_write=allow_write, allow_hosts=allow_host or [], database=database)
        backend = load_backend(model, device, dtype, quiet=json_output, remote=remote, remote_model=remote_model, engine=backend_name)
        agent = Agent(
            backend, tools=selected, instructions=instructions, max_steps=max_steps, trace=trace, examples=examples_for(selected),
            tool_format=tool_format, context=context,
        )
        _warm_grammar(backend, agent, quiet=json_output)
        result = _run_live(agent, task, quiet=json_output, images=image or [])
        if json_output:
            print(result_json(result))


def chat(
    model: Path | None = ModelOption,
    remote: str | None = RemoteOption,
    remote_model: str = RemoteModelOption,
    device: str = DeviceOption,
    dtype: str | None = DtypeOption,
    backend_name: str = BackendOption,
    tools: str = ToolsOption,
    workspace: Path = WorkspaceOption,
    allow_write: bool = AllowWriteOption,
    allow_host: list[str] | None = HostOption,
    database: Path | None = DatabaseOption,
    max_steps: int = StepsOption,
    instructions: str = InstructionsOption,
    trace: Path | None = TraceOption,
    tool_format: str = FormatOption,
    context: str = ContextOption,
    debug: bool = DebugOption,
) -> None:
    """An interactive session: each message runs the agent, with the conversation so far as history.

    Type /reset to forget the history, /exit (or Ctrl-D) to leave.
    """
    with errors_as_one_line(debug):
        selected = build_tools(tools, workspace=workspace, allow_write=allow_write, allow_hosts=allow_host or [], database=database)
        backend = load_backend(model, device, dtype, quiet=False, remote=remote, remote_model=remote_model, engine=backend_name)
        agent = Agent(
            backend, tools=selected, instructions=instructions, max_steps=max_steps, trace=trace, examples=examples_for(selected),
            tool_format=tool_format, context=context,
        )
        _warm_grammar(backend, agent, quiet=False)
        history: list[Any] = []
        console.print("[dim]/reset forgets the conversation, /exit leaves[/]")
        while True:
            try:
                line = console.input("[bold]you> [/]").strip()
            except EOFError:
                console.print()
                return
            if not line:
                continue
            if line in ("/exit", "/quit"):
                return
            if line == "/reset":
                history = []
                console.print("[dim]history cleared[/]")
                continue
            try:
                result = _run_live(agent, line, history=history)
            except MaxStepsExceeded as exc:  # the session goes on; the partial turn is kept
                errors.print(f"[red]error:[/] {exc}")
                result = exc.partial
            history = result.messages


def models(
    path: Path | None = typer.Argument(None, help="HF model folder or .gguf file (default: the embedded model)"),
    json_output: bool = typer.Option(False, "--json", help="print as JSON"),
    debug: bool = DebugOption,
) -> None:
    """Check a model path: architecture, context length, chat template and tool-call format."""
    with errors_as_one_line(debug):
        from agentkit.engine.loading import embedded_gguf_path
        from agentkit.engine.model_info import describe_model

        info = describe_model(path if path is not None else embedded_gguf_path())
        agentkit_format = format_for_convention(info.tool_call_format) or "agentkit"
        if json_output:
            print(json.dumps({**info.model_dump(mode="json"), "agentkit_format": agentkit_format}, indent=2))
            return
        rows = {
            "path": info.path,
            "format": info.format,
            "architecture": info.architecture,
            "name": info.name or "-",
            "context length": f"{info.context_length:,} tokens" if info.context_length else "unknown",
            "layers / hidden": f"{info.layers} / {info.hidden_size}",
            "vocabulary": f"{info.vocab_size:,}" if info.vocab_size else "unknown",
            "chat template": "yes" if info.has_chat_template else "no (agentkit falls back to ChatML)",
            "template knows tools": "yes" if info.template_mentions_tools else "no",
            "tool-call format": info.tool_call_format,
            "agentkit tool format": f"{agentkit_format} (--format to override)",
        }
        for key, value in rows.items():
            console.print(f"[bold]{key:>22}[/]  {value}")
        console.print("[dim]agents decode steps in that format under a grammar; --format agentkit|llama3_json|pythonic|hermes overrides it.[/]")


def replay(
    trace_file: Path = typer.Argument(..., help="a trace written with --trace (JSONL)"),
    rerun_tools: bool = typer.Option(False, help="re-run the tools against the recorded model outputs and compare"),
    run_id: str | None = typer.Option(None, help="which run of the file (default: the last one)"),
    workspace: Path = WorkspaceOption,
    allow_write: bool = AllowWriteOption,
    allow_host: list[str] | None = HostOption,
    database: Path | None = DatabaseOption,
    debug: bool = DebugOption,
) -> None:
    """Re-render a saved run; with --rerun-tools, run today's tools against it (exit 1 if they differ)."""
    with errors_as_one_line(debug):
        from agentkit.testing import ReplayBackend
        from agentkit.trace import last_run_id, read_trace

        if not trace_file.exists():
            raise typer.BadParameter(f"{trace_file} does not exist")
        events = read_trace(trace_file)
        chosen = run_id or last_run_id(events)
        events = [e for e in events if e.get("run_id") == chosen]
        if not events:
            raise AgentkitError(f"{trace_file} holds no run {run_id or ''}; record one with `agentkit run ... --trace FILE`.")
        start = events[0]
        console.print(f"[bold]task:[/] {escape(str(start.get('task')))}  [dim](run {chosen}, backend {escape(str(start.get('backend')))})[/]")
        if not rerun_tools:
            _print_recorded(events)
            return
        selected = build_tools(
            ",".join(start.get("tools", [])), workspace=workspace, allow_write=allow_write,
            allow_hosts=allow_host or [], database=database,
        )
        agent = Agent(
            ReplayBackend(trace_file, run_id=chosen), tools=selected, max_steps=start.get("max_steps", 8),
            tool_format=start.get("tool_format", "agentkit"),  # the recorded outputs are in the run's own syntax
        )
        result = _run_live(agent, start.get("task", ""))
        recorded = [e["content"] for e in events if e["event"] == "observation"]
        now = [o.content for s in result.steps for o in s.observations]
        changed = [(i, a, b) for i, (a, b) in enumerate(zip(recorded, now), 1) if a != b]
        if changed or len(recorded) != len(now):
            for index, before, after in changed:
                errors.print(f"[red]observation {index} changed:[/] {before!r} -> {after!r}")
            raise typer.Exit(1)
        console.print(f"[green]all {len(now)} observations match the recording[/]")


def build_tools(
    names: str, *, workspace: Path, allow_write: bool = False, allow_hosts: list[str] | None = None, database: Path | None = None
) -> list[Tool]:
    """The built-in tools named in `names` (comma-separated), configured from the CLI options.

    Example:
        >>> [t.name for t in build_tools("calculator", workspace=Path("."))]
        ['calculator']
        >>> build_tools("shell", workspace=Path("."))
        Traceback (most recent call last):
        ...
        agentkit.errors.AgentkitError: Unknown tool 'shell'. Built-in tools: calculator, clock, files, sql, http, python.
    """
    selected: list[Tool] = []
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        if name not in TOOL_NAMES:
            raise AgentkitError(f"Unknown tool {name!r}. Built-in tools: {', '.join(TOOL_NAMES)}.")
        selected += _TOOL_BUILDERS[name](workspace=workspace, allow_write=allow_write, allow_hosts=allow_hosts or [], database=database)
    return selected


def examples_for(tools: list[Tool]) -> list[Example] | None:
    """Few-shot turns shipped with the selected built-in tools (None: agentkit's generic example).

    Example:
        >>> [e.task for e in examples_for(build_tools("calculator", workspace=Path(".")))]
        ['What is 12 * 31?', 'Add 150 and 47.']
    """
    from agentkit.prompting import ExampleCall
    from agentkit.tools.calculator import CALCULATOR_EXAMPLES

    search = Example(
        task="What does the handbook say about holidays?",
        calls=[ExampleCall(name="search_files", arguments={"pattern": "holiday", "ignore_case": True},
                           result="handbook.md:4: Holidays: 25 days a year, booked two weeks ahead.")],
        answer="The handbook says: Holidays: 25 days a year, booked two weeks ahead.",
    )
    shipped = {"calculator": CALCULATOR_EXAMPLES, "search_files": [search]}
    examples = [example for t in tools for example in shipped.get(t.name, [])]
    return examples or None


def _calculator(**_: Any) -> list[Tool]:
    from agentkit.tools import calculator

    return [calculator]


def _clock(**_: Any) -> list[Tool]:
    from agentkit.tools.clock import clock_tools

    return list(clock_tools)


def _files(*, workspace: Path, allow_write: bool, **_: Any) -> list[Tool]:
    from agentkit.tools.files import file_tools

    return file_tools(workspace, allow_write=allow_write)


def _sql(*, database: Path | None, **_: Any) -> list[Tool]:
    if database is None:
        raise AgentkitError("The sql tool needs a database: add --database FILE.sqlite.")
    from agentkit.tools.sql import sql_tool

    return [sql_tool(database)]


def _http(*, allow_hosts: list[str], **_: Any) -> list[Tool]:
    if not allow_hosts:
        raise AgentkitError("The http tool needs an allowlist: add --allow-host example.com (repeat for more).")
    from agentkit.tools.http import http_tools

    return http_tools(allowed_hosts=allow_hosts)


def _python(**_: Any) -> list[Tool]:
    from agentkit.tools.python import python_tool

    return [python_tool()]


_TOOL_BUILDERS: dict[str, Callable[..., list[Tool]]] = {
    "calculator": _calculator, "clock": _clock, "files": _files, "sql": _sql, "http": _http, "python": _python,
}


def _warm_grammar(backend: Backend, agent: Agent, *, quiet: bool) -> None:
    """Compile the step grammar up front (with a spinner) instead of inside the first step's timing."""
    grammars = getattr(backend, "grammars", None)
    if grammars is not None:
        with spinner(f"compiling the step grammar for {len(agent.registry)} tools", quiet):
            grammars.grammar(agent.constraint)


def _run_live(
    agent: Agent, task: str, *, history: list[Any] | None = None, quiet: bool = False, images: list[Any] | None = None
) -> RunResult:
    result = RunResult()
    with spinner("thinking", quiet) as status:
        for step in agent.iter(task, history=history or [], result=result, images=images or []):
            if not quiet:
                status.stop()
                print_step(console, step)
                status.start()
    if not quiet:
        print_summary(console, result)
    return result


def _print_recorded(events: list[dict[str, Any]]) -> None:
    for event in events:
        kind = event["event"]
        if kind == "model_call":
            mark = "" if event.get("valid") else " [red](invalid, retried)[/]"
            console.print(f"[bold cyan]step {event['step']}[/] [dim]({event.get('completion_tokens', 0)} tokens, {event.get('seconds', 0):.2f} s)[/]{mark}")
            console.print(f"  {escape(event['output'])}")
        elif kind == "observation":
            style = "red" if event.get("is_error") else "green"
            console.print(f"    [{style}]{escape(event['name'])} → {escape(event['content'][:400])}[/]")
        elif kind == "run_end":
            console.print(f"[green]answer:[/] {escape(str(event.get('output')))}")
        elif kind == "error":
            console.print(f"[red]stopped: {escape(str(event.get('type')))}: {escape(str(event.get('message')))}[/]")
