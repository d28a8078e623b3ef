"""Judged calls (`JudgedCalls`): the model itself is asked whether each call of a run's first step fits the task.

A tool-tuned model under a step grammar calls a tool for almost every question, including those
no offered tool can answer (Qwen2.5-Coder-1.5B: `calculator("3 + 2")` for "What colour do you get
by mixing blue and yellow?", and every one of BFCL's irrelevance questions). Asked afterwards, as a
separate yes/no question ("Request: ... Function: ... Call: ... Does this call do what the request
asks?"), the same model mostly says no to those calls and yes to the ones the task needs: checking
a call is easier than choosing not to make one. A call whose "no" outweighs its "yes" is discarded
(not run); a step left without calls is asked again for an answer, as grounded calls do.

Only the first step of a run is judged: that is where "does a tool fit at all" is decided, and later
calls take their values from tool results the short question would not show.

Example:
    >>> from agentkit.types import ToolCall
    >>> from agentkit.tools import calculator
    >>> request = judge_request("What is 17 * 23?", calculator, ToolCall(id="1", name="calculator", arguments={"expression": "17 * 23"}))
    >>> print(request.messages[1].content.splitlines()[0])
    Request: What is 17 * 23?

On by default for every format but `agentkit`, on a run's first step (`DEFAULT_STEP_CHECKS`): it
dropped no call of Qwen2.5-Coder-1.5B's 200 BFCL call-category tests; the 0.5B judges all its calls
fit (it costs time only); models without a tool format of their own judge no better than they choose.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from agentkit.backend import GenerationRequest, Scorer
from agentkit.checks.base import CheckContext, Discard, ScopedCheck
from agentkit.prompts import render
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep
from agentkit.tool import Tool
from agentkit.types import Message, ToolCall

JUDGE_SYSTEM = "You check whether a function call fits a user's request."
# Both spellings of each word: the model's yes/no mass is split between them.
_YES, _NO = ("yes", "Yes"), ("no", "No")


def judge_request(task: str, tool: Tool, call: ToolCall, *, against: bool = False) -> GenerationRequest:
    """The yes/no question put to the model about `call` (of `tool`) for `task`.

    `against` asks the opposite question ("is this call wrong ...?"), whose "yes" counts against the call.
    """
    question = render(
        "judge_call_against.jinja" if against else "judge_call.jinja", task=task.strip(), name=tool.name,
        description=tool.description.strip(), call=f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})",
    )
    return GenerationRequest(messages=[Message(role="system", content=JUDGE_SYSTEM), Message(role="user", content=question)], max_tokens=4)


def verdict(scores: list[float]) -> float:
    """log P(yes) - log P(no) from the scores of the replies `_YES + _NO`; above 0 means the call fits."""
    yes = math.log(sum(math.exp(s) for s in scores[: len(_YES)]))
    no = math.log(sum(math.exp(s) for s in scores[len(_YES) :]))
    return yes - no


async def fit_log_odds(backend: Scorer, task: str, tool: Tool, call: ToolCall, *, contrasted: bool) -> float:
    """How strongly the model judges `call` fit for `task`: above 0 it fits.

    Contrasted, the question is also asked the other way round and its log-odds subtracted: a small
    model says "yes" to most yes/no questions (Qwen2.5-Coder-1.5B: +1 log-odds for "is this call
    wrong?" on calls it also calls right), and the difference cancels that lean.
    """
    scores = await asyncio.to_thread(backend.score, judge_request(task, tool, call), [*_YES, *_NO])
    if not contrasted:
        return verdict(scores)
    against = await asyncio.to_thread(backend.score, judge_request(task, tool, call, against=True), [*_YES, *_NO])
    return verdict(scores) - verdict(against)


async def unfit_calls(backend: Any, step: ParsedStep, registry: ToolRegistry, task: str, *, contrasted: bool = False) -> list[ToolCall]:
    """The calls of `step` the model judges not to fit `task` (none when `backend` cannot score)."""
    if not step.calls or not isinstance(backend, Scorer):
        return []
    unfit = []
    for call in step.calls:
        if call.name not in registry:
            continue
        if await fit_log_odds(backend, task, registry.get(call.name), call, contrasted=contrasted) < 0:
            unfit.append(call)
    return unfit


@dataclass(frozen=True, repr=False)
class JudgedCalls(ScopedCheck):
    """Each call is put to the model as a separate yes/no question; a call whose "no" outweighs its "yes" is discarded.

    Only on backends that can score replies (`agentkit.backend.Scorer`); on others it does nothing.
    Costs one short prompt per call checked.

    Example:
        >>> JudgedCalls(skip_formats=("agentkit",), first_step_only=True)
        JudgedCalls(skip_formats=('agentkit',), first_step_only=True)
    """

    name: ClassVar[str] = "judged_calls"
    reason: ClassVar[str] = "it does not fit the request"
    contrasted: bool = False  # also ask the opposite question and subtract its log-odds (`fit_log_odds`)

    async def check(self, context: CheckContext, step: ParsedStep) -> list[Discard]:
        """The calls of `step` the model judges not to fit the task."""
        unfit = await unfit_calls(context.backend, step, context.registry, context.task, contrasted=self.contrasted)
        return [Discard(call=c, reason=self.reason) for c in unfit]
