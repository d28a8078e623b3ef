"""The local inference engine: model loading, the decode loop, grammar masks.

Needs the `local` extra (torch, transformers, llguidance, gguf). Importing this package is cheap;
torch is imported when `LocalEngine` is first used. `GGUFEngine` (llama.cpp's CPU kernels on a GGUF
as it is) also needs the `llama-cpp` extra; `LocalEngine.from_pretrained` picks it for .gguf files
on CPU when it is installed.

Example:
    >>> from agentkit.engine import LocalEngine     # doctest: +SKIP
    >>> engine = LocalEngine.default()              # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkit.engine.gguf_engine import GGUFEngine
    from agentkit.engine.local import LocalEngine

__all__ = ["GGUFEngine", "LocalEngine"]


def __getattr__(name: str) -> Any:
    if name in ("LocalEngine", "GGUFEngine"):
        try:  # neither module imports torch: the llama.cpp engine never needs it
            if name == "GGUFEngine":
                from agentkit.engine.gguf_engine import GGUFEngine

                return GGUFEngine
            from agentkit.engine.local import LocalEngine

            return LocalEngine
        except ImportError as exc:
            from agentkit.errors import ModelLoadError

            raise ModelLoadError(
                f"The local engine needs packages that are not installed ({exc.name}). "
                "Install them with `pip install 'agentkit[local]'`."
            ) from exc
    raise AttributeError(f"module 'agentkit.engine' has no attribute {name!r}")
