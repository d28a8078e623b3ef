"""Attacks on `agentkit serve`: malformed requests, oversized and stalled bodies, foreign models.

The server runs for real on loopback (uvicorn in a thread) over a `FunctionBackend`, whose recorded
requests show whether a generation was spent: every refused request must be refused before one.
Every bad request must get an OpenAI-shaped 4xx (never a 5xx, never a hung connection), and the
server must keep answering valid requests after each of them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

uvicorn = pytest.importorskip("uvicorn")

from agentkit.backend import GenerationRequest  # noqa: E402
from agentkit.constraints import JsonSchemaConstraint  # noqa: E402
from agentkit.remote import RemoteBackend  # noqa: E402
from agentkit.server import ServeLimits, create_app  # noqa: E402
from agentkit.testing import FunctionBackend  # noqa: E402
from agentkit.types import Message  # noqa: E402

MODEL = "tiny-model"
LIMITS = ServeLimits(body_timeout_s=1.0)
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
VALID = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def _reply(request: GenerationRequest) -> dict[str, Any]:
    return {"final_answer": "ok"}


@pytest.fixture(scope="module")
def served() -> Iterator[SimpleNamespace]:
    with serving() as server:
        yield server


@contextlib.contextmanager
def serving() -> Iterator[SimpleNamespace]:
    """`agentkit serve`'s app under uvicorn on a free loopback port (also used by benchmarks/fuzz_serve.py)."""
    backend = FunctionBackend(_reply)
    config = uvicorn.Config(create_app(backend, model_name=MODEL, limits=LIMITS), host="127.0.0.1", port=0, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", port=port, backend=backend)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture()
def http(served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def _post(http: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post("/v1/chat/completions", content=content, headers={"Content-Type": "application/json", **headers})


def _assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def _nested_parameters(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def _tool(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


def _assistant_calls(tool_calls: Any) -> list[dict[str, Any]]:
    return [*ASK, {"role": "assistant", "content": None, "tool_calls": tool_calls}]


RECURSIVE = {"type": "object", "properties": {"node": {"$ref": "#/$defs/node"}},
             "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}

# The requests of issue 20 (part 6) that used to get a 500, and the field each must be blamed on.
ISSUE_REQUESTS = [
    pytest.param({"messages": ASK, "stream": True, "stream_options": "yes"}, "stream_options", "include_usage", id="stream-options-string"),
    pytest.param({"messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "function", "function": "get_weather"}},
                 "tool_choice.function", "{type: 'function', function: {name:", id="tool-choice-function-string"),
    pytest.param({"messages": ASK, "seed": 10**29}, "seed", "64 bits", id="huge-seed"),
    pytest.param({"messages": _assistant_calls("get_weather")}, "messages[1].tool_calls", "list of", id="tool-calls-string"),
    pytest.param({"messages": _assistant_calls(["get_weather"])}, "messages[1].tool_calls[0]", "JSON object", id="tool-calls-of-strings"),
    pytest.param({"messages": _assistant_calls([{**CALL, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])},
                 "messages[1].tool_calls[0].function.arguments", "json.dumps", id="arguments-object"),
    pytest.param({"messages": _assistant_calls([{**CALL, "id": ["call_1"]}])}, "messages[1].tool_calls[0].id", "valid string", id="call-id-list"),
    pytest.param({"messages": ASK, "tools": [_tool(RECURSIVE)]}, "tools[0].function.parameters", "recursive", id="recursive-ref"),
    pytest.param({"messages": ASK, "tools": [_tool({"type": "object", "properties": {"a": _nested_parameters(300)}})]},
                 None, "nests too deeply", id="parameters-nested-300"),
    pytest.param({"messages": ASK, "tools": [_tool({"type": "object", "properties": {"a": _nested_parameters(40)}})]},
                 "tools[0].function.parameters", "flatten", id="parameters-nested-40"),
    pytest.param(b"[" * 200_000 + b"]" * 200_000, None, "nests too deeply", id="body-nested-200000"),
    pytest.param({"messages": ASK, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": _nested_parameters(40)}}},
                 "response_format.json_schema.schema", "flatten", id="response-schema-nested-40"),
]


@pytest.mark.parametrize(("body", "param", "words"), ISSUE_REQUESTS)
def test_malformed_requests_get_a_400_naming_the_field_before_any_generation(served, http, body, param, words):
    generations = len(served.backend.requests)
    error = _assert_openai_error(_post(http, body), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert words in error["message"] and (param is None or f"`{param}`" in error["message"])
    assert len(served.backend.requests) == generations, "a generation was spent on a refused request"


def test_a_ref_fan_out_cannot_expand_exponentially(http):
    defs = {f"d{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/d{i + 1}"}, "b": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(40)}
    schema = {"type": "object", "properties": {"root": {"$ref": "#/$defs/d0"}}, "$defs": {**defs, "d40": {"type": "string"}}}
    error = _assert_openai_error(_post(http, {"messages": ASK, "tools": [_tool(schema)]}), 400)
    assert "objects and arrays" in error["message"]


def test_a_long_ref_chain_is_refused_quickly(http):
    defs = {f"d{i}": {"type": "object", "properties": {"next": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(4000)}
    schema = {"type": "object", "properties": {"head": {"$ref": "#/$defs/d0"}}, "$defs": {**defs, "d4000": {"type": "string"}}}
    started = time.monotonic()
    error = _assert_openai_error(_post(http, {"messages": ASK, "tools": [_tool(schema)]}), 400)
    assert "limit" in error["message"] and time.monotonic() - started < 3


def test_a_schema_with_shared_defs_is_served(served, http):
    address = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    schema = {"type": "object", "properties": {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}},
              "$defs": {"address": address}}
    generations = len(served.backend.requests)
    assert _post(http, {"messages": ASK, "tools": [_tool(schema)], "tool_choice": "required"}).status_code == 200
    assert len(served.backend.requests) == generations + 1


# -- fuzz: a generated table of malformed bodies --------------------------------------------------

TOOL_REQUEST = {
    "model": MODEL,
    "messages": [{"role": "system", "content": "Be brief."}, *ASK, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                 {"role": "tool", "tool_call_id": "call_1", "content": "18C"}],
    "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": False,
    "temperature": 0.5, "top_p": 0.9, "max_tokens": 16, "stop": ["\n\n"], "seed": 1, "n": 1,
    "stream": True, "stream_options": {"include_usage": True},
}
FORMAT_REQUEST = {
    "model": MODEL,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "A person"}]}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["name"]}}},
    "max_completion_tokens": 32,
}
WRONG_VALUES = [None, True, -1, 10**29, 1.5, float("inf"), "", "x", [], [1, "a"], {}, {"a": {"b": []}}, [[[["deep"]]]]]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, sub in items:
        yield (*prefix, key)
        yield from _paths(sub, (*prefix, key))


def _replaced(body: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if new is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return body


_DELETE = object()


def _malformed_bodies() -> list[bytes]:
    """Every field of two full requests replaced by each wrong-typed value or deleted, plus broken bytes."""
    bodies = []
    for base in (TOOL_REQUEST, FORMAT_REQUEST):
        for path in _paths(base):
            for new in [*WRONG_VALUES, _DELETE]:
                bodies.append(json.dumps(_replaced(base, path, new)).encode())
    text = json.dumps(TOOL_REQUEST).encode()
    bodies += [text[:cut] for cut in range(1, len(text), max(1, len(text) // 25))]  # truncated anywhere
    bodies += [b"", b"null", b"[]", b'"messages"', b"42", b"\xff\xfe{}", b"{" * 5000, b'{"messages": [' * 300,
               b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1e400}', b'{"messages": NaN}']
    random.Random(20).shuffle(bodies)
    return bodies


MALFORMED = _malformed_bodies()


def test_fuzz_never_a_5xx_never_a_hang_and_valid_requests_still_answer(served, http):
    assert len(MALFORMED) >= 200
    refused = 0
    for body in MALFORMED:
        response = _post(http, body)  # a hung connection raises httpx.ReadTimeout after 10 s
        assert response.status_code < 500, (body[:300], response.text)
        if response.status_code >= 400:
            refused += 1
            _assert_openai_error(response, response.status_code)
        assert _post(http, VALID).status_code == 200, f"the server stopped answering after {body[:300]!r}"
    assert refused >= 200  # most of the table is really malformed (some replacements stay valid)


# -- the body: size, length, time -----------------------------------------------------------------


def _raw_exchange(port: int, head: bytes, send: Any = b"", timeout: float = 10.0) -> bytes:
    """Send `head` and `send` (bytes, or an iterable of pieces) on a raw socket; what comes back until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for piece in [send] if isinstance(send, bytes) else send:
                sock.sendall(piece)
        except OSError:  # the server closed after refusing: expected mid-upload
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def _head(length: str | None = None, *, chunked: bool = False, content_type: str = "application/json") -> bytes:
    lines = ["POST /v1/chat/completions HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    lines += [f"Content-Length: {length}"] if length is not None else []
    lines += ["Transfer-Encoding: chunked"] if chunked else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_declared_300_mb_body_is_refused_at_once_without_reading_it(served):
    started = time.monotonic()
    answer = _raw_exchange(served.port, _head(str(300 * 1000 * 1000)))  # sends no body at all
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request_too_large" in answer and b"4 MB" in answer
    assert time.monotonic() - started < 5, "the server waited for a body it was going to refuse"


def test_a_chunked_body_is_cut_off_at_the_limit(served):
    piece = b" " * 65536
    chunks = (b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(32 * 16))  # 32 MB, no Content-Length
    generations = len(served.backend.requests)
    tracemalloc.start()
    try:
        answer = _raw_exchange(served.port, _head(chunked=True), chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Read whole, as before, the body alone would have cost 32 MB; cut at 4 MB it costs about that.
    assert peak < 12 * 1024 * 1024, f"the server held {peak / 2**20:.1f} MB for a request over its 4 MB limit"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer[:200]  # or reset before the client read it
    assert len(served.backend.requests) == generations


def test_a_small_chunked_body_is_accepted(served):
    body = json.dumps(VALID).encode()
    answer = _raw_exchange(served.port, _head(chunked=True).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
                           b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_a_body_that_stops_arriving_gets_a_408_and_the_connection_closes(served):
    started = time.monotonic()
    answer = _raw_exchange(served.port, _head("100"), b'{"messages": ')  # 13 of the 100 bytes, then silence
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer and 0.9 < time.monotonic() - started < 8


# -- content type and model -----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_declared_json_gets_a_415(http, content_type):
    response = http.post("/v1/chat/completions", content=json.dumps(VALID), headers={"Content-Type": content_type})
    error = _assert_openai_error(response, 415)
    assert "application/json" in error["message"] and error["code"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_bodies_are_accepted_with_or_without_a_declared_type(http, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    assert http.post("/v1/chat/completions", content=json.dumps(VALID), headers=headers).status_code == 200


def test_an_unknown_model_gets_a_404_model_not_found_without_a_generation(served, http):
    generations = len(served.backend.requests)
    error = _assert_openai_error(_post(http, {**VALID, "model": "gpt-4o"}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'gpt-4o'" in error["message"] and MODEL in error["message"]
    assert len(served.backend.requests) == generations


@pytest.mark.parametrize("model", [MODEL, MODEL.upper(), f"path/to/{MODEL}", "default"])
def test_the_served_model_answers_by_its_listed_name_and_aliases(http, model):
    listed = [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert listed == [MODEL]
    assert _post(http, {**VALID, "model": model}).status_code == 200


def test_the_projects_own_client_still_works(served):
    request = GenerationRequest(messages=[Message(role="user", content="Hi")], constraint=JsonSchemaConstraint(json_schema={"type": "object"}), max_tokens=8)
    for model in (MODEL, "default"):  # "default" is what `agentkit run --remote` sends unless told otherwise
        generation = RemoteBackend(f"{served.url}/v1", model=model, max_retries=0).generate(request)
        assert json.loads(generation.text) == {"final_answer": "ok"}
