"""LocalEngine: loading (HF folder, GGUF, embedded), clear errors, context limits, decoding."""

from __future__ import annotations

import json

import pytest

from agentkit import ContextOverflowError, GenerationRequest, JsonSchemaConstraint, Message, ModelLoadError


def test_missing_path_says_which_and_how_to_fix(tmp_path):
    from agentkit.engine import LocalEngine

    with pytest.raises(ModelLoadError, match="does not exist") as info:
        LocalEngine.from_pretrained(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    assert "config.json" in str(info.value) and ".gguf" in str(info.value)


def test_file_that_is_not_gguf_is_refused(tmp_path):
    from agentkit.engine import LocalEngine

    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a gguf at all")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        LocalEngine.from_pretrained(bogus)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00" * 16)
    with pytest.raises(ModelLoadError, match="not a .gguf file"):
        LocalEngine.from_pretrained(weights)


def test_truncated_gguf_names_the_file(tmp_path, embedded_folder):
    from agentkit.engine import LocalEngine
    from agentkit.engine.loading import embedded_gguf_path

    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(embedded_gguf_path().read_bytes()[:4096])
    with pytest.raises(ModelLoadError) as info:
        LocalEngine.from_pretrained(truncated)
    assert "cut.gguf" in str(info.value)


def test_folder_without_model_is_refused(tmp_path):
    from agentkit.engine import LocalEngine

    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="neither config.json nor a .gguf"):
        LocalEngine.from_pretrained(tmp_path)


def test_gguf_without_the_gguf_package_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    from agentkit.engine import LocalEngine, loading

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find_spec(name, *a))
    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="pip install gguf"):
        LocalEngine.from_pretrained(fake)


def test_unknown_dtype_is_refused():
    from agentkit.engine.loading import torch_dtype

    with pytest.raises(ModelLoadError, match="float32, bfloat16"):
        torch_dtype("float8", "cpu")


def test_hf_folder_round_trip(tmp_path, smollm2_tokenizer, make_tiny_llama):
    """A model saved as a Hugging Face folder loads through from_pretrained and decodes the same."""
    from agentkit.engine import LocalEngine

    model = make_tiny_llama(smollm2_tokenizer, seed=7)
    model.save_pretrained(tmp_path)
    smollm2_tokenizer.save_pretrained(tmp_path)
    loaded = LocalEngine.from_pretrained(tmp_path)
    in_memory = LocalEngine.from_model(model, smollm2_tokenizer)
    request = GenerationRequest(messages=[Message(role="user", content="Hello")], max_tokens=8)
    assert loaded.generate(request).text == in_memory.generate(request).text
    assert loaded.context_window == 4096


def test_prompt_longer_than_context_reports_token_counts(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, context=128), smollm2_tokenizer)
    request = GenerationRequest(messages=[Message(role="user", content="word " * 300)], max_tokens=16)
    with pytest.raises(ContextOverflowError) as info:
        engine.generate(request)
    error = info.value
    assert error.context_window == 128 and error.prompt_tokens > 300 and error.reserved_tokens == 16
    assert str(error.prompt_tokens) in str(error) and "128" in str(error)


def test_agent_attaches_the_partial_run_to_context_overflow(smollm2_tokenizer, make_tiny_llama):
    from agentkit import Agent, SamplingSettings
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, context=256), smollm2_tokenizer)
    with pytest.raises(ContextOverflowError) as info:
        Agent(engine, sampling=SamplingSettings(max_step_tokens=64)).run("tell me " * 200)
    assert info.value.partial is not None and info.value.partial.steps == []


def test_constrained_generation_matches_the_schema_and_reports_usage(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer), smollm2_tokenizer)
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99}}, "required": ["n"], "additionalProperties": False}
    request = GenerationRequest(
        messages=[Message(role="user", content="n?")], constraint=JsonSchemaConstraint(json_schema=schema), max_tokens=32, temperature=1.0, seed=3
    )
    generation = engine.generate(request)
    value = json.loads(generation.text)
    assert set(value) == {"n"} and 0 <= value["n"] <= 99
    assert generation.finish_reason == "stop"
    assert 0 < generation.completion_tokens <= 32
    assert generation.prompt_tokens == engine.count_tokens(request.messages)


def test_sampling_is_reproducible_with_a_seed(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer), smollm2_tokenizer)
    request = GenerationRequest(messages=[Message(role="user", content="Hi")], max_tokens=12, temperature=1.0, seed=42)
    assert engine.generate(request).text == engine.generate(request).text
    other = request.model_copy(update={"seed": 43})
    assert engine.generate(other).text != engine.generate(request).text


def test_max_tokens_cut_is_reported_as_length(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer), smollm2_tokenizer)
    schema = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 400}}, "required": ["text"]}
    request = GenerationRequest(
        messages=[Message(role="user", content="Hi")], constraint=JsonSchemaConstraint(json_schema=schema), max_tokens=5, temperature=1.0, seed=1
    )
    generation = engine.generate(request)
    assert generation.finish_reason == "length" and generation.completion_tokens == 5


@pytest.mark.slow
def test_gguf_file_and_cached_copy_give_identical_logits(embedded_folder):
    """from_pretrained(.gguf) dequantises on load; the cached safetensors copy must be the same model."""
    import torch

    from agentkit.engine import LocalEngine
    from agentkit.engine.loading import embedded_gguf_path

    from_gguf = LocalEngine.from_pretrained(embedded_gguf_path(), backend="torch")
    cached = LocalEngine.from_pretrained(embedded_folder)
    ids = torch.tensor([cached.tokenizer("The capital of France is")["input_ids"]])
    with torch.inference_mode():
        assert torch.equal(from_gguf.model(ids).logits, cached.model(ids).logits)
    assert from_gguf.context_window == cached.context_window == 8192


def test_a_cancelled_request_stops_early_and_the_engine_keeps_serving(smollm2_tokenizer, make_tiny_llama):
    import threading
    import time

    from agentkit import GenerationRequest, Message
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, seed=4), smollm2_tokenizer)
    engine.eos_ids = set()  # a random model might end early; this one must be stopped by the cancel
    request = GenerationRequest(messages=[Message(role="user", content="Talk.")], max_tokens=3000, temperature=1.0, seed=1)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.perf_counter()
    stopped = engine.generate(request, cancel=cancel)
    assert stopped.details["cancelled"] and stopped.finish_reason == "length"
    assert 0 < stopped.completion_tokens < 3000 and time.perf_counter() - started < 10
    after = engine.generate(request.model_copy(update={"max_tokens": 5}))
    assert after.completion_tokens == 5 and not after.details["cancelled"]
