"""The weather desk example on the embedded model: a real HTTP call to the loopback service."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from agentkit import ToolCall

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def service():
    url, requested, stop = load("weather_service").start()
    yield url, requested
    stop()


@pytest.mark.slow
@pytest.mark.parametrize(("city", "answer"), [("Tokyo", "24°C, cloudy"), ("Paris", "18°C, sunny")])
def test_calls_the_service_and_answers(smollm2, service, city, answer):
    url, requested = service
    result = load("weather_desk").build_agent(smollm2, url).run(f"What's the weather in {city}?")
    calls = [c for s in result.steps for c in s.calls]
    assert [c.name for c in calls] == ["http_get"] and calls[0].arguments["url"] == f"{url}/weather?city={city}"
    assert requested == [f"/weather?city={city}"]  # the service really got the request
    assert answer in str(result.output)


def test_other_hosts_are_refused(service):
    from agentkit.testing import ScriptedBackend

    url, requested = service
    agent = load("weather_desk").build_agent(ScriptedBackend([]), url)
    for target in ["http://10.0.0.1/weather?city=Paris", "http://169.254.169.254/latest/meta-data/", "http://example.com/"]:
        observation = agent.registry.run(ToolCall(id="1", name="http_get", arguments={"url": target}))
        assert observation.is_error, target
    assert requested == []
