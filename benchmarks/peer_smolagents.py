"""The same agent tasks on a peer library: smolagents' `ToolCallingAgent`, on the same model weights.

    make peer-env                      # .venv/peer: smolagents beside agentkit's own torch/transformers
    .venv/peer/bin/python benchmarks/peer_smolagents.py --model qwen2.5-coder-0.5b [--only calc-1]
    .venv/peer/bin/python benchmarks/peer_smolagents.py --model qwen2.5-coder-0.5b --decoder transformers

Same tasks and checks (tasks_data.py), same tool functions (agentkit's Tool objects called through
smolagents `Tool` wrappers with the same names, descriptions and argument schemas), greedy, at most
6 steps. Two decoders of the same GGUF:

- `llama.cpp` (default): `LlamaCppModel` below, smolagents' `TransformersModel.generate` with the
  decode done by llama-cpp-python on the GGUF as it is. The prompt is the HF tokenizer's rendering
  of the GGUF's chat template (tools included), passed as token ids, so it is token for token the
  prompt `TransformersModel` builds; llama.cpp reuses the KV of the prefix shared with the previous
  call, so a step does not re-prefill the system prompt.
- `transformers`: smolagents' own `TransformersModel` on the GGUF's dequantised fp32 conversion
  (exactly what agentkit's torch engine loads). Far slower on a CPU: every step re-prefills ~2k tokens.

Either way smolagents decodes freely (no grammar) and, as the model returns no native tool calls,
`Model.parse_tool_calls` takes the call out of the text: the JSON between the first "{" and the last
"}" with keys "name" and "arguments" (so both the `Action: {...}` its system prompt asks for and the
`<tool_call>` format the Qwen chat template adds after it parse). A reply it cannot parse counts as
an invalid reply (it feeds the error back and the step is lost).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import smolagents
from smolagents import ChatMessage, MessageRole, Model, Tool, ToolCallingAgent
from smolagents.memory import ActionStep
from smolagents.models import remove_content_after_stop_sequences
from smolagents.monitoring import TokenUsage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tasks import builtin_tools, question_for, tools_for
from tasks_data import TASKS, Task, solved

_JSON_TYPES = {"string", "boolean", "integer", "number", "array", "object", "null"}


class LlamaCppModel(Model):
    """`TransformersModel.generate` (smolagents 1.26) with llama.cpp doing the decode.

    Same message flattening, same `apply_chat_template(messages, tools=..., add_generation_prompt=True)`
    prompt, same stop handling (stop once a stop string is out, then cut the text at it), same
    `ChatMessage` with text content, no tool calls and token usage: the agent then parses the call
    out of the text exactly as it does for `TransformersModel`.
    """

    def __init__(self, gguf_path: Path, max_new_tokens: int) -> None:
        from llama_cpp import Llama

        from agentkit.engine.loading import cached_tokenizer

        # flatten_messages_as_text: what TransformersModel sets for a text-only model
        super().__init__(flatten_messages_as_text=True, model_id=gguf_path.name)
        self.tokenizer = cached_tokenizer(gguf_path)  # the GGUF's HF tokenizer and chat template
        self.llama = Llama(str(gguf_path), n_ctx=8192, n_threads=os.cpu_count(), verbose=False)
        self.max_new_tokens = max_new_tokens
        # TransformersModel stops on the conversion's generation-config eos, which is the GGUF's eos
        self.eos_ids = {i for i in (self.tokenizer.eos_token_id, self.llama.token_eos()) if isinstance(i, int) and i >= 0}

    def generate(self, messages: list[ChatMessage | dict], stop_sequences: list[str] | None = None,
                 response_format: dict[str, str] | None = None, tools_to_call_from: list[Tool] | None = None,
                 **kwargs: Any) -> ChatMessage:
        if response_format is not None:
            raise ValueError("LlamaCppModel, like TransformersModel, does not support structured outputs.")
        completion = self._prepare_completion_kwargs(messages=messages, stop_sequences=stop_sequences,
                                                     tools_to_call_from=tools_to_call_from, tool_choice=None, **kwargs)
        stops = completion.get("stop") or []
        prompt = self.tokenizer.apply_chat_template(completion["messages"], tools=completion.get("tools"),
                                                    add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        generated: list[int] = []
        # Greedy (temp 0 is llama.cpp's argmax sampler). generate() keeps the KV cache of the longest
        # prefix shared with the last call's tokens and evaluates only the rest.
        for token in self.llama.generate(prompt, temp=0.0, repeat_penalty=1.0):
            generated.append(token)
            if token in self.eos_ids or len(generated) >= self.max_new_tokens:
                break
            # TransformersModel's StopOnStrings checks only the end of the text; `in` also catches a
            # stop string that ends inside a token (the text is cut at it below either way)
            if stops and any(s in self.tokenizer.decode(generated, skip_special_tokens=True) for s in stops):
                break
        text = remove_content_after_stop_sequences(self.tokenizer.decode(generated, skip_special_tokens=True), stops)
        return ChatMessage(
            role=MessageRole.ASSISTANT, content=text,
            raw={"out": text, "completion_kwargs": {"max_new_tokens": self.max_new_tokens, "stop": stops}},
            token_usage=TokenUsage(input_tokens=len(prompt), output_tokens=len(generated)),
        )


def smol_tool(agentkit_tool):
    """A smolagents Tool that calls an agentkit Tool (same name, description and argument schema)."""
    schema = agentkit_tool.parameters
    required = set(schema.get("required", []))
    inputs = {}
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type")
        kind = kind if isinstance(kind, str) and kind in _JSON_TYPES else "any"
        inputs[name] = {"type": kind, "description": spec.get("description") or name}
        if name not in required:
            inputs[name]["nullable"] = True

    def forward(self, **arguments):
        arguments = {k: v for k, v in arguments.items() if v is not None}
        return str(agentkit_tool(**arguments))

    cls = type(
        f"Peer_{agentkit_tool.name}", (Tool,),
        {"name": agentkit_tool.name, "description": agentkit_tool.description or agentkit_tool.name, "inputs": inputs,
         "output_type": "string", "forward": forward, "skip_forward_signature_validation": True},
    )
    return cls()


def run_task(model, task: Task, builtins, url: str, max_steps: int) -> dict:
    started = time.perf_counter()
    agent = ToolCallingAgent(tools=[smol_tool(t) for t in tools_for(task, builtins)], model=model, max_steps=max_steps,
                             verbosity_level=-1)
    row = {"id": task.id, "kind": task.kind, "solved": False, "answer": None, "error": None}
    try:
        row["answer"] = agent.run(question_for(task, url))
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
    row["steps"] = len(steps)
    row["invalid"] = sum(1 for s in steps if s.error is not None and "Parsing" in type(s.error).__name__)
    row["errors"] = sum(1 for s in steps if s.error is not None)
    # Calls as the model wrote them (parsed into the step's message), not only those that ran: a call
    # of an unknown tool or with bad arguments is still a call (the no-tool tasks count them).
    row["calls"] = sum(
        1 for s in steps for c in (getattr(s.model_output_message, "tool_calls", None) or []) if c.function.name != "final_answer"
    )
    row["trace"] = [str(s.model_output)[:300] for s in steps]
    # Out of steps, smolagents asks the model once more for an answer from the history, without tools;
    # agentkit stops with MaxStepsExceeded and no answer. Scored alike: out of steps is unsolved.
    row["max_steps_reached"] = any(type(s.error).__name__ == "AgentMaxStepsError" for s in steps)
    row["solved"] = row["answer"] is not None and not row["max_steps_reached"] and solved(task, row["answer"])
    if task.kind == "no tool":
        row["solved"] = row["solved"] and row["calls"] == 0
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="reference model name or a .gguf file")
    parser.add_argument("--only", default=None)
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--decoder", choices=("llama.cpp", "transformers"), default="llama.cpp",
                        help="llama.cpp on the GGUF (LlamaCppModel) or smolagents' TransformersModel on its fp32 conversion")
    args = parser.parse_args()
    from _models import model_path
    from weather_service import start

    gguf = model_path(args.model)
    if args.decoder == "llama.cpp":
        model: Model = LlamaCppModel(gguf, args.max_new_tokens)
    else:
        from smolagents import TransformersModel

        from agentkit.engine.loading import cached_conversion

        folder = cached_conversion(gguf)  # the dequantised GGUF, as agentkit's torch engine loads it
        model = TransformersModel(model_id=str(folder), device_map="cpu", torch_dtype="float32",
                                  max_new_tokens=args.max_new_tokens, do_sample=False)
    tasks = [t for t in TASKS if not args.only or t.id in args.only.split(",")]
    url, _, stop = start()
    rows = []
    try:
        builtins = builtin_tools(url)
        for task in tasks:
            row = run_task(model, task, builtins, url, args.max_steps)
            rows.append(row)
            print(f"{'✓' if row['solved'] else '✗'} {task.id:<14} steps {row['steps']} calls {row['calls']} invalid {row['invalid']} "
                  f"{row['seconds']:5.1f} s  {str(row['answer'])[:70]!r} {row['error'] or ''}", flush=True)
    finally:
        stop()
    summary = {"library": f"smolagents {smolagents.__version__} ({args.decoder} decoding)", "model": gguf.name,
               "date": time.strftime("%Y-%m-%d"), "tasks": len(rows), "solved": sum(r["solved"] for r in rows),
               "steps": sum(r["steps"] for r in rows), "invalid": sum(r["invalid"] for r in rows),
               "seconds": round(sum(r["seconds"] for r in rows), 1)}
    print(f"\n| {summary['library']} | {summary['model']} | {summary['solved']}/{summary['tasks']} | {summary['steps']} | "
          f"{summary['invalid']} | {summary['seconds']} |")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
