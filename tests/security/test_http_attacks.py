"""SSRF attacks on the HTTP tools: a steered model asks for internal addresses in every disguise.

Each attack must be refused (HttpRefusedError) before anything is sent: the loopback server counts the
requests it gets and a spy on `socket.create_connection` records every connection attempt (and refuses
any that is not to loopback, so nothing leaves this machine). Where the host is an IP literal, the
allowlist contains that very literal, so the address check, not the allowlist, is what refuses it. The
controls at the end show the same URLs do reach the server once the address is explicitly allowed, so
each attack test fails if its check goes away.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agentkit import ToolCall, ToolRegistry, tool
from agentkit.tools.http import HttpRefusedError, HttpToolError, http_tools

LOOPBACK = ["127.0.0.1/32"]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        query = parse_qs(urlsplit(self.path).query)
        status, headers = (302, {"Location": query["to"][0]}) if "to" in query else (200, {})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def _start(host: str) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer((host, 0), _Handler)
    srv.daemon_threads, srv.requests, srv.port = True, [], srv.server_address[1]
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    return srv


def _stop(srv: ThreadingHTTPServer) -> None:
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def target():
    """The loopback server an attacker wants to reach."""
    srv = _start("127.0.0.1")
    yield srv
    _stop(srv)


@pytest.fixture
def victim():
    """A second internal server, on 127.0.0.2, that redirects try to reach."""
    try:
        srv = _start("127.0.0.2")
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 on this system")
    yield srv
    _stop(srv)


class _FakeDns:
    """Names in `table` resolve to the listed addresses (or what a callable returns); others are real."""

    def __init__(self) -> None:
        self.table: dict[str, object] = {}
        self.calls: list[str] = []
        self.real = socket.getaddrinfo

    def __call__(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.table:
            return self.real(host, port, *args, **kwargs)
        self.calls.append(name)
        entry = self.table[name]
        addresses = entry() if callable(entry) else entry
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)) if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in addresses
        ]


@pytest.fixture
def fake_dns(monkeypatch):
    dns = _FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    return dns


@pytest.fixture
def connects(monkeypatch):
    """Every (host, port) a connection is attempted to; anything but loopback is refused, not sent out."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection

    def create_connection(address, *args, **kwargs):
        seen.append((address[0], address[1]))
        if not address[0].startswith("127."):
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused by the test's connect spy")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


@pytest.fixture(params=["built-in-client", "injected-client"])
def make_get(request):
    """http_get with the built-in client, or with an injected one that follows redirects and trusts the
    environment: the checks must hold either way."""
    clients = []

    def make(**options):
        if request.param == "injected-client":
            clients.append(httpx.Client(follow_redirects=True, trust_env=True))
            options["client"] = clients[-1]
        return http_tools(**options)[0]

    yield make
    for client in clients:
        client.close()


