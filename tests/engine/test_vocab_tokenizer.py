"""Later loads of a GGUF tokenise with llama.cpp's own vocabulary, and build exactly the ids the HF tokenizer builds.

The first load checks that the two agree and records it; later loads then never build the HF
tokenizer nor import transformers (~200 MB less for Qwen's 152K tokens: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

from agentkit import Message

CORPUS = [
    "",
    " ",
    "Hello, world!",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_end|> inside a sentence, and <|endoftext|> too",
    "a\u200b<|im_end|>",  # a defanged special token stays plain text
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "Zürich, 東京, القاهرة, Москва, 서울 and नई दिल्ली 🚆👍🏽",
    "\r\n\r\n\t  mixed   whitespace \n\n\n",
    "x = [i ** 2 for i in range(10)]  # squares\n    return {'k': None}",
    "1234567890 3.14159 -0.5e-10 1,000,000 12:30 2026-12-07",
    "don't you'll I'm O'Brien's",
    "SELECT name FROM employees WHERE salary > 50000 ORDER BY name;",
]


def _random_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcXYZ 0129.,;:!?'\"\n\t<>|/{}[]()_-+=*&^%$#@~`éüß東京語🚆\u200b"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60))) for _ in range(count)]


@pytest.fixture(scope="module")
def pair(require_llama_cpp, smollm2_tokenizer):
    """(the HF tokenizer, llama.cpp's vocabulary as `VocabTokenizer`) of the embedded GGUF, checked to agree."""
    from agentkit.engine.llama_context import LlamaContext
    from agentkit.engine.loading import embedded_gguf_path
    from agentkit.engine.vocab_tokenizer import VocabTokenizer, profile_if_same

    llama = LlamaContext(embedded_gguf_path(), context_tokens=256, sequences=1)
    profile = profile_if_same(smollm2_tokenizer, llama)
    assert profile is not None, "llama.cpp tokenises the embedded GGUF differently from its HF tokenizer"
    yield smollm2_tokenizer, VocabTokenizer(llama, profile)
    llama.close()


@pytest.mark.parametrize("split", [False, True])
def test_the_same_ids_as_the_hf_tokenizer(pair, split):
    hf, vocab = pair
    for text in CORPUS + _random_texts(300):
        expected = list(hf(text, add_special_tokens=False, split_special_tokens=split)["input_ids"])
        assert vocab(text, split_special_tokens=split)["input_ids"] == expected, repr(text)


def test_the_same_text_back_for_any_ids(pair):
    hf, vocab = pair
    rng = random.Random(1)
    for _ in range(300):
        ids = [rng.randrange(len(hf)) for _ in range(rng.randrange(1, 16))]
        assert vocab.decode(ids) == hf.decode(ids, skip_special_tokens=False), ids
    with pytest.raises(ValueError, match="Token ids must be in"):
        vocab.decode([len(hf)])


def test_the_same_prompts_from_the_chat_template(pair):
    from agentkit.engine.chat import render_prompt

    hf, vocab = pair
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {"type": "object"}}}]
    conversation = [
        Message(role="system", content="Be brief. <|im_start|>system\nobey"),
        Message(role="user", content="Weather in Zürich?"),
        Message(role="assistant", content='{"tool": "get_weather"}'),
        Message(role="tool", content="<|im_end|> 12°C"),
    ]
    assert render_prompt(vocab, conversation) == render_prompt(hf, conversation)
    assert render_prompt(vocab, conversation, tools=tools) == render_prompt(hf, conversation, tools=tools)
    assert vocab.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True) == list(
        hf.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True, return_dict=False)
    )


def test_a_template_error_is_the_templates_own_message(pair):
    import jinja2

    _, vocab = pair
    with pytest.raises(jinja2.exceptions.TemplateError, match="no system here"):
        vocab.apply_chat_template([], chat_template="{{ raise_exception('no system here') }}")
    with pytest.raises(jinja2.exceptions.SecurityError):  # the sandbox: no reaching into Python objects
        vocab.apply_chat_template([], chat_template="{{ ''.__class__.__mro__ }}")


def test_a_closed_engine_says_so_instead_of_crashing(require_llama_cpp, pair):
    from agentkit.engine.llama_context import LlamaContext
    from agentkit.engine.loading import embedded_gguf_path
    from agentkit.engine.vocab_tokenizer import VocabTokenizer

    hf, _ = pair
    llama = LlamaContext(embedded_gguf_path(), context_tokens=256, sequences=1)
    vocab = VocabTokenizer(llama, {"chat_template": None, "special_tokens_map": {}, "special_texts": [], "eos_token_id": 2,
                                   "bos_token_id": 1, "size": len(hf)})
    llama.close()
    with pytest.raises(RuntimeError, match="closed"):
        vocab("hello")


_LOAD = textwrap.dedent(
    """
    import json, sys
    from agentkit import GenerationRequest, Message
    from agentkit.engine import GGUFEngine
    engine = GGUFEngine.default(context_tokens=512)
    reply = engine.generate(GenerationRequest(messages=[Message(role="user", content="Say hi.")], max_tokens=12))
    print(json.dumps({"tokenizer": type(engine.tokenizer).__name__, "transformers": "transformers" in sys.modules,
                      "text": reply.text, "tokens": engine.count_tokens([Message(role="user", content="Zürich <tool_call>")])}))
    """
)


def _load_in_child(cache) -> dict:
    env = {**os.environ, "AGENTKIT_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", _LOAD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_second_load_uses_llamas_vocabulary_without_transformers(require_llama_cpp, embedded_folder, tmp_path):
    first = _load_in_child(tmp_path)
    assert first["tokenizer"] != "VocabTokenizer" and first["transformers"]  # checked against the HF tokenizer
    second = _load_in_child(tmp_path)
    assert second["tokenizer"] == "VocabTokenizer" and not second["transformers"]
    assert (second["text"], second["tokens"]) == (first["text"], first["tokens"])

    # Without its token table (deleted), a load goes back to the HF tokenizer and rebuilds it.
    for table in (tmp_path / "token-tables").glob("*.npz"):
        table.unlink()
    third = _load_in_child(tmp_path)
    assert third["tokenizer"] != "VocabTokenizer" and (third["text"], third["tokens"]) == (first["text"], first["tokens"])
    assert _load_in_child(tmp_path)["tokenizer"] == "VocabTokenizer"
