"""Context policy: a run that would overflow the window errors with its partial run, drops or summarises.

Token counts come from the real SmolLM2 tokenizer through a tiny random-weight `LocalEngine`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated

import pytest
from pydantic import Field

from agentkit import Agent, ContextOverflowError, ContextPolicy, MaxStepsExceeded, RemoteBackend, SamplingSettings, StepLimits, ToolRegistry, tool
from agentkit.testing import FunctionBackend, ScriptedBackend
from agentkit.trace import read_trace

PAGE_WORDS = 300  # one page is ~300 tokens


@tool
def read_page(page: Annotated[int, Field(ge=1, le=9)]) -> str:
    """Read one page of the report.

    Args:
        page: the page number, from 1.
    """
    return f"Page {page}: " + " ".join(f"fact{page}x{i}" for i in range(PAGE_WORDS // 3))


def _calls(pages):
    return [{"calls": [{"name": "read_page", "arguments": {"page": p}}]} for p in pages]


class CountedScript(ScriptedBackend):
    """Scripted replies, with the window and exact token counts of a real tokenizer (a tiny engine)."""

    def __init__(self, replies, engine, window):
        super().__init__(replies, context_window=window)
        self.engine = engine

    def count_tokens(self, messages, *, tools=None):
        return self.engine.count_tokens(messages, tools=tools)


class CountedFunction(FunctionBackend):
    def __init__(self, fn, engine, window):
        super().__init__(fn, context_window=window)
        self.engine = engine

    def count_tokens(self, messages, *, tools=None):
        return self.engine.count_tokens(messages, tools=tools)


@pytest.fixture(scope="module")
def engine(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    return LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, seed=5, context=2048), smollm2_tokenizer)


def _agent(backend, **options):
    tools = ToolRegistry([read_page], max_output_chars=20_000)
    return Agent(backend, tools=tools, examples=[], sampling=SamplingSettings(max_step_tokens=64), **options)


def test_the_default_stops_with_the_partial_run_and_exact_counts(engine):
    backend = CountedScript([*_calls([1, 2, 3, 4, 5, 6]), {"final_answer": "done"}], engine, window=1200)
    with pytest.raises(ContextOverflowError) as caught:
        _agent(backend).run("Summarise pages 1 to 6.")
    error = caught.value
    assert error.partial is not None and len(error.partial.steps) >= 2  # work done so far is kept
    assert all(len(s.observations) == 1 for s in error.partial.steps)
    assert error.context_window == 1200 and error.reserved_tokens == 64
    assert error.prompt_tokens == engine.count_tokens(error.partial.messages)  # exact, from the tokenizer
    assert error.prompt_tokens + 64 > 1200
    assert "drop_oldest" in str(error) and "partial" in str(error)
    assert len(backend.requests) == len(error.partial.steps)  # the model was not asked with an overflowing prompt


def test_drop_oldest_keeps_every_prompt_inside_the_window(engine, tmp_path):
    backend = CountedScript([*_calls([1, 2, 3, 4, 5, 6]), {"final_answer": "done"}], engine, window=1200)
    trace = tmp_path / "run.jsonl"
    run = _agent(backend, context="drop_oldest", trace=trace).run("Summarise pages 1 to 6.")
    assert run.output == "done"
    for request in backend.requests:
        assert engine.count_tokens(request.messages) + 64 <= 1200
    assert run.compactions and all(c.strategy == "drop_oldest" for c in run.compactions)
    assert all(c.tokens_before + 64 > 1200 >= c.tokens_after + 64 for c in run.compactions)
    tool_messages = [m for m in run.messages if m.role == "tool"]
    assert "removed to fit the context window" in tool_messages[0].content  # oldest dropped
    assert "fact6x99" in tool_messages[-1].content  # newest kept whole
    assert "fact1x99" in run.steps[0].observations[0].content  # the run keeps every observation
    events = [e for e in read_trace(trace) if e["event"] == "context_compacted"]
    assert [e["messages"] for e in events] == [c.messages for c in run.compactions]


def test_keep_recent_that_cannot_fit_says_what_to_change(engine):
    backend = CountedScript([*_calls([1, 2, 3, 4]), {"final_answer": "done"}], engine, window=1200)
    agent = _agent(backend, context=ContextPolicy(strategy="drop_oldest", keep_recent=3))
    with pytest.raises(ContextOverflowError, match="keep_recent") as caught:
        agent.run("Summarise pages 1 to 4.")
    assert caught.value.partial.compactions  # it did drop what it was allowed to
    assert len(caught.value.partial.steps) == 3


def test_summarize_replaces_old_observations_with_the_models_summary(engine):
    summary = "Pages 1-3 list facts fact1x0 to fact3x99."
    steps = iter([*_calls([1, 2, 3, 4, 5]), {"final_answer": "done"}])

    def reply(request):
        return summary if "Summarise these tool results" in request.messages[-1].content else next(steps)

    backend = CountedFunction(reply, engine, window=1300)
    run = _agent(backend, context=ContextPolicy(strategy="summarize", summary_tokens=48)).run("Summarise pages 1 to 5.")
    assert run.output == "done"
    asked = [i for i, r in enumerate(backend.requests) if "Summarise these tool results" in r.messages[-1].content]
    assert asked, "the model was never asked for a summary"
    summary_request = backend.requests[asked[0]]
    assert summary_request.constraint is None  # free text
    assert summary_request.max_tokens == 48
    assert "fact1x50" in summary_request.messages[-1].content  # the oldest observation is in it, whole
    after = backend.requests[asked[0] + 1].messages
    assert any(m.content.startswith("Summary of ") and summary in m.content for m in after)
    assert not any("fact1x50" in m.content for m in after)
    assert run.compactions[0].strategy == "summarize" and run.compactions[0].messages
    assert run.usage.model_calls == len(backend.requests)  # the summary calls are counted
    assert all(engine.count_tokens(r.messages) + 64 <= 1300 for r in backend.requests if "Summarise these" not in r.messages[-1].content)


def test_a_budget_below_the_window_is_kept(engine):
    backend = CountedScript([*_calls([1, 2, 3]), {"final_answer": "done"}], engine, window=2048)
    agent = _agent(backend, context=ContextPolicy(strategy="drop_oldest", max_tokens=900))
    run = agent.run("Summarise pages 1 to 3.")
    assert run.compactions
    assert all(engine.count_tokens(r.messages) + 64 <= 900 for r in backend.requests)
    assert run.context_tokens > 0


def test_a_remote_server_that_refuses_an_overflow_gets_a_compacted_retry():
    """Remote servers can't count for us: their context-length error (HTTP 400) triggers the compaction."""
    steps = iter([*_calls([1, 2, 3, 4]), {"final_answer": "done"}])
    sizes, refused = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            size = sum(len(m["content"] or "") for m in body["messages"])
            sizes.append(size)
            if size > sizes[0] + 2500:  # a small window: about two and a half pages more than the first prompt
                refused.append(size)
                status, reply = 400, {"error": {"message": "This model's maximum context length is 2048 tokens."}}
            else:
                message = {"role": "assistant", "content": json.dumps(next(steps))}
                status, reply = 200, {
                    "id": "x", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                }
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = RemoteBackend(f"http://127.0.0.1:{server.server_address[1]}/v1", model="m", max_retries=0)
        run = _agent(backend, context="drop_oldest").run("Summarise pages 1 to 4.")
    finally:
        server.shutdown()
    assert run.output == "done" and refused  # the server did refuse, and the run went on
    assert run.compactions and all(c.tokens_before == 0 for c in run.compactions)  # no local count
    assert "fact4x99" in [m for m in run.messages if m.role == "tool"][-1].content


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="drop_oldest"):
        _agent(ScriptedBackend([]), context="forget_everything")


def test_random_weights_with_drop_oldest_never_overflow(engine):
    """The real engine under the grammar: long tool outputs, a small budget, and runs go on."""
    budget, reply = 1400, 96
    compactions = 0
    for seed in range(30):
        agent = Agent(
            engine, tools=ToolRegistry([read_page], max_output_chars=20_000), max_steps=4,
            sampling=SamplingSettings(max_step_tokens=reply, temperature=1.0, seed=seed),
            context=ContextPolicy(strategy="drop_oldest", max_tokens=budget),
            limits=StepLimits(max_calls=1, answer_chars=40),
        )
        try:
            run = agent.run("Read pages 1 to 6.")
        except MaxStepsExceeded as exc:
            run = exc.partial
        assert all(s.usage.prompt_tokens + reply <= budget for s in run.steps), seed
        compactions += len(run.compactions)
    assert compactions > 0  # some seeds call read_page twice or more: their runs had to drop
