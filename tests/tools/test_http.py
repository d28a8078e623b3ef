"""The HTTP tools against a real HTTP server on loopback (explicitly allowed): what they return, and
every limit (size, time, redirects, hosts, POST) enforced with a clear error."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agentkit import ToolCall, ToolRegistry
from agentkit.tools.http import (
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    HttpRefusedError,
    HttpToolError,
    http_tools,
)

LOOPBACK = ["127.0.0.1/32"]


class _Handler(BaseHTTPRequestHandler):
    """Routes: /echo, /latin1, /utf8?n=, /big?n=, /gzip-bomb, /binary, /slow, /drip, /redirect?to=&code=,
    /loop?n=, /status?code=. Every request is recorded in server.requests."""

    def _record(self, body: bytes) -> tuple[str, dict]:
        parts = urlsplit(self.path)
        self.server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.do_GET(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def do_GET(self, body: bytes = b"") -> None:
        path, query = self._record(body)
        if path == "/echo":
            echo = {"method": self.command, "path": self.path, "query": query, "host": self.headers["Host"],
                    "content_type": self.headers.get("Content-Type"), "body": body.decode()}
            self._send(200, json.dumps(echo).encode(), "application/json")
        elif path == "/latin1":
            self._send(200, "café crème".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif path == "/utf8":
            self._send(200, ("é" * int(query["n"])).encode(), "text/plain; charset=utf-8")
        elif path == "/big":
            self._send(200, b"a" * int(query["n"]))
        elif path == "/gzip-bomb":  # 50 MB of zeros in about 50 kB
            self._send(200, gzip.compress(b"0" * 50_000_000), "text/plain", Content_Encoding="gzip")
        elif path == "/binary":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\x00SECRET" * 100, "image/png")
        elif path == "/slow":
            self.server.release.wait(10)
            self._send(200, b"late")
        elif path == "/drip":  # one byte every 0.1 s: each read is quick, the whole is not
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(50):  # 5 s in all, so a client without the deadline fails instead of hanging
                if self.server.release.wait(0.1):
                    break
                self.wfile.write(b"x")
        elif path == "/redirect":
            self._send(int(query.get("code", 302)), b"", Location=query["to"])
        elif path == "/loop":
            self._send(302, b"", Location=f"/loop?n={int(query['n']) + 1}")
        elif path == "/status":
            self._send(int(query["code"]), b"nope")
        else:
            self._send(404, b"unknown route")

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # the client hanging up early (truncation, timeouts) is expected here


@pytest.fixture
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.requests, srv.release = [], threading.Event()
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_address[1]}{path}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def _get(**options):
    options.setdefault("allowed_hosts", ["127.0.0.1"])
    options.setdefault("allow_private", LOOPBACK)
    return http_tools(**options)[0]


def test_defaults_are_the_documented_ones():
    assert (DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT_SECONDS, DEFAULT_MAX_REDIRECTS) == (1_000_000, 10.0, 3)
    [get] = http_tools(allowed_hosts=["example.com"])
    assert get.timeout == DEFAULT_TIMEOUT_SECONDS + 2
    assert "example.com" in get.description


def test_get_with_params_merges_the_query(server):
    result = _get()(url=server.url("/echo?a=1"), params={"b": "two words", "n": 3})
    head, body = result.split("\n\n", 1)
    assert head.startswith("HTTP 200 OK\n") and "Content-Type: application/json" in head
    echo = json.loads(body)
    assert echo["method"] == "GET" and echo["query"] == {"a": "1", "b": "two words", "n": "3"}
    assert echo["host"] == f"127.0.0.1:{server.server_address[1]}"
    assert len(server.requests) == 1


def test_post_sends_json_when_enabled(server):
    _, post = http_tools(allowed_hosts=["127.0.0.1"], allow_private=LOOPBACK, allow_post=True)
    echo = json.loads(post(url=server.url("/echo"), body={"city": "Zürich", "n": [1, 2]}).split("\n\n", 1)[1])
    assert echo["method"] == "POST" and echo["content_type"] == "application/json"
    assert json.loads(echo["body"]) == {"city": "Zürich", "n": [1, 2]}


def test_post_is_not_offered_unless_enabled(server):
    tools = http_tools(allowed_hosts=["127.0.0.1"], allow_private=LOOPBACK)
    assert [t.name for t in tools] == ["http_get"]
    observation = ToolRegistry(tools).run(ToolCall(id="1", name="http_post", arguments={"url": server.url("/echo"), "body": {}}))
    assert observation.is_error and observation.error_type == "unknown_tool"
    assert server.requests == []


def test_post_body_over_the_limit_is_refused(server):
    post = http_tools(allowed_hosts=["127.0.0.1"], allow_private=LOOPBACK, allow_post=True, max_request_bytes=100)[1]
    with pytest.raises(HttpRefusedError, match="JSON body has .* bytes; the limit is 100"):
        post(url=server.url("/echo"), body={"text": "x" * 200})
    assert server.requests == []


def test_303_after_post_becomes_get_without_body(server):
    post = http_tools(allowed_hosts=["127.0.0.1"], allow_private=LOOPBACK, allow_post=True)[1]
    result = post(url=server.url("/redirect?code=303&to=/echo"), body={"a": 1})
    echo = json.loads(result.split("\n\n", 1)[1])
    assert echo["method"] == "GET" and echo["body"] == ""
    assert "(after 1 redirect)" in result


def test_charset_from_content_type_is_used(server):
    assert _get()(url=server.url("/latin1")).endswith("\n\ncafé crème")


def test_truncation_at_max_bytes_is_noted_and_never_splits_a_character(server):
    result = _get(max_response_bytes=101)(url=server.url("/utf8?n=1000"))  # "é" is 2 bytes
    body, note = result.split("\n\n", 1)[1].rsplit("\n", 1)
    assert body == "é" * 50 and "\ufffd" not in body
    assert note == "[truncated: the body is longer than 101 bytes; only the first 101 are shown]"


def test_body_exactly_at_the_limit_is_not_truncated(server):
    result = _get(max_response_bytes=500)(url=server.url("/big?n=500"))
    assert result.endswith("\n\n" + "a" * 500)


def test_gzip_bomb_is_inflated_only_up_to_the_limit(server):
    started = time.monotonic()
    result = _get(max_response_bytes=1000)(url=server.url("/gzip-bomb"))
    assert result.split("\n\n", 1)[1].startswith("0" * 1000 + "\n[truncated")
    assert time.monotonic() - started < 5


def test_binary_content_is_summarised_not_shown(server):
    result = _get()(url=server.url("/binary"))
    assert "[binary content (image/png, 708 bytes) not shown" in result
    assert "SECRET" not in result and "PNG" not in result


def test_error_status_is_returned_as_text(server):
    assert _get()(url=server.url("/status?code=404")).startswith("HTTP 404 Not Found\n")


def test_slow_server_times_out_with_a_clear_error_within_the_limit(server):
    started = time.monotonic()
    with pytest.raises(HttpToolError, match=r"did not answer within 0\.5 s \(timeout_seconds\)"):
        _get(timeout_seconds=0.5)(url=server.url("/slow"))
    assert time.monotonic() - started < 1.5


def test_trickling_server_is_stopped_by_the_overall_deadline(server):
    started = time.monotonic()  # every read succeeds within the read timeout; only the deadline stops it
    with pytest.raises(HttpToolError, match=r"did not finish sending within 0\.6 s"):
        _get(timeout_seconds=0.6)(url=server.url("/drip"))
    assert time.monotonic() - started < 1.5


def test_redirect_within_the_allowlist_is_followed(server):
    result = _get()(url=server.url("/redirect?to=/echo%3Fhop%3D1"))
    assert result.startswith("HTTP 200 OK\n") and "(after 1 redirect)" in result
    assert json.loads(result.split("\n\n", 1)[1])["query"] == {"hop": "1"}
    assert [r["path"] for r in server.requests] == ["/redirect?to=/echo%3Fhop%3D1", "/echo?hop=1"]


def test_too_many_redirects_are_refused(server):
    with pytest.raises(HttpRefusedError, match="Too many redirects.*limit is 2"):
        _get(max_redirects=2)(url=server.url("/loop?n=0"))
    assert [r["path"] for r in server.requests] == ["/loop?n=0", "/loop?n=1", "/loop?n=2"]


def test_zero_redirects_allowed(server):
    with pytest.raises(HttpRefusedError, match="Too many redirects"):
        _get(max_redirects=0)(url=server.url("/loop?n=0"))
    assert len(server.requests) == 1


def test_host_not_in_allowlist_is_refused_naming_allowed_hosts(server):
    get = _get(allowed_hosts=["api.example.com", "*.docs.example.org"])
    with pytest.raises(HttpRefusedError, match=r"'127\.0\.0\.1' is not in allowed_hosts \(\*\.docs\.example\.org, api\.example\.com\)"):
        get(url=server.url("/echo"))
    assert server.requests == []


@pytest.fixture
def fake_dns(monkeypatch):
    """Names in the returned dict resolve to the listed addresses; every other name goes to the real resolver."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in table:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in table[name]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize(
    ("entry", "host", "allowed"),
    [
        pytest.param("api.example.com", "API.Example.COM.", True, id="case-and-trailing-dot"),
        pytest.param("API.example.com.", "api.example.com", True, id="entry-normalised"),
        pytest.param("*.example.com", "a.b.example.com", True, id="wildcard-subdomain"),
        pytest.param("*.example.com", "example.com", False, id="wildcard-not-apex"),
        pytest.param("*.example.com", "badexample.com", False, id="wildcard-suffix-trick"),
        pytest.param("*.example.com", "example.com.evil.test", False, id="wildcard-prefix-trick"),
        pytest.param("api.example.com", "api.example.com.evil.test", False, id="exact-prefix-trick"),
        pytest.param("bücher.example", "xn--bcher-kva.example", True, id="idna-entry"),
        pytest.param("xn--bcher-kva.example", "BÜCHER.example", True, id="idna-url"),
    ],
)
def test_allowlist_matching(server, fake_dns, entry, host, allowed):
    fake_dns[host.lower().rstrip(".").encode("idna").decode()] = ["127.0.0.1"]
    get = _get(allowed_hosts=[entry])
    url = f"http://{host}:{server.server_address[1]}/echo"
    if allowed:
        assert get(url=url).startswith("HTTP 200 OK")
        assert len(server.requests) == 1
    else:
        with pytest.raises(HttpRefusedError, match="not in allowed_hosts"):
            get(url=url)
        assert server.requests == []


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"allowed_hosts": []}, id="empty-allowlist"),
        pytest.param({"allowed_hosts": "example.com"}, id="allowlist-is-a-string"),
        pytest.param({"allowed_hosts": ["https://example.com/"]}, id="url-not-host"),
        pytest.param({"allowed_hosts": ["example.com:8080"]}, id="host-with-port"),
        pytest.param({"allowed_hosts": ["*"]}, id="bare-wildcard"),
        pytest.param({"allowed_hosts": ["*.10.0.0.1"]}, id="wildcard-address"),
        pytest.param({"allowed_hosts": ["example.com"], "allow_private": ["intranet"]}, id="private-not-a-network"),
        pytest.param({"allowed_hosts": ["example.com"], "allow_private": "10.0.0.0/8"}, id="private-is-a-string"),
        pytest.param({"allowed_hosts": ["example.com"], "max_response_bytes": 0}, id="zero-bytes"),
        pytest.param({"allowed_hosts": ["example.com"], "timeout_seconds": 0}, id="zero-timeout"),
        pytest.param({"allowed_hosts": ["example.com"], "max_redirects": -1}, id="negative-redirects"),
    ],
)
def test_bad_configuration_fails_at_construction(options):
    with pytest.raises(ValueError):
        http_tools(**options)


