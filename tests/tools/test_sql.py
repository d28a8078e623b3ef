"""The read-only SQL tool as a user sees it: result tables, row and cell limits, clear errors."""

from __future__ import annotations

import sqlite3

import pytest

from agentkit import ToolCall, ToolRegistry
from agentkit.tools.sql import SQLToolError, sql_tool


@pytest.fixture()
def database(tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE fruit (name TEXT, price REAL, stock INTEGER, photo BLOB)")
        db.executemany(
            "INSERT INTO fruit VALUES (?, ?, ?, ?)",
            [("apple", 1.5, 10, None), ("pear", 2.0, None, b"\x89PNG"), ("kiwi", 0.5, 3, None)],
        )
        db.execute("CREATE TABLE numbers (n INTEGER)")
        db.executemany("INSERT INTO numbers VALUES (?)", [(n,) for n in range(1, 251)])
    db.close()
    return path


def test_result_is_a_table_with_headers_and_a_row_count(database):
    query = sql_tool(database)
    assert query(query="SELECT name, price FROM fruit ORDER BY price") == (
        "name | price\n--- | ---\nkiwi | 0.5\napple | 1.5\npear | 2.0\n(3 rows)"
    )
    assert query(query="SELECT count(*) AS n FROM fruit") == "n\n---\n3\n(1 row)"
    assert query(query="SELECT name FROM fruit WHERE price > 100") == "name\n---\n(0 rows)"


def test_nulls_blobs_and_special_characters_are_readable(database):
    query = sql_tool(database)
    assert query(query="SELECT stock, photo FROM fruit WHERE name = 'pear'").splitlines()[2] == "NULL | <blob, 4 bytes>"
    assert query(query="SELECT 'a|b' || char(10) || 'c' AS text").splitlines()[2] == "a\\|b\\nc"


def test_row_limit_counts_the_omitted_rows(database):
    result = sql_tool(database, max_rows=5)(query="SELECT n FROM numbers ORDER BY n").splitlines()
    assert result[0] == "(5 rows shown, 245 more omitted: the limit is 5; add a LIMIT or a WHERE clause)"
    assert result[1:] == ["n", "---", "1", "2", "3", "4", "5"]
    assert len(sql_tool(database)(query="SELECT n FROM numbers").splitlines()) == 1 + 2 + 100  # default 100


def test_long_cells_are_cut(database):
    result = sql_tool(database, max_cell_chars=10)(query="SELECT printf('%.50c', 'x') AS long")
    assert result.splitlines()[2] == "x" * 9 + "…"


def test_read_only_introspection_works(database):
    query = sql_tool(database)
    assert "fruit" in query(query="SELECT name FROM sqlite_master WHERE type = 'table'")
    assert "price | REAL" in query(query="PRAGMA table_info(fruit)")
    assert "price | REAL" in query(query="SELECT * FROM pragma_table_info('fruit')")
    assert query(query="SELECT value FROM json_each('[7, 8]')") == "value\n---\n7\n8\n(2 rows)"
    counted = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4) SELECT sum(x) FROM c"
    assert query(query=counted).splitlines()[2] == "10"


def test_each_call_sees_the_current_data(database):
    query = sql_tool(database)
    assert query(query="SELECT count(*) FROM fruit").splitlines()[2] == "3"
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO fruit (name) VALUES ('fig')")
    db.close()
    assert query(query="SELECT count(*) FROM fruit").splitlines()[2] == "4"


def test_missing_database_is_an_error_and_is_not_created(tmp_path):
    query = sql_tool(tmp_path / "missing.db")
    with pytest.raises(SQLToolError, match="'missing.db' does not exist.*never"):
        query(query="SELECT 1")
    assert not (tmp_path / "missing.db").exists()


def test_sql_errors_explain_what_to_check(database, tmp_path):
    query = sql_tool(database)
    with pytest.raises(SQLToolError, match="no such column: colour.*sqlite_master"):
        query(query="SELECT colour FROM fruit")
    with pytest.raises(SQLToolError, match="syntax error"):
        query(query="SELEC name FROM fruit")
    with pytest.raises(SQLToolError, match="empty"):
        query(query="   ")
    (tmp_path / "notes.db").write_text("just text, not a database" * 100)
    with pytest.raises(SQLToolError, match="not a SQLite database"):
        sql_tool(tmp_path / "notes.db")(query="SELECT name FROM sqlite_master")


def test_tool_schema_and_custom_name(database):
    query = sql_tool(database, name="shop_sql")
    assert query.name == "shop_sql"
    assert query.parameters["required"] == ["query"]
    assert "read-only" in query.description


def test_refusals_come_back_as_error_observations(database):
    registry = ToolRegistry([sql_tool(database)])
    refused = registry.run(ToolCall(id="1", name="sql_query", arguments={"query": "DELETE FROM fruit"}))
    assert refused.is_error and "Not allowed: DELETE on fruit" in refused.content
    ok = registry.run(ToolCall(id="2", name="sql_query", arguments={"query": "SELECT count(*) FROM fruit"}))
    assert not ok.is_error and ok.content.splitlines()[2] == "3"



def test_result_byte_budget_cuts_the_table_and_says_so(database):
    query = sql_tool(database, max_result_bytes=1000)
    result = query(query="SELECT printf('%.100c', 'x') AS line FROM numbers").splitlines()
    assert result[0].startswith("(10 rows shown, then cut: the result reached its byte budget of 1000 bytes")
    assert len(result) == 1 + 2 + 10
    counted = query(query="SELECT n FROM numbers").splitlines()[0]  # 8 bytes a number: 125 rows fit
    assert counted == (
        "(100 rows shown, at least 25 more omitted: the limit is 100; counting stopped at the result byte "
        "budget of 1000 bytes; add a LIMIT or a WHERE clause)"
    )


def test_big_stored_values_can_be_measured_and_cut(database):
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE docs (title TEXT, body TEXT)")
        db.execute("INSERT INTO docs VALUES ('manual', printf('%.5000000c', 'm'))")  # 5 MB
    db.close()
    query = sql_tool(database)
    assert query(query="SELECT title, length(body), substr(body, 1, 3) FROM docs").splitlines()[2] == "manual | 5000000 | mmm"
    with pytest.raises(SQLToolError, match="would exceed 838860 bytes.*select fewer columns"):  # 32 MiB / 40 columns
        query(query="SELECT " + ", ".join(["title"] * 39) + ", body FROM docs")


def test_trailing_semicolon_and_comment_are_accepted(database):
    query = sql_tool(database)
    assert query(query="SELECT name FROM fruit WHERE name = 'kiwi'; -- the cheap one") == "name\n---\nkiwi\n(1 row)"
    assert query(query="SELECT ';' AS s /* ; */;") == "s\n---\n;\n(1 row)"
