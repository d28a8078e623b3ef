"""Built-in tools. Each one enforces its own limits, whatever the model asks.

- `calculator`: arithmetic parsed with `ast`, never `eval`.
- `clock_tools`: the current time and timezone conversion (`zoneinfo`).
- `file_tools(root, allow_write=False)`: list/read/search/write inside one workspace folder.
- `sql_tool(database)`: read-only SQLite queries.
- `http_tools(allowed_hosts=[...])`: GET/POST to allowlisted hosts, private addresses refused.
- `python_tool()`: Python in a separate, rlimited process with a temporary directory.
- `agentkit.tools.mcp`: tools of any MCP server; `agentkit.tools.mcp_server`: serve tools over MCP.

The limits and defaults of each are listed in docs/tools.md.

Example:
    >>> from agentkit.tools import calculator
    >>> calculator(expression="2 ** 10")
    '1024'
"""

from agentkit.tools.calculator import calculator
from agentkit.tools.clock import clock_tools, convert_time, current_time
from agentkit.tools.files import file_tools
from agentkit.tools.http import http_tools
from agentkit.tools.python import python_tool
from agentkit.tools.sql import sql_tool

__all__ = ["calculator", "clock_tools", "convert_time", "current_time", "file_tools", "http_tools", "python_tool", "sql_tool"]
