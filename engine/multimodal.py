"""Prompts with images for vision-language models: token ids, pixel inputs and image-aware cache keys.

The processor expands each image placeholder into the image's patch tokens and prepares the pixel
tensors the vision tower reads during prefill. Every image's patch tokens have the same id, so two
prompts that differ only in their pictures tokenise identically: the KV-cache key (`key_ids`)
therefore replaces those positions with negative ids derived from the image's bytes. The same
picture in the next agent step reuses its cached prefix; a different picture never does.

Example:
    >>> prompt = prepare_prompt(processor, model, messages)          # doctest: +SKIP
    >>> len(prompt.ids) == len(prompt.key_ids), sorted(prompt.inputs)  # doctest: +SKIP
    (True, ['pixel_values'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from agentkit.engine.chat import render_multimodal_prompt
from agentkit.types import Message


@dataclass
class MultimodalPrompt:
    """A prompt ready for prefill: `ids` for the model, `key_ids` for the prefix cache, `inputs` for the vision tower."""

    text: str
    ids: list[int]
    key_ids: list[int]
    inputs: dict[str, Any]
    images_end: int  # the position after the last image token: a reused prefix must reach past it


def image_token_id(processor: Any) -> int:
    """The id of the token that stands for image patches in the processor's expanded text."""
    found = getattr(processor, "image_token_id", None)
    if isinstance(found, int):
        return found
    token = getattr(processor, "image_token", None) or "<image>"
    return int(processor.tokenizer.convert_tokens_to_ids(token))


def prepare_prompt(processor: Any, model: Any, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> MultimodalPrompt:
    """Render, expand and tokenise a conversation with images; move its pixel tensors to the model."""
    images = [image for message in messages for image in message.images]
    text = render_multimodal_prompt(processor, messages, tools=tools)
    encoded = processor(text=[text], images=[image.to_pil() for image in images] or None, return_tensors="pt")
    ids = [int(i) for i in encoded["input_ids"][0]]
    dtype = next(model.parameters()).dtype
    inputs = {}
    for key, value in encoded.items():
        if key in ("input_ids", "attention_mask") or not isinstance(value, torch.Tensor):
            continue
        inputs[key] = value.to(model.device, dtype=dtype if value.is_floating_point() else value.dtype)
    marker = image_token_id(processor)
    positions = [i for i, token in enumerate(ids) if token == marker]
    return MultimodalPrompt(
        text=text,
        ids=ids,
        key_ids=_salted(ids, positions, [image.digest for image in images]),
        inputs=inputs,
        images_end=positions[-1] + 1 if positions else 0,
    )


def _salted(ids: list[int], positions: list[int], digests: list[str]) -> list[int]:
    """`ids` with each image's patch positions replaced by negative ids unique to that image's bytes.

    Runs of patch tokens map to images in order when their counts match; otherwise (models that
    split an image into tiles with separators) every patch position is salted with all the images.
    """
    runs: list[list[int]] = []
    for position in positions:
        if runs and runs[-1][-1] == position - 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    if len(runs) == len(digests):
        salts = [digest for run, digest in zip(runs, digests) for _ in run]
    else:
        combined = "".join(digests)
        salts = [combined] * len(positions)
    keyed = list(ids)
    for offset, (position, salt) in enumerate(zip(positions, salts)):
        keyed[position] = -1 - (hash((salt, offset)) & 0x7FFFFFFF)
    return keyed
