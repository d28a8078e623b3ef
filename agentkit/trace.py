"""Run traces: one JSON event per line, written and flushed as it happens.

A run killed half-way leaves a valid trace up to its last event (`read_trace` skips a cut-off last
line). Events, each with `event`, `run_id` and `time` (Unix seconds):

- `run_start`: task, backend, tools, schema_hash (same tools and limits, same grammar), settings
  (`Agent.describe()`: max_steps, sampling, step_checks)
- `model_call`: step, attempt, output (the model's text), valid, error, prompt/completion tokens,
  seconds, finish_reason, engine details
- `calls_dropped`: step, calls, reason, check: calls a step check discarded (`agentkit.checks`)
- `context_compacted`: step, strategy, tokens before and after, messages (`agentkit.context`)
- `tool_call`: step, call (id, name, arguments)
- `observation`: step, call_id, name, content, is_error, error_type, truncated, seconds
- `run_end`: output, steps, usage, seconds
- `error`: type and message of what stopped the run (MaxStepsExceeded, InvalidStepError...)

`agentkit.testing.ReplayBackend` replays a trace's model outputs; `agentkit replay` re-renders one.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel


class TraceWriter:
    """Appends events to a JSONL file, one flushed line per event.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.jsonl"
        >>> with TraceWriter(path) as trace:
        ...     trace.event("run_start", task="What is 2 + 2?")
        >>> [e["event"] for e in read_trace(path)]
        ['run_start']
    """

    def __init__(self, path: str | os.PathLike[str], *, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def event(self, kind: str, **fields: Any) -> None:
        """Write one event now (a crash right after still leaves it on disk)."""
        if self._file is None:
            return
        record = {"event": kind, "run_id": self.run_id, "time": round(time.time(), 6), **fields}
        self._file.write(json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(path: str | os.PathLike[str], *, run_id: str | None = None) -> list[dict[str, Any]]:
    """The events of a trace file (of one run when `run_id` is given), skipping a cut-off last line.

    Raises `ValueError` naming the line when a line in the middle is not JSON (not a trace file).
    """
    # Split on "\n" only: str.splitlines() would also split inside strings holding U+2028, U+2029 or
    # U+0085, which JSON writes raw with ensure_ascii=False (text from web pages and documents).
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the run was killed while writing this line
            raise ValueError(f"{path}:{number} is not a JSON event; is this an agentkit trace (JSONL)?") from None
        if run_id is None or event.get("run_id") == run_id:
            events.append(event)
    return events


def last_run_id(events: list[dict[str, Any]]) -> str | None:
    """The run_id of the last run that started in `events` (a trace file may hold several runs)."""
    starts = [e["run_id"] for e in events if e.get("event") == "run_start"]
    return starts[-1] if starts else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)
