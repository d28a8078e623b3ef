"""Fuzz `agentkit serve` over real HTTP: every malformed body of the security tests' table, each followed by a valid request.

Prints how many bodies got each status, the number of 5xx answers and of hung connections (a
request with no answer within `--timeout` seconds), and whether every valid request after a bad one
was still answered. The server is `agentkit.server.create_app` under uvicorn on loopback, in front of
a test backend that answers at once: the subject is the HTTP layer, which refuses a bad request
before any generation.

    .venv/bin/python benchmarks/fuzz_serve.py
"""

from __future__ import annotations

import argparse
import collections
import datetime
import importlib.util
import json
import platform
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _attack_table():
    spec = importlib.util.spec_from_file_location("serve_attacks", ROOT / "tests" / "security" / "test_serve_attacks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as hung")
    args = parser.parse_args()
    attacks = _attack_table()
    statuses: collections.Counter[int] = collections.Counter()
    hung = valid_failed = 0
    started = time.perf_counter()
    with attacks.serving() as served, httpx.Client(base_url=served.url, timeout=args.timeout) as http:
        for body in attacks.MALFORMED:
            try:
                statuses[attacks._post(http, body).status_code] += 1
            except httpx.TimeoutException:
                hung += 1
            try:
                valid_failed += attacks._post(http, attacks.VALID).status_code != 200
            except httpx.TimeoutException:
                valid_failed += 1
    figures = {
        "date": datetime.date.today().isoformat(),
        "device": f"CPU {platform.machine()}, loopback HTTP (uvicorn)",
        "malformed_bodies": len(attacks.MALFORMED),
        "statuses": dict(sorted(statuses.items())),
        "5xx": sum(n for status, n in statuses.items() if status >= 500),
        "hung": hung,
        "valid_requests_after_a_bad_one_that_failed": valid_failed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
