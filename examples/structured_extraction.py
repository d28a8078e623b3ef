"""Structured extraction: the final answer is a typed `Invoice`, enforced by the grammar.

No tools: the model reads an invoice in plain text and answers with an `Invoice` (a pydantic model).
The step grammar is built from the model's JSON Schema, so the answer always validates: the currency
is one of three codes, the total is a number.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/structured_extraction.py "Invoice from Blue Harbor Ltd, total due 1,250.00 EUR, pay by 2026-12-15."

Output on 2026-11-24 (2 CPU cores, model cached):
    loading the embedded model (the first run converts its GGUF once, about 20 s)...
    loaded SmolLM2-135M-Instruct in 2.4 s
    task: Invoice from Blue Harbor Ltd, total due 1,250.00 EUR, pay by 2026-12-15.
    step 1 (50 tokens, 1.7 s): {"final_answer": {"vendor": "Blue Harbor Ltd", "total": 1250.0, "currency": "EUR", "due_date": "2026-12-15"}}
    answer: Invoice(vendor='Blue Harbor Ltd', total=1250.0, currency='EUR', due_date='2026-12-15')
    total 1.7 s
    vendor='Blue Harbor Ltd' total=1250.0 currency='EUR' due_date='2026-12-15'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from agentkit import Agent, Example
from agentkit.engine import LocalEngine

INSTRUCTIONS = "You extract invoice fields from text. Copy the vendor, the total, the currency code and the due date exactly."


class Invoice(BaseModel):
    vendor: str
    total: float
    currency: Literal["EUR", "USD", "GBP"]
    due_date: str


EXAMPLES = [
    Example(
        task="Invoice from Northwind Traders, total due 480.50 USD, pay by 2026-01-31.",
        answer={"vendor": "Northwind Traders", "total": 480.5, "currency": "USD", "due_date": "2026-01-31"},
    ),
    Example(
        task="Invoice from Acme Tools GmbH, total due 99.00 GBP, pay by 2025-07-01.",
        answer={"vendor": "Acme Tools GmbH", "total": 99.0, "currency": "GBP", "due_date": "2025-07-01"},
    ),
    Example(
        task="Invoice from Café Lumière SARL, total due 3,100.00 EUR, pay by 2026-03-10.",
        answer={"vendor": "Café Lumière SARL", "total": 3100.0, "currency": "EUR", "due_date": "2026-03-10"},
    ),
]


def build_agent(engine: LocalEngine) -> Agent:
    """An agent without tools whose final answer is an `Invoice`."""
    return Agent(engine, tools=[], output_type=Invoice, instructions=INSTRUCTIONS, examples=EXAMPLES, max_steps=2)


def main(text: str) -> None:
    from _show import load_engine, show_run

    invoice = show_run(build_agent(load_engine()), text)
    print(invoice)


if __name__ == "__main__":
    from _show import question

    main(question("Invoice from Blue Harbor Ltd, total due 1,250.00 EUR, pay by 2026-12-15."))
