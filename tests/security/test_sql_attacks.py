"""Attacks a steered model could send to the SQL tool: each is refused or stopped, the database file
keeps every byte, and no new file appears beside it (no ATTACH or VACUUM INTO target, no journal).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time

import pytest

from agentkit.tools.sql import SQLToolError, sql_tool

TIMEOUT_SECONDS = 0.5


@pytest.fixture()
def database(tmp_path):
    path = tmp_path / "bank.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT, balance INTEGER)")
        db.executemany("INSERT INTO accounts VALUES (?, ?, ?)", [(1, "ada", 100), (2, "bob", 50)])
    db.close()
    return path


def fingerprint(folder):
    """The bytes of every file in the database's folder: any write or new file changes it."""
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in sorted(os.listdir(folder))}


ATTACKS = [
    ("insert", "INSERT INTO accounts VALUES (3, 'mallory', 1000000)", "Not allowed: INSERT"),
    ("update", "UPDATE accounts SET balance = 0", "Not allowed: UPDATE"),
    ("delete", "DELETE FROM accounts", "Not allowed: DELETE"),
    ("replace", "REPLACE INTO accounts VALUES (1, 'mallory', 0)", "Not allowed"),
    ("upsert-through-cte", "WITH x AS (SELECT 1) UPDATE accounts SET owner = 'mallory'", "Not allowed: UPDATE"),
    ("drop-table", "DROP TABLE accounts", "Not allowed: DROP"),
    ("create-table", "CREATE TABLE loot (x)", "Not allowed: CREATE"),
    ("create-temp-table", "CREATE TEMP TABLE loot (x)", "Not allowed: CREATE"),
    ("create-trigger", "CREATE TRIGGER t AFTER INSERT ON accounts BEGIN DELETE FROM accounts; END", "Not allowed: CREATE"),
    ("create-view", "CREATE VIEW v AS SELECT * FROM accounts", "Not allowed: CREATE"),
    ("alter-table", "ALTER TABLE accounts ADD COLUMN stolen INTEGER", "Not allowed"),
    ("attach-new-file", "ATTACH DATABASE '{folder}/planted.db' AS planted", "Not allowed: ATTACH"),
    ("vacuum-into-new-file", "VACUUM INTO '{folder}/copy.db'", "Not allowed: VACUUM"),
    ("vacuum", "VACUUM", "Not allowed: VACUUM"),
    ("pragma-writable-schema", "PRAGMA writable_schema = 1", "Not allowed: PRAGMA writable_schema = 1"),
    ("pragma-user-version-write", "PRAGMA user_version = 7", "Not allowed: PRAGMA user_version = 7"),
    ("pragma-query-only-off", "PRAGMA query_only = 0", "Not allowed: PRAGMA query_only"),
    ("pragma-journal-mode", "PRAGMA journal_mode = DELETE", "Not allowed: PRAGMA journal_mode"),
    ("update-sqlite-master", "UPDATE sqlite_master SET sql = 'CREATE TABLE x(y)'", "may not be modified"),
    ("load-extension", "SELECT load_extension('/tmp/evil.so')", "Not allowed: the function load_extension()"),
    ("multiple-statements", "SELECT 1; DROP TABLE accounts", "Only one statement"),
    ("begin-transaction", "BEGIN IMMEDIATE", r"Not allowed: BEGIN \(TRANSACTION\)"),
    ("savepoint", "SAVEPOINT s", "Not allowed: SAVEPOINT"),
    ("detach-main", "DETACH DATABASE main", "Not allowed: DETACH"),
    ("huge-blob", "SELECT zeroblob(2000000000)", "would exceed"),
    ("huge-query", "SELECT " + "1 + " * 5000 + "1", "limit is 10000"),
]


@pytest.mark.parametrize(("query", "message"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attack_is_refused_and_the_database_is_unchanged(database, query, message):
    folder = database.parent
    before = fingerprint(folder)
    with pytest.raises(SQLToolError, match=message):
        sql_tool(database, timeout_seconds=TIMEOUT_SECONDS)(query=query.format(folder=folder))
    assert fingerprint(folder) == before  # same bytes, and no planted.db / copy.db / journal
    assert sql_tool(database)(query="SELECT owner, balance FROM accounts ORDER BY id").splitlines()[2:4] == [
        "ada | 100",
        "bob | 50",
    ]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", id="runaway-cte"),
        pytest.param("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(a.x) FROM c a ORDER BY 1", id="runaway-cte-sorted"),
        pytest.param(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
            "SELECT count(*) FROM c AS a, c AS b",  # 10 billion pairs
            id="cartesian-product",
        ),
    ],
)
def test_runaway_query_is_stopped_by_the_time_limit(database, query):
    before = fingerprint(database.parent)
    started = time.perf_counter()
    with pytest.raises(SQLToolError, match="ran longer than 0.5 s and was stopped"):
        sql_tool(database, timeout_seconds=TIMEOUT_SECONDS)(query=query)
    assert time.perf_counter() - started < TIMEOUT_SECONDS + 1.5
    assert fingerprint(database.parent) == before


def test_endless_result_is_cut_at_the_row_limit_within_the_time_limit(database):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    started = time.perf_counter()
    result = sql_tool(database, max_rows=3, timeout_seconds=TIMEOUT_SECONDS)(query=endless).splitlines()
    assert time.perf_counter() - started < TIMEOUT_SECONDS + 1.5
    assert result[0].startswith("(3 rows shown, at least ") and result[3:] == ["1", "2", "3"]


def test_missing_database_is_never_created(tmp_path):
    for query in ("SELECT 1", "CREATE TABLE x (y)", "ATTACH DATABASE 'other.db' AS other"):
        with pytest.raises(SQLToolError, match="does not exist"):
            sql_tool(tmp_path / "new.db")(query=query)
    assert os.listdir(tmp_path) == []
