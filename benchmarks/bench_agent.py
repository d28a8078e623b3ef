"""A 10-step agent conversation, side by side: agentkit's engine vs a naive HF + outlines loop.

Measured in one run, step by step, on one scripted conversation whose context grows:
- system prompt: agentkit's real system prompt for four tools plus reference notes, padded to exactly
  `--system-tokens` content tokens (checked with the tokenizer), then one user task;
- each of `--steps` steps: the model writes one step (at most `--step-tokens` tokens) under the step
  JSON schema (`StepFormat(ToolRegistry(TOOLS)).grammar_schema()`), greedy; the reply is appended as
  an assistant message, then a scripted tool observation of exactly `--observation-tokens` content
  tokens as a `tool` message.
Both contestants see the same conversation: the assistant message appended each step is the text
agentkit generated (what a real agentkit loop would feed back); the naive loop's own reply is timed,
compared and then discarded. Contestants, sharing one model object and the same conversation text
(agentkit splices in its own reply tokens, the naive loop re-tokenises the text, so the
context columns differ by a few tokens per step):
1. agentkit: one `LocalEngine` for all steps (prefix KV reuse + grammar jump-forward), greedy.
2. naive: `model.generate` with outlines' JSON-schema logits processor (outlines_core backend by
   default), a fresh call per step with no KV cache kept: every step re-prefills the whole context.
Latency is the wall time of a whole call (templating, tokenising, prefill, decode). Untimed, first:
outlines' grammar build, and one warm-up call each on an unrelated prompt (outlines' first call runs
torch.compile of its mask kernel; agentkit's prefix cache is then cleared: step 1 prefills everything).

Run (CPU, embedded SmolLM2-135M-Instruct, fp32; about 2 minutes on 2 cores, ~40 s of it untimed setup):
    .venv/bin/python benchmarks/bench_agent.py [--steps 10] [--system-tokens 600] [--observation-tokens 200]
        [--step-tokens 64] [--threads 2] [--json results.json]
GPU-sized: `--device cuda --dtype bfloat16 --random-8b --system-tokens 1500 --observation-tokens 650`
(too long for SmolLM2's 8k window) uses random weights in the Llama-3.1-8B shape (32 layers, 4096 wide,
GQA 32/8, 128k positions) with SmolLM2's 49k vocabulary, ~7.5B parameters. TODO: that path has only
been smoke-tested on CPU (`--random-layers 1`), never run on a GPU; run it and record the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path
from typing import Literal

import torch

from agentkit import GenerationRequest, JsonSchemaConstraint, Message, StepFormat, ToolRegistry, tool
from agentkit.engine import LocalEngine
from agentkit.engine.chat import render_prompt
from agentkit.prompting import system_prompt
from agentkit.tools import calculator


@tool
def search_logs(query: str, limit: int = 5) -> list[str]:
    """Search the export service's logs; returns matching lines, newest first."""
    return []


@tool
def read_file(path: str) -> str:
    """Read a configuration or source file from the export host."""
    return ""


@tool
def get_metric(name: str, hours: int = 24, unit: Literal["count", "seconds", "bytes"] = "count") -> list[float]:
    """Hourly values of a metric over the last `hours` hours."""
    return []


TOOLS = [search_logs, read_file, get_metric, calculator]
INSTRUCTIONS = "You are an on-call assistant for the nightly export service. Use the tools to find facts."
TASK = "The nightly export failed last night. Find the cause with the tools, then answer in one sentence."
REFERENCE = [
    "The nightly export job copies the orders table to the warehouse bucket at 02:00 UTC.",
    "It runs in three stages, snapshot, transform and upload, each with its own retry budget.",
    "A stage that fails three times marks the run as failed and pages the on-call engineer.",
    "Snapshots older than seven days are deleted by the retention sweep at 04:00 UTC.",
    "The transform stage converts amounts to euros with the exchange rates of the previous day.",
    "Uploads use multipart transfers of 64 MiB parts; a part that times out is retried alone.",
    "Disk usage on the export host must stay under 80 percent or the snapshot stage will not start.",
    "Metrics are exported every minute: export_rows_total, export_seconds and export_failures_total.",
]


