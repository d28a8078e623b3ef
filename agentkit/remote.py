"""`RemoteBackend`: agents on any OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI, `agentkit serve`).

When one machine is not enough, run the model on an inference cluster and point agents at it: the
loop, tools and step format stay the same. Each step asks the server to constrain its reply with
the step's JSON Schema (`response_format: json_schema`, which vLLM, SGLang, llama.cpp's server and
`agentkit serve` all enforce). A server that refuses that gets `response_format: {type: json_object,
schema: ...}` (llama-cpp-python's form), then the plain tools API (one function per tool plus
`give_final_answer`, `tool_choice: required`), whose tool calls are turned back into a step. Either
way the agent validates the step and, if it is wrong, feeds the error
back and retries (`Agent(max_invalid_retries=...)`).

Transient failures (connection errors, timeouts, 429 and 5xx) are retried with exponential backoff
(honouring `Retry-After`); a 4xx is a bug in the request and raises at once with the server's message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any, Literal, cast

import httpx

from agentkit.backend import Generation, GenerationRequest
from agentkit.constraints import JsonSchemaConstraint
from agentkit.errors import AgentkitError, ContextOverflowError
from agentkit.types import Message

Mode = Literal["auto", "json_schema", "json_object_schema", "tools"]
# How a step's schema is sent, most standard first; "auto" moves down the list when a server refuses one.
Strategy = Literal["json_schema", "json_object_schema", "tools"]
STRATEGIES: tuple[Strategy, ...] = ("json_schema", "json_object_schema", "tools")
RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}
FINAL_ANSWER_FUNCTION = "give_final_answer"  # the answer branch, as a function in the tools API


class RemoteError(AgentkitError):
    """The server refused a request or stayed unreachable after the retries; the message says which.

    `status` is the HTTP status (0 when the server could not be reached).
    """

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class RemoteBackend:
    """A `Backend` that calls an OpenAI-compatible `/v1/chat/completions` endpoint with httpx.

    Example:
        >>> backend = RemoteBackend("http://127.0.0.1:8000/v1", model="meta-llama/Llama-3.1-8B-Instruct")
        >>> backend.name
        'meta-llama/Llama-3.1-8B-Instruct @ http://127.0.0.1:8000/v1'
        >>> from agentkit import Agent
        >>> agent = Agent(backend, tools=[])   # then agent.run(...) / await agent.arun(...)
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        mode: Mode = "auto",
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        context_window: int = 0,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        supports_images: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.mode = mode
        self.max_retries = max_retries
        self.backoff = backoff
        self.context_window = context_window
        self.supports_images = supports_images  # the served model is a VLM: images go as image_url parts
        self.name = f"{model} @ {self.base_url}"
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._transport = transport
        self.strategy = "json_schema" if mode == "auto" else mode  # how step schemas are sent (see STRATEGIES)
        self.retries = 0  # transient failures retried so far (for logs and tests)

    # -- Backend protocol ------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        """Synchronous `agenerate` (runs its own event loop; use `agenerate` from async code)."""
        return asyncio.run(self.agenerate(request))

    async def agenerate(self, request: GenerationRequest) -> Generation:
        started = time.perf_counter()
        strategy = self.strategy
        schema = _json_schema(request)
        body = self._tools_body(request) if schema is not None and strategy == "tools" else self._body(request, strategy)
        try:
            data = await self._post(body)
        except RemoteError as exc:
            refused_format = exc.status in (400, 422, 500) and ("response_format" in str(exc) or "json_schema" in str(exc))
            if self.mode == "auto" and schema is not None and refused_format and strategy != "tools":
                # This server does not take the schema this way: try the next way, and keep it from now on.
                self.strategy = STRATEGIES[STRATEGIES.index(strategy) + 1]
                return await self.agenerate(request)
            raise
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        text = message.get("content") or ""
        if message.get("tool_calls"):
            text = _step_from_tool_calls(message["tool_calls"])
        usage = data.get("usage") or {}
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=time.perf_counter() - started,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            details={"server_model": data.get("model"), "retries": self.retries},
        )

    async def astream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """The reply's text as the server streams it (Server-Sent Events), under the same schema."""
        body = {**self._body(request), "stream": True}
        async with (
            httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client,
            client.stream("POST", f"{self.base_url}/chat/completions", headers=self._headers, json=body) as response,
        ):
            if response.status_code >= 400:
                await response.aread()
                raise _refused(response)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    return
                choices = json.loads(payload).get("choices") or [{}]
                delta = choices[0].get("delta") or {}
                if delta.get("content"):
                    yield delta["content"]

    # -- requests --------------------------------------------------------------------------------

    def _body(self, request: GenerationRequest, strategy: str = "json_schema") -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_openai_message(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        schema = _json_schema(request)
        if schema is not None and strategy == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "step", "schema": schema, "strict": True}}
        elif schema is not None and strategy == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    def _tools_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The step schema as OpenAI tools: one function per tool, plus `give_final_answer`."""
        body = self._body(request)
        body.pop("response_format", None)
        body["tools"] = _tools_from_step_schema(_json_schema(request) or {})
        body["tool_choice"] = "required"
        return body

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        attempt = 0
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
            while True:
                response: httpx.Response | None = None
                try:
                    response = await client.post(url, headers=self._headers, json=body)
                except (httpx.TransportError, httpx.TimeoutException) as exc:
                    if attempt >= self.max_retries:
                        raise RemoteError(f"{url} is unreachable after {attempt + 1} attempts ({type(exc).__name__}: {exc}). Is the server running?") from None
                else:
                    if response.status_code < 400:
                        return cast("dict[str, Any]", response.json())  # an OpenAI-style reply object
                    if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries or _is_validation_500(response):
                        raise _refused(response)
                attempt += 1
                self.retries += 1
                await asyncio.sleep(self._delay(attempt, response))

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            return min(float(retry_after), 60.0)
        return self.backoff * (2.0 ** (attempt - 1)) * (0.5 + random.random())  # jitter spreads retries of many agents


def _json_schema(request: GenerationRequest) -> dict[str, Any] | None:
    """The schema of a JSON Schema constraint, the one kind servers enforce; None (free decoding) for a Lark grammar."""
    return request.constraint.json_schema if isinstance(request.constraint, JsonSchemaConstraint) else None


def _is_validation_500(response: httpx.Response) -> bool:
    """Some servers (llama-cpp-python) answer a request they cannot parse with a 500: not transient."""
    return response.status_code == 500 and ("response_format" in response.text or "validation error" in response.text)


def _refused(response: httpx.Response) -> AgentkitError:
    try:
        message = response.json().get("error", {}).get("message") or response.text
    except (ValueError, AttributeError):
        message = response.text
    text = f"The server answered {response.status_code}: {message[:500]}"
    if "context" in message.lower() and ("length" in message.lower() or "window" in message.lower()):
        return ContextOverflowError(text + " Shorten the conversation or use fewer steps.")
    return RemoteError(text, status=response.status_code)


def _openai_message(message: Message) -> dict[str, Any]:
    # agentkit's tool observations carry no tool_call_id (steps are JSON text, not OpenAI tool_calls),
    # and servers reject a `tool` message without one: send them as user turns.
    role = "user" if message.role == "tool" else message.role
    if not message.images:
        return {"role": role, "content": message.content}
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": f"data:{image.media_type};base64,{base64.b64encode(image.data).decode()}"}}
        for image in message.images
    ]
    return {"role": role, "content": [*parts, {"type": "text", "text": message.content}]}


def _tools_from_step_schema(schema: dict[str, Any]) -> list[dict[str, Any]]:
    branches = schema.get("anyOf", [schema])
    defs = schema.get("$defs")
    tools = []
    for branch in branches:
        properties = branch.get("properties", {})
        if "calls" in properties:
            items = properties["calls"]["items"]
            for variant in items.get("anyOf", [items]):
                name = variant["properties"]["name"]["const"]
                parameters = dict(variant["properties"]["arguments"])
                if defs:
                    parameters["$defs"] = defs
                tools.append({"type": "function", "function": {"name": name, "parameters": parameters}})
        if "final_answer" in properties:
            answer = {"type": "object", "properties": {"answer": properties["final_answer"]}, "required": ["answer"]}
            if defs:
                answer["$defs"] = defs
            tools.append({"type": "function", "function": {"name": FINAL_ANSWER_FUNCTION, "description": "Give the final answer.", "parameters": answer}})
    return tools


def _step_from_tool_calls(tool_calls: list[dict[str, Any]]) -> str:
    """OpenAI tool calls back into agentkit's step JSON (the agent validates it like any step)."""
    calls = []
    for call in tool_calls:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError:
            return function.get("arguments") or ""  # not JSON: the agent reports it and retries
        if function.get("name") == FINAL_ANSWER_FUNCTION:
            return json.dumps({"final_answer": arguments.get("answer") if isinstance(arguments, dict) else arguments}, ensure_ascii=False)
        calls.append({"name": function.get("name"), "arguments": arguments})
    return json.dumps({"calls": calls}, ensure_ascii=False)
