"""`agentkit serve`: an OpenAI-compatible HTTP server over any backend, with tool calls that always parse.

`create_app(backend)` is the ASGI app (Starlette; run it with uvicorn or mount it in your own stack),
`ServeLimits` bounds each request, and `RequestError` is the 4xx a refused request gets. The modules:
`app` (routes, streaming), `limits` (body size and time, schema bounds), `request` (the OpenAI request
as one pydantic model) and `chat_format` (OpenAI messages and tools in, agentkit prompts and grammars out).
Needs the `serve` extra: pip install 'agentkit[serve]'.

Example:
    >>> from agentkit.server import ServeLimits, create_app
    >>> from agentkit.testing import ScriptedBackend
    >>> app = create_app(ScriptedBackend([]), model_name="scripted", limits=ServeLimits(max_body_bytes=1 << 20))
    >>> sorted(route.path for route in app.routes)
    ['/health', '/v1/chat/completions', '/v1/models']
"""

from __future__ import annotations

from agentkit.server.app import create_app
from agentkit.server.limits import RequestError, ServeLimits

__all__ = ["RequestError", "ServeLimits", "create_app"]
