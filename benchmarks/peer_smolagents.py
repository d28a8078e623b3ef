"""The same agent tasks on a peer library: smolagents' `ToolCallingAgent` with `TransformersModel`.

    make peer-env                      # .venv/peer: smolagents beside agentkit's own torch/transformers
    .venv/peer/bin/python benchmarks/peer_smolagents.py --model qwen2.5-coder-0.5b [--only calc-1]

Same weights (the reference GGUF's cached conversion, which is exactly what agentkit loads), same
tasks and checks (tasks_data.py), same tool functions (agentkit's Tool objects called through
smolagents `Tool` wrappers with the same names, descriptions and argument schemas), greedy, at
most 6 steps. smolagents decodes freely and parses the tool call out of the text; a reply it
cannot parse counts as an invalid reply (it feeds the error back and the step is lost).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tasks import builtin_tools, question_for, tools_for  # noqa: E402
from tasks_data import TASKS, Task, solved  # noqa: E402

_JSON_TYPES = {"string", "boolean", "integer", "number", "array", "object", "null"}


def smol_tool(agentkit_tool):
    """A smolagents Tool that calls an agentkit Tool (same name, description and argument schema)."""
    from smolagents import Tool

    schema = agentkit_tool.parameters
    required = set(schema.get("required", []))
    inputs = {}
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type")
        kind = kind if isinstance(kind, str) and kind in _JSON_TYPES else "any"
        inputs[name] = {"type": kind, "description": spec.get("description") or name}
        if name not in required:
            inputs[name]["nullable"] = True

    def forward(self, **arguments):
        arguments = {k: v for k, v in arguments.items() if v is not None}
        return str(agentkit_tool(**arguments))

    cls = type(
        f"Peer_{agentkit_tool.name}", (Tool,),
        {"name": agentkit_tool.name, "description": agentkit_tool.description or agentkit_tool.name, "inputs": inputs,
         "output_type": "string", "forward": forward, "skip_forward_signature_validation": True},
    )
    return cls()


def run_task(model, task: Task, builtins, url: str, max_steps: int) -> dict:
    from smolagents import ToolCallingAgent
    from smolagents.memory import ActionStep

    started = time.perf_counter()
    agent = ToolCallingAgent(tools=[smol_tool(t) for t in tools_for(task, builtins)], model=model, max_steps=max_steps,
                             verbosity_level=0)
    row = {"id": task.id, "kind": task.kind, "solved": False, "answer": None, "error": None}
    try:
        row["answer"] = agent.run(question_for(task, url))
    except Exception as exc:  # noqa: BLE001 - a peer failure is a result, not a crash of the benchmark
        row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
    row["steps"] = len(steps)
    row["invalid"] = sum(1 for s in steps if s.error is not None and "Parsing" in type(s.error).__name__)
    row["errors"] = sum(1 for s in steps if s.error is not None)
    row["calls"] = sum(len(s.tool_calls or []) for s in steps if not any(c.name == "final_answer" for c in (s.tool_calls or [])))
    row["trace"] = [str(s.model_output)[:300] for s in steps]
    row["solved"] = row["answer"] is not None and solved(task, row["answer"])
    if task.kind == "no tool":
        row["solved"] = row["solved"] and row["calls"] == 0
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="reference model name or a .gguf file")
    parser.add_argument("--only", default=None)
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from smolagents import TransformersModel

    from _models import model_path
    from agentkit.engine.loading import cached_conversion
    from weather_service import start

    folder = cached_conversion(model_path(args.model))  # the dequantised GGUF, as agentkit loads it
    model = TransformersModel(model_id=str(folder), device_map="cpu", torch_dtype="float32", max_new_tokens=args.max_new_tokens,
                              do_sample=False)
    tasks = [t for t in TASKS if not args.only or t.id in args.only.split(",")]
    url, _, stop = start()
    rows = []
    try:
        builtins = builtin_tools(url)
        for task in tasks:
            row = run_task(model, task, builtins, url, args.max_steps)
            rows.append(row)
            print(f"{'✓' if row['solved'] else '✗'} {task.id:<14} steps {row['steps']} calls {row['calls']} invalid {row['invalid']} "
                  f"{row['seconds']:5.1f} s  {str(row['answer'])[:70]!r} {row['error'] or ''}", flush=True)
    finally:
        stop()
    import smolagents

    summary = {"library": f"smolagents {smolagents.__version__}", "model": Path(model_path(args.model)).name,
               "date": time.strftime("%Y-%m-%d"), "tasks": len(rows), "solved": sum(r["solved"] for r in rows),
               "steps": sum(r["steps"] for r in rows), "invalid": sum(r["invalid"] for r in rows),
               "seconds": round(sum(r["seconds"] for r in rows), 1)}
    print(f"\n| {summary['library']} | {summary['model']} | {summary['solved']}/{summary['tasks']} | {summary['steps']} | "
          f"{summary['invalid']} | {summary['seconds']} |")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
