"""Weather desk: the agent calls a real HTTP weather service through the `http_get` tool.

The example starts the service (examples/weather_service.py) on loopback and gives the agent the
http tool allowlisted to exactly that host (127.0.0.1; the tool does not restrict ports). Loopback
addresses are refused by default (they are how SSRF reaches internal services), so the example
allows 127.0.0.1 explicitly; any other host or private address stays refused.

Run it (after `make demo` has installed everything):
    .venv/bin/python examples/weather_desk.py "What's the weather in Tokyo?"

Output on 2026-11-24 (2 CPU cores, model cached):
    loading the embedded model (the first run converts its GGUF once, about 20 s)...
    loaded SmolLM2-135M-Instruct in 2.3 s
    task: What's the weather in Tokyo?
    step 1 (46 tokens, 2.1 s): {"calls": [{"name": "http_get", "arguments": {"url": "http://127.0.0.1:32985/weather?city=Tokyo"}}]}
      -> http_get: HTTP 200 OK
    URL: http://127.0.0.1:32985/weather?city=Tokyo
    Content-Type: application/json

    {"city": "Tokyo", "temperature_c": 24, "conditions": "cloudy"}
    step 2 (18 tokens, 0.7 s): {"final_answer": "Tokyo: 24°C, cloudy."}
    answer: Tokyo: 24°C, cloudy.
    total 2.8 s
    the service received: ['/weather?city=Tokyo']
"""

from __future__ import annotations

from agentkit import Agent, Example, ExampleCall
from agentkit.engine import LocalEngine
from agentkit.tools import http_tools

INSTRUCTIONS = "You answer weather questions. Get the weather from {url}/weather?city=NAME, then answer with the temperature and conditions."


def build_agent(engine: LocalEngine, service_url: str) -> Agent:
    """The desk: http_get allowlisted to the service's host, and two worked examples using its URL."""
    tools = http_tools(allowed_hosts=["127.0.0.1"], allow_private=["127.0.0.1"], timeout_seconds=5)
    examples = [
        Example(
            task="What's the weather in Lima?",
            calls=[ExampleCall(name="http_get", arguments={"url": f"{service_url}/weather?city=Lima"},
                               result=(f'HTTP 200 OK\nURL: {service_url}/weather?city=Lima\nContent-Type: application/json\n\n'
                                       '{"city": "Lima", "temperature_c": 21, "conditions": "foggy"}'))],
            answer="Lima: 21°C, foggy.",
        ),
        Example(
            task="Is it cold in Oslo?",
            calls=[ExampleCall(name="http_get", arguments={"url": f"{service_url}/weather?city=Oslo"},
                               result=(f'HTTP 200 OK\nURL: {service_url}/weather?city=Oslo\nContent-Type: application/json\n\n'
                                       '{"city": "Oslo", "temperature_c": -3, "conditions": "snow"}'))],
            answer="Oslo: -3°C, snow.",
        ),
    ]
    return Agent(engine, tools=tools, instructions=INSTRUCTIONS.format(url=service_url), examples=examples, max_steps=4)


def main(question: str) -> None:
    from _show import load_engine, show_run
    from weather_service import start

    url, requested, stop = start()
    try:
        show_run(build_agent(load_engine(), url), question)
        print(f"the service received: {requested}")
    finally:
        stop()


if __name__ == "__main__":
    from _show import question

    main(question("What's the weather in Tokyo?"))
