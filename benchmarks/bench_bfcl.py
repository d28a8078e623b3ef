"""BFCL tool-call accuracy, constrained vs unconstrained and per tool format, side by side in one run.

    .venv/bin/python benchmarks/bench_bfcl.py --limit 50                      # the embedded SmolLM2-135M
    .venv/bin/python benchmarks/bench_bfcl.py --limit 20 --formats agentkit,hermes --no-unconstrained
    .venv/bin/python benchmarks/bench_bfcl.py --model qwen2.5-coder-0.5b --dtype bfloat16 --formats auto --baseline

Every configuration runs on the same engine (loaded once) and the same first N tests of each
category, scored by BFCL's own AST checker (`agentkit.evals.bfcl`). Prints a markdown table for
benchmarks/RESULTS.md, with "call accuracy" (the mean of the four categories that need calls) and
the constrained/unconstrained ratio per format; writes each configuration's report with --out-dir.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _models import add_check_options, add_model_options, device_label, load_engine, step_checks

from agentkit.evals.bfcl import CATEGORIES, CaseResult, evaluate, rescore
from agentkit.formats import make_tool_format
from agentkit.registry import ToolRegistry

CALL_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")


def _lenient_calls(text: str, tools: list) -> list[dict] | None:
    try:
        step = make_tool_format("hermes", ToolRegistry(tools)).parse(text, step_index=1)
    except Exception:
        return None
    return [{"name": c.name, "arguments": c.arguments} for c in step.calls]


def _progress(case: CaseResult) -> None:
    """One line per test on stderr: a long run shows where it is."""
    print(f"{case.id} {'ok' if case.correct else 'miss'} {case.seconds:.1f}s", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_options(parser)
    parser.add_argument("--limit", type=int, default=50, help="first N tests of each category")
    parser.add_argument("--formats", default="agentkit,llama3_json,pythonic,hermes", help='"" with --baseline: the baseline alone')
    parser.add_argument("--categories", default=",".join(CATEGORIES))
    parser.add_argument("--no-unconstrained", action="store_true", help="skip the unconstrained controls")
    parser.add_argument("--no-constrained", action="store_true", help="only the unconstrained controls (agentkit --no-constrain)")
    parser.add_argument("--baseline", action="store_true",
                        help="also the 'no agentkit' baseline: the model's own template, free decoding, vLLM's hermes parser")
    add_check_options(parser)
    parser.add_argument("--out-dir", type=Path, default=None, help="write each configuration's JSON report here")
    args = parser.parse_args()

    engine = load_engine(args)
    checks = step_checks(args)
    categories = args.categories.split(",")
    rows = []
    decodings = [c for c in (True, False) if not (c and args.no_constrained) and not (not c and args.no_unconstrained)]
    configs = [(f, c, False) for f in args.formats.split(",") if f for c in decodings]
    if args.baseline:
        configs.append(("template", False, True))
    for tool_format, constrained, baseline in configs:
        started = time.perf_counter()
        report = evaluate(engine, categories, limit=args.limit, tool_format="auto" if baseline else tool_format,
                          constrained=constrained, template_baseline=baseline, step_checks=checks, on_case=_progress)
        tool_format = report.tool_format if tool_format == "auto" else tool_format
        if args.out_dir:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            name = f"bfcl-{tool_format.split()[0]}-{'constrained' if constrained else 'free'}.json"
            (args.out_dir / name).write_text(report.model_dump_json(indent=1))
        if baseline:  # the same free replies, read leniently by agentkit's Hermes parser (no decoding)
            lenient = rescore(report, _lenient_calls, "template, agentkit parser")
            scores = {c: s.accuracy for c, s in lenient.categories.items()}
            calls = [scores[c] for c in CALL_CATEGORIES if c in scores]
            rows.append((lenient.tool_format, False, scores, sum(calls) / len(calls) if calls else 0.0, 0.0))
            print(json.dumps({"format": lenient.tool_format, "constrained": False, **scores}), flush=True)
        scores = {c: s.accuracy for c, s in report.categories.items()}
        calls = [scores[c] for c in CALL_CATEGORIES if c in scores]
        rows.append((tool_format, constrained, scores, sum(calls) / len(calls) if calls else 0.0, time.perf_counter() - started))
        print(json.dumps({"format": tool_format, "constrained": constrained, **scores}), flush=True)

    print(f"\nBFCL, first {args.limit} tests per category; {engine.name}; {device_label(engine)}; {time.strftime('%Y-%m-%d')}\n")
    print("| format | decoding | " + " | ".join(categories) + " | call accuracy | x unconstrained | time |")
    print("|---|---|" + "---|" * len(categories) + "---|---|---|")
    free = {f: acc for f, c, _, acc, _ in rows if not c}
    for tool_format, constrained, scores, accuracy, seconds in rows:
        ratio = "" if not constrained or tool_format not in free else (
            f"{accuracy / free[tool_format]:.1f}x" if free[tool_format] else "∞ (0 unconstrained)"
        )
        cells = " | ".join(f"{100 * scores.get(c, 0):.0f}%" for c in categories)
        print(f"| {tool_format} | {'grammar' if constrained else 'free'} | {cells} | {100 * accuracy:.0f}% | {ratio} | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
