"""Builds examples/data/shop.sqlite, the SQL analyst's database (run again to rebuild it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

PATH = Path(__file__).resolve().parent / "shop.sqlite"

CUSTOMERS = [(1, "Alice", "Paris"), (2, "Bob", "Berlin"), (3, "Chen", "Tokyo"), (4, "Dana", "Paris")]
PRODUCTS = [(1, "lamp", 35.0), (2, "chair", 120.0), (3, "desk", 310.0), (4, "mug", 9.5)]
ORDERS = [  # id, customer_id, product_id, quantity, day
    (1, 1, 1, 2, "2026-10-01"), (2, 1, 4, 6, "2026-10-03"), (3, 2, 2, 4, "2026-10-04"), (4, 3, 3, 1, "2026-10-09"),
    (5, 1, 2, 1, "2026-10-12"), (6, 4, 4, 3, "2026-10-15"), (7, 2, 3, 2, "2026-10-20"), (8, 3, 1, 5, "2026-11-02"),
]


def build(path: Path = PATH) -> Path:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT)")
        db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, product_id INTEGER, quantity INTEGER, day TEXT)")
        db.executemany("INSERT INTO customers VALUES (?, ?, ?)", CUSTOMERS)
        db.executemany("INSERT INTO products VALUES (?, ?, ?)", PRODUCTS)
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", ORDERS)
    db.close()
    return path


if __name__ == "__main__":
    print(build())
