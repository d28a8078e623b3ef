"""RemoteBackend against real HTTP servers on loopback: retries, errors, the tools-API fallback, streaming.

The servers here stand in for inference servers we cannot run in CI (vLLM, SGLang): plain
`http.server` processes on 127.0.0.1 answering in the OpenAI shape, scripted per test. The full
agent-over-HTTP run against `agentkit serve` itself is in test_serve.py.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentkit import Agent, GenerationRequest, JsonSchemaConstraint, Message, RemoteBackend, RemoteError
from agentkit.tools import calculator

STEP_CALL = {"calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}]}


def completion(content=None, tool_calls=None, finish="stop"):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "x", "object": "chat.completion", "model": "served", "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


class FakeServer:
    """A real HTTP server; `answers` is a list of (status, body, headers) served in order (the last repeats)."""

    def __init__(self, answers):
        self.answers, self.bodies, self.times = list(answers), [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.times.append(time.monotonic())
                status, body, headers = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def serve():
    servers = []

    def start(*answers):
        servers.append(FakeServer(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def request(schema=None):
    return GenerationRequest(
        messages=[Message(role="system", content="s"), Message(role="tool", content="calculator returned: 42")],
        constraint=None if schema is None else JsonSchemaConstraint(json_schema=schema),
    )


def test_the_step_schema_goes_out_as_response_format_and_text_comes_back(serve):
    server = serve((200, completion(json.dumps(STEP_CALL)), {}))
    generation = RemoteBackend(server.url, model="m", api_key="k").generate(request({"type": "object"}))
    assert json.loads(generation.text) == STEP_CALL and generation.prompt_tokens == 11 and generation.completion_tokens == 7
    sent = server.bodies[0]
    assert sent["response_format"]["json_schema"]["schema"] == {"type": "object"} and sent["model"] == "m"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]  # tool results go as user turns


@pytest.mark.parametrize("mode", ["auto", "tools"])
def test_a_lark_constraint_goes_out_unconstrained_and_the_format_parses_the_reply(serve, mode):
    # Servers enforce JSON Schemas only: a native format's grammar is not sent (nor turned into tools).
    call = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "6 * 7"}}\n</tool_call>'
    server = serve((200, completion(call), {}), (200, completion("It is 42."), {}))
    result = Agent(RemoteBackend(server.url, model="m", mode=mode), tools=[calculator], tool_format="hermes").run("What is 6 * 7?")
    assert result.output == "It is 42." and result.steps[0].observations[0].content == "42"
    assert len(server.bodies) == 2 and all("response_format" not in b and "tools" not in b for b in server.bodies)


def test_transient_failures_are_retried_with_backoff_and_retry_after(serve):
    server = serve((503, {"error": {"message": "busy"}}, {}), (429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"}),
                   (200, completion("hello"), {}))
    backend = RemoteBackend(server.url, model="m", backoff=0.05)
    assert backend.generate(request()).text == "hello"
    assert backend.retries == 2 and len(server.bodies) == 3
    assert server.times[2] - server.times[1] >= 0.28  # Retry-After honoured


def test_a_client_error_is_not_retried_and_names_the_servers_message(serve):
    server = serve((400, {"error": {"message": "unknown model 'm'"}}, {}))
    with pytest.raises(RemoteError, match="400: unknown model 'm'") as caught:
        RemoteBackend(server.url, model="m").generate(request())
    assert caught.value.status == 400 and len(server.bodies) == 1


def test_giving_up_after_max_retries(serve):
    server = serve((502, {"error": {"message": "bad gateway"}}, {}))
    with pytest.raises(RemoteError, match="502"):
        RemoteBackend(server.url, model="m", max_retries=2, backoff=0.01).generate(request())
    assert len(server.bodies) == 3


def test_an_unreachable_server_is_a_clear_error():
    with pytest.raises(RemoteError, match="unreachable after 2 attempts"):
        RemoteBackend("http://127.0.0.1:9/v1", model="m", max_retries=1, backoff=0.01, timeout=2).generate(request())


def test_images_go_to_a_vision_server_as_inline_image_url_parts(serve):
    import base64

    from agentkit import Image

    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    server = serve((200, completion(json.dumps({"final_answer": "a dot"})), {}))
    backend = RemoteBackend(server.url, model="m", supports_images=True)
    assert Agent(backend, examples=[]).run("What is this?", images=[png]).output == "a dot"
    user = server.bodies[0]["messages"][-1]
    assert user["content"][0] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}
    assert user["content"][1] == {"type": "text", "text": "What is this?"}
    assert Image(data=png).media_type == "image/png"


def test_a_context_error_becomes_context_overflow(serve):
    from agentkit import ContextOverflowError

    server = serve((400, {"error": {"message": "This model's maximum context length is 8192 tokens"}}, {}))
    with pytest.raises(ContextOverflowError):
        RemoteBackend(server.url, model="m").generate(request())


def test_servers_without_structured_outputs_get_the_tools_api_and_the_agent_still_runs(serve):
    tool_call = [{"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": json.dumps({"expression": "6 * 7"})}}]
    answer = [{"id": "c2", "type": "function", "function": {"name": "give_final_answer", "arguments": json.dumps({"answer": "42"})}}]
    server = serve((400, {"error": {"message": "response_format is not supported"}}, {}),
                   (500, {"error": {"message": "response_format.type: Input should be 'text' or 'json_object'"}}, {}),
                   (200, completion(tool_calls=tool_call, finish="tool_calls"), {}),
                   (200, completion(tool_calls=answer, finish="tool_calls"), {}))
    result = Agent(RemoteBackend(server.url, model="m"), tools=[calculator]).run("What is 6 * 7?")
    assert result.output == "42" and result.steps[0].observations[0].content == "42"
    assert server.bodies[1]["response_format"] == {"type": "json_object", "schema": server.bodies[0]["response_format"]["json_schema"]["schema"]}
    tools_body = server.bodies[2]
    assert "response_format" not in tools_body and tools_body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in tools_body["tools"]] == ["calculator", "give_final_answer"]


def test_an_invalid_reply_is_fed_back_and_retried_by_the_agent(serve):
    server = serve((200, completion("not a step"), {}), (200, completion(json.dumps({"final_answer": "ok"})), {}))
    result = Agent(RemoteBackend(server.url, model="m")).run("Say ok")
    assert result.output == "ok" and result.steps[0].rejected_outputs == ["not a step"]
    assert "not valid JSON" in server.bodies[1]["messages"][-1]["content"]


def test_streaming_yields_the_text_deltas(serve):
    events = b"".join(
        f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': piece}}]})}\n\n".encode() for piece in ["Hel", "lo"]
    ) + b"data: [DONE]\n\n"
    server = serve((200, events, {"Content-Type": "text/event-stream"}))
    backend = RemoteBackend(server.url, model="m")

    async def collect():
        return [piece async for piece in backend.astream(request())]

    import asyncio

    assert asyncio.run(collect()) == ["Hel", "lo"] and server.bodies[0]["stream"] is True