ATTACKS = [
    # (url, allowed_hosts, fake DNS answers, what the refusal must say)
    pytest.param("http://127.0.0.1:{port}/", ["127.0.0.1"], {}, "127.0.0.1 is loopback", id="loopback-ipv4"),
    pytest.param("http://127.0.0.2:{port}/", ["127.0.0.2"], {}, "127.0.0.2 is loopback", id="loopback-127-8"),
    pytest.param("http://localhost:{port}/", ["localhost"], {}, "is loopback", id="localhost"),
    pytest.param("http://LocalHost.:{port}/", ["localhost"], {}, "is loopback", id="localhost-case-trailing-dot"),
    pytest.param("http://[::1]:{port}/", ["::1"], {}, "::1 is loopback", id="loopback-ipv6"),
    pytest.param("http://0.0.0.0:{port}/", ["0.0.0.0"], {}, "0.0.0.0 is unspecified", id="unspecified"),
    pytest.param("http://0:{port}/", ["0"], {}, "0.0.0.0 is unspecified", id="unspecified-short"),
    pytest.param("http://[::]:{port}/", ["::"], {}, ":: is unspecified", id="unspecified-ipv6"),
    pytest.param("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"], {}, "cloud metadata", id="metadata"),
    pytest.param("http://metadata.google.internal/computeMetadata/v1/", ["metadata.google.internal"],
                 {"metadata.google.internal": ["169.254.169.254"]}, "169.254.169.254 is a cloud metadata", id="metadata-name"),
    pytest.param("http://[fd00:ec2::254]/", ["fd00:ec2::254"], {}, "cloud metadata", id="metadata-ipv6"),
    pytest.param("http://169.254.1.1/", ["169.254.1.1"], {}, "link-local", id="link-local"),
    pytest.param("http://2130706433:{port}/", ["2130706433"], {}, "127.0.0.1 is loopback", id="decimal"),
    pytest.param("http://0x7f000001:{port}/", ["0x7f000001"], {}, "127.0.0.1 is loopback", id="hex"),
    pytest.param("http://0x7f.0.0.1:{port}/", ["0x7f.0.0.1"], {}, "127.0.0.1 is loopback", id="hex-dotted"),
    pytest.param("http://0177.0.0.1:{port}/", ["0177.0.0.1"], {}, "not a valid URL", id="octal"),
    pytest.param("http://0177.1:{port}/", ["0177.1"], {}, "127.0.0.1 is loopback", id="octal-short"),
    pytest.param("http://127.1:{port}/", ["127.1"], {}, "127.0.0.1 is loopback", id="short"),
    pytest.param("http://[::ffff:127.0.0.1]:{port}/", ["::ffff:127.0.0.1"], {}, "is loopback", id="ipv4-mapped"),
    pytest.param("http://[::ffff:a9fe:a9fe]/", ["::ffff:a9fe:a9fe"], {}, "cloud metadata", id="ipv4-mapped-metadata-hex"),
    pytest.param("http://[2002:7f00:1::]:{port}/", ["2002:7f00:1::"], {}, "embeds 127.0.0.1", id="6to4-loopback"),
    pytest.param("http://[64:ff9b::7f00:1]:{port}/", ["64:ff9b::7f00:1"], {}, "is refused", id="nat64-loopback"),
    pytest.param("http://10.0.0.1/", ["10.0.0.1"], {}, "10.0.0.1 is private", id="rfc1918-10"),
    pytest.param("http://172.16.0.1/", ["172.16.0.1"], {}, "172.16.0.1 is private", id="rfc1918-172"),
    pytest.param("http://192.168.1.1/", ["192.168.1.1"], {}, "192.168.1.1 is private", id="rfc1918-192"),
    pytest.param("http://100.64.0.1/", ["100.64.0.1"], {}, "carrier-grade NAT", id="cgnat"),
    pytest.param("http://[fd00::1]/", ["fd00::1"], {}, "fd00::1 is private", id="ula-ipv6"),
    pytest.param("http://[fe80::1]/", ["fe80::1"], {}, "fe80::1 is link-local", id="link-local-ipv6"),
    pytest.param("http://224.0.0.1/", ["224.0.0.1"], {}, "multicast", id="multicast"),
    pytest.param("http://255.255.255.255/", ["255.255.255.255"], {}, "is refused", id="broadcast"),
    pytest.param("file:///etc/passwd", ["127.0.0.1"], {}, "Only http and https URLs are allowed, not 'file'", id="file-scheme"),
    pytest.param("gopher://127.0.0.1:{port}/_GET%20/", ["127.0.0.1"], {}, "not 'gopher'", id="gopher-scheme"),
    pytest.param("ftp://127.0.0.1:{port}/", ["127.0.0.1"], {}, "not 'ftp'", id="ftp-scheme"),
    pytest.param("//127.0.0.1:{port}/", ["127.0.0.1"], {}, "Only http and https", id="scheme-relative"),
    pytest.param("http://allowed.example@127.0.0.1:{port}/", ["allowed.example", "127.0.0.1"], {}, "user name or password",
                 id="userinfo"),
    pytest.param("http://127.0.0.1:{port}\\@allowed.example/", ["allowed.example"], {"allowed.example": ["93.184.216.34"]},
                 "user name or password", id="userinfo-backslash"),
    pytest.param("http://evil.test:{port}/", ["evil.test"], {"evil.test": ["127.0.0.1"]}, "127.0.0.1 is loopback", id="dns-to-loopback"),
    pytest.param("http://evil6.test:{port}/", ["evil6.test"], {"evil6.test": ["::ffff:127.0.0.1"]}, "is loopback",
                 id="dns-to-mapped-loopback"),
    pytest.param("http://mixed.test:{port}/", ["mixed.test"], {"mixed.test": ["93.184.216.34", "127.0.0.1"]},
                 "127.0.0.1 is loopback", id="dns-public-then-private"),
    pytest.param("http://mixed.test:{port}/", ["mixed.test"], {"mixed.test": ["10.0.0.7", "93.184.216.34"]},
                 "10.0.0.7 is private", id="dns-private-then-public"),
    pytest.param("http://intranet.example.com/", ["*.example.com"], {"intranet.example.com": ["10.1.2.3"]}, "10.1.2.3 is private",
                 id="wildcard-name-to-private"),
    pytest.param("http://127.0.0.1:{port}/", ["localhost"], {}, "not in allowed_hosts (localhost)", id="not-allowlisted"),
]


