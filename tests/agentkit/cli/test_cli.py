"""The `agentkit` command, run as a real process the way a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit import Agent
from agentkit.testing import ScriptedBackend
from agentkit.tools import calculator

AGENTKIT = Path(sys.executable).parent / "agentkit"


def cli(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [str(AGENTKIT)] if AGENTKIT.exists() else [sys.executable, "-m", "agentkit.cli"]
    return subprocess.run([*command, *args], input=stdin, capture_output=True, text=True, timeout=timeout)


def test_the_console_script_is_installed():
    assert AGENTKIT.exists(), "pip install should create the `agentkit` command"
    assert "run" in cli("--help").stdout


def test_python_m_agentkit_cli_is_the_same_command():
    done = subprocess.run([sys.executable, "-m", "agentkit.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(command in done.stdout for command in ("run", "chat", "models", "replay", "serve", "eval"))


@pytest.mark.slow
def test_run_shows_each_step_and_the_answer_on_the_embedded_model():
    done = cli("run", "What is 17 * 23?")
    assert done.returncode == 0, done.stderr
    assert "step 1" in done.stdout and 'calculator({"expression": "17 * 23"})' in done.stdout
    assert "391" in done.stdout.split("answer")[-1]


@pytest.mark.slow
def test_chat_keeps_the_conversation_and_exits_cleanly():
    done = cli("chat", stdin="What is 17 * 23?\n/reset\nWhat is 45 + 78?\n/exit\n")
    assert done.returncode == 0, done.stderr
    assert "391" in done.stdout and "123" in done.stdout and "history cleared" in done.stdout


def test_run_json_on_a_local_model_folder(tiny_model_dir, tmp_path):
    trace = tmp_path / "run.jsonl"
    done = cli("run", "What is 2 + 2?", "--model", str(tiny_model_dir), "--max-steps", "1", "--json", "--trace", str(trace))
    # A random-weight model rarely answers in one step: either a JSON run or a one-line MaxStepsExceeded.
    if done.returncode == 0:
        run = json.loads(done.stdout)
        assert len(run["steps"]) == 1 and run["steps"][0]["is_final"]
    else:
        assert done.stderr.startswith("error: MaxStepsExceeded") and "Traceback" not in done.stderr
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[0]["event"] == "run_start" and any(e["event"] == "model_call" for e in events)


def test_an_image_for_a_text_only_model_is_a_one_line_error(tiny_model_dir, tmp_path):
    import base64

    picture = tmp_path / "dot.png"
    picture.write_bytes(base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="))
    done = cli("run", "What is this?", "--model", str(tiny_model_dir), "--image", str(picture), "--json")
    assert done.returncode != 0 and "has no vision tower" in done.stderr and "Traceback" not in done.stderr


def test_models_describes_a_folder(tiny_model_dir):
    done = cli("models", str(tiny_model_dir), "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["architecture"] == "LlamaForCausalLM" and info["layers"] == 2 and info["format"] == "huggingface"
    assert info["tool_call_format"] == "none" and info["agentkit_format"] == "agentkit"  # SmolLM2's template has no tools


@pytest.mark.parametrize(
    ("marker", "expected"),
    [("<tool_call>", "hermes"), ("<|python_tag|>", "llama3_json"), ("[func_name1(params_name1=params_value1)]", "pythonic")],
)
def test_models_shows_the_tool_format_detected_from_the_template(tiny_model_dir, tmp_path, marker, expected):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").write_text("{% for t in tools %}{{ t }}{% endfor %}" + marker + "{{ messages }}")
    shown = cli("models", str(folder))
    assert shown.returncode == 0, shown.stderr
    assert f"agentkit tool format  {expected}" in shown.stdout
    # ...and a run with --format overrides it (a random model: any valid outcome, never a traceback).
    done = cli("run", "Hi", "--model", str(folder), "--max-steps", "1", "--json", "--format", "pythonic")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["models", "/no/such/model"], "ModelLoadError", id="missing-model"),
        pytest.param(["run", "x", "--tools", "shell"], "Unknown tool 'shell'", id="unknown-tool"),
        pytest.param(["run", "x", "--tools", "sql"], "--database", id="sql-without-database"),
        pytest.param(["run", "x", "--tools", "http"], "--allow-host", id="http-without-allowlist"),
        pytest.param(["replay", "/no/such/trace.jsonl"], "does not exist", id="missing-trace"),
        pytest.param(["run", "x", "--format", "xml"], "Unknown tool_format 'xml'", id="unknown-format"),
        pytest.param(["run", "x", "--context", "forget"], "'drop_oldest'", id="unknown-context-strategy"),
        pytest.param(["run", "x", "--image", "/no/such.png"], "No image file", id="missing-image"),
    ],
)
def test_errors_are_one_line_with_a_hint_and_no_traceback(args, message):
    done = cli(*args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback():
    done = cli("models", "/no/such/model", "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr


def _record(path: Path) -> None:
    backend = ScriptedBackend([
        {"calls": [{"name": "calculator", "arguments": {"expression": "17 * 23"}}]},
        {"final_answer": "391"},
    ])
    Agent(backend, tools=[calculator], trace=path).run("What is 17 * 23?")


def test_replay_renders_a_saved_run(tmp_path):
    trace = tmp_path / "run.jsonl"
    _record(trace)
    done = cli("replay", str(trace))
    assert done.returncode == 0, done.stderr
    assert "What is 17 * 23?" in done.stdout and "calculator → 391" in done.stdout and "answer: 391" in done.stdout


def test_replay_rerun_tools_passes_when_tools_agree_and_fails_when_they_changed(tmp_path):
    trace = tmp_path / "run.jsonl"
    _record(trace)
    same = cli("replay", str(trace), "--rerun-tools")
    assert same.returncode == 0, same.stderr
    assert "all 1 observations match" in same.stdout
    # Pretend the recorded tool said something else: today's calculator now disagrees with it.
    trace.write_text(trace.read_text().replace('"content": "391"', '"content": "390"'))
    changed = cli("replay", str(trace), "--rerun-tools")
    assert changed.returncode == 1
    assert "observation 1 changed" in changed.stderr


@pytest.mark.slow
def test_run_with_the_files_tool_answers_from_the_workspace():
    docs = Path(__file__).resolve().parents[3] / "examples" / "data" / "docs"
    done = cli("run", "What does the travel policy say about trains?", "--tools", "files", "--workspace", str(docs))
    assert done.returncode == 0, done.stderr
    assert 'search_files({"pattern": "train"' in done.stdout and "second class" in done.stdout.split("answer")[-1]
