"""The grammar's token table: the tokenizer's own special tokens, cached on disk for the next load."""

from __future__ import annotations

import numpy as np
import pytest

from agentkit.engine.token_table import grammar_tokenizer

CALL = '%llguidance {}\nstart: "<tool_call>" /[a-z ]{1,12}/ "</tool_call>"\n'


@pytest.fixture()
def qwen_like_tokenizer(smollm2_tokenizer, tmp_path):
    """SmolLM2's tokenizer plus Qwen's call markers as ordinary (non-special) added tokens."""
    from transformers import AddedToken, AutoTokenizer

    smollm2_tokenizer.save_pretrained(tmp_path / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    tokenizer.add_tokens([AddedToken(m, special=False, normalized=False) for m in ("<tool_call>", "</tool_call>")])
    return tokenizer


def _masks(table, text: str) -> list[bytes]:
    """The allowed-token bitmask before each token of `text` under CALL."""
    import llguidance

    from agentkit.engine.grammar import TokenMask

    matcher = llguidance.LLMatcher(table, llguidance.LLMatcher.grammar_from_lark(CALL))
    mask, masks = TokenMask(table.vocab_size), []
    for token in table.tokenize_str(text):
        mask.fill(matcher)
        masks.append(mask.bits.tobytes())
        assert matcher.consume_token(token), matcher.get_error()
    return masks


def test_a_cached_table_is_read_back_and_masks_exactly_like_a_fresh_one(qwen_like_tokenizer, tmp_path, monkeypatch):
    import llguidance.hf

    cache = tmp_path / "table.npz"
    fresh = grammar_tokenizer(qwen_like_tokenizer, cache=cache)
    assert cache.is_file()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached table should have been used")

    monkeypatch.setattr(llguidance.hf, "from_tokenizer", no_rebuild)
    cached = grammar_tokenizer(qwen_like_tokenizer, cache=cache)
    marker = qwen_like_tokenizer.convert_tokens_to_ids("<tool_call>")
    assert not cached.is_special_token(marker)  # an ordinary added token stays text
    assert cached.is_special_token(qwen_like_tokenizer.eos_token_id)
    assert [cached.is_special_token(i) for i in range(cached.vocab_size)] == [fresh.is_special_token(i) for i in range(fresh.vocab_size)]
    assert _masks(cached, "<tool_call>hello world</tool_call>") == _masks(fresh, "<tool_call>hello world</tool_call>")


def test_a_damaged_or_foreign_cache_is_rebuilt(qwen_like_tokenizer, smollm2_tokenizer, tmp_path):
    cache = tmp_path / "table.npz"
    cache.write_bytes(b"not a numpy archive")
    table = grammar_tokenizer(qwen_like_tokenizer, cache=cache)
    assert table.vocab_size == len(qwen_like_tokenizer)
    with np.load(cache) as saved:  # rewritten for this tokenizer
        assert int(saved["size"]) == len(qwen_like_tokenizer)
    other = grammar_tokenizer(smollm2_tokenizer, cache=cache)  # another vocabulary under the same name
    assert other.vocab_size == len(smollm2_tokenizer)
