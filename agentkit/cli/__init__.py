"""The `agentkit` command: run an agent, chat, inspect a model, replay a trace, serve a model, evaluate.

    agentkit run "What is 17 * 23?"                       # the embedded SmolLM2, calculator tool
    agentkit run "Which file mentions Rome?" --tools files --workspace docs/
    agentkit chat --model ~/models/Llama-3.1-8B-Instruct --device cuda
    agentkit models ~/models/qwen2.5-7b-instruct-q4_k_m.gguf
    agentkit replay run.jsonl --rerun-tools
    agentkit serve --model path/to/model --port 8000
    agentkit eval bfcl --limit 20

Errors are one line with a hint (exit status 1); `--debug` shows the traceback.
The commands live in `run` (agent commands), `serve` and `eval`; `common` holds what they share and
`live` the step-by-step view. This module only builds the typer app from them.

Example:
    >>> from typer.testing import CliRunner
    >>> result = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    >>> result.exit_code, "Run an agent on TASK" in result.output
    (0, True)
"""

from __future__ import annotations

import typer

from agentkit.cli import run as agent_commands
from agentkit.cli import serve as serve_command
from agentkit.cli.eval import eval_app

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="The `agentkit` command: run an agent, chat, inspect a model, replay a trace, serve a model, evaluate.",
)
for command in (agent_commands.run, agent_commands.chat, agent_commands.models, agent_commands.replay, serve_command.serve):
    app.command()(command)
app.add_typer(eval_app, name="eval")


def main() -> None:
    """Entry point of the `agentkit` console script (and of `python -m agentkit.cli`).

    Example:
        >>> from importlib.metadata import entry_points
        >>> [script.value for script in entry_points(group="console_scripts") if script.name == "agentkit"]
        ['agentkit.cli:main']
    """
    app(prog_name="agentkit")
