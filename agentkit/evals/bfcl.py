"""Tool-call accuracy on the Berkeley Function Calling Leaderboard (BFCL), scored by its own AST checker.

The data and the checker come from the `bfcl-eval` package (install it with
`pip install --no-deps bfcl-eval`: its declared dependencies are whole inference stacks the checker
never imports). Each test's function docs become agentkit tools through the same `Tool` and
`ToolRegistry` path as user tools; an `Agent` takes one step on the question, and the calls of that
step are what BFCL scores. Irrelevance tests pass when the step answers without a call.

Nothing here knows a BFCL function or question: the agent sees the tools and the question only.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
import time
import types
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentkit.agent import Agent
from agentkit.backend import Backend, Generation, GenerationRequest, Scorer
from agentkit.checks import DEFAULT_STEP_CHECKS, StepCheck
from agentkit.errors import AgentkitError
from agentkit.formats import format_for_convention
from agentkit.prompting import Example
from agentkit.steps import StepLimits
from agentkit.tool import Tool
from agentkit.types import Message, SamplingSettings, Step

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
INSTALL_HINT = "pip install --no-deps bfcl-eval"

# BFCL's type names -> JSON Schema.
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}


class BfclCase(BaseModel):
    """One BFCL test: the conversation, the function docs and (except for irrelevance) the accepted answers."""

    id: str
    category: str
    messages: list[dict[str, str]]
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, Any]] | None = None


class CaseResult(BaseModel):
    """How the agent did on one test."""

    id: str
    category: str
    correct: bool
    calls: list[dict[str, Any]] = Field(default_factory=list)  # BFCL's shape: [{"func.name": {"arg": value}}]
    not_run: list[dict[str, Any]] = Field(default_factory=list)  # written, but dropped by a step check (same shape)
    answer: str | None = None
    raw_output: str = ""
    error: str | None = None
    seconds: float = 0.0


class CategoryScore(BaseModel):
    """Accuracy on one category."""

    total: int
    correct: int
    accuracy: float
    seconds: float


class BfclReport(BaseModel):
    """A whole run: settings, per-category accuracy and every case."""

    model: str
    tool_format: str
    constrained: bool
    date: str
    limit: int | None
    categories: dict[str, CategoryScore]
    cases: list[CaseResult]


def bfcl_data_dir() -> Path:
    """The folder of BFCL's data inside the installed `bfcl-eval` package; a clear error if it is missing."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise AgentkitError(f"BFCL evaluation needs the bfcl-eval package: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_cases(category: str, limit: int | None = None) -> list[BfclCase]:
    """The first `limit` tests of a BFCL category (all when None), with their possible answers.

    Example:
        >>> load_cases("simple_python", limit=1)[0].functions[0]["name"]  # doctest: +SKIP
        'calculate_triangle_area'
    """
    if category not in CATEGORIES:
        raise AgentkitError(f"Unknown BFCL category {category!r}: use some of {', '.join(CATEGORIES)}.")
    data = bfcl_data_dir()
    questions = _read_jsonl(data / f"BFCL_v4_{category}.json", limit)
    answers: dict[str, Any] = {}
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    if answer_file.exists():
        answers = {row["id"]: row["ground_truth"] for row in _read_jsonl(answer_file, None)}
    return [
        BfclCase(id=row["id"], category=category, messages=row["question"][0], functions=row["function"], ground_truth=answers.get(row["id"]))
        for row in questions
    ]


