"""Load on `agentkit serve`: N concurrent tool-call requests over loopback HTTP.

Starts `agentkit serve` as its own process (the embedded SmolLM2 by default, or `--model PATH`),
sends `--requests` chat completions with `tool_choice: required` all at once, and reports: how many
came back, how many tool calls parsed and matched the schema, latency p50/p99 and throughput.
The run is bounded (each request has a timeout) and ends by itself.

    .venv/bin/python benchmarks/bench_serve.py [--requests 64] [--model PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "convert_currency", "description": "Convert an amount between currencies.",
     "parameters": {"type": "object", "properties": {"amount": {"type": "number"}, "to": {"type": "string", "enum": ["EUR", "USD", "JPY"]}},
                    "required": ["amount", "to"]}}},
]
QUESTIONS = ["What's the weather in Paris?", "Convert 120 dollars to euros.", "Is it raining in Tokyo?", "How much is 50 EUR in yen?"]


def start_server(model: str | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    agentkit = Path(sys.executable).parent / "agentkit"
    command = [str(agentkit)] if agentkit.exists() else [sys.executable, "-m", "agentkit.cli"]
    process = subprocess.Popen([*command, "serve", "--port", str(port), *(["--model", model] if model else [])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def valid(call: dict) -> bool:
    arguments = json.loads(call["function"]["arguments"])
    if call["function"]["name"] == "get_weather":
        return isinstance(arguments.get("city"), str)
    return isinstance(arguments.get("amount"), (int, float)) and arguments.get("to") in ("EUR", "USD", "JPY")


async def load(url: str, requests: int, timeout: float) -> tuple[list[float], int, int, int, float]:
    async def one(client: httpx.AsyncClient, i: int) -> tuple[float, dict | None]:
        started = time.perf_counter()
        body = {"messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], "tools": TOOLS,
                "tool_choice": "required", "temperature": 0.7, "seed": i}
        try:
            response = await client.post("/v1/chat/completions", json=body)
            return time.perf_counter() - started, response.json() if response.status_code == 200 else None
        except httpx.HTTPError:
            return time.perf_counter() - started, None

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=requests)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        results = await asyncio.gather(*(one(client, i) for i in range(requests)))
    wall = time.perf_counter() - started
    answered = [r for _, r in results if r is not None]
    replies = [r["choices"][0]["message"].get("tool_calls") or [] for r in answered]
    all_valid = sum(1 for calls in replies if calls and all(valid(c) for c in calls))
    tokens = sum(r["usage"]["completion_tokens"] for r in answered)
    return [t for t, _ in results], len(answered), all_valid, tokens, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--model", default=None, help="model folder or GGUF (default: the embedded SmolLM2)")
    parser.add_argument("--timeout", type=float, default=600.0, help="per request, seconds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    process, url = start_server(args.model)
    try:
        asyncio.run(load(url, 2, args.timeout))  # warm-up: grammar compiled, prefix cached
        latencies, answered, valid_calls, tokens, wall = asyncio.run(load(url, args.requests, args.timeout))
    finally:
        process.terminate()
        process.wait(timeout=30)
    ordered = sorted(latencies)
    figures = {
        "date": datetime.date.today().isoformat(),
        "device": f"CPU {platform.machine()} (server process), loopback HTTP",
        "model": args.model or "SmolLM2-135M-Instruct (embedded)",
        "requests": args.requests,
        "answered": answered,
        "replies_with_only_valid_calls": valid_calls,
        "p50_latency_s": ordered[len(ordered) // 2],
        "p99_latency_s": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "wall_s": wall,
        "requests_per_s": answered / wall,
        "completion_tok_s": tokens / wall,
    }
    for key, value in figures.items():
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