def fit(tokenizer, head: str, words: list[str], target: int) -> str:
    """`head` + the first words of `words` (+ " a" fillers), exactly `target` tokens long (no template)."""
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    if count(head) > target:
        raise SystemExit(f"cannot build a {target}-token text: its fixed part alone has {count(head)} tokens")
    lo, hi = 0, len(words)  # the largest k with count(head + k words) <= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(head + " ".join(words[:mid])) <= target else (lo, mid - 1)
    text = head + " ".join(words[:lo])
    while count(text) < target:
        text += " a"
    assert count(text) == target, (count(text), target)
    return text


def system_message(tokenizer, registry: ToolRegistry, step_format: StepFormat, target: int) -> Message:
    head = system_prompt(INSTRUCTIONS, registry, step_format) + "\n\nReference notes:\n"
    words = " ".join(f"({i + 1}) {REFERENCE[i % len(REFERENCE)]}" for i in range(target)).split()
    return Message(role="system", content=fit(tokenizer, head, words, target))


def observation(tokenizer, step: int, target: int) -> Message:
    name = TOOLS[(step - 1) % len(TOOLS)].name
    lines = [
        f"02:{step:02d}:{i % 60:02d} export-worker stage={('snapshot', 'transform', 'upload')[i % 3]} part={i} "
        f"status={'timeout' if (i * step) % 7 == 3 else 'ok'} bytes={(i * 7919 + step * 104729) % 67108864}"
        for i in range(target)
    ]
    return Message(role="tool", name=name, content=fit(tokenizer, f"{name} output:\n", " ".join(lines).split(" "), target))


def random_8b(tokenizer, device: str, dtype: torch.dtype, layers: int, **options) -> LocalEngine:
    """Random weights in the Llama-3.1-8B shape over `tokenizer`'s vocabulary, built on `device`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=4096, intermediate_size=14336, num_hidden_layers=layers,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in `dtype` on `device`: no fp32 copy of 8B weights on the host
    with torch.device(device):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(default_dtype)
    # ~128 KB of KV per token: raise the prefix cache's budget so a 9k-token conversation stays cached.
    options.setdefault("kv_cache_bytes", 16 << 30)
    return LocalEngine.from_model(model, tokenizer, name=f"random Llama-3.1-8B shape, {layers} layers", **options)


class NaiveLoop:
    """HF `generate` + outlines' JSON-schema logits processor; a fresh call (and KV cache) per step."""

    def __init__(self, engine: LocalEngine, schema: dict, backend: str, whitespace: str | None) -> None:
        import outlines
        from outlines.backends import get_json_schema_logits_processor

        self.engine = engine
        started = time.perf_counter()
        self.processor = get_json_schema_logits_processor(
            backend, outlines.from_transformers(engine.model, engine.tokenizer), json.dumps(schema), whitespace
        )
        self.build_seconds = time.perf_counter() - started

    def step(self, messages: list[Message], max_tokens: int) -> dict:
        from transformers import LogitsProcessorList

        engine, eos = self.engine, sorted(self.engine.eos_ids)
        started = time.perf_counter()
        ids = engine.tokenizer(render_prompt(engine.tokenizer, messages), add_special_tokens=False)["input_ids"]
        self.processor.reset()
        with torch.inference_mode():
            out = engine.model.generate(
                torch.tensor([ids], device=engine.device), attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=engine.device),
                logits_processor=LogitsProcessorList([self.processor]), max_new_tokens=max_tokens, do_sample=False,
                eos_token_id=eos, pad_token_id=eos[0],
            )
        new = out[0, len(ids):].tolist()  # one forward pass per new token, the end token included
        text = engine.tokenizer.decode([t for t in new if t not in engine.eos_ids], skip_special_tokens=False)
        return {"seconds": time.perf_counter() - started, "context": len(ids), "prefill": len(ids),
                "tokens": sum(t not in engine.eos_ids for t in new), "passes": len(new), "text": text}


