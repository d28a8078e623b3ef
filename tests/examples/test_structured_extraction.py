"""The structured extraction example on the embedded model: a typed Invoice, right fields."""

from __future__ import annotations

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
    ("text", "expected"),
    [
        ("Invoice from Blue Harbor Ltd, total due 1,250.00 EUR, pay by 2026-12-15.", ("Blue Harbor Ltd", 1250.0, "EUR", "2026-12-15")),
        ("Invoice from Sunrise Bakery Inc, total due 72.40 USD, pay by 2027-02-28.", ("Sunrise Bakery Inc", 72.4, "USD", "2027-02-28")),
    ],
)
def test_extracts_a_typed_invoice(smollm2, text, expected):
    example = load("structured_extraction")
    result = example.build_agent(smollm2).run(text)
    invoice = result.output
    assert isinstance(invoice, example.Invoice)
    assert (invoice.vendor, invoice.total, invoice.currency, invoice.due_date) == expected
    assert len(result.steps) == 1 and not result.steps[0].calls
