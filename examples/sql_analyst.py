"""SQL analyst: answers questions over a shipped SQLite database with the read-only `sql_query` tool.

The database (examples/data/shop.sqlite, built by examples/data/build_shop_db.py) has customers,
products and orders. The tool opens it read-only: the model can only SELECT.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/sql_analyst.py "How many customers live in Paris?"

Output on 2026-11-24 (2 CPU cores, model cached):
    loading the embedded model (the first run converts its GGUF once, about 20 s)...
    loaded SmolLM2-135M-Instruct in 2.2 s
    task: How many customers live in Paris?
    step 1 (34 tokens, 1.3 s): {"calls": [{"name": "sql_query", "arguments": {"query": "SELECT COUNT(*) FROM customers WHERE city = 'Paris'"}}]}
      -> sql_query: COUNT(*)
    ---
    2
    (1 row)
    step 2 (8 tokens, 0.3 s): {"final_answer": "2"}
    answer: 2
    total 1.5 s
"""

from __future__ import annotations

import sys
from pathlib import Path

from agentkit import Agent, Example, ExampleCall
from agentkit.engine import LocalEngine
from agentkit.tools import sql_tool

DATA = Path(__file__).resolve().parent / "data"
DATABASE = DATA / "shop.sqlite"

INSTRUCTIONS = (
    "You answer questions about a shop database with one SQL query, then answer with the number from the result.\n"
    "Tables: customers(id, name, city), products(id, name, price), orders(id, customer_id, product_id, quantity, day)."
)

EXAMPLES = [
    Example(
        task="How many customers live in Berlin?",
        calls=[ExampleCall(name="sql_query", arguments={"query": "SELECT COUNT(*) FROM customers WHERE city = 'Berlin'"}, result="COUNT(*)\n---\n1\n(1 row)")],
        answer="1",
    ),
    Example(
        task="What is the price of the chair?",
        calls=[ExampleCall(name="sql_query", arguments={"query": "SELECT price FROM products WHERE name = 'chair'"}, result="price\n---\n120.0\n(1 row)")],
        answer="120.0",
    ),
]


def build_agent(engine: LocalEngine, database: Path = DATABASE) -> Agent:
    """The analyst: the read-only sql tool on `database` (built if missing) and two worked examples."""
    if not database.exists():
        sys.path.insert(0, str(DATA))
        from build_shop_db import build

        build(database)
    return Agent(engine, tools=[sql_tool(database)], instructions=INSTRUCTIONS, examples=EXAMPLES, max_steps=4)


def main(question: str) -> None:
    from _show import load_engine, show_run

    show_run(build_agent(load_engine()), question)


if __name__ == "__main__":
    from _show import question

    main(question("How many customers live in Paris?"))
