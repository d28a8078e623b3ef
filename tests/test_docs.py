"""Every Python block in README.md and docs/*.md runs as written.

Blocks that need the user's own model files (a `path/to/` placeholder) are the only ones skipped;
blocks that load the embedded model load it themselves (about 2 s once converted).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    (page, index, block)
    for page in PAGES
    for index, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
    if "path/to/" not in block
]


def test_docs_have_runnable_blocks():
    assert len(BLOCKS) >= 4
    assert {page.name for page, _, _ in BLOCKS} >= {"README.md", "tools.md"}


@pytest.mark.slow
@pytest.mark.parametrize(("page", "index", "block"), BLOCKS, ids=[f"{p.name}-{i}" for p, i, _ in BLOCKS])
def test_doc_block_runs(page, index, block, smollm2, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    exec(compile(block, f"{page.name} block {index}", "exec"), {"__name__": f"docs_{page.stem}_{index}"})
