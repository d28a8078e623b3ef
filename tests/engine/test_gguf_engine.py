"""The llama.cpp engine behaves like the torch engine: same prompts, same tokens, same features.

A tiny random-weight Llama is written to a GGUF file, so both engines run the very same weights: the
torch engine from the model object, `GGUFEngine` from the file through llama.cpp's kernels.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from agentkit import GenerationRequest, JsonSchemaConstraint, Message
from agentkit.errors import ContextOverflowError, ModelCapabilityError, ModelLoadError

SCHEMA = {
    "type": "object",
    "properties": {
        "tool": {"enum": ["calculator", "weather"]},
        "arguments": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"], "additionalProperties": False},
    },
    "required": ["tool", "arguments"],
    "additionalProperties": False,
}
CONVERSATION = [
    Message(role="system", content="You are a careful assistant. Use tools when they help; answer briefly. " * 3),
    Message(role="user", content="What's the weather in Zürich and 東京? Then add 17 and 25."),
]


@pytest.fixture(scope="module")
def engines(require_llama_cpp, smollm2_tokenizer, make_tiny_llama, make_tiny_gguf):
    """(torch engine, llama.cpp engine) over one random-weight model."""
    from agentkit.engine import GGUFEngine, LocalEngine

    model = make_tiny_llama(smollm2_tokenizer, seed=11)
    path = make_tiny_gguf(model, "engines")
    return LocalEngine.from_model(model, smollm2_tokenizer, kv_cache_bytes=0), GGUFEngine(path, tokenizer=smollm2_tokenizer)


@pytest.fixture()
def gguf(engines):
    engine = engines[1]
    engine.llama.reset()  # every test starts cold
    return engine


def _request(**fields) -> GenerationRequest:
    return GenerationRequest(**{"messages": CONVERSATION, "max_tokens": 40, **fields})


def test_both_engines_build_the_same_token_ids(engines):
    torch_engine, gguf = engines
    history = CONVERSATION + [Message(role="assistant", content='{"tool": "weather"}'), Message(role="tool", content="<|im_end|> 12°C")]
    assert gguf.count_tokens(history) == torch_engine.count_tokens(history)
    assert gguf._prompt_ids(history) == torch_engine._prompt_ids(history)
    assert gguf.context_window == torch_engine.context_window == 4096  # the GGUF's trained context
    assert gguf.eos_ids == torch_engine.eos_ids


def test_llama_cpps_own_tokenizer_agrees_with_the_prompt_ids(gguf):
    from agentkit.engine.chat import render_prompt

    text = render_prompt(gguf.tokenizer, CONVERSATION)
    assert gguf.llama.tokenize(text) == gguf._prompt_ids(CONVERSATION)


def test_same_weights_give_the_same_log_probabilities(engines):
    torch_engine, gguf = engines
    replies = ['{"tool": "weather", "arguments": {"city": "Zürich"}}', "It is 42.", ""]
    expected = torch_engine.score(_request(), replies)
    got = gguf.score(_request(), replies)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-3)
    assert got[2] == pytest.approx(expected[2], abs=1e-4) and got[2] < 0  # the empty reply: just the end token


def test_greedy_decoding_gives_the_same_reply_on_both_engines(engines):
    torch_engine, gguf = engines
    for question in ("What's the weather in Oslo?", "Add 17 and 25.", "Zürich oder 東京?"):
        messages = [CONVERSATION[0], Message(role="user", content=question)]
        for schema in (None, SCHEMA):
            constraint = None if schema is None else JsonSchemaConstraint(json_schema=schema)
            request = _request(messages=messages, constraint=constraint, max_tokens=60)
            mine, theirs = gguf.generate(request), torch_engine.generate(request)
            assert mine.text == theirs.text
            assert mine.completion_tokens == theirs.completion_tokens and mine.prompt_tokens == theirs.prompt_tokens
            if schema:
                step = json.loads(mine.text)
                assert step["tool"] in ("calculator", "weather") and len(step["arguments"]["city"]) <= 12


def test_a_seed_gives_the_same_reply_and_other_seeds_other_replies(gguf):
    replies = [
        gguf.generate(_request(temperature=1.0, seed=seed, constraint=JsonSchemaConstraint(json_schema=SCHEMA), max_tokens=60)).text
        for seed in (1, 1, 2, 3)
    ]
    assert replies[0] == replies[1]
    assert len(set(replies)) >= 3
    nucleus = []
    for _ in range(2):
        gguf.llama.reset()  # a reused prefix sums in another order: near-ties of a random model could flip
        nucleus.append(gguf.generate(_request(temperature=1.0, top_p=0.5, seed=7, max_tokens=20)).text)
    assert nucleus[0] == nucleus[1]


def test_random_weights_under_a_schema_always_give_a_valid_reply(gguf):
    for seed in range(30):
        generation = gguf.generate(_request(temperature=1.5, seed=seed, constraint=JsonSchemaConstraint(json_schema=SCHEMA), max_tokens=200))
        assert generation.finish_reason == "stop"
        assert json.loads(generation.text)["tool"] in ("calculator", "weather")


def test_jump_forward_appends_forced_tokens_without_a_pass_each(gguf):
    request = _request(constraint=JsonSchemaConstraint(json_schema=SCHEMA), temperature=1.0, seed=4, max_tokens=80)
    fast = gguf.generate(request)
    assert fast.details["jump_forward_tokens"] > 0
    assert fast.details["forward_passes"] < fast.completion_tokens
    gguf.jump_forward = False
    try:
        gguf.llama.reset()
        slow = gguf.generate(request)
    finally:
        gguf.jump_forward = True
    # Step by step, a random model may spell the forced text in other tokens; the reply is still valid.
    assert slow.details["jump_forward_tokens"] == 0 and slow.details["forward_passes"] >= slow.completion_tokens
    assert json.loads(slow.text)["tool"] in ("calculator", "weather")


def test_the_next_step_prefills_only_its_new_tokens_and_decodes_as_a_cold_engine(gguf):
    first = gguf.generate(_request(temperature=1.0, seed=1))
    history = CONVERSATION + [Message(role="assistant", content=first.text), Message(role="user", content="Thanks. And Oslo?")]
    warm = gguf.generate(_request(messages=history, temperature=1.0, seed=2))
    assert warm.details["reused_tokens"] >= first.prompt_tokens + first.completion_tokens - 1
    assert warm.details["prefill_tokens"] == warm.prompt_tokens - warm.details["reused_tokens"]
    gguf.llama.reset()
    cold = gguf.generate(_request(messages=history, temperature=1.0, seed=2))
    assert cold.details["reused_tokens"] == 0 and cold.text == warm.text


def test_conversations_share_a_system_prompt_and_keep_their_own_prefixes(gguf):
    a = [CONVERSATION[0], Message(role="user", content="First conversation.")]
    b = [CONVERSATION[0], Message(role="user", content="Second one, quite different.")]
    system_tokens = gguf.count_tokens(CONVERSATION[:1])
    first_a = gguf.generate(_request(messages=a))
    first_b = gguf.generate(_request(messages=b))
    assert first_b.details["reused_tokens"] >= system_tokens - 5  # the shared system prompt
    # Conversation a carries on: its own prefix is still held, although b diverged from it.
    next_a = gguf.generate(_request(messages=a + [Message(role="assistant", content=first_a.text), Message(role="user", content="More.")]))
    assert next_a.details["reused_tokens"] >= first_a.prompt_tokens + first_a.completion_tokens - 1


def test_when_the_kv_cells_run_out_older_conversations_are_evicted(make_tiny_gguf, smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import GGUFEngine

    path = make_tiny_gguf(make_tiny_llama(smollm2_tokenizer, seed=11), "engines")
    small = GGUFEngine(path, context_tokens=256, sequences=4, tokenizer=smollm2_tokenizer)
    replies = []
    for n in range(4):  # four conversations of ~120 tokens each cannot all stay in 256 cells
        messages = [Message(role="user", content=f"Conversation {n}: " + "tell me about the weather " * 12)]
        replies.append(small.generate(_request(messages=messages, max_tokens=20)))
    assert all(r.completion_tokens == 20 for r in replies)
    assert small.context_window == 256
    with pytest.raises(ContextOverflowError) as info:
        small.generate(_request(messages=[Message(role="user", content="word " * 300)], max_tokens=20))
    assert info.value.context_window == 256 and info.value.prompt_tokens > 256


def test_the_kv_cells_grow_with_the_conversation_and_give_the_same_replies(engines, monkeypatch, smollm2_tokenizer):
    """Memory follows use: the context starts small and doubles when one conversation needs more."""
    import agentkit.engine.llama_context as llama_context
    from agentkit.engine import GGUFEngine

    full = engines[1]
    monkeypatch.setattr(llama_context, "INITIAL_CELLS", 256)  # llama.cpp's smallest
    growing = GGUFEngine(full.path, tokenizer=smollm2_tokenizer)
    assert growing.llama.cells == 256 and growing.context_window == full.context_window == 4096
    full.llama.reset()
    short = _request(max_tokens=20)
    assert growing.generate(short).text == full.generate(short).text and growing.llama.cells == 256
    saved, full.eos_ids, growing.eos_ids = full.eos_ids, set(), set()  # the replies must run their whole length
    try:
        long = _request(max_tokens=250)  # ~85 prompt tokens + 250
        assert growing.generate(long).text == full.generate(long).text
        assert growing.llama.cells == 512
    finally:
        full.eos_ids = growing.eos_ids = saved
    replies = ["It is 42.", "word " * 500]
    assert growing.score(short, replies) == pytest.approx(full.score(short, replies), rel=1e-4)
    assert growing.llama.cells == 1024  # the long reply needed more

    # A decode that runs out of cells on its own grows too, and carries the sequence's tokens over.
    small = GGUFEngine(full.path, tokenizer=smollm2_tokenizer)
    ids = small._prompt_ids(CONVERSATION)
    seq, _ = small.llama.claim(ids)
    small.llama.decode(seq, ids)
    logits = small.llama.decode(seq, ids * 3).copy()  # 4 x ~85 tokens > 256 cells, no reserve
    assert small.llama.cells == 512 and small.llama.held(seq) == ids * 4
    full.llama.reset()
    seq, _ = full.llama.claim(ids * 4)
    assert logits == pytest.approx(full.llama.decode(seq, ids * 4), rel=1e-3, abs=1e-3)


def test_scoring_reuses_the_prompt_and_matches_a_cold_score(gguf):
    replies = ['{"tool": "calculator"}', '{"tool": "weather"}']
    gguf.generate(_request())
    warm = gguf.score(_request(), replies)
    gguf.llama.reset()
    cold = gguf.score(_request(), replies)
    # Batches of other sizes sum in another order: equal to float32 precision, not bit for bit.
    assert warm == pytest.approx(cold, rel=1e-5)
    assert gguf.score(_request(), replies[::-1]) == pytest.approx(cold[::-1], rel=1e-5)


def test_concurrent_requests_all_finish_with_their_own_replies(gguf):
    requests = [_request(temperature=1.0, seed=seed, max_tokens=30) for seed in range(4)]
    expected = [gguf.generate(r).text for r in requests]
    results: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, gguf.generate(requests[i]).text)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(4)] == expected


def test_a_cancelled_request_stops_early_and_the_engine_keeps_serving(gguf):
    request = _request(temperature=1.0, seed=1, max_tokens=3000)
    saved, gguf.eos_ids = gguf.eos_ids, set()  # a random model might end early; this one must be stopped
    try:
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        started = time.perf_counter()
        stopped = gguf.generate(request, cancel=cancel)
    finally:
        gguf.eos_ids = saved
    assert stopped.details["cancelled"] and stopped.finish_reason == "length"
    assert 0 < stopped.completion_tokens < 3000 and time.perf_counter() - started < 10
    after = gguf.generate(request.model_copy(update={"max_tokens": 5}))
    assert after.completion_tokens == 5 and not after.details["cancelled"]


def test_details_report_where_the_time_went(gguf):
    details = gguf.generate(_request(constraint=JsonSchemaConstraint(json_schema=SCHEMA))).details
    assert details["backend"] == "llama.cpp"
    for key in ("prefill_seconds", "decode_seconds", "mask_seconds"):
        assert details[key] >= 0
    assert details["mask_seconds"] > 0  # the grammar ran


def test_images_are_refused_with_a_clear_error(gguf):
    from agentkit.images import Image

    message = Message(role="user", content="What is this?", images=(Image(data=b"\x89PNG\r\n\x1a\n"),))
    with pytest.raises(ModelCapabilityError, match="backend='torch'"):
        gguf.generate(_request(messages=[message]))


# -- which engine a load gets ----------------------------------------------------------------------


def test_a_gguf_on_cpu_loads_into_the_llama_cpp_engine_and_torch_on_request(
    require_llama_cpp, make_tiny_gguf, smollm2_tokenizer, make_tiny_llama, tmp_path, monkeypatch
):
    monkeypatch.setenv("AGENTKIT_CACHE_DIR", str(tmp_path))  # the tokenizer and conversion caches of a throwaway file
    from agentkit.engine import GGUFEngine, LocalEngine

    path = make_tiny_gguf(make_tiny_llama(smollm2_tokenizer, seed=11), "engines")
    assert isinstance(LocalEngine.from_pretrained(path), GGUFEngine)
    assert isinstance(LocalEngine.from_pretrained(path, backend="llama.cpp"), GGUFEngine)
    assert isinstance(LocalEngine.from_pretrained(path, backend="torch"), LocalEngine)
    assert isinstance(LocalEngine.from_pretrained(path, dtype="float32"), LocalEngine)  # a torch setting: torch


def test_settings_of_the_other_engine_are_refused_by_name(
    require_llama_cpp, make_tiny_gguf, smollm2_tokenizer, make_tiny_llama, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("AGENTKIT_CACHE_DIR", str(tmp_path))
    from agentkit.engine import LocalEngine

    path = make_tiny_gguf(make_tiny_llama(smollm2_tokenizer, seed=11), "engines")
    with pytest.raises(ModelLoadError, match="static_cache is a setting of the torch engine.*backend='torch'"):
        LocalEngine.from_pretrained(path, static_cache=True)
    with pytest.raises(ModelLoadError, match="Hugging Face folder.*backend='torch'"):
        LocalEngine.from_pretrained(tiny_model_dir, backend="llama.cpp")
    with pytest.raises(ModelLoadError, match="Unknown backend 'vllm'"):
        LocalEngine.from_pretrained(path, backend="vllm")


def test_without_the_binding_auto_uses_torch_and_an_explicit_choice_says_how_to_install(
    monkeypatch, make_tiny_gguf, smollm2_tokenizer, make_tiny_llama, tmp_path
):
    import sys

    monkeypatch.setenv("AGENTKIT_CACHE_DIR", str(tmp_path))
    from agentkit.engine import LocalEngine

    path = make_tiny_gguf(make_tiny_llama(smollm2_tokenizer, seed=11), "engines")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now fails
    monkeypatch.setattr("agentkit.engine.local.llama_cpp_installed", lambda: False)
    monkeypatch.setattr("agentkit.engine.llama_context._backend_ready", False)
    assert isinstance(LocalEngine.from_pretrained(path), LocalEngine)
    with pytest.raises(ModelLoadError, match="make llama-cpp"):
        LocalEngine.from_pretrained(path, backend="llama.cpp")


def test_a_file_llama_cpp_cannot_load_names_the_file(require_llama_cpp, tmp_path):
    from agentkit.engine import GGUFEngine

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelLoadError, match="broken.gguf"):
        GGUFEngine(broken)


def test_the_embedded_model_runs_on_llama_cpp_by_default_and_agents_get_valid_steps(require_llama_cpp, smollm2):
    from agentkit import Agent
    from agentkit.engine import GGUFEngine
    from agentkit.tools import calculator

    assert isinstance(smollm2, GGUFEngine) and smollm2.name == "SmolLM2-135M-Instruct"
    result = Agent(smollm2, tools=[calculator], max_steps=3).run("What is 17 * 23?")
    assert result.steps and all(step.rejected_outputs == [] for step in result.steps)


def test_scoring_a_reply_longer_than_a_batch_matches_the_torch_engine(engines, make_tiny_gguf, smollm2_tokenizer, make_tiny_llama):
    """A long reply is scored chunk by chunk, row by row (never a tokens x vocabulary array), with the same result."""
    from agentkit.engine import GGUFEngine

    torch_engine = engines[0]
    path = make_tiny_gguf(make_tiny_llama(smollm2_tokenizer, seed=11), "engines")
    small_batches = GGUFEngine(path, tokenizer=smollm2_tokenizer, batch_tokens=16)
    reply = "The weather in Zürich is mild today, and 17 + 25 = 42. " * 6  # ~100 tokens: 7 chunks of 16
    assert small_batches.score(_request(), [reply]) == pytest.approx(torch_engine.score(_request(), [reply]), rel=1e-4)


LOAD_AND_REPORT = """
import json, sys, time
started = time.perf_counter()
from agentkit import GenerationRequest, JsonSchemaConstraint, Message
from agentkit.engine import LocalEngine
engine = LocalEngine.from_pretrained(sys.argv[1])
engine.generate(GenerationRequest(
    messages=[Message(role="user", content="Hi")], max_tokens=4, constraint=JsonSchemaConstraint(json_schema={"type": "boolean"}),
))
print(json.dumps({"engine": type(engine).__name__, "torch": "torch" in sys.modules}))
"""


def test_a_cached_gguf_loads_without_importing_torch(require_llama_cpp, make_tiny_gguf, smollm2_tokenizer, make_tiny_llama, tmp_path):
    """Later loads read the cached tokenizer and token table only: torch (~1.5 s, ~150 MB) is never imported."""
    import os
    import subprocess
    import sys

    path = make_tiny_gguf(make_tiny_llama(smollm2_tokenizer, seed=11), "engines")
    env = {**os.environ, "AGENTKIT_CACHE_DIR": str(tmp_path)}

    def load() -> dict:
        out = subprocess.run([sys.executable, "-c", LOAD_AND_REPORT, str(path)], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    load()  # the first load builds the tokenizer from the GGUF (transformers reads it with torch) and caches it
    assert list((tmp_path / "token-tables").glob("*.npz"))
    assert load() == {"engine": "GGUFEngine", "torch": False}
