"""Attacks a steered model could send to the SQL tool: each is refused or stopped, the database file
keeps every byte, and no new file appears beside it (no ATTACH or VACUUM INTO target, no journal).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time

import pytest

from agentkit.tools.sql import DEFAULT_MAX_RESULT_BYTES, SQLToolError, sql_tool

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


# Memory: each query runs in a fresh Python process, so an earlier test's peak cannot hide its own; the
# bound is a few times the 32 MiB result budget, where the unbounded tool grew by gigabytes.
MEMORY_BOUND_BYTES = 5 * DEFAULT_MAX_RESULT_BYTES
CALL_IN_A_FRESH_PROCESS = """
import json, resource, sys
from agentkit.tools.sql import SQLToolError, sql_tool
query = sql_tool(sys.argv[1], timeout_seconds=float(sys.argv[3]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = __import__("time").perf_counter()
try:
    observation = query(query=sys.argv[2])
except SQLToolError as exc:
    observation = "error: " + str(exc)
seconds = __import__("time").perf_counter() - started
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024  # ru_maxrss is in KiB on Linux
print(json.dumps({"observation": observation, "grown": grown, "seconds": seconds}))
"""


def call_measured(database, query, timeout_seconds=5.0):
    """The observation, the growth of the peak memory (bytes) and the seconds of one call in a fresh process."""
    finished = subprocess.run(
        [sys.executable, "-c", CALL_IN_A_FRESH_PROCESS, str(database), query, str(timeout_seconds)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return json.loads(finished.stdout)


COUNT_TO_1100 = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1100) "
CUT = r"^\(\d+ rows? shown, then cut: the result reached its byte budget of 32 MiB"
TOO_BIG = "would exceed .* bytes, the limit per value"
MEMORY_ATTACKS = [
    ("issue-1100-rows-of-10MB-blobs", COUNT_TO_1100 + "SELECT zeroblob(10000000) FROM c", CUT),
    ("many-rows-of-1MB-text", COUNT_TO_1100 + "SELECT printf('%.*c', 1000000, 'x') FROM c", CUT),
    ("many-rows-of-2MB-random-blobs", COUNT_TO_1100 + "SELECT x, randomblob(2000000) FROM c", CUT),
    ("wide-text-values-in-many-columns", COUNT_TO_1100 + "SELECT " + ", ".join(["printf('%.*c', 500000, 'y')"] * 20) + " FROM c", CUT),
    ("forty-10MB-columns-in-one-row", "SELECT " + ", ".join(["zeroblob(10000000)"] * 40), TOO_BIG),
    ("group-concat-built-string", COUNT_TO_1100 + "SELECT group_concat(printf('%.*c', 100000, 'z')) FROM c", TOO_BIG),
    ("printf-built-string", "SELECT printf('%.*c', 9000000, 'x') || printf('%.*c', 9000000, 'x')", TOO_BIG),
    ("recursive-cte-doubling-values", "WITH RECURSIVE d(n, v) AS (SELECT 1, 'x' UNION ALL SELECT n + 1, v || v FROM d LIMIT 40) SELECT n, v FROM d", TOO_BIG),
]


@pytest.mark.parametrize(("query", "expected"), [a[1:] for a in MEMORY_ATTACKS], ids=[a[0] for a in MEMORY_ATTACKS])
def test_huge_result_is_cut_within_the_byte_budget(database, query, expected):
    before = fingerprint(database.parent)
    measured = call_measured(database, query)
    observation = measured["observation"]
    if expected == TOO_BIG:
        assert observation.startswith("error: ") and "select fewer columns" in observation
        assert re.search(expected, observation), observation
    else:
        assert re.match(expected, observation), observation[:300]
        assert "add a LIMIT or a WHERE clause" in observation.splitlines()[0]
    assert measured["grown"] < MEMORY_BOUND_BYTES, f"the process grew by {measured['grown'] >> 20} MiB"
    assert fingerprint(database.parent) == before


def test_many_rows_of_large_stored_blobs_are_cut(database):
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, image BLOB)")
        db.executemany("INSERT INTO photos (image) VALUES (randomblob(?))", [(4_000_000,)] * 30)  # 120 MB
    db.close()
    measured = call_measured(database, "SELECT id, image FROM photos")
    lines = measured["observation"].splitlines()
    assert re.match(CUT, lines[0]) and lines[3] == "1 | <blob, 4000000 bytes>"
    assert len(lines) - 3 == DEFAULT_MAX_RESULT_BYTES // 4_000_000 + 1  # up to the row that reached the budget
    assert measured["grown"] < MEMORY_BOUND_BYTES, f"the process grew by {measured['grown'] >> 20} MiB"


def test_counting_big_rows_stops_at_the_byte_budget(database):
    big_after_the_shown_rows = COUNT_TO_1100 + "SELECT CASE WHEN x <= 100 THEN x ELSE zeroblob(5000000) END AS v FROM c"
    measured = call_measured(database, big_after_the_shown_rows)
    first = measured["observation"].splitlines()[0]
    assert re.match(r"\(100 rows shown, at least \d+ more omitted: the limit is 100; counting stopped at the result byte budget of 32 MiB", first)
    assert measured["grown"] < MEMORY_BOUND_BYTES, f"the process grew by {measured['grown'] >> 20} MiB"


def test_counting_millions_of_tiny_rows_stops_at_the_time_limit(database):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    measured = call_measured(database, endless, timeout_seconds=1.0)
    first = measured["observation"].splitlines()[0]
    counted = int(re.match(r"\(100 rows shown, at least (\d+) more omitted", first).group(1))
    assert counted > 100_000 and first.endswith("counting stopped at the time limit; add a LIMIT or a WHERE clause)")
    assert measured["seconds"] < 1.0 + 1.5
    assert measured["grown"] < 32 * 1024 * 1024, f"the process grew by {measured['grown'] >> 20} MiB"
