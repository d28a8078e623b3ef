"""What every local engine does the same way before decoding: prompt token ids, the context check, the sampler's RNG.

Shared by the torch engine (`local.py`) and the llama.cpp engine (`gguf_engine.py`), so that both
build the very same token ids for a prompt and refuse the same requests with the same error.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from agentkit.backend import GenerationRequest
from agentkit.errors import ContextOverflowError

DEFAULT_PREFILL_CHUNK = 2048  # prompt tokens per prefill pass (torch engine): bounds activation memory on long prompts

TOKEN_MEMO_ENTRIES = 64  # remembered (prompt + reply) tokenisations


class TokenMemo:
    """Tokenises rendered prompts, splicing in the model's own tokens for text it wrote itself.

    Re-tokenising a reply can split it differently from how the model sampled it (`c` + `alls`
    vs `calls`), which would both change what the model sees and break prefix reuse one token into
    the reply. So the ids of every (prompt + reply) are remembered, and a new prompt that extends
    one of those texts reuses its ids and tokenises only the rest; this also keeps a step's
    tokenising cost proportional to its new text.

    Example:
        >>> memo = TokenMemo(tokenizer)                       # doctest: +SKIP
        >>> ids = memo.tokenize(prompt_text)                  # doctest: +SKIP
        >>> memo.remember(prompt_text + reply, ids + reply_ids)   # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, *, entries: int = TOKEN_MEMO_ENTRIES) -> None:
        self.tokenizer = tokenizer
        self.entries = entries
        self._memo: OrderedDict[str, list[int]] = OrderedDict()
        self._lock = threading.Lock()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` (a rendered prompt), reusing the remembered ids of its longest known start."""
        best = ""
        with self._lock:
            for known in self._memo:
                if len(known) > len(best) and text.startswith(known):
                    best = known
            base = self._memo[best] if best else []
        rest = text[len(best):]
        return base + list(self.tokenizer(rest, add_special_tokens=False)["input_ids"]) if rest else list(base)

    def remember(self, text: str, ids: list[int]) -> None:
        """Remember that `text` is `ids` (a prompt followed by the tokens the model chose)."""
        with self._lock:
            self._memo[text] = ids
            self._memo.move_to_end(text)
            while len(self._memo) > self.entries:
                self._memo.popitem(last=False)


def check_fits(name: str, prompt_tokens: int, max_tokens: int, context_window: int) -> None:
    """Raise `ContextOverflowError` when the prompt plus the longest reply cannot fit the context window.

    Example:
        >>> check_fits("SmolLM2", 100, 512, 8192)
        >>> check_fits("SmolLM2", 8000, 512, 8192)
        Traceback (most recent call last):
        ...
        agentkit.errors.ContextOverflowError: The prompt has 8000 tokens and the reply may need up to 512 more, but SmolLM2's context window is 8192 tokens. ...
    """
    if context_window and prompt_tokens + max_tokens > context_window:
        raise ContextOverflowError(
            f"The prompt has {prompt_tokens} tokens and the reply may need up to {max_tokens} more, "
            f"but {name}'s context window is {context_window} tokens. Shorten the task, "
            "instructions or tool outputs, use fewer steps, lower max_step_tokens, or give the agent "
            "context='drop_oldest'.",
            prompt_tokens=prompt_tokens,
            context_window=context_window,
            reserved_tokens=max_tokens,
        )


def sampling_generator(request: GenerationRequest, device: Any = "cpu") -> Any:
    """The request's own torch RNG (seeded when it has a seed), or None for greedy decoding.

    A generator per request: the global RNG is left alone, and the same seed gives the same reply.
    """
    if request.temperature <= 0:
        return None
    import torch

    generator = torch.Generator(device=device)
    if request.seed is not None:
        generator.manual_seed(request.seed)
    else:
        generator.seed()  # fresh entropy for this generator only
    return generator


def numpy_generator(request: GenerationRequest) -> Any:
    """The request's own numpy RNG (seeded when it has a seed), or None for greedy decoding.

    The llama.cpp engine samples with numpy (see `decode.sample`): the same seed gives the same
    reply on that engine, though not the torch engine's reply (another RNG).
    """
    if request.temperature <= 0:
        return None
    import numpy as np

    return np.random.default_rng(request.seed)


def reply_targets(tokenizer: Any, reply: str, eos_ids: set[int]) -> tuple[list[int], list[int]]:
    """A scored reply's token ids, and its targets: those ids then the end-of-turn token.

    "Stop here" is part of a whole reply, so `score()` counts the end token too (the tokenizer's own
    when it ends a turn, else the smallest end id). Shared by both engines so they score alike.

    Example:
        >>> reply_targets(tokenizer, "4", {2})   # doctest: +SKIP
        ([19], [19, 2])
    """
    eos = tokenizer.eos_token_id
    end = [eos if eos in eos_ids else min(eos_ids)] if eos_ids else []
    reply_ids = list(tokenizer(reply, add_special_tokens=False)["input_ids"])
    return reply_ids, reply_ids + end