def _read_jsonl(path: Path, limit: int | None) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def tool_name(bfcl_name: str) -> str:
    """A BFCL function name as a tool name (`math.factorial` -> `math_factorial`).

    Example:
        >>> tool_name("math.factorial")
        'math_factorial'
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", bfcl_name)
    return name if re.match(r"[A-Za-z_]", name) else f"f_{name}"


def json_schema(bfcl_schema: Any) -> Any:
    """BFCL's parameter schema (types `dict`, `float`, `tuple`, `any`) as standard JSON Schema.

    Example:
        >>> json_schema({"type": "dict", "properties": {"x": {"type": "float"}}, "required": ["x"]})
        {'type': 'object', 'properties': {'x': {'type': 'number'}}, 'required': ['x']}
    """
    if isinstance(bfcl_schema, list):
        return [json_schema(item) for item in bfcl_schema]
    if not isinstance(bfcl_schema, dict):
        return bfcl_schema
    converted: dict[str, Any] = {}
    for key, value in bfcl_schema.items():
        if key == "type" and isinstance(value, str):
            mapped = _TYPES.get(value, value)
            if mapped is not None:
                converted["type"] = mapped
        elif key == "properties" and isinstance(value, dict):
            converted["properties"] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf"):
            converted[key] = json_schema(value)
        elif key not in ("optional",):
            converted[key] = value
    if converted.get("type") == "object" and "properties" in converted:
        declared = set(converted["properties"])
        converted["required"] = [name for name in converted.get("required", []) if name in declared]
    return converted


def build_tools(functions: Iterable[dict[str, Any]]) -> tuple[list[Tool], dict[str, str]]:
    """Agent tools for BFCL function docs, and the map from tool name back to the BFCL name.

    The tools never run for real: BFCL scores the calls, not their results.
    """
    tools, names = [], {}
    for function in functions:
        name = tool_name(function["name"])

        def not_executed(**arguments: Any) -> str:
            return "(evaluation: the call is scored, not executed)"

        parameters = json_schema(function.get("parameters") or {"type": "object", "properties": {}})
        parameters.setdefault("type", "object")
        tools.append(Tool(not_executed, name=name, description=function.get("description", ""), parameters=parameters))
        names[name] = function["name"]
    return tools, names


class UnconstrainedBackend:
    """A backend wrapper that drops the grammar from every request: the "no constrained decoding" control."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.context_window = backend.context_window
        self.name = getattr(backend, "name", type(backend).__name__)
        self.tool_call_convention = getattr(backend, "tool_call_convention", None)
        if isinstance(backend, Scorer):  # the control differs from the real run in the grammar only
            self.score = backend.score

    def _free(self, request: GenerationRequest) -> GenerationRequest:
        return request.model_copy(update={"constraint": None})

    def generate(self, request: GenerationRequest) -> Generation:
        return self.backend.generate(self._free(request))

    async def agenerate(self, request: GenerationRequest) -> Generation:
        return await self.backend.agenerate(self._free(request))


def run_case(
    backend: Backend, case: BfclCase, *, tool_format: str = "auto", examples: Sequence[Example] | None = None,
    limits: StepLimits | None = None, max_step_tokens: int = 256, step_checks: Sequence[StepCheck] = DEFAULT_STEP_CHECKS,
) -> CaseResult:
    """Take one agent step on a BFCL test and score its calls with BFCL's checker."""
    started = time.perf_counter()
    tools, names = build_tools(case.functions)
    instructions = "\n".join(m["content"] for m in case.messages if m["role"] == "system")
    turns = [m for m in case.messages if m["role"] != "system"]
    history = [Message(role=m["role"], content=m["content"]) for m in turns[:-1]]  # type: ignore[arg-type]
    agent = Agent(
        backend, tools=tools, instructions=instructions, tool_format=tool_format, examples=examples, limits=limits,
        max_steps=1, max_invalid_retries=0, sampling=SamplingSettings(max_step_tokens=max_step_tokens), step_checks=step_checks,
    )
    result = CaseResult(id=case.id, category=case.category, correct=False)
    try:
        step = asyncio.run(_first_step(agent, turns[-1]["content"], history))
    except AgentkitError as exc:  # e.g. no parseable step without the grammar
        result.error = f"{type(exc).__name__}: {exc}"
        result.raw_output = "\n".join(getattr(exc, "outputs", []) or [])
        result.correct = case.category == "irrelevance"  # BFCL: an output that is not a call passes irrelevance
        result.seconds = time.perf_counter() - started
        return result
    result.raw_output = step.raw_output
    result.calls = [{names.get(c.name, c.name): c.arguments} for c in step.calls]
    result.not_run = [{names.get(d.call.name, d.call.name): d.call.arguments} for d in step.discarded]
    result.answer = None if not step.is_final else str(step.output)
    if case.category == "irrelevance":
        result.correct = not step.calls
    else:
        result.correct, result.error = _check(case, result.calls)
    result.seconds = time.perf_counter() - started
    return result


