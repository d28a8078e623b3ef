"""Multi-step agent tasks with checkable answers: solved / steps / invalid replies / seconds, per model.

    .venv/bin/python benchmarks/bench_tasks.py                                  # the embedded SmolLM2-135M
    .venv/bin/python benchmarks/bench_tasks.py --model qwen2.5-coder-1.5b        # a reference model (make models)
    .venv/bin/python benchmarks/bench_tasks.py --model qwen2.5-coder-0.5b --only calc-1,hop-head -v

The tasks (benchmarks/tasks_data.py) use the built-in tools over real resources: the calculator,
the read-only files tool on examples/data/docs, the read-only SQL tool on examples/data/shop.sqlite,
the allowlisted HTTP tool against a real weather service started on loopback, and custom tools
(an employee directory, department facts, exchange rates, date arithmetic); some need two hops,
some need no tool at all. Each task runs as a fresh agent with default settings (`tool_format="auto"`,
greedy, max_steps 6); its answer is checked against the expected strings. "invalid" counts replies
the parser rejected (0 under the grammar). `--json` writes every run for the peer comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _models import add_check_options, add_model_options, device_label, load_engine, step_checks
from tasks_data import CUSTOM_TOOLS, TASKS, Task, solved

from agentkit import Agent, AgentkitError, tool
from agentkit.checks import DEFAULT_STEP_CHECKS, describe_check
from agentkit.tools import calculator, file_tools, http_tools, sql_tool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


def builtin_tools(weather_url: str) -> dict[str, list]:
    """The built-in tools by the names tasks use, each over its real resource."""
    return {
        "calculator": [calculator],
        "files": file_tools(ROOT / "examples" / "data" / "docs"),
        "sql": [sql_tool(ROOT / "examples" / "data" / "shop.sqlite")],
        "http": http_tools(allowed_hosts=["127.0.0.1"], allow_private=["127.0.0.1"]),
    }


def tools_for(task: Task, builtins: dict[str, list]) -> list:
    chosen = []
    for name in task.tools:
        chosen += builtins[name] if name in builtins else [tool(CUSTOM_TOOLS[name])]
    return chosen


def question_for(task: Task, weather_url: str) -> str:
    if "http" in task.tools:  # the service's address is part of the question, as a user would give it
        return f"{task.question} (The weather service is at {weather_url}/weather?city=NAME)"
    return task.question


def run_task(engine, task: Task, builtins: dict[str, list], weather_url: str, max_steps: int, checks=DEFAULT_STEP_CHECKS) -> dict:
    started = time.perf_counter()
    agent = Agent(engine, tools=tools_for(task, builtins), max_steps=max_steps, step_checks=checks)
    row = {"id": task.id, "kind": task.kind, "solved": False, "steps": 0, "invalid": 0, "calls": 0, "answer": None, "error": None}
    try:
        result = agent.run(question_for(task, weather_url))
        steps, row["answer"] = result.steps, result.output
    except AgentkitError as exc:
        partial = getattr(exc, "partial", None)
        steps = partial.steps if partial is not None else []
        row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    row["steps"] = len(steps)
    row["invalid"] = sum(len(s.rejected_outputs) for s in steps)
    row["calls"] = sum(len(s.calls) for s in steps)
    row["trace"] = [s.raw_output for s in steps]
    row["solved"] = row["answer"] is not None and solved(task, row["answer"])
    if task.kind == "no tool":  # answered, and without calling a tool it did not need
        row["solved"] = row["solved"] and row["calls"] == 0
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_options(parser)
    parser.add_argument("--only", default=None, help="comma-separated task ids")
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None, help="write every task's run here")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_check_options(parser)
    args = parser.parse_args()
    from weather_service import start

    checks = step_checks(args)
    tasks = [t for t in TASKS if not args.only or t.id in args.only.split(",")]
    engine = load_engine(args)
    url, _, stop = start()
    try:
        builtins = builtin_tools(url)
        rows = []
        for task in tasks:
            row = run_task(engine, task, builtins, url, args.max_steps, checks)
            rows.append(row)
            mark = "✓" if row["solved"] else "✗"
            print(f"{mark} {task.id:<14} steps {row['steps']} calls {row['calls']} invalid {row['invalid']} "
                  f"{row['seconds']:5.1f} s  {str(row['answer'])[:70]!r} {row['error'] or ''}", flush=True)
            if args.verbose:
                for text in row["trace"]:
                    print(f"      {text[:160]!r}")
    finally:
        stop()
    solved_count = sum(r["solved"] for r in rows)
    summary = {
        "library": "agentkit", "model": engine.name, "device": device_label(engine), "date": time.strftime("%Y-%m-%d"),
        "step_checks": [describe_check(c) for c in checks], "tasks": len(rows), "solved": solved_count, "steps": sum(r["steps"] for r in rows),
        "invalid": sum(r["invalid"] for r in rows), "seconds": round(sum(r["seconds"] for r in rows), 1),
    }
    print(f"\n| library | model | solved | steps | invalid replies | seconds |\n|---|---|---|---|---|---|\n"
          f"| agentkit | {engine.name} | {solved_count}/{len(rows)} | {summary['steps']} | {summary['invalid']} | {summary['seconds']} |")
    print(f"({summary['device']}, {summary['date']})")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
