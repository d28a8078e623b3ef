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


# A Hermes/Qwen-style template: it lists the tools itself and tells the model how to call them.
HERMES_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{{ messages[0]['content'] }}\n# Tools\n<tools>{% for t in tools %}{{ t | tojson }}\n"
    "{% endfor %}</tools>\nReturn each call as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call><|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if not (tools and loop.first) %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_that_knows_tools_renders_them_itself(smollm2_tokenizer, make_tiny_llama):
    from agentkit import Agent, SamplingSettings
    from agentkit.engine import LocalEngine
    from agentkit.engine.chat import render_prompt
    from agentkit.tools import calculator

    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.chat_template = HERMES_TEMPLATE
    engine = LocalEngine.from_model(make_tiny_llama(tokenizer), tokenizer)
    assert engine.tool_call_convention == "hermes"
    agent = Agent(engine, tools=[calculator], instructions="Be exact.", max_steps=1, sampling=SamplingSettings(temperature=1.0, seed=3))
    assert agent.tool_format.name == "hermes" and agent.native_tools
    prompt = render_prompt(tokenizer, agent.first_messages("What is 2 + 2?"), tools=agent._tool_specs)
    assert '<tools>{"type": "function", "function": {"name": "calculator"' in prompt
    assert prompt.count("calculator(") == 0  # agentkit's own tool list is left out
    assert "Be exact." in prompt
    # The template's tool prompt goes all the way through decoding: the step is a valid Hermes step.
    try:
        steps = agent.run("What is 2 + 2?").steps
    except Exception as exc:
        steps = exc.partial.steps
    assert steps and steps[0].rejected_outputs == []
