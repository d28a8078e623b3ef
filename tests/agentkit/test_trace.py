"""Run traces: every event on disk as it happens, a killed run leaves a readable trace, replay works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentkit import Agent, MaxStepsExceeded, tool
from agentkit.testing import ReplayBackend, ScriptedBackend
from agentkit.tools import calculator
from agentkit.trace import read_trace

SCRIPT = [
    {"calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]},
    {"final_answer": "391"},
]


def test_a_run_writes_its_events_in_order(tmp_path):
    path = tmp_path / "run.jsonl"
    Agent(ScriptedBackend(SCRIPT), tools=[calculator], trace=path).run("What is 17 * 23?")
    events = read_trace(path)
    assert [e["event"] for e in events] == ["run_start", "model_call", "tool_call", "observation", "model_call", "run_end"]
    start, call, _, observation, _, end = events
    assert start["task"] == "What is 17 * 23?" and start["tools"] == ["calculator"] and len(start["schema_hash"]) == 16
    assert call["output"] == json.dumps(SCRIPT[0]) and call["valid"] is True
    assert observation["content"] == "391" and observation["is_error"] is False
    assert end["output"] == "391" and end["steps"] == 2
    assert len({e["run_id"] for e in events}) == 1


def test_each_event_is_on_disk_before_the_run_goes_on(tmp_path):
    path = tmp_path / "run.jsonl"
    steps = Agent(ScriptedBackend(SCRIPT), tools=[calculator], trace=path).iter("What is 17 * 23?")
    next(steps)  # the first step and its observation, not the answer yet
    assert [e["event"] for e in read_trace(path)] == ["run_start", "model_call", "tool_call", "observation"]
    list(steps)
    assert read_trace(path)[-1]["event"] == "run_end"


def test_failures_and_invalid_replies_are_recorded(tmp_path):
    path = tmp_path / "run.jsonl"
    backend = ScriptedBackend(["not json", *SCRIPT[:1]])
    with pytest.raises(MaxStepsExceeded):
        Agent(backend, tools=[calculator], trace=path, max_steps=1).run("What is 17 * 23?")
    events = read_trace(path)
    calls = [e for e in events if e["event"] == "model_call"]
    assert [c["valid"] for c in calls] == [False, True] and calls[0]["error"]
    assert events[-1]["event"] == "error" and events[-1]["type"] == "MaxStepsExceeded"


def test_several_runs_append_to_one_file_and_replay_picks_the_last(tmp_path):
    path = tmp_path / "runs.jsonl"
    Agent(ScriptedBackend([{"final_answer": "first"}]), trace=path).run("one")
    Agent(ScriptedBackend([{"final_answer": "second"}]), trace=path).run("two")
    assert len({e["run_id"] for e in read_trace(path)}) == 2
    replay = ReplayBackend(path)
    assert replay.task == "two"
    assert Agent(replay).run(replay.task).output == "second"


def test_replay_reruns_changed_tools_against_the_recorded_model_outputs(tmp_path):
    path = tmp_path / "run.jsonl"
    Agent(ScriptedBackend(SCRIPT), tools=[calculator], trace=path).run("What is 17 * 23?")

    @tool(name="calculator")
    def broken_calculator(expression: str) -> str:
        """A regression: the tool now fails."""
        raise RuntimeError("division unit offline")

    rerun = Agent(ReplayBackend(path), tools=[broken_calculator]).run("What is 17 * 23?")
    assert rerun.output == "391"  # the model's recorded answer
    assert rerun.steps[0].observations[0].is_error  # but the tool change shows up


def test_a_replay_that_goes_off_script_says_so(tmp_path):
    path = tmp_path / "run.jsonl"
    Agent(ScriptedBackend(SCRIPT[:1] + [{"final_answer": "391"}]), tools=[calculator], trace=path).run("q")
    replay = ReplayBackend(path)
    replay.generate(None), replay.generate(None)
    with pytest.raises(IndexError, match="different path"):
        replay.generate(None)


def test_a_killed_run_leaves_a_valid_trace_up_to_its_last_event(tmp_path):
    path = tmp_path / "killed.jsonl"
    started = tmp_path / "tool-started"
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from agentkit import Agent, tool
        from agentkit.testing import ScriptedBackend

        @tool(timeout=60)
        def slow_export(name: str) -> str:
            '''Export something slowly.'''
            Path({str(started)!r}).touch()
            time.sleep(60)
            return "done"

        backend = ScriptedBackend([{{"calls": [{{"name": "slow_export", "arguments": {{"name": "db"}}}}]}}])
        Agent(backend, tools=[slow_export], trace={str(path)!r}).run("Export the database")
    """)
    process = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline, "the run never reached its tool"
            assert process.poll() is None, "the run died before its tool started"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    events = read_trace(path)
    assert [e["event"] for e in events] == ["run_start", "model_call", "tool_call"]
    assert events[-1]["call"]["name"] == "slow_export"


def test_a_cut_off_last_line_is_skipped_but_a_corrupt_middle_is_an_error(tmp_path):
    path = tmp_path / "run.jsonl"
    Agent(ScriptedBackend([{"final_answer": "ok"}]), trace=path).run("q")
    whole = path.read_text()
    path.write_text(whole + '{"event": "model_ca')
    assert read_trace(path)[-1]["event"] == "run_end"
    Path(path).write_text("garbage\n" + whole)
    with pytest.raises(ValueError, match="not a JSON event"):
        read_trace(path)
