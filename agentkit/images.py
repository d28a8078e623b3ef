"""Images for vision-language models: what a user passes to `agent.run(images=...)` or a tool returns.

An `Image` holds the encoded bytes (PNG, JPEG, WebP, GIF) and travels inside `Message.images`;
backends decode it where they need pixels. `to_image` accepts a path, raw bytes, a PIL image or an
`Image`, and checks what it gets: a missing file, an unknown format or an oversized image is a clear
error before any model runs. Pillow is needed only to turn PIL images into bytes and to decode.

Example:
    >>> import base64
    >>> png = base64.b64decode(
    ...     "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    >>> image = to_image(png)
    >>> image.media_type, len(image.data) > 0
    ('image/png', True)
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # larger files are almost always a mistake (a video, a raw scan)
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


class Image(BaseModel):
    """One encoded image; serialised as base64 in JSON (traces, HTTP).

    Example:
        >>> Image(data=b"\\x89PNG\\r\\n\\x1a\\n...", media_type="image/png").media_type
        'image/png'
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    data: bytes
    media_type: str = "image/png"

    @property
    def digest(self) -> str:
        """SHA-256 of the bytes: identifies the image (e.g. in KV-cache keys and traces)."""
        return hashlib.sha256(self.data).hexdigest()

    def to_pil(self) -> Any:
        """Decode to an RGB `PIL.Image.Image` (needs Pillow)."""
        pil = _pillow()
        try:
            with pil.open(io.BytesIO(self.data)) as opened:
                return opened.convert("RGB")
        except Exception as exc:
            raise ValueError(f"The {self.media_type} image ({len(self.data)} bytes) cannot be decoded: {exc}.") from None

    def describe(self) -> str:
        """A short text stand-in, for prompts of models that cannot see it."""
        return f"[image: {self.media_type}, {len(self.data)} bytes]"


def is_image(value: Any) -> bool:
    """True for an `Image` or a PIL image (what a tool may return to show the model a picture)."""
    return isinstance(value, Image) or (hasattr(value, "save") and hasattr(value, "size") and hasattr(value, "mode"))


def to_image(value: Any) -> Image:
    """An `Image` from a file path, encoded bytes, a PIL image or an `Image`.

    Raises ValueError (bad data, unknown format, too large) or FileNotFoundError with what to fix.
    """
    if isinstance(value, Image):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No image file at {str(path)!r}. Pass an existing PNG/JPEG/WebP/GIF path, bytes, or a PIL image.")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"{str(path)!r} is {path.stat().st_size} bytes; images over {MAX_IMAGE_BYTES} bytes are refused. Resize it first.")
        return to_image(path.read_bytes())
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        if len(data) > MAX_IMAGE_BYTES:
            raise ValueError(f"The image is {len(data)} bytes; images over {MAX_IMAGE_BYTES} bytes are refused. Resize it first.")
        return Image(data=data, media_type=_media_type(data))
    if is_image(value):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return Image(data=buffer.getvalue(), media_type="image/png")
    raise TypeError(f"Cannot use a {type(value).__name__} as an image: pass a file path, encoded bytes, a PIL image or agentkit Image.")


def _media_type(data: bytes) -> str:
    for magic, media_type in _MAGIC.items():
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ValueError("The bytes are not a PNG, JPEG, WebP or GIF image (unknown file signature).")


def _pillow() -> Any:
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise ImportError("Decoding images needs Pillow: `pip install pillow` (or `pip install 'agentkit[local]'`).") from None
    return PILImage
