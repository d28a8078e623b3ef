"""The run_python tool: output comes back, failures read well, limits are reported, nothing is left behind."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

import pytest

from agentkit import Tool, ToolCall, ToolRegistry
from agentkit.tools.python import MAX_CODE_CHARS, MB, PythonRunError, python_tool


@pytest.fixture(scope="module")
def run_python() -> Tool:
    return python_tool(timeout_seconds=5, cpu_seconds=3, memory_bytes=256 * MB)


def failure(tool: Tool, code: str) -> str:
    with pytest.raises(PythonRunError) as info:
        tool(code=code)
    return str(info.value)


def test_it_is_a_tool_with_one_code_argument_and_its_limits_in_the_description():
    sandbox = python_tool(timeout_seconds=7, cpu_seconds=4, memory_bytes=300 * MB)
    assert isinstance(sandbox, Tool) and sandbox.name == "run_python"
    assert sandbox.parameters["required"] == ["code"] and list(sandbox.parameters["properties"]) == ["code"]
    assert sandbox.parameters["properties"]["code"]["type"] == "string"
    assert all(part in sandbox.description for part in ("7 s wall clock", "4 s CPU", "300 MB memory", "network disabled"))
    assert sandbox.timeout == 12  # the registry's limit leaves room for the tool's own, which reports better


def test_prints_come_back(run_python):
    assert run_python(code="print(6 * 7)\nprint('done')") == "42\ndone\n"


def test_stderr_of_a_successful_run_comes_after_stdout(run_python):
    result = run_python(code="import sys\nprint('answer')\nprint('a warning', file=sys.stderr)")
    assert result == "answer\n\n[stderr]\na warning\n"


def test_a_silent_run_says_so(run_python):
    assert "print()" in run_python(code="x = 1 + 1")


def test_the_standard_library_works(run_python):
    code = """
import asyncio, decimal, json, tempfile, threading, pathlib, xml.etree.ElementTree as ET
pathlib.Path("data.json").write_text(json.dumps({"x": str(decimal.Decimal("0.1") * 3)}))
with tempfile.TemporaryDirectory() as scratch:
    pass
worker = threading.Thread(target=print, args=("thread",)); worker.start(); worker.join()
print(asyncio.run(asyncio.sleep(0, "async")), ET.fromstring("<n>2</n>").text, open("data.json").read())
"""
    assert run_python(code=code) == 'thread\nasync 2 {"x": "0.3"}\n'


def test_sqlite_works_in_memory_and_in_the_working_directory(run_python):
    sealed = run_python(code="import os\nprint(os.statvfs('/').f_flag & os.ST_RDONLY)") == "1\n"
    if not sealed:
        pytest.skip("without a mount namespace (refused by this kernel) sqlite3 is refused: it writes files unaudited")
    code = """
import sqlite3
for name in (":memory:", "data.db"):
    db = sqlite3.connect(name); db.execute("create table t (x)"); db.execute("insert into t values (2)"); db.commit()
    print(name, db.execute("select x from t").fetchone()[0])
