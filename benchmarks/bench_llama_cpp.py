"""agentkit's llama.cpp engine against llama.cpp itself (and the torch engine), side by side in one run.

On the same GGUF, same threads, alternating contestants:
1. Unconstrained decode tok/s: `GGUFEngine` vs llama-cpp-python's own `Llama.generate` (greedy) vs the
   torch engine (fp32 conversion). Decode only: from the first sampled token to the last.
2. Constrained agent steps: the math assistant's real step schema. agentkit (llguidance mask +
   jump-forward) vs llama.cpp's own JSON-schema grammar (`LlamaGrammar.from_json_schema`, GBNF
   sampler) on the same prompt, greedy; each contestant's prompt prefix already in its KV cache.
   Tokens are counted the same way for both: the HF tokenizer's count of the reply text.
3. Grammar overhead: agentkit's mask time per decode pass against the pass's time.
4. Loading (a child process each): first load, second load (cached tokenizer), peak RSS against the
   file size.

Run: `.venv/bin/python benchmarks/bench_llama_cpp.py [--model qwen2.5-coder-1.5b] [--tokens 128] [--rounds 3]`
(default model: the embedded SmolLM2 Q4_1; `make llama-cpp` builds the binding, `make models` the
reference models). `--no-torch` skips the torch engine's row (slow for the 1.5B model).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _models import model_path  # noqa: E402

from agentkit import GenerationRequest, JsonSchemaConstraint, Message  # noqa: E402

PROMPT = "Write a detailed story about a lighthouse keeper who finds a message in a bottle."
QUESTIONS = ["What is 17 * 23?", "What is 45 + 78?", "How much is 1200 / 16?", "Compute 2 to the power of 10."]


def gguf_file(name: str | None) -> Path:
    from agentkit.engine.loading import embedded_gguf_path

    return embedded_gguf_path() if name is None else Path(model_path(name))


def llama_cpp_reference(path: Path, threads: int, context: int):
    """llama-cpp-python's high-level `Llama`: what a user of the binding runs."""
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=context, n_threads=threads, n_threads_batch=threads, verbose=False)  # flash attention off, as ours


def reference_decode(llm, prompt_ids: list[int], tokens: int) -> float:
    """Decode tok/s of `Llama.generate` (greedy): time from the first yielded token to the last."""
    llm.reset()
    times = []
    for n, _ in enumerate(llm.generate(prompt_ids, top_k=1, temp=0.0, reset=True)):
        times.append(time.perf_counter())
        if n + 1 >= tokens:
            break
    return (len(times) - 1) / (times[-1] - times[0])


def ours_decode(engine, prompt_ids_messages: list[Message], tokens: int) -> float:
    saved, engine.eos_ids = engine.eos_ids, set()  # always `tokens` tokens, like the reference
    try:
        generation = engine.generate(GenerationRequest(messages=prompt_ids_messages, max_tokens=tokens))
    finally:
        engine.eos_ids = saved
    d = generation.details
    # The first token comes from the prefill's logits: decode = tokens - 1 passes after it.
    first = d["decode_seconds"] / max(generation.completion_tokens, 1)
    return (generation.completion_tokens - 1) / max(d["decode_seconds"] - first, 1e-9)


