"""Added tokens in the grammar's token table: ordinary ones are text, special ones stay special.

Qwen2.5's tokenizer adds `<tool_call>` and `</tool_call>` as *non-special* tokens: the model writes
each as one token, and the tokenizer makes them from text. When the grammar treated them as special,
the model's own one-token `<tool_call>` was masked, and jump-forward (which tokenises forced text with
the real tokenizer) produced `</tool_call>` as the added token, which the matcher then refused: every
Hermes call of a Qwen model crashed with `GrammarError`. A small tokenizer built here (SmolLM2's plus
the same markers) keeps CI on it without the model; the real Qwen tokenizer is checked when the
reference model is in the cache (`make models`).
"""

from __future__ import annotations

import threading

import pytest

from agentkit import Agent, GenerationRequest, MaxStepsExceeded, Message, SamplingSettings, StepLimits, tool
from agentkit.checks import DEFAULT_STEP_CHECKS, JudgedCalls
from agentkit.formats import make_tool_format
from agentkit.registry import ToolRegistry
from agentkit.tools import calculator

MARKERS = ["<tool_call>", "</tool_call>"]
PYTHON_TAG = "<|python_tag|>"


@tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name.
    """
    return f"sunny in {city}"


TOOLS = [calculator, get_weather]
# Not judged: a random model's yes/no judgement drops its calls at random, and these tests count calls.
LIMITS = StepLimits(max_calls=2, string_chars=20, answer_chars=40)
CHECKS = [c for c in DEFAULT_STEP_CHECKS if not isinstance(c, JudgedCalls)]


@pytest.fixture(scope="module")
def marker_tokenizer(smollm2_tokenizer, tmp_path_factory):
    """SmolLM2's tokenizer with Qwen's markers added as ordinary tokens and a special `<|python_tag|>`."""
    from transformers import AddedToken, AutoTokenizer

    folder = tmp_path_factory.mktemp("marker-tokenizer")
    smollm2_tokenizer.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens([AddedToken(m, special=False, normalized=False) for m in MARKERS])
    tokenizer.add_tokens([AddedToken(PYTHON_TAG, special=True, normalized=False)], special_tokens=True)
    return tokenizer


def _ids(tokenizer, text):
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class _Prefers:
    """A forward hook on the LM head that raises chosen tokens' logits: a model with Qwen's one-token habit."""

    def __init__(self, token_ids, boost=30.0):
        self.token_ids, self.boost = token_ids, boost

    def __call__(self, module, inputs, output):
        output[..., self.token_ids] += self.boost
        return output


@pytest.fixture(scope="module")
def marker_model(marker_tokenizer, make_tiny_llama):
    """A tiny random Llama over the marker tokenizer that strongly prefers `<tool_call>` and `</tool_call>`."""
    model = make_tiny_llama(marker_tokenizer, seed=22)
    model.lm_head.register_forward_hook(_Prefers([marker_tokenizer.convert_tokens_to_ids(m) for m in MARKERS]))
    return model


def test_the_tokenizer_makes_the_markers_from_text_and_the_table_agrees(marker_tokenizer):
    from agentkit.engine.token_table import grammar_tokenizer

    open_id, close_id = (marker_tokenizer.convert_tokens_to_ids(m) for m in MARKERS)
    tag_id = marker_tokenizer.convert_tokens_to_ids(PYTHON_TAG)
    assert _ids(marker_tokenizer, "<tool_call>\n{}\n</tool_call>")[0] == open_id  # the premise
    table = grammar_tokenizer(marker_tokenizer)
    assert not table.is_special_token(open_id) and not table.is_special_token(close_id)
    assert table.is_special_token(tag_id)  # special added tokens stay special
    assert table.is_special_token(marker_tokenizer.eos_token_id)
    assert table.decode_bytes([open_id]) == b"<tool_call>"


def test_a_hermes_call_written_with_the_marker_tokens_is_accepted_and_jump_forward_never_raises(marker_tokenizer):
    import torch

    from agentkit.engine.grammar import GrammarCompiler, TokenMask

    compiler = GrammarCompiler(marker_tokenizer)
    fmt = make_tool_format("hermes", ToolRegistry(TOOLS), limits=LIMITS)
    open_id, close_id = (marker_tokenizer.convert_tokens_to_ids(m) for m in MARKERS)
    matcher = compiler.matcher(fmt.constraint())
    mask = TokenMask(compiler.vocab_size)
    mask.fill(matcher)
    allowed = mask.allowed(torch.device("cpu"))
    assert allowed[open_id], "the model's own one-token <tool_call> must be allowed"
    assert not allowed[marker_tokenizer.convert_tokens_to_ids(PYTHON_TAG)]
    # The model's one token, then everything jump-forward forces, then the arguments, then jump-forward again.
    assert matcher.consume_token(open_id), matcher.get_error()
    forced = matcher.compute_ff_tokens()
    assert matcher.consume_tokens(forced), matcher.get_error()
    call = '\n{"name": "calculator", "arguments": {"expression": "2 + 2"}}'
    written = marker_tokenizer.decode(forced)
    assert call.startswith(written) and written
    rest = _ids(marker_tokenizer, call[len(written):])
    assert matcher.consume_tokens(rest), matcher.get_error()
    # Jump-forward may force the closing marker itself (as the tokenizer's one token) or leave it to the model.
    forced = matcher.compute_ff_tokens()
    assert matcher.consume_tokens(forced), matcher.get_error()
    if close_id not in forced:
        mask.fill(matcher)
        assert mask.allowed(torch.device("cpu"))[close_id]
        assert matcher.consume_token(close_id), matcher.get_error()
    assert matcher.is_accepting()
    # The same call spelled byte by byte (a model without the habit) is still a call, and its forced
    # closing marker never trips the matcher.
    spelled = compiler.matcher(fmt.constraint())
    remaining = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "1"}}\n</tool_call>'
    while remaining:
        forced = spelled.compute_ff_tokens()
        assert spelled.consume_tokens(forced), spelled.get_error()
        written = marker_tokenizer.decode(forced)
        assert remaining.startswith(written)
        remaining = remaining[len(written):]
        if remaining:  # the model writes one character a token
            assert spelled.consume_tokens(_ids(marker_tokenizer, remaining[0])), spelled.get_error()
            remaining = remaining[1:]
    assert spelled.is_accepting()


def _engine(model, tokenizer, **options):
    from agentkit.engine import LocalEngine

    return LocalEngine.from_model(model, tokenizer, **options)


def _generated_ids(model):
    """Record every token id fed to the model (prompt and sampled), to see what it wrote."""
    fed: list[int] = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, args, out: fed.extend(args[0].reshape(-1).tolist()))
    return fed, hook


@pytest.mark.parametrize(
    "options",
    [{}, {"static_cache": True, "compile": False}, {"jump_forward": False}],
    ids=["dynamic", "static-slot", "no-jump-forward"],
)
def test_random_weights_with_the_one_token_habit_write_valid_hermes_calls(marker_tokenizer, marker_model, options):
    engine = _engine(marker_model, marker_tokenizer, **options)
    open_id = marker_tokenizer.convert_tokens_to_ids(MARKERS[0])
    fed, hook = _generated_ids(marker_model)
    calls = 0
    try:
        for seed in range(6):
            agent = Agent(engine, tools=TOOLS, limits=LIMITS, max_steps=2, sampling=SamplingSettings(temperature=1.0, seed=seed,
                          max_step_tokens=200), tool_format="hermes", step_checks=CHECKS)
            try:
                steps = agent.run("What is 2 + 2, and the weather in Oslo?").steps
            except MaxStepsExceeded as exc:
                steps = exc.partial.steps
            for step in steps:
                assert step.rejected_outputs == [], step.rejected_outputs
                for observation in step.observations:
                    assert observation.error_type not in {"unknown_tool", "invalid_arguments"}, observation.content
                calls += len(step.calls)
    finally:
        hook.remove()
    assert calls >= 6
    assert open_id in fed  # the model's single-token <tool_call> went through (first steps' prompts hold none)


def test_concurrent_requests_and_scoring_see_the_same_table(marker_tokenizer, marker_model):
    engine = _engine(marker_model, marker_tokenizer, max_batch=4)
    fmt = make_tool_format("hermes", ToolRegistry(TOOLS), limits=LIMITS)
    results, errors = [], []

    def run(seed):
        request = GenerationRequest(messages=[Message(role="user", content=f"task {seed}")], constraint=fmt.constraint(),
                                    max_tokens=200, temperature=1.0, seed=seed)
        try:
            results.append(engine.generate(request).text)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for text in results:
        assert fmt.parse(text, step_index=1).calls, text
    request = GenerationRequest(messages=[Message(role="user", content="x")], max_tokens=10)
    reply = fmt.render_calls(fmt.parse(results[0], step_index=1).calls)
    (score,) = engine.score(request, [reply])
    assert score < 0


@pytest.mark.slow
def test_the_real_qwen_tokenizer_has_its_markers_as_text_in_the_table():
    """Qwen2.5's own tokenizer (from the reference GGUF, when `make models` has fetched it)."""
    from agentkit.engine.reference_models import reference_model_path
    from agentkit.errors import ModelLoadError

    try:
        path = reference_model_path("qwen2.5-coder-0.5b")
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    from transformers import AutoTokenizer

    from agentkit.engine.grammar import GrammarCompiler

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    compiler = GrammarCompiler(tokenizer)
    assert not compiler.tokenizer.is_special_token(151657) and not compiler.tokenizer.is_special_token(151658)
    assert compiler.tokenizer.is_special_token(151645)  # <|im_end|>
    fmt = make_tool_format("hermes", ToolRegistry(TOOLS), limits=LIMITS)
    matcher = compiler.matcher(fmt.constraint())
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    ids = _ids(tokenizer, text)
    assert ids[0] == 151657 and ids[-1] == 151658
    assert matcher.consume_tokens(ids), matcher.get_error()
    assert matcher.is_accepting()
