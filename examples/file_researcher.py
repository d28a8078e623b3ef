"""File researcher: answers questions about a folder of documents with the read-only files tool.

The documents (examples/data/docs: a travel policy, a product FAQ, a changelog) are the workspace:
the tools cannot reach anything outside it, and cannot write.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/file_researcher.py "What does the travel policy say about trains?"

Output on 2026-12-07 (2 CPU cores, the llama.cpp engine):
    loading the embedded model...
    loaded SmolLM2-135M-Instruct on the llama.cpp engine in 3.3 s
    task: What does the travel policy say about trains?
    step 1 (29 tokens, 4.4 s): {"calls": [{"name": "search_files", "arguments": {"pattern": "train", "ignore_case": true}}]}
      -> search_files: travel_policy.md:3: Trains: book second class for trips under four hours.
    step 2 (16 tokens, 0.5 s): {"final_answer": "Book second class for trips under four hours."}
    answer: Book second class for trips under four hours.
    total 4.9 s
"""

from __future__ import annotations

from pathlib import Path

from agentkit import Agent, Example, ExampleCall
from agentkit.engine import LocalEngine
from agentkit.tools import file_tools

DOCS = Path(__file__).resolve().parent / "data" / "docs"

INSTRUCTIONS = "You answer questions about the documents. Search them for one key word of the question, then answer with the line you found."

EXAMPLES = [
    Example(
        task="How much is the daily meal allowance?",
        calls=[ExampleCall(name="search_files", arguments={"pattern": "meal", "ignore_case": True},
                           result="travel_policy.md:6: Meals: a daily allowance of 45 EUR, no receipts needed.")],
        answer="45 EUR a day, no receipts needed.",
    ),
    Example(
        task="What changed in version 2.3?",
        calls=[ExampleCall(name="search_files", arguments={"pattern": "version 2.3", "ignore_case": True},
                           result="changelog.md:4: Version 2.3: fixed the export of reports to PDF.")],
        answer="It fixed the export of reports to PDF.",
    ),
    Example(
        task="What does the product FAQ say about the warranty?",
        calls=[ExampleCall(name="search_files", arguments={"pattern": "warranty", "ignore_case": True},
                           result="product_faq.md:3: Warranty: two years from the date of purchase.")],
        answer="Two years from the date of purchase.",
    ),
]


def build_agent(engine: LocalEngine, docs: Path = DOCS) -> Agent:
    """The researcher: read-only file tools on `docs` and two worked examples."""
    return Agent(engine, tools=file_tools(docs), instructions=INSTRUCTIONS, examples=EXAMPLES, max_steps=4)


def main(question: str) -> None:
    from _show import load_engine, show_run

    show_run(build_agent(load_engine()), question)


if __name__ == "__main__":
    from _show import question

    main(question("What does the travel policy say about trains?"))
