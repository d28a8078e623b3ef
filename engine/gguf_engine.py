"""`GGUFEngine`: a GGUF file run by llama.cpp's CPU kernels, decoding every step under the step grammar.

On CPU a torch forward streams fp32 weights at ~10 GB/s; ggml's quantised kernels read the GGUF's own
4-8-bit weights several times faster (benchmarks/RESULTS.md). Everything above the forward pass is
the torch engine's: the same tokenizer and chat template build the same token ids, the same
llguidance mask and `choose_next` pick each token (sampling in numpy: no torch op runs per token,
so torch's threads never contend with llama.cpp's), tokens the grammar forces ride along
in the same `llama_decode` call (jump-forward), and earlier conversations' KV sequences are reused.

Requests take turns on one llama.cpp context (as the torch engine's do on CPU, where a batched pass
costs about two single ones).
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
from agentkit.engine.llama_context import DEFAULT_BATCH_TOKENS, DEFAULT_SEQUENCES, LlamaContext, log_prob
from agentkit.engine.loading import cached_tokenizer, embedded_gguf_path, resolve_model_path, token_table_path, vocab_profile_path
from agentkit.engine.model_info import tool_call_convention
from agentkit.engine.prompt_tokens import TokenMemo, check_fits, numpy_generator, reply_targets
from agentkit.errors import ModelCapabilityError
from agentkit.types import Message


class GGUFEngine:
    """A GGUF model run by llama.cpp in this process, behind the same `Backend`/`Scorer` protocols as `LocalEngine`.

    `context_tokens` sets the most KV cells (default: the model's trained context, at most 8192;
    the context starts with 2,048 and doubles when a conversation needs more, so memory follows use);
    `sequences` how many conversation prefixes are kept for reuse; `threads` the CPU threads
    (default: every core this process may use); `tokenizer` a Hugging Face tokenizer to use instead
    of the one built from the GGUF's metadata (it must have the same vocabulary). `LocalEngine.from_pretrained(path)` returns this
    engine for a .gguf file on CPU when llama-cpp-python is installed.

    Example:
        >>> engine = GGUFEngine.from_pretrained("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")   # doctest: +SKIP
        >>> engine.generate(GenerationRequest(messages=[Message(role="user", content="Hi")])).text  # doctest: +SKIP
    """

    backend = "llama.cpp"
    device = "cpu"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        context_tokens: int | None = None,
        sequences: int = DEFAULT_SEQUENCES,
        threads: int | None = None,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        jump_forward: bool = True,
        tokenizer: Any | None = None,
    ) -> None:
        from agentkit.engine.grammar import GrammarCompiler, TokenMask

        folder, gguf_file = resolve_model_path(path)
        if gguf_file is None:
            raise ValueError(f"{str(path)!r} is a Hugging Face folder: the llama.cpp engine runs .gguf files. Load it with backend='torch'.")
        self.path = folder / gguf_file
        self.name = name or gguf_file
        self.llama = LlamaContext(self.path, context_tokens=context_tokens, sequences=sequences, threads=threads, batch_tokens=batch_tokens)
        self.context_window = self.llama.context_tokens
        if tokenizer is not None:
            self.tokenizer, self.grammars = tokenizer, GrammarCompiler(tokenizer)
        else:
            self.tokenizer, self.grammars = _own_tokenizer(self.path, self.llama)
        self.eos_ids = _eos_ids(self.tokenizer, self.llama)
        self.jump_forward = jump_forward
        self._tokens = TokenMemo(self.tokenizer)
        self._lock = threading.Lock()  # one llama.cpp context: requests take turns
        self._mask = TokenMask(self.grammars.vocab_size)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **options: Any) -> GGUFEngine:
        """Load a .gguf file (or a folder holding exactly one); never downloads anything."""
        return cls(path, **options)

    @classmethod
    def default(cls, **options: Any) -> GGUFEngine:
        """The embedded SmolLM2-135M-Instruct, run from its GGUF as shipped (Q4_1)."""
        return cls(embedded_gguf_path(), name="SmolLM2-135M-Instruct", **options)

    def close(self) -> None:
        """Free llama.cpp's model and context now rather than when the engine is collected."""
        with self._lock:
            self.llama.close()

    supports_images = False  # no vision tower in this engine: the torch engine runs vision-language folders

    @property
    def tool_call_convention(self) -> str | None:
        """The tool-call convention this model's chat template renders ("hermes", "pythonic"...), None if it knows no tools.

        `Agent(tool_format="auto")` uses the tool format that matches it, and then lets the template
        render the tools itself.
        """
        return tool_call_convention(getattr(self.tokenizer, "chat_template", None))

    # -- Backend protocol ------------------------------------------------------------------------

    def count_tokens(self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None) -> int:
        """Exact prompt length in tokens for `messages` (and `tools`, for a native tool template)."""
        return len(self._prompt(messages, tools)[1])

    def _prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> tuple[str, list[int]]:
        if any(m.images for m in messages):
            raise ModelCapabilityError(
                f"{self.name} runs on the llama.cpp engine, which reads no images. Load a vision-language model "
                "folder with LocalEngine.from_pretrained(folder, backend='torch'), or leave the images out."
            )
        text = render_prompt(self.tokenizer, messages, tools=tools)
        return text, self._tokens.tokenize(text)

    def generate(self, request: GenerationRequest, *, cancel: threading.Event | None = None) -> Generation:
        """Decode one reply; constrained to `request.constraint` when set.

        Setting `cancel` (from any thread) stops the decode at its next token; the reply so far
        comes back with `finish_reason="length"` and `details["cancelled"]` true.
        """
        from agentkit.engine.sampling import decode_loop

        started = time.perf_counter()
        prompt_text, prompt_ids = self._prompt(request.messages, request.tools)
        check_fits(self.name, len(prompt_ids), request.max_tokens, self.context_window)
        matcher = self.grammars.matcher(request.constraint) if request.constraint is not None else None
        with self._lock:
            waited = time.perf_counter()
            self.llama.reserve(len(prompt_ids) + request.max_tokens)
            seq, reused = self.llama.claim(prompt_ids)
            logits = self.llama.decode(seq, prompt_ids[reused:], cancel=cancel)
            prefill_seconds = time.perf_counter() - waited
            result = decode_loop(
                logits, lambda ids: self.llama.decode(seq, ids), max_new_tokens=request.max_tokens, eos_ids=self.eos_ids,
                matcher=matcher, mask=self._mask if matcher is not None else None,  # one buffer: requests take turns
                temperature=request.temperature, top_p=request.top_p, generator=numpy_generator(request),
                jump_forward=self.jump_forward, cancel=cancel, run_on_guard=self.grammars.run_on_guard if matcher is not None else None,
            )
            cancelled = cancel is not None and cancel.is_set()
        tokens = result.tokens
        text = self.tokenizer.decode(tokens, skip_special_tokens=False)
        self._tokens.remember(prompt_text + text, prompt_ids + tokens)
        seconds = time.perf_counter() - started
        return Generation(
            text=text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(tokens),
            seconds=seconds,
            finish_reason="stop" if result.finish_reason == "stop" and not cancelled else "length",
            details={
                "backend": self.backend,
                "forward_passes": result.forward_passes,
                "prefill_tokens": len(prompt_ids) - reused,
                "reused_tokens": reused,
                "jump_forward_tokens": result.jump_forward_tokens,
                "prefill_seconds": prefill_seconds,
                "decode_seconds": time.perf_counter() - waited - prefill_seconds,
                "mask_seconds": result.mask_seconds,
                "cancelled": cancelled,
            },
        )

    def score(self, request: GenerationRequest, replies: list[str]) -> list[float]:
        """The log-probability the model gives each of `replies` as its whole reply to `request`.

        Teacher-forced and unconstrained, the end-of-turn token included, like `LocalEngine.score`;
        the prompt's KV cells are shared by every reply (decoded once).

        Example:
            >>> engine.score(request, ['{"final_answer": "4"}', '{"final_answer": "5"}'])  # doctest: +SKIP
            [-3.2, -7.9]
        """
        prompt_text, prompt_ids = self._prompt(request.messages, request.tools)
        scores = []
        with self._lock:
            for reply in replies:
                reply_ids, targets = reply_targets(self.tokenizer, reply, self.eos_ids)
                if not targets:
                    scores.append(0.0)
                    continue
                self.llama.reserve(len(prompt_ids) + len(targets))
                seq, reused = self.llama.claim(prompt_ids)
                logits = self.llama.decode(seq, prompt_ids[reused:])
                assert logits is not None  # None only when a cancel event is passed
                first = log_prob(logits, targets[0])
                scores.append(first + float(self.llama.target_log_probs(seq, targets[:-1], targets[1:]).sum()))
                self._tokens.remember(prompt_text + reply, prompt_ids + reply_ids)
        return scores

    async def agenerate(self, request: GenerationRequest) -> Generation:
        """`generate` in a worker thread; cancelling the awaiting task also stops the decode."""
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self.generate, request, cancel=cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        return self._prompt(messages, None)[1]