def constrained_steps(engine, llm, schema: dict, rounds: int) -> dict:
    """Per question: agentkit's step vs llama.cpp's GBNF-constrained completion of the same prompt."""
    from llama_cpp import LlamaGrammar
    from math_assistant import build_agent

    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    tok = engine.tokenizer
    rows = []
    for question in QUESTIONS:
        messages = build_agent(engine).first_messages(question)
        request = GenerationRequest(messages=messages, constraint=JsonSchemaConstraint(json_schema=schema), max_tokens=96)
        prompt_text = engine.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages], tokenize=False, add_generation_prompt=True
        )
        engine.generate(request)  # warm: the prompt's KV is cached for both contestants
        llm.create_completion(prompt_text, max_tokens=1, temperature=0.0)
        ours, theirs = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            g = engine.generate(request)
            ours.append((time.perf_counter() - started, g))
            started = time.perf_counter()
            out = llm.create_completion(prompt_text, grammar=grammar, max_tokens=96, temperature=0.0)
            theirs.append((time.perf_counter() - started, out["choices"][0]["text"]))
        ours_s = statistics.median(s for s, _ in ours)
        theirs_s = statistics.median(s for s, _ in theirs)
        g = ours[0][1]
        text = theirs[0][1]
        ours_tokens = len(tok(g.text, add_special_tokens=False)["input_ids"])
        theirs_tokens = len(tok(text, add_special_tokens=False)["input_ids"])
        rows.append({
            "question": question, "agentkit_seconds": ours_s, "agentkit_tokens": ours_tokens, "agentkit_text": g.text,
            "agentkit_passes": g.details["forward_passes"], "mask_seconds": g.details["mask_seconds"],
            "decode_seconds": g.details["decode_seconds"], "llama_cpp_seconds": theirs_s, "llama_cpp_tokens": theirs_tokens,
            "llama_cpp_text": text,
        })
    return {"rows": rows}


LOAD_CHILD = """
import json, resource, sys, time
started = time.perf_counter()
from agentkit.engine import GGUFEngine
from agentkit import GenerationRequest, Message
engine = GGUFEngine(sys.argv[1])
loaded = time.perf_counter() - started
engine.generate(GenerationRequest(messages=[Message(role="user", content="Count to twenty.")], max_tokens=32))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
# An agent-sized step: a ~750-token prompt, a reply, and two replies scored (call pruning's work).
step = GenerationRequest(messages=[Message(role="user", content="Trains and travel policies. " * 110 + "Summarise.")], max_tokens=48)
engine.generate(step)
engine.score(step, ["A summary of the travel policy for trains, in one line. " * 4, "No."])
working = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"load_seconds": loaded, "peak_rss_bytes": peak, "working_peak_rss_bytes": working, "torch_imported": "torch" in sys.modules}))
"""


TORCH_CHILD = """
import json, statistics, sys
sys.path.insert(0, sys.argv[4])
import torch
torch.set_num_threads(int(sys.argv[2]))
from bench_llama_cpp import PROMPT, ours_decode
from agentkit import Message
from agentkit.engine import LocalEngine
engine = LocalEngine.from_pretrained(sys.argv[1], backend="torch")
messages = [Message(role="user", content=PROMPT)]
ours_decode(engine, messages, 8)
print(json.dumps(statistics.median(ours_decode(engine, messages, int(sys.argv[3])) for _ in range(int(sys.argv[5])))))
"""


