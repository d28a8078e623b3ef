"""The README's Python blocks run as written (placeholders for users' own model paths excepted)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
RUNNABLE = [b for b in BLOCKS if "path/to/" not in b]


def test_readme_has_runnable_blocks():
    assert len(RUNNABLE) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_block_runs(block, smollm2, capsys):
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
