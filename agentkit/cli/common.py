"""What the `agentkit` commands share: the consoles, the common options, model loading and one-line errors.

Example:
    >>> backend = load_backend(None, "cpu", None, quiet=True, remote="http://127.0.0.1:8000/v1", remote_model="llama")
    >>> backend.name
    'llama @ http://127.0.0.1:8000/v1'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from agentkit.backend import Backend
from agentkit.errors import AgentkitError

if TYPE_CHECKING:  # the engines import their packages when first used
    from agentkit.engine.gguf_engine import GGUFEngine
    from agentkit.engine.local import LocalEngine as LocalEngineType

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

TOOL_NAMES = ["calculator", "clock", "files", "sql", "http", "python"]

# Options shared by several commands (typer wants them spelled out per command).
ModelOption = typer.Option(None, "--model", "-m", help="HF model folder or .gguf file (default: the embedded SmolLM2-135M)")
RemoteOption = typer.Option(None, "--remote", help="base URL of an OpenAI-compatible server (vLLM, SGLang, agentkit serve...), e.g. http://gpu-box:8000/v1")
RemoteModelOption = typer.Option("default", help="model name to ask the --remote server for")
DeviceOption = typer.Option("cpu", help="cpu or cuda")
DtypeOption = typer.Option(None, help="float32, bfloat16 or float16 for the torch engine (default: float32 on CPU, bfloat16 on CUDA)")
BackendOption = typer.Option(
    "auto", "--backend", help="engine: auto (llama.cpp for a .gguf on CPU when installed, else torch), torch, llama.cpp"
)
ToolsOption = typer.Option("calculator", "--tools", "-t", help=f"comma-separated built-in tools: {', '.join(TOOL_NAMES)}")
WorkspaceOption = typer.Option(Path("."), help="root folder of the files tool (nothing outside it is reachable)")
AllowWriteOption = typer.Option(False, help="let the files tool write inside the workspace")
HostOption = typer.Option(None, "--allow-host", help="host the http tool may reach (repeat the option)")
DatabaseOption = typer.Option(None, help="SQLite file for the sql tool (opened read-only)")
StepsOption = typer.Option(8, help="most steps before giving up")
InstructionsOption = typer.Option("", help="the agent's role and rules")
TraceOption = typer.Option(None, help="append the run's events to this JSONL file")
DebugOption = typer.Option(False, help="show tracebacks")
ContextOption = typer.Option(
    "error", "--context", help="when the conversation outgrows the model's window: error (stop, keep the run), drop_oldest, summarize"
)
FormatOption = typer.Option(
    "auto", "--format", help="tool-call syntax: auto (the model's own, else agentkit), agentkit, llama3_json, pythonic, hermes"
)


def load_backend(
    model: Path | None, device: str, dtype: str | None, *, quiet: bool, remote: str | None = None, remote_model: str = "default",
    engine: str = "auto",
) -> Backend:
    """The backend the options name: a `RemoteBackend` for `remote`, else the local engine for `model` (a spinner while it loads).

    Example:
        >>> load_backend(Path("model.gguf"), "cpu", None, quiet=True, remote="http://127.0.0.1:8000/v1")
        Traceback (most recent call last):
        ...
        agentkit.errors.AgentkitError: Use either --model (a local model) or --remote (a server), not both.
    """
    if remote:
        import os

        from agentkit.remote import RemoteBackend

        if model is not None:
            raise AgentkitError("Use either --model (a local model) or --remote (a server), not both.")
        if not quiet:
            console.print(f"[dim]model: {remote_model} at {remote}[/]")
        return RemoteBackend(remote, model=remote_model, api_key=os.environ.get("AGENTKIT_API_KEY") or os.environ.get("OPENAI_API_KEY"))
    from agentkit.engine import LocalEngine

    what = str(model) if model else "the embedded SmolLM2-135M"
    loaded: LocalEngineType | GGUFEngine  # LocalEngine's loaders pick llama.cpp's engine for a .gguf on CPU
    with spinner(f"loading {what}", quiet):
        if model is None:
            loaded = LocalEngine.default(device=device, dtype=dtype, backend=engine)
        else:
            loaded = LocalEngine.from_pretrained(model, device=device, dtype=dtype, backend=engine)
    if not quiet:
        console.print(f"[dim]model: {loaded.name} on {loaded.device} ({getattr(loaded, 'backend', 'torch')})[/]")
    return loaded


@contextmanager
def spinner(text: str, quiet: bool) -> Iterator[Any]:
    """A rich status line with a spinner while the block runs (nothing when `quiet`); yields it to stop and restart.

    Example:
        >>> with spinner("thinking", quiet=True) as status:
        ...     status.stop()
    """
    if quiet:
        yield _NoStatus()
        return
    with console.status(f"[dim]{text}…[/]") as status:
        yield status


class _NoStatus:
    def start(self) -> None: ...

    def stop(self) -> None: ...


@contextmanager
def errors_as_one_line(debug: bool) -> Iterator[None]:
    """AgentkitErrors (and anything else) become one red line and exit status 1, unless --debug.

    Example:
        >>> try:
        ...     with errors_as_one_line(debug=False):
        ...         raise AgentkitError("no such model")
        ... except typer.Exit as exit:
        ...     print("exit status", exit.exit_code)
        exit status 1
    """
    try:
        yield
    except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:
            raise
        hint = "" if isinstance(exc, AgentkitError) else " (run with --debug for the traceback)"
        errors.print(f"[red]error:[/] {type(exc).__name__}: {exc}{hint}")
        raise typer.Exit(1) from None
