"""`agentkit serve`: the model behind an OpenAI-compatible API (the server itself is `agentkit.server`).

    agentkit serve --model path/to/model --port 8000
    agentkit serve --host 0.0.0.0 --api-key "$KEY"

Example:
    >>> from typer.testing import CliRunner
    >>> from agentkit.cli import app
    >>> "--api-key" in CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    True
"""

from __future__ import annotations

from pathlib import Path

import typer

from agentkit.cli.common import BackendOption, DebugOption, DeviceOption, DtypeOption, ModelOption, console, errors, errors_as_one_line, load_backend
from agentkit.errors import AgentkitError


def serve(
    model: Path | None = ModelOption,
    device: str = DeviceOption,
    dtype: str | None = DtypeOption,
    backend_name: str = BackendOption,
    host: str = typer.Option("127.0.0.1", help="address to bind (loopback by default: set 0.0.0.0 deliberately)"),
    port: int = typer.Option(8000, help="TCP port"),
    api_key: str | None = typer.Option(None, envvar="AGENTKIT_API_KEY", help="require `Authorization: Bearer KEY`"),
    debug: bool = DebugOption,
) -> None:
    """Serve the model over an OpenAI-compatible API (/v1/chat/completions) with guaranteed tool calls."""
    with errors_as_one_line(debug):
        try:
            import uvicorn

            from agentkit.server import create_app
        except ImportError as exc:
            raise AgentkitError(f"Serving needs {exc.name}: pip install 'agentkit[serve]'.") from None
        backend = load_backend(model, device, dtype, quiet=False, engine=backend_name)
        if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
            errors.print(f"[yellow]warning:[/] serving on {host} without --api-key: anyone who can reach it can use the model")
        served = getattr(backend, "name", type(backend).__name__)  # the Backend protocol does not require a name
        console.print(f"[green]serving[/] {served} on http://{host}:{port}/v1 [dim](Ctrl-C stops)[/]")
        uvicorn.run(create_app(backend, api_key=api_key), host=host, port=port, log_level="warning")

