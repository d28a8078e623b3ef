"""A read-only SQL tool over one SQLite file: the model can query it, never change it.

`sql_tool(path)` builds a `sql_query(query)` tool. Every call opens a fresh connection and enforces:

- read-only three times over: the file is opened with the URI `file:...?mode=ro` (a missing file is
  an error, never created), `PRAGMA query_only` is on, and an authorizer allows only reading
  (SELECT, reading columns, recursive CTEs, functions other than `load_extension`/`fts3_tokenizer`,
  and the read-only PRAGMAs in READ_ONLY_PRAGMAS, set to no value). Everything else is denied:
  INSERT/UPDATE/DELETE, CREATE/DROP/ALTER, ATTACH/DETACH (hence VACUUM INTO), transactions, PRAGMA
  writes such as `writable_schema`. Extension loading is switched off where Python allows it.
- one statement per call, at most MAX_QUERY_CHARS characters.
- a time limit (DEFAULT_TIMEOUT_SECONDS, 5 s): a progress handler aborts the query past its deadline.
- a result byte budget (DEFAULT_MAX_RESULT_BYTES, 32 MiB): the bytes of every value the query returns,
  shown rows and counted rows together (text and blobs by their size, numbers and NULL as 8 bytes).
  Rows are read one at a time and rendered at once, so the tool never holds more than one row of full
  values; the table stops at the row that reaches the budget, and the observation says it was cut.
- one row fits the budget too: before the query runs, its columns are counted (the statement, as a
  subquery with LIMIT 0, is compiled but not run) and each value (SQLITE_LIMIT_LENGTH) is capped at the
  budget divided by that count, and never above MAX_VALUE_BYTES (10 MiB), so `zeroblob(1e9)` or forty
  10 MB columns fail fast. SQLite applies the same cap to a stored row it reads a column from.
- output: a text table of at most DEFAULT_MAX_ROWS (100) rows, the rest counted (that note comes
  first); each cell cut to DEFAULT_MAX_CELL_CHARS (200) characters, blobs shown by size.
- not bounded: SQLite's working memory inside one row, when one expression holds many capped values
  at once (e.g. `max()` over many 10 MB arguments); SQLite offers only a process-wide heap limit.
- Python 3.10 has no `Connection.setlimit`: there the value-size and attached-database limits are
  not set (the authorizer still denies ATTACH, and the result budget still stops the reading).
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import time
from typing import Any

from agentkit.tool import Tool, tool

DEFAULT_MAX_ROWS = 100
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_CELL_CHARS = 200
MAX_QUERY_CHARS = 10_000
MAX_VALUE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_RESULT_BYTES = 32 * 1024 * 1024
_SCALAR_BYTES = 8  # what a number or NULL counts against the result budget (SQLite stores at most 8 bytes)
_UNPROBED_COLUMNS = 8  # PRAGMA and EXPLAIN cannot be a subquery; their results have a few small columns
PROGRESS_INSTRUCTIONS = 1000  # the deadline is checked every this many SQLite VM instructions
READ_ONLY_PRAGMAS = frozenset(
    {
        "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
        "foreign_key_list", "user_version", "application_id", "encoding", "page_count", "page_size",
        "freelist_count", "function_list", "collation_list",
    }
)
_PRAGMAS_WITH_ARGUMENT = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
)
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})
_ACTION_NAMES = {
    getattr(sqlite3, name): name.removeprefix("SQLITE_").replace("_", " ")
    for name in (
        "SQLITE_CREATE_INDEX", "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TEMP_INDEX", "SQLITE_CREATE_TEMP_TABLE",
        "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_TEMP_VIEW", "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW",
        "SQLITE_DELETE", "SQLITE_DROP_INDEX", "SQLITE_DROP_TABLE", "SQLITE_DROP_TEMP_INDEX",
        "SQLITE_DROP_TEMP_TABLE", "SQLITE_DROP_TEMP_TRIGGER", "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TRIGGER",
        "SQLITE_DROP_VIEW", "SQLITE_INSERT", "SQLITE_PRAGMA", "SQLITE_READ", "SQLITE_SELECT",
        "SQLITE_TRANSACTION", "SQLITE_UPDATE", "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_ALTER_TABLE",
        "SQLITE_REINDEX", "SQLITE_ANALYZE", "SQLITE_CREATE_VTABLE", "SQLITE_DROP_VTABLE", "SQLITE_FUNCTION",
        "SQLITE_SAVEPOINT", "SQLITE_RECURSIVE",
    )
    if hasattr(sqlite3, name)
}
_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)
_NOT_ON_A_TABLE = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT}


class SQLToolError(ValueError):
    """The query is not allowed or failed; the message says why and what to send instead."""


class _ReadOnlyAuthorizer:
    """`Connection.set_authorizer` callback: allow reading, deny (and remember) everything else."""

    def __init__(self) -> None:
        self.denied: list[str] = []
        self.first_action: int | None = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, database: str | None, source: str | None) -> int:
        if self.first_action is None:
            self.first_action = action  # a query's first check is SELECT; a write's is its write
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, _RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() not in _DENIED_FUNCTIONS:
                return sqlite3.SQLITE_OK
            self.denied.append(f"the function {arg2}()")
        elif action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in READ_ONLY_PRAGMAS and (arg2 is None or name in _PRAGMAS_WITH_ARGUMENT):
                return sqlite3.SQLITE_OK
            self.denied.append(f"PRAGMA {arg1}" + (f" = {arg2}" if arg2 is not None else ""))
        elif (
            action == sqlite3.SQLITE_UPDATE
            and self.first_action == sqlite3.SQLITE_SELECT
            and arg1 in ("sqlite_master", "sqlite_schema")
        ):
            # A SELECT cannot write. Table-valued functions (json_each, pragma_table_info) declare their
            # columns with a CREATE TABLE that SQLite parses, never runs; its bookkeeping asks for this.
            return sqlite3.SQLITE_OK
        else:
            action_name = _ACTION_NAMES.get(action, f"action {action}")
            self.denied.append(f"{action_name} on {arg1}" if arg1 and action not in _NOT_ON_A_TABLE else action_name)
        return sqlite3.SQLITE_DENY


def sql_tool(
    database_path: str | os.PathLike[str],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_cell_chars: int = DEFAULT_MAX_CELL_CHARS,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    name: str = "sql_query",
) -> Tool:
    """A `sql_query(query)` tool that runs one read-only SQL statement on the SQLite file `database_path`.

    Example:
        >>> import sqlite3, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "shop.db")
        >>> with sqlite3.connect(path) as db:
        ...     _ = db.execute("CREATE TABLE fruit (name TEXT, price REAL)")
        ...     _ = db.execute("INSERT INTO fruit VALUES ('apple', 1.5), ('pear', 2.0)")
        >>> query = sql_tool(path)
        >>> print(query(query="SELECT name, price FROM fruit ORDER BY price"))
        name | price
        --- | ---
        apple | 1.5
        pear | 2.0
        (2 rows)
        >>> query(query="DELETE FROM fruit")
        Traceback (most recent call last):
        ...
        agentkit.tools.sql.SQLToolError: Not allowed: DELETE on fruit. This tool only reads: send a single SELECT statement.
    """
    database = os.path.abspath(os.fspath(database_path))
    uri = pathlib.Path(database).as_uri() + "?mode=ro"

    @tool(name=name, timeout=timeout_seconds + 5)
    def sql_query(query: str) -> str:
        """Run one read-only SQL statement (SQLite dialect) and return the result as a table.

        Args:
            query: a single SELECT statement, e.g. "SELECT name FROM sqlite_master WHERE type = 'table'".
        """
        if not query.strip():
            raise SQLToolError("The query is empty. Send one SELECT statement, e.g. SELECT name FROM sqlite_master.")
        if len(query) > MAX_QUERY_CHARS:
            raise SQLToolError(f"The query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}.")
        if not os.path.isfile(database):
            raise SQLToolError(f"The database file {os.path.basename(database)!r} does not exist. Ask the user to create it; this tool never does.")
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=timeout_seconds, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise SQLToolError(f"The database {os.path.basename(database)!r} cannot be opened: {exc}.") from None
        authorizer = _ReadOnlyAuthorizer()
        value_cap = MAX_VALUE_BYTES
        try:
            _lock_down(connection, authorizer)
            _compile_only(connection, query)  # refusals and syntax errors name the user's own statement
            value_cap = _cap_values(connection, _result_width(connection, query), max_result_bytes)
            _start_clock(connection, timeout_seconds)
            cursor = connection.execute(query)
            if cursor.description is None:
                return "The statement returned no result table."
            headers = [column[0] for column in cursor.description]
            result = _read_rows(cursor, max_rows, max_cell_chars, max_result_bytes)
            return _table(headers, result, max_rows, max_cell_chars, max_result_bytes)
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise _explain(exc, query, authorizer, timeout_seconds, value_cap) from None
        finally:
            connection.close()

    return sql_query


# SQLite's limit categories (sqlite3.h); Python names them only from 3.11, as it adds `setlimit`.
_LIMIT_LENGTH, _LIMIT_SQL_LENGTH, _LIMIT_ATTACHED = 0, 1, 7


def _lock_down(connection: sqlite3.Connection, authorizer: _ReadOnlyAuthorizer) -> None:
    """Switch off extensions and writes, cap values, install the authorizer."""
    enable_load_extension = getattr(connection, "enable_load_extension", None)
    if enable_load_extension is not None:
        enable_load_extension(False)
    connection.execute("PRAGMA query_only = ON")
    connection.execute("PRAGMA trusted_schema = OFF")  # no functions with side effects run from views
    setlimit = getattr(connection, "setlimit", None)  # Python 3.11+
    if setlimit is not None:
        setlimit(_LIMIT_ATTACHED, 0)
        setlimit(_LIMIT_LENGTH, MAX_VALUE_BYTES)
        setlimit(_LIMIT_SQL_LENGTH, MAX_QUERY_CHARS * 4)  # bytes: room for UTF-8
    connection.set_authorizer(authorizer)


def _compile_only(connection: sqlite3.Connection, query: str) -> None:
    """Compile `query` and stop it at its first instruction: it raises what compiling raises, runs nothing."""
    connection.set_progress_handler(lambda: 1, 1)
    try:
        connection.execute(query)
    except sqlite3.OperationalError as exc:
        if str(exc) != "interrupted":
            raise
    finally:
        connection.set_progress_handler(None, 0)


def _result_width(connection: sqlite3.Connection, query: str) -> int:
    """How many columns `query` returns, learnt by compiling it as a subquery with LIMIT 0 (nothing runs).

    PRAGMA and EXPLAIN cannot be subqueries: they count as _UNPROBED_COLUMNS, more than they have.
    """
    try:
        probe = connection.execute(f"SELECT * FROM (\n{_without_terminator(query)}\n) LIMIT 0")
    except sqlite3.Error:
        return _UNPROBED_COLUMNS
    return max(len(probe.description or ()), 1)


def _without_terminator(query: str) -> str:
    """`query` without its closing ';' and what follows it (only comments: it compiled as one statement)."""
    end = query.find(";")
    while end != -1:
        if sqlite3.complete_statement(query[: end + 1]):  # a ';' in a string or comment does not complete it
            return query[:end]
        end = query.find(";", end + 1)
    return query


def _cap_values(connection: sqlite3.Connection, columns: int, budget: int) -> int:
    """Cap each value at the budget shared by `columns` values (at most MAX_VALUE_BYTES); return the cap.

    Why: Python reads a whole row before the tool can measure it, so one row must fit the budget.
    """
    cap = max(1, min(MAX_VALUE_BYTES, budget // columns))
    setlimit = getattr(connection, "setlimit", None)  # Python 3.11+
    if setlimit is not None:
        setlimit(_LIMIT_LENGTH, cap)
    return cap


def _start_clock(connection: sqlite3.Connection, timeout_seconds: float) -> None:
    """Abort the statement once `timeout_seconds` have passed (checked every PROGRESS_INSTRUCTIONS)."""
    deadline = time.monotonic() + timeout_seconds
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_INSTRUCTIONS)


def _explain(exc: Exception, query: str, authorizer: _ReadOnlyAuthorizer, timeout_seconds: float, value_cap: int) -> SQLToolError:
    message = str(exc)
    if authorizer.denied:
        keyword = query.split(None, 1)[0].upper() if query.split() else ""
        denied = authorizer.denied[0]
        plain = keyword in ("SELECT", "WITH", "PRAGMA", "VALUES") or denied.startswith(keyword)
        what = denied if plain else f"{keyword} ({denied})"
        return SQLToolError(f"Not allowed: {what}. This tool only reads: send a single SELECT statement.")
    if "one statement at a time" in message:
        return SQLToolError("Only one statement per call is allowed. Send a single SELECT statement, without ';' and a second one.")
    if message == "interrupted":
        return SQLToolError(
            f"The query ran longer than {timeout_seconds:g} s and was stopped. Add a LIMIT or a WHERE clause, "
            "or make a recursive query stop."
        )
    if "not a database" in message:
        return SQLToolError("The file is not a SQLite database.")
    if "too big" in message:
        return SQLToolError(
            f"A value in the query (or a stored row read for it) would exceed {value_cap} bytes, the limit per "
            f"value for this result (its byte budget shared by its columns, at most {MAX_VALUE_BYTES}). Ask for "
            "less: select fewer columns, or cut big values with substr() or measure them with length()."
        )
    if "readonly" in message or "read-only" in message:
        return SQLToolError("The database is read-only here: send a single SELECT statement.")
    return SQLToolError(f"SQL error: {message}. Check the table and column names with SELECT sql FROM sqlite_master.")


def _cell(value: Any, max_chars: int) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<blob, {len(value)} bytes>"
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("|", "\\|")
    return text if len(text) <= max_chars else text[: max(max_chars - 1, 0)] + "…"


class _Rows:
    """The rendered rows of a result, how many more were counted, and why reading stopped early."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.omitted = 0
        self.spent = 0  # bytes of every value read so far, shown and counted
        self.stopped: str | None = None  # "budget" or "time": there may be more rows than counted