@pytest.mark.parametrize(("url", "allowed_hosts", "dns", "refusal"), ATTACKS)
def test_attack_is_refused_before_any_connection(make_get, target, fake_dns, connects, url, allowed_hosts, dns, refusal):
    fake_dns.table.update(dns)
    get = make_get(allowed_hosts=allowed_hosts)
    with pytest.raises(HttpRefusedError) as refused:
        get(url=url.format(port=target.port))
    assert refusal in str(refused.value)
    assert target.requests == []
    assert connects == []


REDIRECTS = [
    # (where the allowed front server redirects to, extra allowed_hosts, fake DNS, what the refusal must say)
    pytest.param("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"], {}, "cloud metadata", id="to-metadata"),
    pytest.param("http://127.0.0.2:{victim}/", ["127.0.0.2"], {}, "127.0.0.2 is loopback", id="to-refused-address"),
    pytest.param("http://127.0.0.1:{target}/other", [], {}, "not in allowed_hosts", id="to-other-port-not-allowlisted"),
    pytest.param("http://2130706434:{victim}/", ["2130706434"], {}, "127.0.0.2 is loopback", id="to-decimal-ip"),
    pytest.param("http://inside.test:{victim}/", ["inside.test"], {"inside.test": ["127.0.0.2"]}, "127.0.0.2 is loopback",
                 id="to-name-resolving-to-loopback"),
    pytest.param("http://front.test@127.0.0.2:{victim}/", ["127.0.0.2"], {}, "user name or password", id="to-userinfo"),
    pytest.param("file:///etc/passwd", [], {}, "not 'file'", id="to-file-scheme"),
    pytest.param("gopher://127.0.0.2:{victim}/_x", ["127.0.0.2"], {}, "not 'gopher'", id="to-gopher-scheme"),
]


@pytest.mark.parametrize(("location", "extra_hosts", "dns", "refusal"), REDIRECTS)
def test_redirect_to_a_refused_target_is_refused(make_get, target, victim, fake_dns, connects, location, extra_hosts, dns, refusal):
    # The front server is explicitly allowed (name front.test, address 127.0.0.1) and answers 302.
    fake_dns.table.update({"front.test": ["127.0.0.1"], **dns})
    get = make_get(allowed_hosts=["front.test", *extra_hosts], allow_private=LOOPBACK)
    to = location.format(victim=victim.port, target=target.port)
    with pytest.raises(HttpRefusedError) as refused:
        get(url=f"http://front.test:{target.port}/start", params={"to": to})
    assert refusal in str(refused.value)
    assert len(target.requests) == 1 and target.requests[0].startswith("/start?")
    assert victim.requests == []
    assert connects == [("127.0.0.1", target.port)]