_HERMES_BLOCKS = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)


def hermes_parser_calls(text: str) -> list[dict[str, Any]] | None:
    """Calls as vLLM's hermes tool parser reads them: JSON in `<tool_call>` blocks; None when it finds none.

    Like vLLM, a block that is not valid JSON makes the whole reply plain content (no calls).

    Example:
        >>> hermes_parser_calls('<tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>')
        [{'name': 'f', 'arguments': {'x': 1}}]
        >>> hermes_parser_calls('{"name": "f", "arguments": {}}') is None
        True
    """
    blocks = [a or b for a, b in _HERMES_BLOCKS.findall(text)]
    if not blocks:
        return None
    try:
        calls = [json.loads(block.strip()) for block in blocks]
    except json.JSONDecodeError:
        return None
    if not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls):
        return None
    return [{"name": c["name"], "arguments": c.get("arguments") or {}} for c in calls]


def run_template_case(backend: Backend, case: BfclCase, *, max_step_tokens: int = 256) -> CaseResult:
    """The "no agentkit" baseline for one test: the model's own template and tools, free decoding, vLLM's parser."""
    started = time.perf_counter()
    tools, names = build_tools(case.functions)
    from agentkit.registry import ToolRegistry

    request = GenerationRequest(
        messages=[Message(role=m["role"], content=m["content"]) for m in case.messages],  # type: ignore[arg-type]
        tools=ToolRegistry(tools).function_specs(), max_tokens=max_step_tokens,
    )
    generation = backend.generate(request)
    calls = hermes_parser_calls(generation.text) or []
    result = CaseResult(id=case.id, category=case.category, correct=False, raw_output=generation.text)
    result.calls = [{names.get(c["name"], c["name"]): c["arguments"]} for c in calls]
    result.answer = None if calls else generation.text
    if case.category == "irrelevance":
        result.correct = not calls
    else:
        result.correct, result.error = _check(case, result.calls)
    result.seconds = time.perf_counter() - started
    return result


def rescore(report: BfclReport, parse: Callable[[str, list[Tool]], list[dict[str, Any]] | None], label: str) -> BfclReport:
    """The same replies read by another parser: `parse(text, tools)` gives `[{"name", "arguments"}]` or None.

    Costs no decoding. The benchmark reads the template baseline's free replies with agentkit's own
    Hermes parser (which takes bare and fenced JSON calls) to show what a lenient parser would find.
    """
    by_id = {c.id: c for category in report.categories for c in load_cases(category, report.limit)}
    cases, scores = [], {}
    for category, score in report.categories.items():
        results = []
        for old in (c for c in report.cases if c.category == category):
            case = by_id[old.id]
            tools, names = build_tools(case.functions)
            calls = parse(old.raw_output, tools) or []
            new = CaseResult(id=old.id, category=category, correct=False, raw_output=old.raw_output, seconds=old.seconds,
                             calls=[{names.get(c["name"], c["name"]): c["arguments"]} for c in calls])
            if category == "irrelevance":
                new.correct = not calls
            else:
                new.correct, new.error = _check(case, new.calls)
            results.append(new)
        correct = sum(r.correct for r in results)
        scores[category] = CategoryScore(total=len(results), correct=correct, accuracy=correct / len(results) if results else 0.0,
                                         seconds=score.seconds)
        cases += results
    return report.model_copy(update={"tool_format": label, "categories": scores, "cases": cases})