def _read_rows(cursor: sqlite3.Cursor, max_rows: int, max_cell_chars: int, budget: int) -> _Rows:
    """Read the result one row at a time: show `max_rows`, count the rest, stop at the byte budget.

    Why one at a time: a row's values are dropped once rendered, so memory stays at one row.
    """
    rows = _Rows()
    try:
        for row in cursor:
            rows.spent += sum(_value_bytes(value) for value in row)
            if len(rows.shown) < max_rows:
                rows.shown.append(" | ".join(_cell(value, max_cell_chars) for value in row))
            else:
                rows.omitted += 1
            if rows.spent >= budget:
                rows.stopped = "budget"
                break
    except sqlite3.OperationalError:
        if len(rows.shown) < max_rows:
            raise  # the rows to show could not be read: the error says why
        rows.stopped = "time"  # counting the rest ran out of time (or hit a limit): report what was counted
    return rows


def _value_bytes(value: Any) -> int:
    """What one value counts against the result budget: its size in bytes (UTF-8 for text)."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    return _SCALAR_BYTES


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count % (1024 * 1024) == 0 else f"{count} bytes"


def _table(headers: list[str], rows: _Rows, max_rows: int, max_cell_chars: int, budget: int) -> str:
    lines = [" | ".join(_cell(h, max_cell_chars) for h in headers), " | ".join("---" for _ in headers)]
    lines += rows.shown
    shown = len(rows.shown)
    if rows.stopped == "budget" and not rows.omitted:
        lines.insert(0, (
            f"({shown} row{'' if shown == 1 else 's'} shown, then cut: the result reached its byte budget of "
            f"{_size(budget)} and more rows may follow; select fewer or shorter columns (substr(), length()), "
            "or add a LIMIT or a WHERE clause)"
        ))
    elif rows.omitted or rows.stopped:  # first, so that an output limit cutting the table cannot hide it
        more = f"at least {rows.omitted}" if rows.stopped else f"{rows.omitted}"
        why = {
            "budget": f"; counting stopped at the result byte budget of {_size(budget)}",
            "time": "; counting stopped at the time limit",
        }.get(rows.stopped or "", "")
        lines.insert(0, f"({shown} rows shown, {more} more omitted: the limit is {max_rows}{why}; add a LIMIT or a WHERE clause)")
    else:
        lines.append(f"({shown} row{'' if shown == 1 else 's'})")
    return "\n".join(lines)
