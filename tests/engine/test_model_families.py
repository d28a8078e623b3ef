"""Model families: loading, exact greedy decoding, the grammar guarantee and every engine path.

Each family is a tiny random-weight model (2 layers, hidden 64, GQA) over the real SmolLM2
tokenizer, built here from transformers' own config class with the family's features switched on:
Llama 3.x (llama3 RoPE scaling), Llama 4 text (MoE with top-1 routing on alternate layers, chunked
attention with 16-token chunks, a no-RoPE layer), Qwen2 (qkv bias, sliding window on one layer),
Qwen3 (qk-norm), Qwen3-MoE (top-2 of 4 experts) and Mistral (32-token sliding window). Prompts are
longer than every window and chunk, and `test_family_feature_is_live` checks that the features
really change the logits. Every engine path (prefix reuse, static slot, chunked prefill, batching)
must give the tokens of a cold dynamic engine, which must give those of `model.generate`; cutting a
cache back to a prefix must keep the logits exact (where a mis-cut sliding layer shows).
"""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest

from agentkit import Agent, GenerationRequest, MaxStepsExceeded, Message, SamplingSettings, StepLimits, tool

COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
LLAMA3_ROPE = {
    "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}

# name: (model class, config class, family options, options that switch its distinctive feature off or None)
FAMILIES = {
    "llama3": ("LlamaForCausalLM", "LlamaConfig", dict(tie_word_embeddings=True, rope_scaling=LLAMA3_ROPE), dict(rope_scaling=None)),
    "llama4": (
        "Llama4ForCausalLM", "Llama4TextConfig",
        dict(head_dim=16, intermediate_size_mlp=128, num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
             attention_chunk_size=16, no_rope_layers=[1, 0]),  # layer 0: dense, chunked, RoPE; layer 1: MoE, global, no RoPE
        dict(attention_chunk_size=4096),
    ),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Config", dict(tie_word_embeddings=True, use_sliding_window=True, sliding_window=32, max_window_layers=1),
              dict(use_sliding_window=False)),
    "qwen3": ("Qwen3ForCausalLM", "Qwen3Config", dict(head_dim=16, tie_word_embeddings=True), None),
    "qwen3_moe": ("Qwen3MoeForCausalLM", "Qwen3MoeConfig",
                  dict(head_dim=16, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, norm_topk_prob=True),
                  dict(num_experts_per_tok=1)),
    "mistral": ("MistralForCausalLM", "MistralConfig", dict(head_dim=16, sliding_window=32), dict(sliding_window=None)),
}
WINDOW = 32  # the longest window or chunk above: prompts must be longer
LONG_TEXT = "Numbers: " + " ".join(str(i) for i in range(30))  # 82 tokens
SYSTEM = "Count with me. " + " ".join(str(i) for i in range(20))


def build(tokenizer, family: str, **overrides):
    """The family's tiny model (seeded by its name), with config `overrides` (e.g. its ablation)."""
    import torch
    import transformers

    model_class, config_class, options, _ = FAMILIES[family]
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        **COMMON, **{**options, **overrides},
    )
    torch.manual_seed(sum(map(ord, family)))
    return getattr(transformers, model_class)(config).eval()


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, smollm2_tokenizer):
    return request.param, build(smollm2_tokenizer, request.param)


def _engine(model, tokenizer, **options):
    from agentkit.engine import LocalEngine

    return LocalEngine.from_model(model, tokenizer, **options)


def _hf_greedy(model, ids: list[int], n: int) -> list[int]:
    import torch

    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


def _greedy_text(engine, messages, n: int = 12) -> str:
    return engine.generate(GenerationRequest(messages=messages, max_tokens=n, temperature=0)).text


def _expected_text(model, tokenizer, messages, eos_ids, n: int = 12) -> str:
    """What `model.generate` writes after the engine's prompt, cut where the engine stops (an end token)."""
    from agentkit.engine.chat import render_prompt

    ids = tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]
    assert len(ids) > WINDOW
    tokens = _hf_greedy(model, ids, n)
    stop = next((i for i, t in enumerate(tokens) if t in eos_ids), len(tokens))
    return tokenizer.decode(tokens[:stop], skip_special_tokens=False)


def test_family_feature_is_live(family, smollm2_tokenizer):
    """The prompts are long enough for each family's window/chunk/RoPE scaling to change the logits."""
    import torch

    name, model = family
    ablation = FAMILIES[name][3]
    if ablation is None:  # Qwen3's qk-norm has no switch: check the layers have it
        assert all(hasattr(layer.self_attn, "q_norm") and hasattr(layer.self_attn, "k_norm") for layer in model.model.layers)
        return
    ablated = build(smollm2_tokenizer, name, **ablation)
    ablated.load_state_dict(model.state_dict())
    ids = torch.tensor([smollm2_tokenizer(LONG_TEXT)["input_ids"]])
    assert ids.shape[1] > 2 * WINDOW
    with torch.inference_mode():
        ours, plain = model(ids).logits[0, -1], ablated(ids).logits[0, -1]
    assert not torch.allclose(ours, plain, rtol=1e-3, atol=1e-3), f"{name}: switching {ablation} off changed nothing"


