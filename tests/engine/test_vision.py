"""Vision-language models: images reach the vision tower, the cache never mixes pictures, tools can show images.

A tiny random-weight LLaVA (CLIP vision tower + 2-layer Llama) over the real SmolLM2 tokenizer
with an `<image>` token added; its processor is built here and saved with the model.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest

from agentkit import Agent, GenerationRequest, MaxStepsExceeded, Message, ModelCapabilityError, SamplingSettings, StepLimits, tool
from agentkit.images import Image, to_image
from agentkit.testing import ScriptedBackend

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PATCH_TOKENS = 16  # a 32x32 image in 8x8 patches


def png(color: str, size=(40, 30)) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def vlm(smollm2_tokenizer):
    """(model, processor) of a tiny random LLaVA."""
    import torch
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default", chat_template=TEMPLATE,
        num_additional_image_tokens=1,
    )
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    return LlavaForConditionalGeneration(config).eval(), processor


def _engine(vlm, **options):
    from agentkit.engine import LocalEngine

    model, processor = vlm
    return LocalEngine.from_model(model, processor.tokenizer, processor=processor, **options)


def _ask(color: str, text: str = "Describe the picture.") -> GenerationRequest:
    return GenerationRequest(messages=[Message(role="user", content=text, images=(to_image(png(color)),))], max_tokens=8)


def _reference(vlm, request: GenerationRequest) -> list[int]:
    """What transformers' own generate writes for the same prompt and pixels."""
    import torch

    from agentkit.engine.chat import render_multimodal_prompt

    model, processor = vlm
    text = render_multimodal_prompt(processor, request.messages)
    images = [image.to_pil() for m in request.messages for image in m.images]
    encoded = processor(text=[text], images=images, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**encoded, max_new_tokens=request.max_tokens, do_sample=False, eos_token_id=None)
    return out[0, encoded["input_ids"].shape[1] :].tolist()


def _tokens(engine, request):
    generation = engine.generate(request)
    return engine.tokenizer(generation.text, add_special_tokens=False)["input_ids"], generation


def test_the_picture_reaches_the_model_exactly_as_transformers_feeds_it(vlm):
    engine = _engine(vlm, kv_cache_bytes=0)
    for color in ("red", "navy"):
        tokens, generation = _tokens(engine, _ask(color))
        assert tokens == _reference(vlm, _ask(color))
        assert generation.prompt_tokens == engine.count_tokens(_ask(color).messages)
    assert _tokens(engine, _ask("red"))[0] != _tokens(engine, _ask("navy"))[0]  # the pixels matter


