"""Every example runs as a script, the way its docstring says, and prints an answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = [
    ("math_assistant.py", "answer: 391"),
    ("file_researcher.py", "answer: Second class"),
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