def test_loads_from_a_saved_folder_and_decodes_like_the_model(family, smollm2_tokenizer, tmp_path):
    from agentkit.engine import LocalEngine

    _name, model = family
    model.save_pretrained(tmp_path)
    smollm2_tokenizer.save_pretrained(tmp_path)
    loaded = LocalEngine.from_pretrained(tmp_path)
    assert type(loaded.model) is type(model)
    skip = {"_name_or_path", "architectures", "dtype", "transformers_version"}
    assert {k: v for k, v in loaded.model.config.to_dict().items() if k not in skip} == {
        k: v for k, v in model.config.to_dict().items() if k not in skip
    }
    messages = [Message(role="system", content=SYSTEM), Message(role="user", content="Next?")]
    assert _greedy_text(loaded, messages) == _greedy_text(_engine(model, smollm2_tokenizer, kv_cache_bytes=0), messages)


def test_greedy_decoding_equals_hf_generate(family, smollm2_tokenizer):
    from agentkit.engine.decode import decode

    _name, model = family
    ids = smollm2_tokenizer(LONG_TEXT)["input_ids"]
    assert len(ids) > 2 * WINDOW  # crosses every sliding window and attention chunk
    assert decode(model, ids, max_new_tokens=16, eos_ids=set()).tokens == _hf_greedy(model, ids, 16)
    engine = _engine(model, smollm2_tokenizer, kv_cache_bytes=0)
    messages = [Message(role="system", content=SYSTEM), Message(role="user", content=LONG_TEXT)]
    expected = _expected_text(model, smollm2_tokenizer, messages, engine.eos_ids, n=16)
    assert expected and _greedy_text(engine, messages, n=16) == expected


@tool
def convert(amount: float, unit: Literal["km", "mi"], note: str | None = None) -> float:
    """Convert a distance to the other unit.

    Args:
        amount: the distance.
        unit: the unit of `amount`.
        note: why.
    """
    return amount / 1.609344 if unit == "km" else amount * 1.609344


def test_random_weights_write_only_valid_steps(family, smollm2_tokenizer):
    name, model = family
    engine = _engine(model, smollm2_tokenizer)
    limits = StepLimits(thought_chars=30, max_calls=2, string_chars=20, answer_chars=30)
    steps_checked = 0
    for seed in range(4):
        agent = Agent(engine, tools=[convert], limits=limits, max_steps=2, sampling=SamplingSettings(temperature=1.0, seed=seed, max_step_tokens=300))
        try:
            steps = agent.run("How far is 10 km in miles?").steps
        except MaxStepsExceeded as exc:  # a random model may never answer; its steps must still be valid
            steps = exc.partial.steps
        for step in steps:
            assert step.rejected_outputs == [], f"{name}: invalid step {step.rejected_outputs}"
            if agent.tool_format.name == "agentkit":
                json.loads(step.raw_output)
            for observation in step.observations:
                assert observation.error_type not in {"unknown_tool", "invalid_arguments"}, observation.content
        steps_checked += len(steps)
    assert steps_checked >= 4


def test_cache_cuts_keep_the_logits_exact(family, smollm2_tokenizer):
    """Cutting a cache back to a shared prefix past the window (prefix-cache copy, static slot truncate,
    load, snapshot) and continuing gives the logits of one fresh pass: near-uniform random logits
    rarely flip a greedy token, so this is where a wrongly cut sliding or chunked layer shows."""
    import torch
    from transformers import DynamicCache

    from agentkit.engine.forward import prefill
    from agentkit.engine.kv_cache import copy_positions
    from agentkit.engine.static_cache import StaticSlot

    name, model = family
    a = smollm2_tokenizer(LONG_TEXT)["input_ids"]
    b = a[:50] + smollm2_tokenizer(" and then some other words" * 4, add_special_tokens=False)["input_ids"]
    close = dict(rtol=1e-4, atol=1e-4)
    with torch.inference_mode():
        reference = prefill(model, b, DynamicCache())
        whole = DynamicCache()
        prefill(model, a, whole)
        torch.testing.assert_close(prefill(model, b[50:], copy_positions(whole, 0, 50)), reference, **close, msg=f"{name}: copy")
        slot = StaticSlot(model, 256, compile=False)
        slot.forward(a)
        slot.truncate(50)
        torch.testing.assert_close(slot.forward(b[50:]), reference, **close, msg=f"{name}: slot truncate")
        slot.forward(a[len(b):])  # the slot moves on...
        slot.load(copy_positions(whole, 0, 50), a[:50])  # ...then takes a cached prefix back
        torch.testing.assert_close(slot.forward(b[50:]), reference, **close, msg=f"{name}: slot load")
        after = prefill(model, b + [42], DynamicCache())
        torch.testing.assert_close(prefill(model, [42], slot.snapshot()), after, **close, msg=f"{name}: slot snapshot")