def agentkit_step(engine: LocalEngine, messages: list[Message], schema: dict, max_tokens: int) -> dict:
    started = time.perf_counter()
    gen = engine.generate(GenerationRequest(messages=messages, constraint=JsonSchemaConstraint(json_schema=schema), max_tokens=max_tokens))
    d = gen.details
    return {"seconds": time.perf_counter() - started, "context": gen.prompt_tokens, "prefill": d["prefill_tokens"],
            "reused": d["reused_tokens"], "tokens": gen.completion_tokens, "passes": d["forward_passes"],
            "jump_forward": d["jump_forward_tokens"], "prefill_seconds": d["prefill_seconds"],
            "decode_seconds": d["decode_seconds"], "text": gen.text}


def same_step(a: str, b: str) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return a.strip() == b.strip()


REPLAY = """
import json, sys
sys.path.insert(0, sys.argv[2])
from bench_agent import agentkit_step
from agentkit import Message
from agentkit.engine import GGUFEngine
job = json.load(open(sys.argv[1]))
engine = GGUFEngine.default(threads=job["threads"])
agentkit_step(engine, [Message(role="user", content="Warm-up: what is 2 + 2?")], job["schema"], job["step_tokens"])
engine.llama.reset()  # step 1 must not find the warm-up in the cache
rows = [agentkit_step(engine, [Message(**m) for m in messages], job["schema"], job["step_tokens"]) for messages in job["conversations"]]
print(json.dumps(rows))
"""


