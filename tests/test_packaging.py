"""Packaging: the public API, light imports, and a wheel that contains every subpackage."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import agentkit

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_is_pinned():
    assert sorted(agentkit.__all__) == sorted([
        "Agent", "AgentkitError", "Backend", "Compaction", "ContextOverflowError", "ContextPolicy", "DiscardedCall", "Example", "ExampleCall", "Generation",
        "GenerationRequest", "GrammarError", "Image", "ModelCapabilityError", "InvalidStepError", "MaxStepsExceeded", "Message", "ModelLoadError",
        "Observation", "RunResult", "SamplingSettings", "Step", "StepFormat", "StepLimits", "Tool", "ToolCall", "ToolDefinitionError",
        "ToolPolicy", "InvalidArgumentsError", "RemoteBackend", "RemoteError",
        "ToolError", "ToolRegistry", "Usage", "__version__", "tool",
        "JsonSchemaConstraint", "LarkConstraint",
    ])
    for name in agentkit.__all__:
        assert hasattr(agentkit, name), name


def test_import_agentkit_does_not_import_heavy_packages():
    code = (
        "import sys, agentkit, agentkit.tools, agentkit.testing, agentkit.engine\n"
        "heavy = [m for m in ('torch', 'transformers', 'outlines', 'llguidance') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing agentkit pulled in: {out}"


def test_subpackages_import_under_the_agentkit_name():
    import agentkit.engine
    import agentkit.prompts
    import agentkit.tools

    assert Path(agentkit.engine.__file__).parent.name == "engine"
    assert Path(agentkit.tools.__file__).parent.name == "tools"
    assert (Path(agentkit.prompts.__file__).parent / "system.jinja").is_file()


@pytest.mark.slow
def test_wheel_contains_every_module_and_template(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("agentkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"agentkit/{p.relative_to(ROOT / folder).as_posix()}" if folder == "agentkit" else f"agentkit/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
        for folder in ("agentkit", "engine", "tools", "prompts")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in {".py", ".jinja"} and "__pycache__" not in p.parts
    }
    missing = expected - names
    assert not missing, f"missing from the wheel: {sorted(missing)}"
    assert not any(n.startswith(("engine/", "tools/", "prompts/")) for n in names), "top-level engine/tools/prompts leaked"


def test_a_plain_checkout_imports_without_installing():
    """agentkit/engine, agentkit/tools and agentkit/prompts link to the top-level folders: no install needed."""
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        "import agentkit.engine.grammar, agentkit.tools.files, agentkit.prompts\n"
        "print(agentkit.engine.grammar.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).resolve() == ROOT / "engine" / "grammar.py"
