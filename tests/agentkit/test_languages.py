"""Many languages: text in any script survives the whole path unchanged.

Chinese, Japanese, Arabic (RTL), Russian, Hindi (Devanagari), emoji (ZWJ sequences, flags, skin tones)
and a mixed script with JSON escapes go through the prompt (ours and a native tool template), the
grammar (the real llguidance matcher fed the real tokenizer's split, and one byte per token, so every
multibyte character is cut across tokens), the tools (arguments in, outputs back, truncation), the
JSONL trace and its replay, and a random-weight model sampling under the grammar in every script.
"""

from __future__ import annotations

import json
import re
from collections import namedtuple
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from agentkit import Agent, MaxStepsExceeded, SamplingSettings, StepLimits, tool
from agentkit.formats import FORMATS, make_tool_format
from agentkit.prompting import Example, ExampleCall
from agentkit.registry import ToolRegistry
from agentkit.steps import ParsedStep
from agentkit.testing import ReplayBackend, ScriptedBackend
from agentkit.trace import read_trace
from agentkit.types import ToolCall

# task; the tool's description; its arguments' description; a string argument; an enum's two values; the tool's output
Script = namedtuple("Script", "task description argument_doc value places output")
SCRIPTS = {
    "chinese": Script("帮我查一下北京明天的天气，谢谢！", "查询城市的天气预报。", "城市名称，例如「北京」或“上海”。",
                      "北京市朝阳区", ("北京", "上海"), "北京：晴，气温 25°C，东南风三级。"),
    "japanese": Script("東京の明日の天気を教えてください。", "都市の天気予報を調べます。", "都市名（例：東京、大阪）。",
                       "東京都渋谷区ひかりヶ丘", ("東京", "大阪"), "東京：晴れのち曇り、最高気温２５度。"),
    "arabic": Script("ما هو الطقس في القاهرة غدًا؟", "يبحث عن توقعات الطقس لمدينة.", "اسم المدينة، مثل «القاهرة».",
                     "القاهرة الجديدة", ("القاهرة", "دبي"), "القاهرة: مشمس، ٢٥ درجة مئوية."),
    "russian": Script("Какая погода будет завтра в Москве?", "Показывает прогноз погоды для города.",
                      "название города, например «Москва».", "Санкт-Петербург", ("Москва", "Казань"),
                      "Москва: ясно, +25 °C, ветер 3 м/с."),
    "hindi": Script("कल दिल्ली में मौसम कैसा रहेगा?", "किसी शहर का मौसम पूर्वानुमान बताता है।", "शहर का नाम, जैसे दिल्ली।",
                    "नई दिल्ली", ("दिल्ली", "मुंबई"), "दिल्ली: धूप, २५° सेल्सियस।"),
    "emoji": Script("Weather at 🗼 tomorrow? 👩‍👩‍👧‍👦🇯🇵", "🌦️ Forecast for a city 🏙️", "the city, e.g. 🗼 or 🇫🇷",
                    "🏳️‍🌈👩🏽‍💻🇯🇵🎉", ("🗼", "🇫🇷"), "☀️ 25°C 👍🏽 🇯🇵 👨‍👩‍👧"),
    "mixed": Script('Compare 東京, القاهرة and Москва — "quick" \\ please\nthanks 🙏', 'Wetter/天気/погода «ville» "x" \\ y',
                    "city: 東京 / القاهرة / दिल्ली 🇯🇵", 'Zürich "東京" \\ القاهرة\nМосква\tदिल्ली 🇯🇵',
                    ("東京", "Москва"), 'Résumé: 東京 ☀️, القاهرة 40°\n"Москва" \\ ❄️ −5'),
}
by_script = pytest.mark.parametrize("s", list(SCRIPTS.values()), ids=list(SCRIPTS))
by_format = pytest.mark.parametrize("fmt_name", sorted(FORMATS))


def make_tool(s: Script, received: list[str] | None = None, output: object = None):
    """A @tool whose description, argument docs and enum are in `s`'s script, built from a real docstring."""

    def lookup(text, place):
        if received is not None:
            received.append(text)
        return s.output if output is None else output

    lookup.__annotations__ = {"text": str, "place": Literal[s.places], "return": object}
    lookup.__doc__ = f"{s.description}\n\nArgs:\n    text: {s.argument_doc}\n    place: {s.argument_doc}\n"
    return tool(examples=[{"text": s.value, "place": s.places[0]}])(lookup)