def _conversation(engine) -> tuple[list[str], list[int]]:
    """Four greedy steps: a conversation, its next step (extends the cache), another conversation with the
    same system prompt (a cropped copy), then the first again (back from the prefix cache into the slot)."""
    first = [Message(role="system", content=SYSTEM), Message(role="user", content="Next?")]
    texts, reused = [], []

    def step(messages):
        generation = engine.generate(GenerationRequest(messages=messages, max_tokens=12, temperature=0))
        texts.append(generation.text)
        reused.append(generation.details["reused_tokens"])
        return generation.text

    first += [Message(role="assistant", content=step(first)), Message(role="user", content="And then " + "x " * 20)]
    first += [Message(role="assistant", content=step(first)), Message(role="user", content="More.")]
    step([first[0], Message(role="user", content="A different question?")])
    step(first)
    return texts, reused


def test_engine_paths_give_the_cold_engines_tokens(family, smollm2_tokenizer):
    name, model = family
    cold = _engine(model, smollm2_tokenizer, kv_cache_bytes=0)
    expected, reused = _conversation(cold)
    assert reused == [0, 0, 0, 0]
    messages = [Message(role="system", content=SYSTEM), Message(role="user", content="Next?")]
    assert expected[0] == _expected_text(model, smollm2_tokenizer, messages, cold.eos_ids)
    paths = {
        "prefix reuse": _engine(model, smollm2_tokenizer),
        "static slot": _engine(model, smollm2_tokenizer, static_cache=True, compile=False),
        "chunked prefill": _engine(model, smollm2_tokenizer, kv_cache_bytes=0, prefill_chunk=7),
    }
    for path, engine in paths.items():
        texts, reused = _conversation(engine)
        assert texts == expected, f"{name}: {path} decoded differently"
        if path != "chunked prefill":  # the steps after the first continue a cached prefix longer than a window
            assert min(reused[1:]) > WINDOW, (path, reused)


def test_two_concurrent_requests_decode_together_exactly(family, smollm2_tokenizer):
    name, model = family
    cold = _engine(model, smollm2_tokenizer, kv_cache_bytes=0)
    batched = _engine(model, smollm2_tokenizer, kv_cache_bytes=0, max_batch=2)
    requests = [  # different lengths (left padding), different budgets (one row leaves, the other goes on alone)
        GenerationRequest(messages=[Message(role="user", content="First " + "a b " * 20)], max_tokens=8, temperature=0),
        GenerationRequest(messages=[Message(role="user", content="Second, longer " + "c d e " * 20)], max_tokens=20, temperature=0),
    ]
    alone = [cold.generate(r).text for r in requests]
    for _ in range(5):  # on a busy machine one request may finish before the other arrives: run them again
        generations = _together(batched, requests)
        assert min(g.prompt_tokens for g in generations) > WINDOW
        assert [g.text for g in generations] == alone, f"{name}: batched rows decoded differently"
        if batched._scheduler.largest_batch == 2:
            break
    assert batched._scheduler.largest_batch == 2, "the requests never decoded together"


def _together(engine, requests):
    async def run():
        return await asyncio.gather(*(engine.agenerate(r) for r in requests))

    return asyncio.run(run())


@pytest.mark.parametrize(("floor_scale", "batches"), [(4, False), (4096, True)])
def test_llama4_temperature_tuning_in_a_batch(smollm2_tokenizer, floor_scale, batches):
    """Llama 4's no-RoPE layers scale queries by position bucket (every 8192 positions in the real model),
    and transformers takes the position from the batch cache's length: rows whose positions straddle a
    bucket boundary must not share a batch, rows inside one bucket still do. A small `floor_scale`
    shows the boundary on short prompts."""
    model = build(smollm2_tokenizer, "llama4", floor_scale=floor_scale, attn_scale=4.0)
    cold = _engine(model, smollm2_tokenizer, kv_cache_bytes=0)
    batched = _engine(model, smollm2_tokenizer, kv_cache_bytes=0, max_batch=2)
    requests = [
        GenerationRequest(messages=[Message(role="user", content="Hi")], max_tokens=16, temperature=0),
        GenerationRequest(messages=[Message(role="user", content="A much longer request " * 8)], max_tokens=16, temperature=0),
    ]
    alone = [cold.generate(r).text for r in requests]
    for _ in range(5):
        got = [g.text for g in _together(batched, requests)]
        assert got == alone  # exact either way
        if batched._scheduler.largest_batch == 2:
            break
    assert (batched._scheduler.largest_batch == 2) == batches
