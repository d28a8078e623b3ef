"""An OpenAI-compatible HTTP server over any backend, with tool calls that always parse.

    agentkit serve --model path/to/model --port 8000          # or: create_app(engine) in your own ASGI stack

Routes: `POST /v1/chat/completions` (tools, tool_choice, parallel_tool_calls, response_format,
temperature/top_p/max_tokens/stop/seed, stream, usage), `GET /v1/models`, `GET /health`.
Tool calls are decoded under the grammar built from the request's tools (see `agentkit.server.chat_format`).
Bad requests get a 4xx in OpenAI's error shape, never a 500, and before any generation: the body is
read up to a size limit (`agentkit.server.limits`), then validated whole as one pydantic model of the
OpenAI request (`agentkit.server.request`). A client that disconnects cancels its decode, freeing its
batch row. Concurrent requests share the engine's continuous batching.

Streaming sends the reply as Server-Sent Events in OpenAI's chunk shape (content deltas, tool-call
deltas with index/id/name then arguments), after the step has been decoded: the whole reply is
grammar-checked before its first byte leaves, so a client never receives a call that won't parse.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentkit.backend import Backend, Generation, GenerationRequest
from agentkit.errors import ContextOverflowError, GrammarError, ModelCapabilityError
from agentkit.server.chat_format import Plan, RequestError, apply_stop, plan_request, read_output
from agentkit.server.limits import ServeLimits, check_content_type, read_body
from agentkit.server.request import parse_request

DEFAULT_MODEL_ALIAS = "default"  # what `agentkit run --remote` asks for unless told a --remote-model
STREAM_PIECE_CHARS = 16  # arguments are streamed in pieces of this size, like a model's tokens


def create_app(
    backend: Backend, *, model_name: str | None = None, api_key: str | None = None, limits: ServeLimits | None = None,
) -> Starlette:
    """The ASGI app serving `backend` (e.g. a `LocalEngine`); `api_key` requires `Authorization: Bearer`.

    A request's `model` must be the served name (`model_name`, else the backend's name; any case, with or
    without a leading `path/to/`) or "default"; else 404 `model_not_found`. `limits` bounds each request.

    Example:
        >>> from agentkit.testing import ScriptedBackend
        >>> app = create_app(ScriptedBackend([]), model_name="scripted")
        >>> sorted(route.path for route in app.routes)
        ['/health', '/v1/chat/completions', '/v1/models']
    """
    name: str = model_name or str(getattr(backend, "name", type(backend).__name__))  # Backend does not require a name
    bounds = limits or ServeLimits()
    created = int(time.time())

    def authorised(request: Request) -> bool:
        return api_key is None or request.headers.get("authorization", "") == f"Bearer {api_key}"

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": name})

    async def list_models(request: Request) -> Response:
        if not authorised(request):
            return _error(RequestError("Invalid or missing API key.", status=401, kind="authentication_error", code="invalid_api_key"))
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "agentkit"}]})

    async def chat_completions(request: Request) -> Response:
        if not authorised(request):
            return _error(RequestError("Invalid or missing API key.", status=401, kind="authentication_error", code="invalid_api_key"), close=True)
        raw = None
        try:
            check_content_type(request)
            raw = await read_body(request, bounds)
            if raw is None:  # the client went away mid-body
                return Response(status_code=499)
            chat = parse_request(raw, bounds)
            _check_model(chat.model, name)
            plan = plan_request(chat)
            generation = await _generate(backend, plan, request)
        except RequestError as exc:
            # An error sent before the whole body was read closes the connection: the rest is never read.
            return _error(exc, close=raw is None)
        if generation is None:  # the client went away; nobody reads this
            return Response(status_code=499)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        text, stopped = apply_stop(generation.text, plan.stop)
        content, tool_calls = read_output(plan, text)
        finish = "tool_calls" if tool_calls else ("stop" if stopped or generation.finish_reason == "stop" else "length")
        usage = {
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
            "total_tokens": generation.prompt_tokens + generation.completion_tokens,
        }
        if plan.stream:
            chunks = _chunks(completion_id, name, content, tool_calls, finish, usage if plan.include_usage else None)
            return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return JSONResponse({
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        })

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(RequestError(f"No route {request.method} {request.url.path}; see /v1/chat/completions.", status=404, code="not_found"))

    async def wrong_method(request: Request, exc: Exception) -> Response:
        return _error(RequestError(f"{request.method} is not allowed on {request.url.path}.", status=405))

    async def server_error(request: Request, exc: Exception) -> Response:
        # A bug of ours, not the client's: still the OpenAI error shape, and nothing from the traceback.
        return _error(RequestError(f"Internal error ({type(exc).__name__}); the server log has details.", status=500, kind="server_error"))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: wrong_method, Exception: server_error})


async def _generate(backend: Backend, plan: Plan, request: Request) -> Generation | None:
    """Run the backend; cancel it if the client disconnects first. Map user errors to 400."""
    generation_request = GenerationRequest(
        messages=plan.messages, constraint=plan.constraint, max_tokens=plan.max_tokens,
        temperature=plan.temperature, top_p=plan.top_p, seed=plan.seed,
    )
    task = asyncio.ensure_future(backend.agenerate(generation_request))
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if not done and await request.is_disconnected():
                task.cancel()  # LocalEngine.agenerate turns this into a cancelled decode
                return None
        return task.result()
    except ContextOverflowError as exc:
        raise RequestError(str(exc), code="context_length_exceeded", param="messages") from None
    except ModelCapabilityError as exc:
        raise RequestError(str(exc), code="unsupported_content", param="messages") from None
    except GrammarError as exc:
        raise RequestError(str(exc), param="tools" if plan.step_format else "response_format", code="invalid_schema") from None
    except asyncio.CancelledError:
        task.cancel()
        raise


async def _chunks(
    completion_id: str, model: str, content: str | None, tool_calls: list[dict[str, Any]], finish: str,
    usage: dict[str, int] | None,
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        payload = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}], **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if content:
        for start in range(0, len(content), STREAM_PIECE_CHARS):
            yield chunk({"content": content[start : start + STREAM_PIECE_CHARS]})
    for index, call in enumerate(tool_calls):
        head = {"index": index, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
        yield chunk({"tool_calls": [head]})
        arguments = call["function"]["arguments"]
        for start in range(0, len(arguments), STREAM_PIECE_CHARS):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + STREAM_PIECE_CHARS]}}]})
    yield chunk({}, finish)
    if usage is not None:
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage}
        yield f"data: {json.dumps(payload)}\n\n"
    yield "data: [DONE]\n\n"


def _check_model(requested: str | None, served: str) -> None:
    """404 for a model this server does not serve, as OpenAI and vLLM answer (no model: the served one)."""
    if requested is None:
        return
    wanted = PurePosixPath(requested.strip().lower()).name  # "path/to/Model" names the folder served as "Model"
    known = {served.lower(), served.lower().removesuffix(".gguf"), DEFAULT_MODEL_ALIAS}
    if wanted not in known and requested.strip().lower() not in known:
        raise RequestError(
            f"The model {requested!r} does not exist on this server: it serves {served!r} (GET /v1/models lists it); "
            f"send model={served!r} or model='{DEFAULT_MODEL_ALIAS}'.", status=404, param="model", code="model_not_found",
        )


def _error(exc: RequestError, *, close: bool = False) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers={"Connection": "close"} if close else None)