def test_dns_rebinding_cannot_move_the_connection_after_the_check(make_get, target, fake_dns, connects):
    # First answer: the allowed address. Any later lookup would answer the metadata address.
    answers = iter([["127.0.0.1"]])
    fake_dns.table["rebind.test"] = lambda: next(answers, ["169.254.169.254"])
    get = make_get(allowed_hosts=["rebind.test"], allow_private=LOOPBACK)
    assert get(url=f"http://rebind.test:{target.port}/").startswith("HTTP 200 OK")
    assert fake_dns.calls == ["rebind.test"]
    assert connects == [("127.0.0.1", target.port)] and target.requests == ["/"]


def test_dns_rebinding_to_loopback_after_a_public_answer_connects_to_the_public_address(make_get, target, fake_dns, connects):
    # A resolver that answers public first and loopback afterwards: a client that resolved again at
    # connect time would reach the loopback server. The spy refuses the public address (no network).
    answers = iter([["93.184.216.34"]])
    fake_dns.table["rebind.test"] = lambda: next(answers, ["127.0.0.1"])
    get = make_get(allowed_hosts=["rebind.test"])
    with pytest.raises(HttpToolError, match="Cannot connect to rebind.test"):
        get(url=f"http://rebind.test:{target.port}/")
    assert fake_dns.calls == ["rebind.test"]
    assert connects == [("93.184.216.34", target.port)] and target.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.1", "127.1", "127.0.0.1.", "evil.test"])
def test_control_the_same_urls_reach_the_server_when_explicitly_allowed(make_get, target, fake_dns, connects, host):
    fake_dns.table["evil.test"] = ["127.0.0.1"]
    get = make_get(allowed_hosts=[host], allow_private=LOOPBACK)
    assert get(url=f"http://{host}:{target.port}/").startswith("HTTP 200 OK")
    assert target.requests == ["/"] and connects == [("127.0.0.1", target.port)]


def test_control_redirect_to_an_allowed_target_is_followed(make_get, target, victim, fake_dns, connects):
    fake_dns.table["front.test"] = ["127.0.0.1"]
    get = make_get(allowed_hosts=["front.test", "127.0.0.2"], allow_private=["127.0.0.0/8"])
    result = get(url=f"http://front.test:{target.port}/start", params={"to": f"http://127.0.0.2:{victim.port}/x"})
    assert result.startswith("HTTP 200 OK") and victim.requests == ["/x"]
    assert connects == [("127.0.0.1", target.port), ("127.0.0.2", victim.port)]


def test_allow_private_true_still_refuses_metadata_and_unspecified(target, connects):
    [get] = http_tools(allowed_hosts=["127.0.0.1", "169.254.169.254", "0.0.0.0"], allow_private=True)
    assert get(url=f"http://127.0.0.1:{target.port}/").startswith("HTTP 200 OK")
    for url, kind in [("http://169.254.169.254/", "cloud metadata"), (f"http://0.0.0.0:{target.port}/", "unspecified")]:
        with pytest.raises(HttpRefusedError, match=kind):
            get(url=url)
    assert target.requests == ["/"] and connects == [("127.0.0.1", target.port)]


def test_metadata_is_reachable_only_when_listed_explicitly(connects):
    [get] = http_tools(allowed_hosts=["169.254.169.254"], allow_private=["169.254.169.254"])
    with pytest.raises(HttpToolError, match="Cannot connect"):  # passed the check; the spy refuses the connect
        get(url="http://169.254.169.254/latest/meta-data/")
    assert connects == [("169.254.169.254", 80)]