def test_injected_client_must_be_an_httpx_client():
    with pytest.raises(TypeError, match="httpx.Client"):
        http_tools(allowed_hosts=["example.com"], client=httpx.AsyncClient())


def test_through_the_registry_success_and_refusal(server):
    registry = ToolRegistry(http_tools(allowed_hosts=["127.0.0.1"], allow_private=LOOPBACK))
    ok = registry.run(ToolCall(id="1", name="http_get", arguments={"url": server.url("/echo"), "params": {"q": "x"}}))
    assert not ok.is_error and ok.content.startswith("HTTP 200 OK")
    refused = registry.run(ToolCall(id="2", name="http_get", arguments={"url": "http://169.254.169.254/latest/meta-data/"}))
    assert refused.is_error and refused.error_type == "exception"
    assert "HttpRefusedError" in refused.content and "allowed_hosts (127.0.0.1)" in refused.content
    bad = registry.run(ToolCall(id="3", name="http_get", arguments={"url": "not a url at all"}))
    assert bad.is_error and "http and https" in bad.content
    assert len(server.requests) == 1


def test_environment_proxy_is_ignored(server, monkeypatch):
    proxy = _Server(("127.0.0.1", 0), _Handler)
    proxy.requests, proxy.release = [], threading.Event()
    threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True).start()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert _get()(url=server.url("/echo")).startswith("HTTP 200 OK")
        assert len(server.requests) == 1 and proxy.requests == []
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 whose certificate names only 'secure.test' (no IP), recording the SNI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key), "-out",
         str(cert), "-subj", "/CN=secure.test", "-addext", "subjectAltName=DNS:secure.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.requests, srv.release, srv.sni = [], threading.Event(), []
    context.sni_callback = lambda sock, name, ctx: srv.sni.append(name)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    srv.cert = cert
    yield srv
    srv.shutdown()
    srv.server_close()


def test_https_pins_the_address_but_verifies_the_certificate_for_the_name(tls_server, fake_dns):
    fake_dns["secure.test"] = ["127.0.0.1"]
    client = httpx.Client(verify=ssl.create_default_context(cafile=str(tls_server.cert)), trust_env=False)
    get = _get(allowed_hosts=["secure.test"], client=client)
    port = tls_server.server_address[1]
    echo = json.loads(get(url=f"https://secure.test:{port}/echo").split("\n\n", 1)[1])
    assert echo["host"] == f"secure.test:{port}"
    assert tls_server.sni == ["secure.test"]


def test_https_certificate_for_another_name_is_rejected(tls_server, fake_dns):
    fake_dns["other.test"] = ["127.0.0.1"]
    client = httpx.Client(verify=ssl.create_default_context(cafile=str(tls_server.cert)), trust_env=False)
    get = _get(allowed_hosts=["other.test"], client=client)
    with pytest.raises(HttpToolError, match="Cannot connect to other.test.*(certificate|hostname)"):
        get(url=f"https://other.test:{tls_server.server_address[1]}/echo")
    assert tls_server.requests == []
