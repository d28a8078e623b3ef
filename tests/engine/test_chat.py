"""Chat framing: the model's own template first; ChatML or merged roles when the template refuses."""

from __future__ import annotations

import copy

from agentkit import Message

CONVERSATION = [
    Message(role="system", content="S"),
    Message(role="user", content="What is 2 + 2?"),
    Message(role="assistant", content='{"calls": []}'),
    Message(role="tool", name="calculator", content="calculator returned: 4"),
]

STRICT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles must be system/user/assistant') }}{% endif %}"
    "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
)


def test_model_template_is_used(smollm2_tokenizer):
    from agentkit.engine.chat import render_prompt

    text = render_prompt(smollm2_tokenizer, CONVERSATION)
    assert "<|im_start|>tool\ncalculator returned: 4<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_no_template_falls_back_to_chatml(smollm2_tokenizer):
    from agentkit.engine.chat import render_prompt

    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.chat_template = None
    text = render_prompt(tokenizer, CONVERSATION[:2])
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"


def test_template_that_rejects_tool_role_gets_results_as_user_messages(smollm2_tokenizer):
    from agentkit.engine.chat import render_prompt

    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.chat_template = STRICT_TEMPLATE
    text = render_prompt(tokenizer, [*CONVERSATION, Message(role="user", content="thanks")])
    assert "[user] calculator returned: 4\n\nthanks" in text
    assert "[tool]" not in text and text.endswith("[assistant] ")
