"""`agentkit serve` as a real process on loopback, driven by the official `openai` SDK and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai")

AGENTKIT = Path(sys.executable).parent / "agentkit"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone.",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    },
}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
MODEL = "set by the served_name fixture"
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(AGENTKIT)] if AGENTKIT.exists() else [sys.executable, "-m", "agentkit.cli"]
        self.process = subprocess.Popen([*command, "serve", "--port", str(self.port), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, f"the server exited: {self.process.stdout.read()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer, make_tiny_llama):
    folder = tmp_path_factory.mktemp("tiny-served")
    make_tiny_llama(smollm2_tokenizer, seed=11).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    """A random-weight model: its replies are noise, so every valid call below is the grammar's doing."""
    running = Server("--model", str(tiny_model_dir), "--api-key", "sekret")
    yield running
    running.stop()


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sekret", max_retries=0)


@pytest.fixture(scope="module", autouse=True)
def served_name(server):
    """Requests name the served model, as GET /v1/models lists it (others get a 404)."""
    global MODEL
    MODEL = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer sekret"}).json()["data"][0]["id"]
    return MODEL


def test_plain_chat_returns_text_and_usage(client):
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=8, seed=1)
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.tool_calls is None
    assert reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_time"}}], ids=["required", "named"])
def test_forced_tool_calls_always_parse_and_match_the_schema(client, choice, seed):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME], tool_choice=choice, seed=seed)
    calls = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls" and calls
    for call in calls:
        arguments = json.loads(call.function.arguments)
        if isinstance(choice, dict):
            assert call.function.name == "get_time" and isinstance(arguments["timezone"], str)
        else:
            assert call.function.name in ("get_weather", "get_time")
        assert call.id.startswith("call_")


@pytest.mark.parametrize("seed", range(5))
def test_auto_gives_either_valid_calls_or_text(client, seed):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="auto", seed=seed)
    message = reply.choices[0].message
    if message.tool_calls:
        assert json.loads(message.tool_calls[0].function.arguments)["city"] is not None
    else:
        assert isinstance(message.content, str) and reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("seed", [-1, -(2**63), 2**63 - 1])
def test_any_int64_seed_reaches_the_engine(client, seed):
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4, seed=seed)
    assert reply.usage.completion_tokens <= 4


def test_tool_choice_none_never_calls(client):
    reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=8)
    assert reply.choices[0].message.tool_calls is None


def test_parallel_tool_calls_false_gives_one_call(client):
    for seed in range(5):
        reply = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False, seed=seed)
        assert len(reply.choices[0].message.tool_calls) == 1


def test_a_tool_result_conversation_continues(client):
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", seed=3)
    call = first.choices[0].message.tool_calls[0]
    messages = [*ASK, first.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "18°C, sunny"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], max_tokens=32, seed=3)
    assert second.choices[0].finish_reason in ("stop", "tool_calls", "length")


@pytest.mark.parametrize("seed", range(3))
def test_json_schema_response_format_is_enforced(client, seed):
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "A person"}], seed=seed,
                                           response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    person = json.loads(reply.choices[0].message.content)
    assert set(person) == {"name", "age"} and isinstance(person["age"], int) and len(person["name"]) <= 12


def test_json_object_response_format(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "JSON please"}], response_format={"type": "json_object"}, seed=2, max_tokens=200
    )
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_streaming_sends_tool_call_deltas_in_the_openai_shape(client):
    stream = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", stream=True,
                                            seed=4, stream_options={"include_usage": True})
    names, arguments, finish, usage = {}, {}, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                if delta.function.name:
                    names[delta.index] = delta.function.name
                arguments[delta.index] = arguments.get(delta.index, "") + (delta.function.arguments or "")
    assert finish == "tool_calls" and names and set(names.values()) == {"get_weather"}
    assert all("city" in json.loads(a) for a in arguments.values())
    assert usage is not None and usage.completion_tokens > 0


def test_streaming_plain_text(client):
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=12, stream=True, seed=5) if c.choices]
    assert "".join(pieces)


def test_models_and_health(server):
    models = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer sekret"}).json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