def torch_decode_in_child(path: Path, threads: int, tokens: int, rounds: int) -> float:
    args = [sys.executable, "-c", TORCH_CHILD, str(path), str(threads), str(tokens), str(ROOT / "benchmarks"), str(rounds)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def load_in_child(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a .gguf file or a reference model name (default: the embedded SmolLM2)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per unconstrained decode")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement (median)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch engine's decode row")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--load-only", action="store_true", help="only the loading figures (4.)")
    args = parser.parse_args()

    from agentkit.engine import GGUFEngine
    from agentkit.engine.llama_context import default_threads

    threads = args.threads or default_threads()
    path = gguf_file(args.model)
    first_load = load_in_child(path)  # a cold tokenizer cache only on the very first run of this file
    second_load = load_in_child(path)
    size = path.stat().st_size
    if args.load_only:
        print(f"{path.name}: {json.dumps({'first_load': first_load, 'second_load': second_load})}")
        print_load(first_load, second_load, size)
        return
    engine = GGUFEngine(path, threads=threads)
    llm = llama_cpp_reference(path, threads, engine.context_window)
    messages = [Message(role="user", content=PROMPT)]
    prompt_ids = engine._prompt_ids(messages)

    decode: dict[str, list[float]] = {"agentkit_llama_cpp": [], "llama_cpp": []}
    ours_decode(engine, messages, 8)  # warm-ups
    reference_decode(llm, prompt_ids, 8)
    for _ in range(args.rounds):
        decode["agentkit_llama_cpp"].append(ours_decode(engine, messages, args.tokens))
        decode["llama_cpp"].append(reference_decode(llm, prompt_ids, args.tokens))
    rates = {k: statistics.median(v) for k, v in decode.items() if v}
    if not args.no_torch:
        # In a child process: torch's OpenMP threads and llama.cpp's contend for the same 2 cores
        # (in one process both rows ran ~3x slower).
        rates["agentkit_torch"] = torch_decode_in_child(path, threads, args.tokens, args.rounds)

    from agentkit.formats import StepFormat
    from agentkit.registry import ToolRegistry
    from agentkit.tools import calculator

    schema = StepFormat(ToolRegistry([calculator])).grammar_schema()
    steps = constrained_steps(engine, llm, schema, args.rounds)
    rows = steps["rows"]
    ours_rate = sum(r["agentkit_tokens"] for r in rows) / sum(r["agentkit_seconds"] for r in rows)
    theirs_rate = sum(r["llama_cpp_tokens"] for r in rows) / sum(r["llama_cpp_seconds"] for r in rows)
    mask_per_pass = sum(r["mask_seconds"] for r in rows) / sum(r["agentkit_passes"] for r in rows)
    pass_seconds = sum(r["decode_seconds"] for r in rows) / sum(r["agentkit_passes"] for r in rows)

    from importlib.metadata import version

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), platform.machine())
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "device": f"CPU {cpu}, {threads} threads",
        "model": path.name, "file_bytes": size,
        "versions": {"python": platform.python_version(), "llama-cpp-python": version("llama-cpp-python"), "llguidance": version("llguidance")},
        "decode_tokens_per_second": rates, "constrained": rows,
        "constrained_tokens_per_second": {"agentkit": ours_rate, "llama_cpp_gbnf": theirs_rate},
        "mask_seconds_per_pass": mask_per_pass, "decode_seconds_per_pass": pass_seconds,
        "first_load": first_load, "second_load": second_load,
    }
    print(f"bench_llama_cpp  {report['date']}  {report['device']}  model {path.name} ({size / 1e6:.0f} MB)")
    print("  " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"unconstrained decode, {args.tokens} tokens, median of {args.rounds}:")
    for name, rate in rates.items():
        print(f"  {name:<20} {rate:7.1f} tok/s  ({rate / rates['llama_cpp']:.2f}x llama.cpp)")
    print("constrained agent steps (math assistant step schema, greedy, prompt cached):")
    for r in rows:
        print(f"  {r['question']:<32} agentkit {r['agentkit_tokens']:>3} tok {r['agentkit_seconds']:.3f}s | "
              f"llama.cpp GBNF {r['llama_cpp_tokens']:>3} tok {r['llama_cpp_seconds']:.3f}s | "
              f"{r['llama_cpp_seconds'] / r['agentkit_seconds']:.2f}x  same={json_equal(r['agentkit_text'], r['llama_cpp_text'])}")
    print(f"  effective: agentkit {ours_rate:.1f} tok/s, llama.cpp GBNF {theirs_rate:.1f} tok/s: {ours_rate / theirs_rate:.2f}x")
    print(f"grammar mask: {mask_per_pass * 1e3:.3f} ms per pass, {100 * mask_per_pass / pass_seconds:.1f}% of a decode pass "
          f"({pass_seconds * 1e3:.2f} ms)")
    print_load(first_load, second_load, size)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def print_load(first: dict, second: dict, size: int) -> None:
    print(f"load: first {first['load_seconds']:.2f} s, second {second['load_seconds']:.2f} s (torch imported: "
          f"{second['torch_imported']}); peak RSS after a short reply {second['peak_rss_bytes'] / 1e6:.0f} MB = "
          f"{second['peak_rss_bytes'] / size:.2f}x the file, after an agent-sized step and scoring "
          f"{second['working_peak_rss_bytes'] / 1e6:.0f} MB = {second['working_peak_rss_bytes'] / size:.2f}x")


def json_equal(a: str, b: str) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