def test_a_long_prompt_after_the_picture_is_prefilled_in_chunks_exactly(vlm):
    """The first pass holds every image placeholder; the text after it goes `prefill_chunk` tokens at a time."""
    engine = _engine(vlm, kv_cache_bytes=0, prefill_chunk=4)
    request = _ask("red", "Describe the picture, its colours, its size, and what it might show, in detail.")
    passes: list[int] = []
    hook = vlm[0].register_forward_pre_hook(lambda module, args, kwargs: passes.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        tokens, _ = _tokens(engine, request)
    finally:
        hook.remove()
    assert tokens == _reference(vlm, request)
    first, *rest = passes
    assert PATCH_TOKENS < first < engine.count_tokens(request.messages)  # the picture whole, not the prompt
    assert rest[0] == 4  # then chunks


def test_the_kv_cache_never_serves_one_picture_for_another(vlm):
    warm, cold = _engine(vlm), _engine(vlm, kv_cache_bytes=0)
    first = warm.generate(_ask("red"))
    again = warm.generate(_ask("red", "Describe the picture."))
    assert again.details["reused_tokens"] > PATCH_TOKENS  # the same picture: its prefix is reused
    other = warm.generate(_ask("navy"))
    assert other.details["reused_tokens"] < PATCH_TOKENS  # same text and ids, another picture: no reuse
    assert other.text == cold.generate(_ask("navy")).text
    assert first.text == again.text


def test_random_weights_with_an_image_still_give_only_valid_steps(vlm):
    from agentkit.tools import calculator

    engine = _engine(vlm)
    for seed in range(4):
        agent = Agent(
            engine, tools=[calculator], max_steps=2, sampling=SamplingSettings(temperature=1.0, seed=seed),
            limits=StepLimits(string_chars=20, answer_chars=30),
        )
        try:
            run = agent.run("What is in the picture?", images=[png("green")])
        except MaxStepsExceeded as exc:
            run = exc.partial
        assert run.steps and all(step.calls or step.is_final for step in run.steps)
        assert all(not step.rejected_outputs for step in run.steps)
        assert run.messages[len(agent.first_messages("x")) - 1].images  # the task carries its picture


def test_a_tool_can_show_the_model_an_image(vlm):
    from PIL import Image as PILImage

    @tool
    def snapshot(camera: str) -> Any:
        """Take a picture with a camera.

        Args:
            camera: the camera's name.
        """
        return PILImage.new("RGB", (24, 24), "yellow")

    engine = _engine(vlm)
    backend = ScriptedBackend([{"calls": [{"name": "snapshot", "arguments": {"camera": "door"}}]}, {"final_answer": "yellow"}])
    backend.supports_images = True
    run = Agent(backend, tools=[snapshot], examples=[]).run("What colour is the door?")
    observation = run.steps[0].observations[0]
    assert not observation.is_error and len(observation.images) == 1 and "[image: image/png" in observation.content
    seen = backend.requests[1].messages[-1]
    assert seen.role == "tool" and seen.images == tuple(observation.images)
    with_image = engine.count_tokens(backend.requests[1].messages)
    without = engine.count_tokens([*backend.requests[1].messages[:-1], seen.model_copy(update={"images": ()})])
    assert with_image - without == PATCH_TOKENS  # the image is in the prompt as its patch tokens


def test_a_saved_vision_model_loads_with_its_processor(vlm, tmp_path):
    from agentkit.engine import LocalEngine

    model, processor = vlm
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = LocalEngine.from_pretrained(tmp_path)
    assert loaded.supports_images
    assert loaded.generate(_ask("red")).text == _engine(vlm, kv_cache_bytes=0).generate(_ask("red")).text


def test_a_text_only_model_refuses_images_with_a_clear_error(smollm2_tokenizer, make_tiny_llama):
    from agentkit.engine import LocalEngine

    engine = LocalEngine.from_model(make_tiny_llama(smollm2_tokenizer), smollm2_tokenizer, name="tiny-text")
    assert not engine.supports_images
    with pytest.raises(ModelCapabilityError, match="tiny-text has no vision tower"):
        Agent(engine).run("What is this?", images=[png("red")])
    with pytest.raises(ModelCapabilityError, match="no vision tower"):
        engine.generate(_ask("red"))


def test_a_tool_image_for_a_text_only_model_stays_a_text_note():
    from PIL import Image as PILImage

    @tool
    def snapshot() -> Any:
        """Take a picture."""
        return PILImage.new("RGB", (8, 8), "blue")

    backend = ScriptedBackend([{"calls": [{"name": "snapshot", "arguments": {}}]}, {"final_answer": "done"}])
    run = Agent(backend, tools=[snapshot], examples=[]).run("Look.")
    assert run.output == "done"
    seen = backend.requests[1].messages[-1]
    assert seen.images == () and "[image: image/png" in seen.content


def test_bad_images_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No image file"):
        to_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="not a PNG, JPEG"):
        to_image(b"hello")
    with pytest.raises(TypeError, match="Cannot use a int as an image"):
        to_image(3)
    assert Image.model_validate_json(to_image(png("red")).model_dump_json()) == to_image(png("red"))  # base64 round trip


def test_a_served_vision_model_answers_images_over_http(vlm, tmp_path):
    """`agentkit serve` on a vision model folder, a real process on loopback; RemoteBackend sends the picture."""
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from agentkit import RemoteBackend
    from agentkit.tools import calculator

    model, processor = vlm
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(sys.executable).parent / "agentkit"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "agentkit.cli"]
    server = subprocess.Popen([*command, "serve", "--port", str(port), "--model", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        backend = RemoteBackend(f"http://127.0.0.1:{port}/v1", model="default", supports_images=True, max_retries=0)
        agent = Agent(backend, tools=[calculator], max_steps=2, limits=StepLimits(string_chars=20, answer_chars=30))
        try:
            run = agent.run("What is in the picture?", images=[png("purple")])
        except MaxStepsExceeded as exc:
            run = exc.partial
        assert run.steps and all(step.calls or step.is_final for step in run.steps)
        assert all(not step.rejected_outputs for step in run.steps)  # the served grammar held with an image in the prompt
        first = agent.first_messages("What is in the picture?", images=[png("purple")])
        assert run.steps[0].usage.prompt_tokens == _engine(vlm).count_tokens(first)  # the picture's patches were in it
    finally:
        server.terminate()
        server.wait(timeout=20)