BAD_REQUESTS = [
    pytest.param(b"{not json", 400, "not valid JSON", id="malformed-json"),
    pytest.param({"model": "m"}, 400, "`messages`", id="no-messages"),
    pytest.param({"messages": []}, 400, "`messages`", id="empty-messages"),
    pytest.param({"messages": [{"role": "wizard", "content": "x"}]}, 400, "role", id="unknown-role"),
    pytest.param({"messages": ASK, "n": 2}, 400, "n=1", id="n-2"),
    pytest.param({"messages": ASK, "max_tokens": 0}, 400, "max_tokens", id="zero-max-tokens"),
    pytest.param({"messages": ASK, "temperature": 7}, 400, "temperature", id="temperature-out-of-range"),
    pytest.param({"messages": ASK, "stop": [""]}, 400, "stop", id="empty-stop"),
    pytest.param({"messages": ASK, "tools": "get_weather"}, 400, "`tools`", id="tools-not-a-list"),
    pytest.param({"messages": ASK, "tools": [{"type": "function"}]}, 400, "tools[0]", id="tool-without-function"),
    pytest.param({"messages": ASK, "tools": [WEATHER, WEATHER]}, 400, "unique", id="duplicate-tools"),
    pytest.param(
        {"messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, 400, "'nope'", id="unknown-tool-choice"
    ),
    pytest.param({"messages": ASK, "tool_choice": "required"}, 400, "tools", id="required-without-tools"),
    pytest.param({"messages": ASK, "tool_choice": "sometimes"}, 400, "tool_choice", id="bad-tool-choice"),
    pytest.param({"messages": ASK, "response_format": {"type": "xml"}}, 400, "response_format", id="bad-response-format"),
    pytest.param({"messages": ASK, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, 400, "schema", id="json-schema-without-schema"),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
        400, "does not fetch URLs", id="image-url-not-inline",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]},
        400, "not a PNG", id="image-not-an-image",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_1PX}}]}]},
        400, "no vision tower", id="image-for-a-text-model",
    ),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, 400, "only text and image_url", id="audio-part"),
    pytest.param({"messages": [{"role": "user", "content": "word " * 5000}]}, 400, "context window", id="context-too-long"),
    pytest.param(
        {"messages": ASK, "response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)a"}}},
        }}},
        400, "schema", id="uncompilable-schema",
    ),
    pytest.param({"messages": ASK, "seed": 10**29}, 400, "`seed`", id="seed-over-64-bits"),
    pytest.param({"messages": ASK, "stream": True, "stream_options": "yes"}, 400, "stream_options", id="stream-options-not-an-object"),
    pytest.param({"messages": ASK, "model": "gpt-4o"}, 404, "does not exist", id="unknown-model"),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_REQUESTS)
def test_bad_requests_get_an_openai_error_with_the_right_status(server, body, status, words):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{server.url}/v1/chat/completions", content=content, headers={"Authorization": "Bearer sekret"}, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"] and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        pytest.param("POST", "/v1/chat/completions", {}, 401, id="no-api-key"),
        pytest.param("POST", "/v1/chat/completions", {"Authorization": "Bearer wrong"}, 401, id="wrong-api-key"),
        pytest.param("GET", "/v1/chat/completions", {"Authorization": "Bearer sekret"}, 405, id="wrong-method"),
        pytest.param("GET", "/v2/everything", {}, 404, id="unknown-route"),
    ],
)
def test_auth_routes_and_methods(server, method, path, headers, status):
    response = httpx.request(method, f"{server.url}{path}", headers=headers, json={"messages": ASK})
    assert response.status_code == status
    assert "message" in response.json()["error"]


def test_a_client_that_disconnects_frees_its_slot(server):
    long_request = {"messages": [{"role": "user", "content": "Talk."}], "max_tokens": 3500, "temperature": 1.0, "seed": 9}
    headers = {"Authorization": "Bearer sekret"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=long_request, headers=headers, timeout=0.5)
    started = time.monotonic()
    quick = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": ASK, "max_tokens": 4}, headers=headers, timeout=60)
    assert quick.status_code == 200
    # The abandoned 3500-token decode would hold the engine for many seconds (CPU runs one at a time).
    assert time.monotonic() - started < 3.0


def test_64_concurrent_requests_all_answered_and_valid(server):
    async def one(client: httpx.AsyncClient, i: int) -> tuple[float, dict]:
        started = time.perf_counter()
        response = await client.post("/v1/chat/completions", json={"messages": ASK, "tools": [WEATHER], "tool_choice": "required", "seed": i})
        assert response.status_code == 200, response.text
        return time.perf_counter() - started, response.json()

    async def run_all() -> list[tuple[float, dict]]:
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": "Bearer sekret"}, timeout=300) as client:
            return await asyncio.gather(*(one(client, i) for i in range(64)))

    results = asyncio.run(run_all())
    assert len(results) == 64
    for _, body in results:
        call = body["choices"][0]["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_weather" and "city" in json.loads(call["function"]["arguments"])


@pytest.mark.slow
def test_remote_backend_runs_a_whole_agent_over_http_on_the_embedded_model():
    from agentkit import Agent, RemoteBackend
    from agentkit.tools import calculator
    from agentkit.tools.calculator import CALCULATOR_EXAMPLES

    served = Server()
    try:
        backend = RemoteBackend(f"{served.url}/v1", model="SmolLM2-135M-Instruct")
        result = Agent(backend, tools=[calculator], examples=CALCULATOR_EXAMPLES, max_steps=4).run("What is 17 * 23?")
    finally:
        served.stop()
    assert result.output == "391"
    assert result.steps[0].calls[0].name == "calculator" and result.steps[0].observations[0].content == "391"
    assert os.environ.get("CI") is None or result.usage.prompt_tokens > 0


def test_the_cli_runs_an_agent_against_the_server(server, tmp_path):
    command = [str(AGENTKIT)] if AGENTKIT.exists() else [sys.executable, "-m", "agentkit.cli"]
    done = subprocess.run(
        [*command, "run", "What is 2 + 2?", "--remote", f"{server.url}/v1", "--max-steps", "2", "--json"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "AGENTKIT_API_KEY": "sekret"},
    )
    # The served model is random: it answers within two steps or runs out of them, but every step parsed.
    if done.returncode == 0:
        assert json.loads(done.stdout)["steps"]
    else:
        assert done.stderr.startswith("error: MaxStepsExceeded"), done.stderr
