"""Serve agentkit tools over MCP: the calculator and a clock, to any MCP client (Claude Desktop, an IDE,
another agent with `agentkit.tools.mcp.MCPClient`).

Run it (needs the `mcp` extra: pip install 'agentkit[mcp]'):
    .venv/bin/python examples/mcp_server.py                 # stdio: a client starts it as a subprocess
    .venv/bin/python examples/mcp_server.py --http 8000     # streamable HTTP on http://127.0.0.1:8000/mcp

Use it from agentkit:
    from agentkit.tools.mcp import MCPClient
    with MCPClient([sys.executable, "examples/mcp_server.py"]) as server:
        print(server.call("calculator", {"expression": "17 * 23"}))   # 391
"""

from __future__ import annotations

import argparse
from datetime import datetime
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentkit import tool
from agentkit.tools import calculator
from agentkit.tools.mcp_server import serve_mcp


@tool(timeout=5)
def current_time(timezone: str = "UTC") -> str:
    """The current date and time in a time zone, as ISO 8601.

    Args:
        timezone: an IANA time zone name, e.g. "Europe/Paris" or "UTC".
    """
    try:
        zone = dt_timezone.utc if timezone.upper() == "UTC" else ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}; use an IANA name such as 'Europe/Paris'") from None
    return datetime.now(zone).isoformat(timespec="seconds")


TOOLS = [calculator, current_time]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve agentkit's calculator and a clock over MCP.")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="interface for --http (default: 127.0.0.1)")
    args = parser.parse_args(argv)
    if args.http is None:
        serve_mcp(TOOLS, name="agentkit-example")
    else:
        print(f"serving on http://{args.host}:{args.http}/mcp (Ctrl-C to stop)", flush=True)
        serve_mcp(TOOLS, name="agentkit-example", transport="streamable-http", host=args.host, port=args.http)


if __name__ == "__main__":
    main()
