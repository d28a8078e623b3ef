"""Keeping a number the model has finished from running on into the next one.

Asked for "a loan term of 15, 20 and 30 years" with a tool whose `loan_term` is one integer, a model
writes `"loan_term": 15` and then wants a comma (it is listing the values). When that key is the
last one, the grammar forbids the comma; masking leaves digits and `}`, and the model's next best
token is the next value's digits: `1520`, a valid call with a value nobody asked for (Qwen2.5-Coder-0.5B
did this on BFCL's parallel tests). The grammar made the call valid but not faithful.

The guard: when the model's own first choice (before masking) ends the value (a comma, a closing
bracket, a space or a newline) right after a digit, the grammar forbids it, and the token sampled
instead goes on with digits, the token is taken again from the allowed tokens that end the value too (`}` here). The
model had finished the number; the grammar decides only how the structure goes on. A model that
wanted more digits is never affected: its first choice is not a delimiter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_VALUE_ENDS = frozenset(b",}]) \n\r\t")
_DIGITS = frozenset(b"0123456789")


class RunOnGuard:
    """Which tokens end a value and which only append digits, for one vocabulary.

    Example:
        >>> guard = RunOnGuard([b"1", b"5", b"20", b",", b"}", b"a"])
        >>> logits = np.array([0.0, 0.0, 2.0, 9.0, 1.0, 0.0])   # after "15" the model wants ","
        >>> wanted = guard.first_choice(logits)
        >>> logits[3] = -np.inf                                  # the grammar forbids it
        >>> guard.correct(logits, token=2, wanted=wanted, previous=1)   # "20" would make 1520: "}" instead
        4
    """

    def __init__(self, token_bytes: Sequence[bytes]) -> None:
        self.ends_value = np.array([bool(t) and t[0] in _VALUE_ENDS for t in token_bytes], dtype=bool)
        self.starts_digit = np.array([bool(t) and t[0] in _DIGITS for t in token_bytes], dtype=bool)
        self.ends_digit = np.array([bool(t) and t[-1] in _DIGITS for t in token_bytes], dtype=bool)
        self._torch_ends: dict[Any, Any] = {}  # ends_value as a torch tensor, per device

    @classmethod
    def for_tokenizer(cls, ll_tokenizer: Any) -> RunOnGuard:
        """The guard for an llguidance tokenizer (the grammar's token table)."""
        return cls([ll_tokenizer.decode_bytes([i]) for i in range(ll_tokenizer.vocab_size)])

    def watches(self, previous: int | None) -> bool:
        """Whether the next token could run a number on: `previous` ends with a digit (else no need to look)."""
        return previous is not None and 0 <= previous < len(self.ends_digit) and bool(self.ends_digit[previous])

    def first_choice(self, logits: Any) -> int:
        """The model's own first choice, read before the grammar masks `logits`."""
        if isinstance(logits, np.ndarray):
            return int(np.argmax(logits))
        return int(logits.argmax())

    def runs_on(self, token: int, wanted: int, previous: int | None) -> bool:
        """Whether `token` (sampled under the mask) adds digits to a number after which the model wanted to end the value."""
        size = len(self.ends_value)
        return (
            token != wanted and self.watches(previous)
            and 0 <= wanted < size and bool(self.ends_value[wanted])
            and 0 <= token < size and bool(self.starts_digit[token])
        )

    def correct(self, masked_logits: Any, *, token: int, wanted: int, previous: int | None) -> int:
        """`token`, or the best allowed token that ends the value when `token` would run the number on.

        Greedy among those tokens (the choice is structural: `}` or `,` or a newline). When the grammar
        allows none of them, `token` stands.
        """
        if not self.runs_on(token, wanted, previous):
            return token
        n = min(len(self.ends_value), masked_logits.shape[-1])
        if isinstance(masked_logits, np.ndarray):
            kept = np.where(self.ends_value[:n], masked_logits[:n], -np.inf)
            best = int(np.argmax(kept))
            return best if np.isfinite(kept[best]) else token
        import torch  # a torch tensor: torch is already loaded

        ends = self._torch_ends.get(masked_logits.device)
        if ends is None:
            ends = self._torch_ends[masked_logits.device] = torch.from_numpy(self.ends_value).to(masked_logits.device)
        candidates = torch.where(ends[:n], masked_logits[:n], torch.tensor(float("-inf"), device=masked_logits.device))
        best = int(candidates.argmax())
        return best if bool(torch.isfinite(candidates[best])) else token