def llama_cpp_replay(args: argparse.Namespace, conversations: list[list[Message]], schema: dict) -> list[dict] | None:
    """The same conversation, step by step, on the llama.cpp engine (the embedded GGUF), in a child process.

    A child: once torch has run in a process, its OpenMP threads slow llama.cpp's kernels there
    (measured 3x). None for --random-8b, off CPU, or without llama-cpp-python.
    """
    import subprocess
    import tempfile

    from agentkit.engine.local import llama_cpp_installed

    if args.random_8b or args.device != "cpu" or not llama_cpp_installed():
        return None
    job = {"threads": args.threads, "schema": schema, "step_tokens": args.step_tokens,
           "conversations": [[m.model_dump(include={"role", "content"}) for m in c] for c in conversations]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    out = subprocess.run([sys.executable, "-c", REPLAY, f.name, str(Path(__file__).resolve().parent)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def environment(args: argparse.Namespace, engine: LocalEngine) -> dict:
    from importlib.metadata import version

    if engine.device.type == "cuda":
        device = f"{torch.cuda.get_device_name(engine.device)} ({args.dtype or 'bfloat16'})"
    else:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), platform.machine())
        device = f"CPU {cpu}, {torch.get_num_threads()} torch threads ({args.dtype or 'float32'})"
    packages = ["agentkit", "torch", "transformers", "outlines", "outlines_core", "llguidance"]
    versions = {"python": platform.python_version(), **{name: version(name) for name in packages}}
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "device": device, "model": engine.name, "versions": versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--system-tokens", type=int, default=600, help="system message content tokens (exact)")
    parser.add_argument("--observation-tokens", type=int, default=200, help="tokens of each tool observation (exact)")
    parser.add_argument("--step-tokens", type=int, default=64, help="max tokens of one generated step")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default), bfloat16 (CUDA default), float16")
    parser.add_argument("--random-8b", action="store_true", help="random-weight Llama-3.1-8B shape instead of SmolLM2")
    parser.add_argument("--random-layers", type=int, default=32, help="layers of --random-8b (fewer: smoke test)")
    parser.add_argument("--tokenizer", help="tokenizer folder for --random-8b (default: the embedded SmolLM2's)")
    parser.add_argument("--outlines-backend", default="outlines_core", choices=["outlines_core", "llguidance"])
    parser.add_argument("--whitespace", default=r"[ ]?", help="outlines_core whitespace pattern ('default': its own)")
    parser.add_argument("--no-compile", action="store_true", help="torch._dynamo.config.disable = True (outlines' kernel runs eagerly)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.no_compile:
        torch._dynamo.config.disable = True
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    started = time.perf_counter()
    if args.random_8b:
        from transformers import AutoTokenizer

        from agentkit.engine.loading import cached_conversion, embedded_gguf_path, torch_dtype

        # The GPU machine gets SmolLM2's tokenizer files (--tokenizer), not the embedded model package.
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or str(cached_conversion(embedded_gguf_path())))
        engine = random_8b(tokenizer, args.device, torch_dtype(args.dtype, args.device), args.random_layers)
    else:
        engine = LocalEngine.default(device=args.device, dtype=args.dtype, backend="torch")
    load_seconds = time.perf_counter() - started
    registry = ToolRegistry(TOOLS)
    schema = StepFormat(registry).grammar_schema()
    tok = engine.tokenizer
    messages = [system_message(tok, registry, StepFormat(registry), args.system_tokens), Message(role="user", content=TASK)]
    worst = engine.count_tokens(messages) + args.steps * (args.observation_tokens + args.step_tokens + 12) + args.step_tokens
    if engine.context_window and worst > engine.context_window:
        raise SystemExit(f"the conversation may reach {worst} tokens, over {engine.name}'s {engine.context_window}: "
                         "use fewer --steps or tokens, or --random-8b (128k positions)")

    # outlines_core alone takes a whitespace pattern; "[ ]?" comes closest to agentkit's `", "` / `": "` JSON.
    whitespace = args.whitespace if args.outlines_backend == "outlines_core" and args.whitespace != "default" else None
    naive = NaiveLoop(engine, schema, args.outlines_backend, whitespace)
    warm = [Message(role="user", content="Warm-up: what is 2 + 2?")]
    agentkit_warm = agentkit_step(engine, warm, schema, args.step_tokens)["seconds"]
    engine.prefix_cache.clear()  # step 1 must not find the warm-up in the cache
    naive_warm = naive.step(warm, args.step_tokens)["seconds"]
    conversations: list[list[Message]] = []  # each step's prompt, replayed on the llama.cpp engine afterwards

    rows = []
    for step in range(1, args.steps + 1):
        sync()
        a = agentkit_step(engine, messages, schema, args.step_tokens)
        sync()
        n = naive.step(messages, args.step_tokens)
        sync()
        # Same conversation text; the token counts differ a little because agentkit keeps the model's own
        # reply tokens (sampled and grammar-forced) where the naive loop re-tokenises the reply text.
        assert abs(a["context"] - n["context"]) <= 0.05 * n["context"], "both contestants must read the same conversation"
        rows.append({"step": step, "agentkit": a, "naive": n, "same_output": same_step(a["text"], n["text"])})
        conversations.append(list(messages))
        messages += [Message(role="assistant", content=a["text"]), observation(tok, step, args.observation_tokens)]

    gguf_rows = llama_cpp_replay(args, conversations, schema)
    for row, g in zip(rows, gguf_rows or []):
        row["llama_cpp"] = g
    gguf = gguf_rows is not None
    env = environment(args, engine)
    print(f"bench_agent  {env['date']}  {env['device']}  model: {env['model']}")
    print("  " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    print(f"  conversation: system {args.system_tokens} tok + task, {args.steps} steps of <= {args.step_tokens} tok, "
          f"observations {args.observation_tokens} tok; history = agentkit's replies; greedy")
    print(f"  naive: HF generate + outlines {args.outlines_backend} JSON-schema processor (whitespace {whitespace or 'default'!r}), "
          f"torch.compile {'disabled' if args.no_compile else 'on'}")
    print(f"  untimed: model load {load_seconds:.1f} s, outlines grammar build {naive.build_seconds:.1f} s, "
          f"warm-up call outlines {naive_warm:.1f} s ({'no' if args.no_compile else 'runs'} torch.compile) / agentkit {agentkit_warm:.1f} s")
    print()
    print(f"{'':5}{'':>7} | {'agentkit':^46} | {'naive HF + outlines':^31} |")
    print(f"{'step':>5}{'context':>8}| {'prefill':>7} {'reused':>6} {'tokens':>6} {'passes':>6} {'jumpfw':>6} {'latency':>9} "
          f"| {'prefill':>7} {'tokens':>6} {'passes':>6} {'latency':>8} | {'ratio':>6} same")
    for r in rows:
        a, n = r["agentkit"], r["naive"]
        print(f"{r['step']:>5}{a['context']:>8}| {a['prefill']:>7} {a['reused']:>6} {a['tokens']:>6} {a['passes']:>6} "
              f"{a['jump_forward']:>6} {a['seconds']:>8.2f}s | {n['prefill']:>7} {n['tokens']:>6} {n['passes']:>6} "
              f"{n['seconds']:>7.2f}s | {n['seconds'] / a['seconds']:>5.1f}x {'yes' if r['same_output'] else 'no'}")
    total = {side: {k: sum(r[side][k] for r in rows) for k in ("seconds", "prefill", "tokens", "passes")} for side in ("agentkit", "naive")}
    total["agentkit"].update({k: sum(r["agentkit"][k] for r in rows) for k in ("reused", "jump_forward", "prefill_seconds", "decode_seconds")})
    a, n = total["agentkit"], total["naive"]
    print(f"{'total':>5}{'':>8}| {a['prefill']:>7} {a['reused']:>6} {a['tokens']:>6} {a['passes']:>6} {a['jump_forward']:>6} "
          f"{a['seconds']:>8.2f}s | {n['prefill']:>7} {n['tokens']:>6} {n['passes']:>6} {n['seconds']:>7.2f}s | "
          f"{n['seconds'] / a['seconds']:>5.1f}x {sum(r['same_output'] for r in rows)}/{len(rows)}")
    ratios = {"latency_naive_over_agentkit": n["seconds"] / a["seconds"],
              "prefill_tokens_naive_over_agentkit": n["prefill"] / a["prefill"],
              "forward_passes_naive_over_agentkit": n["passes"] / a["passes"],
              "agentkit_tokens_per_forward_pass": a["tokens"] / a["passes"]}
    print()
    print(f"naive / agentkit: latency {ratios['latency_naive_over_agentkit']:.2f}x, prefill tokens "
          f"{ratios['prefill_tokens_naive_over_agentkit']:.1f}x, forward passes {ratios['forward_passes_naive_over_agentkit']:.2f}x")
    print(f"agentkit: {a['tokens']} tokens from {a['passes']} forward passes ({len(rows)} of them prefills): "
          f"{ratios['agentkit_tokens_per_forward_pass']:.2f} tokens a pass, {a['jump_forward']} jump-forward tokens; "
          f"time prefill {a['prefill_seconds']:.2f} s, decode {a['decode_seconds']:.2f} s")
    if gguf:
        g = {k: sum(r["llama_cpp"][k] for r in rows) for k in ("seconds", "prefill", "tokens", "passes")}
        ratios["latency_torch_over_llama_cpp_engine"] = a["seconds"] / g["seconds"]
        total["llama_cpp"] = g
        same = sum(same_step(r["llama_cpp"]["text"], r["agentkit"]["text"]) for r in rows)
        per_step = ", ".join(f"{r['llama_cpp']['seconds']:.2f}" for r in rows)
        print(f"agentkit on the llama.cpp engine (same GGUF, same conversation): {g['seconds']:.2f} s for {len(rows)} steps "
              f"({per_step}); torch engine {a['seconds']:.2f} s: "
              f"{ratios['latency_torch_over_llama_cpp_engine']:.1f}x faster; same step as the torch engine {same}/{len(rows)}")
    print("columns: context = prompt tokens of the step; prefill = prompt tokens run through the model; "
          "passes = forward passes (agentkit: prefill included; naive: one per new token, end token included); "
          "ratio = naive/agentkit latency; same = both wrote the same JSON")
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "json"}
        args.json.write_text(json.dumps({**env, "config": config, "untimed_seconds": {
            "model_load": load_seconds, "outlines_grammar_build": naive.build_seconds, "outlines_warmup": naive_warm,
            "agentkit_warmup": agentkit_warm}, "steps": rows, "totals": total, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