def as_json_text(text: str) -> str:
    """How `text` looks inside a JSON string written as text (escapes only for quotes, backslash, controls)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


@by_format
@by_script
def test_prompt_carries_tool_docs_examples_and_task_verbatim(s, fmt_name, smollm2_tokenizer):
    from agentkit.engine.chat import render_prompt

    lookup = make_tool(s)
    example = Example(task=s.task, calls=[ExampleCall(name="lookup", arguments={"text": s.value, "place": s.places[1]},
                                                      result=s.output)], answer=s.output)
    agent = Agent(ScriptedBackend([]), tools=[lookup], tool_format=fmt_name, examples=[example])
    messages = agent.first_messages(s.task)
    system = messages[0].content
    for text in (s.description, s.argument_doc, *s.places):
        assert text in system
    assert "\\u" not in system  # nothing was written as an ASCII escape
    assert as_json_text(s.value) in system  # the tool's example call, in the format's own syntax...
    assert as_json_text(s.value) in messages[2].content  # ...and the few-shot call
    prompt = render_prompt(smollm2_tokenizer, messages)
    for text in (s.description, s.argument_doc, s.task, s.output):
        assert text in prompt
    # What the model is fed is exactly that text: tokenising and decoding the prompt changes nothing.
    assert smollm2_tokenizer.decode(smollm2_tokenizer.encode(prompt, add_special_tokens=False)) == prompt


class _NativeTemplate:
    """The real tokenizer with a Hermes/Qwen-style chat template that renders `tools` with `tojson`."""

    chat_template = (
        "{% if tools %}<|im_start|>system\n<tools>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools><|im_end|>\n"
        "{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


class _HermesBackend(ScriptedBackend):
    tool_call_convention = "hermes"  # like a Qwen model: the template renders the tools


@by_script
def test_native_tool_template_gets_tool_docs_verbatim(s, smollm2_tokenizer):
    from agentkit.engine.chat import render_prompt

    backend = _HermesBackend([s.output])
    assert Agent(backend, tools=[make_tool(s)], examples=[]).run(s.task).output == s.output
    request = backend.requests[0]
    assert request.tools and request.tools[0]["function"]["description"] == s.description
    prompt = render_prompt(_NativeTemplate(smollm2_tokenizer), request.messages, tools=request.tools)
    for text in (s.task, as_json_text(s.description), as_json_text(s.argument_doc), *s.places):
        assert text in prompt


@pytest.fixture(scope="module")
def compiler(smollm2_tokenizer):
    from agentkit.engine.grammar import GrammarCompiler

    return GrammarCompiler(smollm2_tokenizer)


@pytest.fixture(scope="module")
def byte_tokens(compiler):
    """The token of each single byte: byte-level BPE can write any text one byte per token."""
    table: dict[bytes, int] = {}
    for token in range(compiler.tokenizer.vocab_size):
        piece = compiler.tokenizer.decode_bytes([token])
        if len(piece) == 1:
            table.setdefault(piece, token)
    # Every continuation byte and every lead byte of the BMP and the emoji plane (U+10000-U+3FFFF).
    assert all(bytes([b]) in table for b in [*range(0x80, 0xC0), *range(0xC2, 0xF1)])
    return table


def accepts(compiler, fmt, tokens: list[int]) -> bool:
    matcher = compiler.matcher(fmt.constraint())
    return all(matcher.consume_token(t) for t in tokens) and matcher.is_accepting()


@by_format
@by_script
def test_grammar_takes_script_arguments_and_answers_split_mid_character(s, fmt_name, smollm2_tokenizer, compiler, byte_tokens):
    fmt = make_tool_format(fmt_name, ToolRegistry([make_tool(s)]))
    escaped = f'{s.value} "{s.places[0]}" \\ {s.places[1]}\\n\n\t'  # quotes, backslashes, a newline, a tab
    for value in (s.value, escaped):
        arguments = {"text": value, "place": s.places[1]}
        text = fmt.render(ParsedStep(thought=None, calls=[ToolCall(id="x", name="lookup", arguments=arguments)]))
        tokens = smollm2_tokenizer.encode(text, add_special_tokens=False)
        # Some token holds only part of a character: alone it decodes to the replacement character.
        assert any("\ufffd" in smollm2_tokenizer.decode([t]) for t in tokens)
        one_byte_each = [byte_tokens[bytes([b])] for b in text.encode()]
        for split in (tokens, one_byte_each):
            assert accepts(compiler, fmt, split), (fmt_name, text)
            decoded = smollm2_tokenizer.decode(split)  # what the engine hands the parser
            assert decoded == text
            assert fmt.parse(decoded, step_index=1).calls[0].arguments == arguments
    answer = fmt.render(ParsedStep(thought=None, calls=[], final_answer=s.output, is_final=True))
    assert accepts(compiler, fmt, [byte_tokens[bytes([b])] for b in answer.encode()])
    assert fmt.parse(answer, step_index=1).final_answer == s.output


@by_format
def test_string_bounds_count_characters_not_bytes(fmt_name, smollm2_tokenizer, compiler):
    """max_length=4 lets four characters of any script through (up to 4 bytes each), never five."""

    @tool
    def tag(label: Annotated[str, Field(max_length=4)]) -> str:
        """Tag."""
        return label

    fmt = make_tool_format(fmt_name, ToolRegistry([tag]))
    for s in SCRIPTS.values():
        for label, ok in ((s.value[:4], True), (s.value[:5], False)):
            text = fmt.render(ParsedStep(thought=None, calls=[ToolCall(id="x", name="tag", arguments={"label": label})]))
            assert accepts(compiler, fmt, smollm2_tokenizer.encode(text, add_special_tokens=False)) is ok, label


@by_format
@by_script
def test_tool_gets_the_argument_and_the_model_gets_the_output_unchanged(s, fmt_name, smollm2_tokenizer):
    from agentkit.engine.chat import render_prompt

    received: list[str] = []
    lookup = make_tool(s, received)
    fmt = make_tool_format(fmt_name, ToolRegistry([lookup]))
    call = ToolCall(id="x", name="lookup", arguments={"text": s.value, "place": s.places[0]})
    backend = ScriptedBackend([
        fmt.render(ParsedStep(thought=None, calls=[call])),
        fmt.render(ParsedStep(thought=None, calls=[], final_answer=s.output, is_final=True)),
    ])
    # The call copies the tool's example value, which grounded_calls would take for a guess where the task does
    # not hold it (emoji); this test is about the text reaching the tool and the model unchanged.
    result = Agent(backend, tools=[lookup], tool_format=fmt_name, examples=[], step_checks=()).run(s.task)
    assert received == [s.value]
    observation = result.steps[0].observations[0]
    assert (observation.content, observation.is_error, observation.truncated) == (s.output, False, False)
    assert result.output == s.output
    fed_back = backend.requests[1].messages[-1]
    assert fed_back.role == "tool" and fed_back.content.endswith(s.output)
    assert s.output in render_prompt(smollm2_tokenizer, backend.requests[1].messages)


class Forecast(BaseModel):
    city: str
    summary: str


@by_script
def test_structured_tool_output_is_json_with_the_text_not_escapes(s):
    forecast = Forecast(city=s.places[1], summary=s.output)
    for output in ({s.places[0]: [s.output], "forecast": forecast}, forecast):
        registry = ToolRegistry([make_tool(s, output=output)])
        content = registry.run(ToolCall(id="x", name="lookup", arguments={"text": s.value, "place": s.places[0]})).content
        expected = forecast.model_dump() if output is forecast else {s.places[0]: [s.output], "forecast": forecast.model_dump()}
        assert json.loads(content) == expected
        assert as_json_text(s.output) in content and "\\u" not in content


def _truncated(text: str, **limit: int) -> str:
    @tool(**limit)
    def read() -> str:
        """Read."""
        return text

    content = ToolRegistry([read]).run(ToolCall(id="x", name="read", arguments={})).content
    kept, marker, note = content.partition("\n[output truncated: ")
    assert marker and f"of {len(text)} characters ({len(text.encode())} bytes)" in note
    return kept


@pytest.mark.parametrize("text", ["🎉😀🦄🚆", "东京大阪", "القاهرة", "Москва"])
def test_truncation_never_cuts_a_character(text):
    for limit in range(1, len(text)):
        assert _truncated(text, max_output_chars=limit) == text[:limit]
    for limit in range(1, len(text.encode())):
        kept = _truncated(text, max_output_bytes=limit)
        # The longest prefix of whole code points within the limit: no byte of a character is left dangling.
        assert text.startswith(kept) and len(kept.encode()) <= limit < len(text[: len(kept) + 1].encode())


def test_truncation_keeps_emoji_sequences_flags_and_syllables_whole():
    clusters = ["👩‍👩‍👧‍👦", "🇯🇵", "👍🏽", "दि"]
    text = "".join(clusters)
    whole = {"".join(clusters[:n]) for n in range(len(clusters))}
    cuts = [_truncated(text, max_output_chars=n) for n in range(1, len(text))]
    cuts += [_truncated(text, max_output_bytes=n) for n in range(1, len(text.encode()))]
    assert [c for c in cuts if c not in whole] == []


@by_script
def test_trace_records_and_replays_every_script_unchanged(s, tmp_path):
    path = tmp_path / "t.jsonl"
    received: list[str] = []
    call = {"name": "lookup", "arguments": {"text": s.value, "place": s.places[1]}}
    script = [{"calls": [call]}, {"final_answer": s.output}]
    Agent(ScriptedBackend(script), tools=[make_tool(s, received)], trace=path, step_checks=()).run(s.task)  # as above
    raw = path.read_bytes().decode("utf-8")  # strict: fails on any invalid UTF-8
    for text in (s.task, s.value, s.output):
        assert as_json_text(text) in raw  # stored as readable text, not \u escapes
    events = read_trace(path)
    assert raw.count("\n") == len(events) == 6  # one line per event
    by_kind = {e["event"]: e for e in events}
    assert by_kind["run_start"]["task"] == s.task
    assert by_kind["tool_call"]["call"]["arguments"] == call["arguments"]
    assert by_kind["observation"]["content"] == s.output and by_kind["run_end"]["output"] == s.output
    assert [json.loads(e["output"]) for e in events if e["event"] == "model_call"] == script

    replay = ReplayBackend(path)
    assert replay.task == s.task
    replayed: list[str] = []
    result = Agent(replay, tools=[make_tool(s, replayed)], step_checks=()).run(replay.task)
    assert replayed == received == [s.value]
    assert [o.content for o in result.steps[0].observations] == [s.output] and result.output == s.output


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_trace_survives_unicode_line_separators(separator, tmp_path):
    path = tmp_path / "t.jsonl"
    text = f"第一行{separator}вторая строка"
    Agent(ScriptedBackend([{"final_answer": text}]), trace=path).run(text)
    assert Agent(ReplayBackend(path)).run(text).output == text


@pytest.fixture(scope="module")
def random_engine(smollm2_tokenizer, make_tiny_llama):
    import torch

    from agentkit.engine import LocalEngine

    # A 64-wide model gains nothing from intra-op threads, and on a busy 2-core machine they spin:
    # one thread makes this part about 10x faster there. Restored for the tests that follow.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer, seed=4321), smollm2_tokenizer)
    torch.set_num_threads(threads)


LIMITS = StepLimits(max_calls=2, string_chars=8, answer_chars=16, array_items=2)


@pytest.mark.parametrize("fmt_name", ["agentkit", "hermes", "pythonic"])
def test_random_weights_write_only_valid_steps_in_every_script(fmt_name, random_engine):
    from agentkit import GenerationRequest, LarkConstraint

    for s in SCRIPTS.values():
        received: list[str] = []
        lookup = make_tool(s, received)
        sampled: list[ToolCall] = []
        for seed in range(6):
            received.clear()
            agent = Agent(random_engine, tools=[lookup], tool_format=fmt_name, limits=LIMITS, max_steps=2,
                          sampling=SamplingSettings(temperature=1.0, seed=seed, max_step_tokens=200))
            try:
                steps = agent.run(s.task).steps
            except MaxStepsExceeded as exc:  # a random model may never answer; its steps must still be valid
                steps = exc.partial.steps
            for step in steps:
                assert step.rejected_outputs == [], step.rejected_outputs
                assert "\ufffd" not in step.raw_output  # no character was left half-written
                if fmt_name == "agentkit":
                    json.loads(step.raw_output)
                assert not step.is_final or isinstance(step.output, str)
                assert [o.error_type for o in step.observations] == [None] * len(step.calls)
                sampled += step.calls
            # The tool got exactly the sampled strings (calls of one step run concurrently: any order).
            assert sorted(received) == sorted(c.arguments["text"] for step in steps for c in step.calls)
        if fmt_name != "agentkit":
            # A near-uniform model rarely opens a native call, so the grammar's call branch is decoded alone too.
            grammar = make_tool_format(fmt_name, ToolRegistry([lookup]), limits=LIMITS).grammar
            calls_only = re.sub(r"^start: .*$", "start: calls", grammar, flags=re.MULTILINE)
            assert calls_only != grammar
            for seed in range(3):
                request = GenerationRequest(messages=agent.first_messages(s.task), constraint=LarkConstraint(grammar=calls_only), max_tokens=200,
                                            temperature=1.0, seed=seed)
                generation = random_engine.generate(request)
                assert generation.finish_reason == "stop" and "\ufffd" not in generation.text
                sampled += agent.tool_format.parse(generation.text, step_index=1).calls
        assert s.description in agent.first_messages(s.task)[0].content  # the model was told about the tool in s's script
        # Every script's enum and string arguments were really sampled, and each one is valid.
        assert sampled and all(c.arguments["place"] in s.places for c in sampled)
        for call in sampled:
            lookup.validate_arguments(call.arguments)