async def _first_step(agent: Agent, task: str, history: list[Message]) -> Step:
    steps = agent.aiter(task, history=history)
    try:
        return await steps.__anext__()
    finally:
        await steps.aclose()


def evaluate(
    backend: Backend, categories: Sequence[str] = CATEGORIES, *, limit: int | None = None, tool_format: str = "auto",
    constrained: bool = True, examples: Sequence[Example] | None = None, limits: StepLimits | None = None,
    max_step_tokens: int = 256, model_name: str = "", on_case: Callable[[CaseResult], None] | None = None,
    template_baseline: bool = False, step_checks: Sequence[StepCheck] = DEFAULT_STEP_CHECKS,
) -> BfclReport:
    """Run BFCL categories on a backend and score them.

    `template_baseline` runs the "no agentkit" baseline instead of the agent: the question and the
    tools in the model's own chat template, free decoding, calls read the way vLLM's hermes parser
    reads them (`<tool_call>` blocks of JSON; anything else is text). `step_checks` are the agent's
    checks of its calls (`agentkit.checks`; the defaults unless given).

    Example:
        >>> report = evaluate(LocalEngine.default(), ["simple_python"], limit=20)   # doctest: +SKIP
        >>> report.categories["simple_python"].accuracy                             # doctest: +SKIP
        0.65
    """
    chosen = backend if constrained else UnconstrainedBackend(backend)
    cases: list[CaseResult] = []
    scores: dict[str, CategoryScore] = {}
    for category in categories:
        started = time.perf_counter()
        results = []
        for case in load_cases(category, limit):
            if template_baseline:
                outcome = run_template_case(backend, case, max_step_tokens=max_step_tokens)
            else:
                outcome = run_case(
                    chosen, case, tool_format=tool_format, examples=examples, limits=limits, max_step_tokens=max_step_tokens,
                    step_checks=step_checks,
                )
            results.append(outcome)
            if on_case:
                on_case(outcome)
        correct = sum(r.correct for r in results)
        scores[category] = CategoryScore(
            total=len(results), correct=correct, accuracy=correct / len(results) if results else 0.0,
            seconds=time.perf_counter() - started,
        )
        cases.extend(results)
    used_format = tool_format if tool_format != "auto" else (format_for_convention(getattr(backend, "tool_call_convention", None)) or "agentkit")
    if template_baseline:
        used_format = "template (vLLM hermes parser)"
    return BfclReport(
        model=model_name or getattr(backend, "name", type(backend).__name__), tool_format=used_format, constrained=constrained,
        date=time.strftime("%Y-%m-%d"), limit=limit, categories=scores, cases=cases,
    )


def _check(case: BfclCase, calls: list[dict[str, Any]]) -> tuple[bool, str | None]:
    checker, python = _checker()
    verdict = checker(case.functions, calls, case.ground_truth or [], python, case.category, _STUB_MODEL)
    if verdict["valid"]:
        return True, None
    return False, f"{verdict.get('error_type')}: {json.dumps(verdict.get('error'), default=str)[:300]}"


_STUB_MODEL = "agentkit"


def _checker() -> tuple[Callable[..., dict[str, Any]], Any]:
    """BFCL's `ast_checker`, imported without the model registry that would pull in every provider SDK."""
    bfcl_data_dir()  # the clear "install bfcl-eval" error first
    if "bfcl_eval.constants.model_config" not in sys.modules:
        stub = types.ModuleType("bfcl_eval.constants.model_config")

        class _Config:
            underscore_to_dot = False  # we map names back to BFCL's dotted names ourselves

        stub.MODEL_CONFIG_MAPPING = _AnyModel(_Config())  # type: ignore[attr-defined]
        sys.modules["bfcl_eval.constants.model_config"] = stub
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    return ast_checker, Language.PYTHON


class _AnyModel(dict):  # type: ignore[type-arg]
    """Every model name maps to the same config."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self._config = config

    def __missing__(self, key: str) -> Any:
        return self._config
