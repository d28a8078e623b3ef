"""The agent tasks of bench_tasks.py: questions with checkable answers, and the custom tools they use.

Plain Python, no agentkit import: the peer runner (a different agent library, in its own
environment) reads the same tasks and wraps the same functions. Each task names its tools; the
built-in ones (calculator, files, sql, http, clock) come from agentkit in bench_tasks.py, and the
peer gets the same functions through agentkit's Tool objects. An answer is right when it contains
every `expect` string: words anywhere (case-insensitive), numbers as one of the answer's numbers
(thousands separators removed, 270 == 270.0; "126" does not match "12600").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EMPLOYEES = {
    "ana": {"name": "Ana", "department": "finance", "office": "Lisbon"},
    "ben": {"name": "Ben", "department": "research", "office": "Oslo"},
    "chloe": {"name": "Chloe", "department": "sales", "office": "Lima"},
}
DEPARTMENTS = {
    "finance": {"head": "Farid", "budget_eur": 120000},
    "research": {"head": "Rosa", "budget_eur": 340000},
    "sales": {"head": "Sam", "budget_eur": 95000},
}
RATES = {("EUR", "USD"): 1.08, ("USD", "EUR"): 0.93, ("GBP", "EUR"): 1.17, ("EUR", "JPY"): 162.0}


def find_employee(name: str) -> str:
    """Look up an employee by first name: their department and office.

    Args:
        name: the employee's first name, e.g. "Ana".
    """
    found = EMPLOYEES.get(name.strip().lower())
    return f"{found['name']}: department {found['department']}, office in {found['office']}" if found else f"no employee called {name!r}"


def department_info(department: str) -> str:
    """Facts about a department: who heads it and its yearly budget in EUR.

    Args:
        department: the department's name, e.g. "finance".
    """
    found = DEPARTMENTS.get(department.strip().lower())
    return f"{department}: head {found['head']}, budget {found['budget_eur']} EUR" if found else f"no department {department!r}"


def exchange_rate(base: str, quote: str) -> str:
    """How many units of the `quote` currency one unit of the `base` currency buys.

    Args:
        base: currency code, e.g. "EUR".
        quote: currency code, e.g. "USD".
    """
    rate = RATES.get((base.strip().upper(), quote.strip().upper()))
    return f"1 {base.upper()} = {rate} {quote.upper()}" if rate else f"no rate for {base}->{quote}"


def days_between(start: str, end: str) -> int:
    """The number of days from one date to another.

    Args:
        start: a date as YYYY-MM-DD.
        end: a date as YYYY-MM-DD.
    """
    from datetime import date

    return (date.fromisoformat(end.strip()) - date.fromisoformat(start.strip())).days


def weekday(day: str) -> str:
    """The day of the week of a date.

    Args:
        day: a date as YYYY-MM-DD.
    """
    from datetime import date

    return date.fromisoformat(day.strip()).strftime("%A")


CUSTOM_TOOLS = {f.__name__: f for f in (find_employee, department_info, exchange_rate, days_between, weekday)}


@dataclass
class Task:
    """One question, the tools the agent gets, and what its answer must contain."""

    id: str
    kind: str
    question: str
    tools: list[str]
    expect: list[str] = field(default_factory=list)


def _t(id: str, kind: str, question: str, tools: str, *expect: str) -> Task:
    return Task(id=id, kind=kind, question=question, tools=tools.split(), expect=list(expect))


TASKS = [
    # Arithmetic, one call or a chain of them.
    _t("calc-1", "arithmetic", "What is 17 * 23?", "calculator weekday", "391"),
    _t("calc-2", "arithmetic", "What is 1234 + 5678?", "calculator exchange_rate", "6912"),
    _t("calc-3", "arithmetic", "A box holds 12 eggs. How many eggs are in 37 boxes?", "calculator", "444"),
    _t("calc-chain", "arithmetic", "Compute (48 * 25) and then divide the result by 8.", "calculator", "150"),
    _t("calc-percent", "arithmetic", "What is 15% of 840?", "calculator days_between", "126"),
    # Files in a workspace (examples/data/docs).
    _t("file-trains", "files", "According to the travel policy, which class should trains be booked in?", "files", "second"),
    _t("file-meals", "files", "How much is the daily meal allowance in the travel policy?", "files calculator", "45"),
    _t("file-battery", "files", "How many hours does the Lumo desk lamp run on a full charge? Check the product FAQ.", "files", "9"),
    _t("file-changelog", "files", "Which version of the changelog added a dark mode?", "files", "2.4"),
    # SQL over a real SQLite file (examples/data/shop.sqlite).
    _t("sql-paris", "sql", "How many customers live in Paris?", "sql", "2"),
    _t("sql-price", "sql", "What is the price of the desk?", "sql calculator", "310"),
    _t("sql-orders", "sql", "How many orders are in the shop database?", "sql", "8"),
    _t("sql-bob", "sql", "Which city does the customer Bob live in?", "sql", "Berlin"),
    # A loopback HTTP service (examples/weather_service.py), behind the host allowlist.
    _t("http-tokyo", "http", "What's the temperature in Tokyo right now, in Celsius?", "http", "24"),
    _t("http-cairo", "http", "What are the weather conditions in Cairo?", "http", "clear"),
    _t("http-two", "http", "Which is warmer right now, Paris or London?", "http", "Paris"),
    # Dates.
    _t("date-days", "dates", "How many days are there from 2026-01-01 to 2026-03-01?", "days_between weekday calculator", "59"),
    _t("date-weekday", "dates", "What day of the week is 2026-12-25?", "weekday days_between", "Friday"),
    # Two-hop lookups (the second call needs the first call's result).
    _t("hop-head", "two-hop", "Who heads the department that Ana works in?", "find_employee department_info", "Farid"),
    _t("hop-budget", "two-hop", "What is the yearly budget of Ben's department?", "find_employee department_info", "340000"),
    _t("hop-office", "two-hop", "In which city is the office of the employee Chloe, and who heads her department?",
       "find_employee department_info", "Lima", "Sam"),
    _t("hop-currency", "two-hop", "Convert 250 EUR to USD using the current exchange rate.", "exchange_rate calculator", "270"),
    # Questions that need no tool: the agent must answer without calling one.
    _t("none-capital", "no tool", "What is the capital of France?", "calculator weekday", "Paris"),
    _t("none-hamlet", "no tool", "Who wrote the play Hamlet?", "find_employee calculator", "Shakespeare"),
    _t("none-hello", "no tool", "How do you say 'thank you' in Spanish?", "exchange_rate calculator", "gracias"),
    _t("none-colour", "no tool", "What colour do you get by mixing blue and yellow paint?", "calculator", "green"),
]


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))]


def solved(task: Task, answer: object) -> bool:
    """Whether `answer` contains everything the task expects.

    Example:
        >>> solved(TASKS[0], "17 * 23 = 391."), solved(TASKS[21], "That is 270.0 USD"), solved(TASKS[4], "12600")
        (True, True, False)
    """
    text = str(answer or "")
    for expected in task.expect:
        try:
            value = float(expected)
        except ValueError:  # words: contained, any case
            if expected.lower() not in text.lower():
                return False
            continue
        # Numbers: one of the answer's numbers, not a substring ("126" is not in "12600").
        if not any(abs(n - value) < 1e-6 for n in _numbers(text)):
            return False
    return True