"""
    assert run_python(code=code) == ":memory: 2\ndata.db 2\n"


def test_runs_side_by_side_do_not_see_each_others_directories(run_python):
    code = "import os, time\nopen('mine.txt', 'w').write(os.getcwd())\ntime.sleep(0.5)\nprint(sorted(os.listdir()))"
    observations = asyncio.run(ToolRegistry([run_python]).arun_all(
        [ToolCall(id=str(i), name="run_python", arguments={"code": code}) for i in range(2)]))
    assert [o.content for o in observations] == ["['main.py', 'mine.txt']\n"] * 2


def test_an_exception_comes_back_as_a_traceback_of_the_users_code(run_python):
    message = failure(run_python, "def divide(a, b):\n    return a / b\n\nprint('before')\ndivide(1, 0)")
    assert message.startswith("The code failed: it raised an exception (exit status 1).")
    assert "before" in message
    assert 'main.py", line 5, in <module>' in message and 'main.py", line 2, in divide' in message
    assert message.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "<sandbox>" not in message  # the launcher's own frames are left out


def test_a_syntax_error_points_at_the_line(run_python):
    message = failure(run_python, "x = 1\ndef broken(:\n    pass")
    assert 'main.py", line 2' in message and "SyntaxError" in message


def test_exit_status_is_reported(run_python):
    assert "exited with status 3" in failure(run_python, "import sys\nsys.exit(3)")
    assert run_python(code="import sys\nprint('bye')\nsys.exit(0)") == "bye\n"


def test_the_wall_clock_limit_stops_the_run_and_keeps_what_it_printed():
    sandbox = python_tool(timeout_seconds=1)
    started = time.monotonic()
    message = failure(sandbox, "import time\nprint('started')\ntime.sleep(60)")
    assert time.monotonic() - started < 3
    assert "wall-clock time limit of 1 s" in message and "started" in message


def test_the_cpu_limit_is_named():
    sandbox = python_tool(timeout_seconds=10, cpu_seconds=1)
    started = time.monotonic()
    assert "CPU time limit of 1 s" in failure(sandbox, "while True:\n    pass")
    assert time.monotonic() - started < 4


def test_the_memory_limit_is_named(run_python):
    assert "ran out of memory (limit 256 MB)" in failure(run_python, "blob = bytearray(2 * 1024 ** 3)")


def test_long_stdout_is_cut_and_the_cut_is_noted():
    sandbox = python_tool(max_output_chars=100)
    result = sandbox(code="print('x' * 5000)")
    assert result.startswith("x" * 100 + "\n[stdout truncated: showing the first 100 characters of 5001 bytes]")
    assert len(result) < 300


def test_long_stderr_keeps_its_end_where_the_error_is():
    sandbox = python_tool(max_output_chars=200)
    message = failure(sandbox, "import sys\nsys.stderr.write('noise ' * 5000)\nraise ValueError('the real problem')")
    assert "[stderr truncated: showing the last" in message
    assert message.rstrip().endswith("ValueError: the real problem") and len(message) < 600


def test_the_working_directory_is_fresh_and_removed_afterwards(run_python):
    code = "import os\nopen('notes.txt', 'w').write('hi')\nprint(os.getcwd())\nprint(sorted(os.listdir()))"
    first, listing = run_python(code=code).splitlines()
    assert listing == "['main.py', 'notes.txt']"
    assert os.path.basename(first).startswith("agentkit-python-")
    assert os.path.dirname(first) == os.path.realpath(tempfile.gettempdir())
    assert not os.path.exists(first)
    second = run_python(code=code).splitlines()[0]
    assert second != first and not os.path.exists(second)


def test_the_directory_is_removed_after_a_failure_too(run_python):
    message = failure(run_python, "import os\nos.makedirs('a/b')\nprint(os.getcwd())\nraise SystemExit(2)")
    folder = message.split("[stdout]\n")[1].splitlines()[0]
    assert folder.startswith(os.path.realpath(tempfile.gettempdir())) and not os.path.exists(folder)


def test_the_environment_is_empty_of_secrets(run_python, monkeypatch):
    monkeypatch.setenv("AGENTKIT_TEST_SECRET", "hunter2-do-not-leak")
    result = run_python(code="import os\nprint(sorted(os.environ))\nprint(os.environ.get('AGENTKIT_TEST_SECRET'))")
    assert result == "['HOME', 'LANG', 'PATH', 'TMPDIR']\nNone\n"


def test_through_the_registry_success_and_failure_are_observations(run_python):
    registry = ToolRegistry([run_python])
    ok = registry.run(ToolCall(id="1", name="run_python", arguments={"code": "print(sum(range(10)))"}))
    assert not ok.is_error and ok.content == "45\n"
    bad = registry.run(ToolCall(id="2", name="run_python", arguments={"code": "raise KeyError('missing')"}))
    assert bad.is_error and bad.error_type == "exception"
    assert "PythonRunError: The code failed" in bad.content and "KeyError: 'missing'" in bad.content
    invalid = registry.run(ToolCall(id="3", name="run_python", arguments={"source": "print(1)"}))
    assert invalid.is_error and invalid.error_type == "invalid_arguments"


def test_calls_of_one_step_run_side_by_side_in_their_own_directories(run_python):
    registry = ToolRegistry([run_python])
    code = "import os, time\ntime.sleep(0.5)\nprint(os.getcwd())"
    calls = [ToolCall(id=str(i), name="run_python", arguments={"code": code}) for i in range(3)]
    started = time.monotonic()
    observations = asyncio.run(registry.arun_all(calls))
    assert time.monotonic() - started < 1.4  # concurrent, not 3 x 0.5 s in a row
    folders = {o.content for o in observations}
    assert len(folders) == 3 and not any(o.is_error for o in observations)


def test_through_the_registry_a_hung_run_is_stopped_by_the_tool_itself():
    registry = ToolRegistry([python_tool(timeout_seconds=1)], timeout=30)
    started = time.monotonic()
    observation = registry.run(ToolCall(id="1", name="run_python", arguments={"code": "while True: pass"}))
    assert time.monotonic() - started < 3
    assert observation.is_error and "wall-clock time limit of 1 s" in observation.content


def test_too_much_code_is_refused(run_python):
    with pytest.raises(ValueError, match="limit is"):
        run_python(code="#" * (MAX_CODE_CHARS + 1))


@pytest.mark.parametrize("bad", [{"timeout_seconds": 0}, {"memory_bytes": -1}, {"max_output_chars": 0}])
def test_limits_must_be_positive(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        python_tool(**bad)
