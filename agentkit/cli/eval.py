"""`agentkit eval ...`: tool-call accuracy benchmarks, printed as a table and written as a JSON report.

Example:
    >>> from typer.testing import CliRunner
    >>> from agentkit.cli import app
    >>> "bfcl" in CliRunner().invoke(app, ["eval", "--help"]).output
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agentkit.cli.common import console, errors_as_one_line, load_backend

if TYPE_CHECKING:  # imported for real inside the command, where a missing bfcl-eval is a one-line error
    from agentkit.evals.bfcl import CaseResult

eval_app = typer.Typer(no_args_is_help=True, help="Measure tool-call accuracy (BFCL).")


@eval_app.command("bfcl")
def bfcl(
    categories: str = typer.Option(
        "simple_python,multiple,parallel,parallel_multiple,irrelevance", help="comma-separated BFCL categories"
    ),
    limit: int | None = typer.Option(None, help="first N tests of each category (default: all)"),
    model: Path | None = typer.Option(None, "--model", "-m", help="HF model folder or .gguf file (default: the embedded SmolLM2-135M)"),
    remote: str | None = typer.Option(None, "--remote", help="base URL of an OpenAI-compatible server"),
    remote_model: str = typer.Option("default", help="model name to ask the --remote server for"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (torch engine)"),
    engine: str = typer.Option("auto", "--backend", help="auto (llama.cpp for a .gguf on CPU when installed), torch, llama.cpp"),
    tool_format: str = typer.Option("auto", "--format", help="auto, agentkit, llama3_json, pythonic or hermes"),
    no_constrain: bool = typer.Option(False, "--no-constrain", help="decode without the grammar (the control)"),
    max_step_tokens: int = typer.Option(256, help="most tokens for the step"),
    out: Path = typer.Option(Path("bfcl-report.json"), "--out", help="where to write the JSON report"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="print every case"),
    debug: bool = typer.Option(False, help="show tracebacks"),
) -> None:
    """Score the agent's first step on BFCL's non-live categories with BFCL's own AST checker.

    Needs the bfcl-eval package: pip install --no-deps bfcl-eval
    """
    with errors_as_one_line(debug):
        from agentkit.evals.bfcl import CATEGORIES, bfcl_data_dir, evaluate

        bfcl_data_dir()  # fail before loading a model
        chosen = [c.strip() for c in categories.split(",") if c.strip()]
        unknown = sorted(set(chosen) - set(CATEGORIES))
        if unknown:
            raise typer.BadParameter(f"unknown categories {unknown}; choose from {', '.join(CATEGORIES)}")
        backend = load_backend(model, device, dtype, quiet=False, remote=remote, remote_model=remote_model, engine=engine)
        def show(case: CaseResult) -> None:
            if verbose:
                mark = "[green]✓[/]" if case.correct else "[red]✗[/]"
                console.print(f"{mark} {case.id}  {case.raw_output[:150]!r}  {case.error or ''}"[:300])

        with console.status("[dim]evaluating…[/]"):
            report = evaluate(
                backend, chosen, limit=limit, tool_format=tool_format, constrained=not no_constrain,
                max_step_tokens=max_step_tokens, model_name=remote_model if remote else str(model or "SmolLM2-135M-Instruct (embedded)"),
                on_case=show,
            )
        out.write_text(report.model_dump_json(indent=2))
        console.print(
            f"[bold]BFCL[/] {report.model} · format {report.tool_format} · "
            f"{'constrained' if report.constrained else 'unconstrained'} · {report.date}"
        )
        for name, score in report.categories.items():
            console.print(f"  {name:>18}  {score.correct:>4}/{score.total:<4} {100 * score.accuracy:5.1f}%   {score.seconds:6.1f} s")
        console.print(f"[dim]report: {out}[/]")
