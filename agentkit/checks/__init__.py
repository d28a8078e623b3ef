"""Step checks: looks at the calls of each step the model writes, before they run, that may discard some.

`Agent(step_checks=...)` is a sequence of checks, run in order, each on the step as the previous ones
left it (only steps with calls are checked). A check with an `extend` method may also add calls
(`Extension`). A discarded call never runs; it is in `Step.discarded`
with its reason and the check's name, and in the trace (`calls_dropped`). When no call is left, the
model is asked for its answer, with a note saying which call was not run and why (the reason),
unless the check discarded with `call_again` (`Discard`).

The default, `DEFAULT_STEP_CHECKS`, was measured on SmolLM2-135M and on the tool-tuned reference
models Qwen2.5-Coder 0.5B and 1.5B (benchmarks/RESULTS.md); no check on by default drops a correct
call of a tool-tuned model:

- `MoreCalls(first_step_only=True)`: after the calls of a run's first step, the model is made to
  write one more (the reply kept as written, one call added under the grammar); the call is kept
  when it calls a tool the step calls with a value from the conversation no call of it used (the
  next of the values the task lists), and asked again. It adds calls rather than discarding them
  (its `extend`); the checks after it see the calls added. Local engines only.
- `PruneCalls(formats=("agentkit",))`: a step's extra calls the model itself scores as less likely
  than stopping. Only for the `agentkit` format (models without a tool format of their own): on
  Qwen2.5-Coder-1.5B it dropped the correct second call of "the weather in Oslo and in Lima".
- `GroundedCalls()`: calls whose numbers and other values are all invented, for every format: 0 of
  163 (1.5B) and 0 of 123 (0.5B) correct BFCL calls dropped; irrelevance 40% -> 60% and 12% -> 36%.
  A call whose string is its tool description's example ("e.g. 'finance'"), with nothing else from
  the conversation, is shown to the model as not run and the next step must call again
  (`Discard(call_again=True)`).
- `JudgedCalls(skip_formats=("agentkit",), first_step_only=True)`: the model judges each call of a
  run's first step as a yes/no question; not for the `agentkit` format, whose small models judge no
  better than they choose. It dropped no call of the 1.5B's 200 BFCL call-category tests.

Checks that score replies (prune, judged) need a backend with `score` (`agentkit.backend.Scorer`:
the local engine) and do nothing on others. `step_checks=()` turns all checks off; to add your own,
append it to the defaults.

Example: a check of your own, an allowlist of argument values.
    >>> from agentkit import Agent, tool
    >>> from agentkit.testing import ScriptedBackend
    >>> @tool
    ... def convert(amount: float, unit: str) -> str:
    ...     '''Convert an amount to metres.'''
    ...     return f"{amount} {unit}"
    >>> class AllowedUnits:
    ...     name = "allowed_units"
    ...     async def __call__(self, context, step):
    ...         return [Discard(call=c, reason=f"unit {c.arguments.get('unit')!r} is not supported")
    ...                 for c in step.calls if c.arguments.get("unit") not in ("km", "mile")]
    >>> backend = ScriptedBackend([
    ...     {"calls": [{"name": "convert", "arguments": {"amount": 3, "unit": "league"}}]},
    ...     {"final_answer": "I cannot convert leagues."},
    ... ])
    >>> agent = Agent(backend, tools=[convert], step_checks=(*DEFAULT_STEP_CHECKS, AllowedUnits()))
    >>> run = agent.run("How many metres are 3 leagues?")
    >>> run.output
    'I cannot convert leagues.'
    >>> [(d.call.arguments["unit"], d.check) for d in run.steps[0].discarded]
    [('league', 'allowed_units')]
"""

from __future__ import annotations

from agentkit.checks.base import CheckContext, Discard, Extension, ScopedCheck, StepCheck, describe_check
from agentkit.checks.grounding import GroundedCalls
from agentkit.checks.judging import JudgedCalls
from agentkit.checks.more_calls import MoreCalls
from agentkit.checks.pruning import PruneCalls

# The checks every agent runs unless told otherwise, each with the scope it was measured to help in.
DEFAULT_STEP_CHECKS: tuple[StepCheck, ...] = (
    MoreCalls(first_step_only=True),
    PruneCalls(formats=("agentkit",)),
    GroundedCalls(),
    JudgedCalls(skip_formats=("agentkit",), first_step_only=True),
)

__all__ = [
    "DEFAULT_STEP_CHECKS",
    "CheckContext",
    "Discard",
    "Extension",
    "GroundedCalls",
    "JudgedCalls",
    "MoreCalls",
    "PruneCalls",
    "ScopedCheck",
    "StepCheck",
    "describe_check",
]