def _own_tokenizer(path: Path, llama: LlamaContext) -> tuple[Any, Any]:
    """The GGUF's tokenizer and grammar compiler: llama.cpp's vocabulary once it was checked to tokenise as
    the HF tokenizer does (`engine/vocab_tokenizer.py`: ~200 MB less), else the HF tokenizer, checked now."""
    from agentkit.engine.grammar import GrammarCompiler
    from agentkit.engine.vocab_tokenizer import VocabTokenizer, load_profile, profile_if_same, save_profile

    table, profile_path = token_table_path(path), vocab_profile_path(path)
    profile = load_profile(profile_path)
    if profile is not None:
        vocab = VocabTokenizer(llama, profile)
        try:
            return vocab, GrammarCompiler(vocab, token_table_cache=table)
        except FileNotFoundError:  # the token table was deleted: rebuild it from the HF tokenizer below
            pass
    hf_tokenizer = cached_tokenizer(path)
    grammars = GrammarCompiler(hf_tokenizer, token_table_cache=table)
    if profile is None and (checked := profile_if_same(hf_tokenizer, llama)) is not None:
        save_profile(profile_path, checked)
    return hf_tokenizer, grammars


def _eos_ids(tokenizer: Any, llama: LlamaContext) -> set[int]:
    """The tokenizer's end token and the GGUF's: the torch engine's rule (its generation config takes the
    GGUF's eos id), so both engines stop on the same tokens."""
    ids = {i for i in (tokenizer.eos_token_id, llama.end_of_sequence_id()) if isinstance(i, int)}
    return ids
