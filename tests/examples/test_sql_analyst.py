"""The SQL analyst example on the embedded model: one SELECT on the shipped database, the right number."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "query", "answer"),
    [
        ("How many customers live in Paris?", "SELECT COUNT(*) FROM customers WHERE city = 'Paris'", "2"),
        ("What is the price of the desk?", "SELECT price FROM products WHERE name = 'desk'", "310"),
    ],
)
def test_answers_from_one_query(smollm2, tmp_path, question, query, answer):
    example = load("sql_analyst")
    database = tmp_path / "shop.sqlite"  # built fresh by the example, like on a first run
    agent = example.build_agent(smollm2, database)
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    result = agent.run(question)
    calls = [c for s in result.steps for c in s.calls]
    assert [c.name for c in calls] == ["sql_query"] and calls[0].arguments["query"] == query
    assert answer in str(result.output)
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before  # read-only
