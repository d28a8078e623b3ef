"""Every example runs as a script, the way its docstring says, and prints an answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = [
    ("math_assistant.py", "answer: 391"),
    ("file_researcher.py", "answer: Book second class"),
    ("sql_analyst.py", "answer: 2"),
    ("weather_desk.py", "answer: Tokyo: 24°C, cloudy."),
    ("router.py", "answer: 540"),
    ("structured_extraction.py", "currency='EUR'"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "expected"), SCRIPTS, ids=[s for s, _ in SCRIPTS])
def test_example_script_runs(embedded_folder, script, expected):
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout


def test_mcp_server_example_lists_its_tools():
    pytest.importorskip("mcp")
    from agentkit.tools.mcp import MCPClient

    with MCPClient([sys.executable, str(EXAMPLES / "mcp_server.py")]) as client:
        assert "calculator" in [t.name for t in client.tools()]


@pytest.mark.slow
def test_examples_take_any_model_with_the_model_option(tiny_model_dir):
    """`--model PATH` anywhere on the command line loads that model; the question is still read."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "math_assistant.py"), "--model", str(tiny_model_dir), "What is 2 + 2?"],
        capture_output=True, text=True, timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]  # a random model may not answer: one clear line
    assert f"loading {tiny_model_dir}" in done.stdout and "question: What is 2 + 2?" in done.stdout
    missing = subprocess.run([sys.executable, str(EXAMPLES / "router.py"), "--model"], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "--model needs a path" in missing.stderr


@pytest.mark.slow
def test_an_example_runs_on_the_reference_model_when_fetched():
    from agentkit.engine.reference_models import reference_model_path
    from agentkit.errors import ModelLoadError

    try:
        path = reference_model_path("qwen2.5-coder-0.5b")
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    done = subprocess.run([sys.executable, str(EXAMPLES / "math_assistant.py"), "--model", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "-> calculator: 391" in done.stdout
