"""A tiny real HTTP weather service for the weather desk example (fixed data, JSON, stdlib only).

    GET /weather?city=Paris  ->  {"city": "Paris", "temperature_c": 18, "conditions": "sunny"}

Run it alone with `.venv/bin/python examples/weather_service.py [PORT]`.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

WEATHER = {
    "paris": {"city": "Paris", "temperature_c": 18, "conditions": "sunny"},
    "london": {"city": "London", "temperature_c": 12, "conditions": "rain"},
    "tokyo": {"city": "Tokyo", "temperature_c": 24, "conditions": "cloudy"},
    "berlin": {"city": "Berlin", "temperature_c": 9, "conditions": "windy"},
    "cairo": {"city": "Cairo", "temperature_c": 33, "conditions": "clear"},
}


def start(port: int = 0) -> tuple[str, list[str], Callable[[], None]]:
    """Serve on 127.0.0.1 in a background thread: (base URL, the paths requested so far, stop)."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            url = urlparse(self.path)
            city = (parse_qs(url.query).get("city") or [""])[0].strip().lower()
            found = WEATHER.get(city) if url.path == "/weather" else None
            body = json.dumps(found or {"error": f"no weather for {city!r}; known cities: {', '.join(sorted(WEATHER))}"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}", requested, stop


if __name__ == "__main__":
    url, _, _ = start(int(sys.argv[1]) if len(sys.argv) > 1 else 8077)
    print(f"weather service on {url}/weather?city=Paris (Ctrl-C stops)")
    threading.Event().wait()