def test_refusal_through_the_registry_is_an_error_observation(target, connects):
    registry = ToolRegistry(http_tools(allowed_hosts=["127.0.0.1"]))
    observation = registry.run(ToolCall(id="1", name="http_get", arguments={"url": f"http://127.0.0.1:{target.port}/"}))
    assert observation.is_error and "127.0.0.1 is loopback" in observation.content
    assert target.requests == [] and connects == []


# -- a server that never finishes its headers (slowloris, from the server's side) ----------------


class _Trickler:
    """A raw-socket HTTP server that answers with a status line, then one header line every `interval`
    seconds and never the blank line that ends the headers. Every read the client makes succeeds well
    within any read timeout; only a deadline for the whole call can stop it. `hangups` records when each
    client closed its connection (the server notices at its next line)."""

    def __init__(self, interval: float, lines: int = 60) -> None:
        self.interval, self.lines = interval, lines
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stop, self.hangups, self.requests = threading.Event(), [], 0
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            self.requests += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            conn.settimeout(self.interval)
            for number in range(self.lines):
                try:
                    if conn.recv(1) == b"":  # the client closed its side
                        break
                except TimeoutError:
                    pass  # still connected: send the next line
                except OSError:
                    break
                if self.stop.is_set():
                    return
                try:
                    conn.sendall(f"X-Trickle-{number}: {'a' * 20}\r\n".encode())
                except OSError:
                    break
            self.hangups.append(time.monotonic())

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def trickler():
    srv = _Trickler(interval=0.1)
    yield srv
    srv.close()


@pytest.mark.parametrize("injected", [False, True], ids=["built-in-client", "injected-client"])
def test_trickled_headers_end_at_the_deadline_and_the_connection_is_closed(trickler, injected):
    client = httpx.Client(trust_env=False) if injected else None
    get = http_tools(allowed_hosts=["127.0.0.1"], allow_private=LOOPBACK, timeout_seconds=0.5, client=client)[0]
    started = time.monotonic()
    with pytest.raises(HttpToolError, match=r"did not answer within 0\.5 s \(timeout_seconds\)"):
        get(url=trickler.url())
    assert time.monotonic() - started < 0.9, "the trickle kept the call alive past its deadline"
    waited = time.monotonic() + 1
    while not trickler.hangups and time.monotonic() < waited:
        time.sleep(0.02)
    assert trickler.hangups and trickler.hangups[0] - started < 1.0, "the connection stayed open after the call"


def test_ten_trickled_calls_leave_no_thread_behind_and_do_not_delay_other_tools(trickler):
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    [get] = http_tools(allowed_hosts=["127.0.0.1"], allow_private=LOOPBACK, timeout_seconds=0.4)
    registry = ToolRegistry([get, add])
    calls = [ToolCall(id=str(i), name="http_get", arguments={"url": trickler.url(f"/{i}")}) for i in range(10)]
    calls.append(ToolCall(id="add", name="add", arguments={"a": 1, "b": 2}))
    started = time.monotonic()
    observations = asyncio.run(registry.arun_all(calls))
    assert time.monotonic() - started < 1.5
    assert all(o.error_type == "exception" and "did not answer within 0.4 s" in o.content for o in observations[:10])
    assert observations[10].content == "3" and observations[10].duration_seconds < 0.2
    assert trickler.requests == 10
    # The requests really ended: no worker thread is still reading a trickle, so nothing piles up.
    waited = time.monotonic() + 1
    while any(t.name == "agentkit-tool-http_get" for t in threading.enumerate()) and time.monotonic() < waited:
        time.sleep(0.02)
    assert not any(t.name == "agentkit-tool-http_get" for t in threading.enumerate())
    again = registry.run(ToolCall(id="x", name="add", arguments={"a": 2, "b": 2}))
    assert again.content == "4" and again.duration_seconds < 0.2
