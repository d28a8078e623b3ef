"""`agentkit eval bfcl`: BFCL's own data and AST checker, tools built through the normal registry path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bfcl_eval.eval_checker", reason="bfcl-eval is not installed (make test installs it)")

from agentkit.evals.bfcl import build_tools, evaluate, json_schema, load_cases, run_case, tool_name
from agentkit.formats import make_tool_format
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep
from agentkit.testing import FunctionBackend
from agentkit.types import ToolCall

AGENTKIT = Path(sys.executable).parent / "agentkit"


def _answering_with_ground_truth(tool_format: str = "agentkit") -> FunctionBackend:
    """A backend that writes each test's first accepted answer, in the agent's format: an oracle."""
    cases = {c.id: c for cat in ("simple_python", "parallel", "multiple") for c in load_cases(cat, limit=5)}

    def reply(request) -> str:
        question = request.messages[-1].content
        case = next(c for c in cases.values() if c.messages[-1]["content"] == question)
        calls = []
        for i, expected in enumerate(case.ground_truth or []):
            (name, arguments), = expected.items()
            chosen = {k: v[0] for k, v in arguments.items() if v and v[0] != ""}
            calls.append(ToolCall(id=str(i), name=tool_name(name), arguments=chosen))
        tools, _ = build_tools(case.functions)
        return make_tool_format(tool_format, ToolRegistry(tools)).render(ParsedStep(thought=None, calls=calls))

    return FunctionBackend(reply)


def test_bfcl_types_become_json_schema():
    case = load_cases("simple_python", limit=1)[0]
    tools, names = build_tools(case.functions)
    assert names == {"calculate_triangle_area": "calculate_triangle_area"}
    schema = tools[0].parameters
    assert schema["type"] == "object" and schema["required"] == ["base", "height"]
    assert json_schema({"type": "tuple", "items": {"type": "float"}}) == {"type": "array", "items": {"type": "number"}}
    assert json_schema({"type": "any"}) == {}
    assert tool_name("math.factorial") == "math_factorial" and tool_name("1x") == "f_1x"


@pytest.mark.parametrize("tool_format", ["agentkit", "llama3_json", "pythonic", "hermes"])
def test_the_ground_truth_scores_full_marks_in_every_format(tool_format):
    report = evaluate(_answering_with_ground_truth(tool_format), ["simple_python", "parallel", "multiple"], limit=5, tool_format=tool_format)
    failed = [c for c in report.cases if not c.correct]
    assert not failed, failed[0]
    assert all(s.accuracy == 1.0 for s in report.categories.values())
    # Dotted BFCL names are mapped back before scoring.
    assert any("." in next(iter(call)) for c in report.cases for call in c.calls)


def test_wrong_calls_and_answers_are_scored_as_such():
    wrong = FunctionBackend(lambda request: {"final_answer": "I cannot help."})
    report = evaluate(wrong, ["simple_python", "irrelevance"], limit=3)
    assert report.categories["simple_python"].correct == 0
    assert report.categories["irrelevance"].correct == 3  # not calling a tool is right when none fits
    case = load_cases("simple_python", limit=1)[0]
    off_by_one = FunctionBackend(lambda request: {"calls": [{"name": "calculate_triangle_area", "arguments": {"base": 11, "height": 5}}]})
    result = run_case(off_by_one, case)
    assert not result.correct and "base" in (result.error or "")


def test_unconstrained_runs_send_no_grammar():
    seen = []

    def reply(request):
        seen.append(request.constraint)
        return "Sure! Here is the area: 25."

    report = evaluate(FunctionBackend(reply), ["simple_python", "irrelevance"], limit=2, constrained=False, tool_format="hermes")
    assert seen and all(c is None for c in seen)
    assert report.categories["simple_python"].correct == 0 and report.categories["irrelevance"].correct == 2
    assert not report.constrained


def test_cli_writes_a_report_on_a_local_model(tmp_path, tiny_model_dir):
    out = tmp_path / "report.json"
    done = subprocess.run(
        [str(AGENTKIT), "eval", "bfcl", "--model", str(tiny_model_dir), "--categories", "simple_python,irrelevance",
         "--limit", "2", "--out", str(out), "--format", "pythonic", "--max-step-tokens", "64"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["tool_format"] == "pythonic" and report["constrained"] is True
    assert set(report["categories"]) == {"simple_python", "irrelevance"} and len(report["cases"]) == 4
    assert "simple_python" in done.stdout and "%" in done.stdout


def test_cli_rejects_unknown_categories():
    done = subprocess.run([str(AGENTKIT), "eval", "bfcl", "--categories", "live_simple"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "live_simple" in done.stderr and "Traceback" not in done.stderr
