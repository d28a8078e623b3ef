r"""HTTP tools that reach only the hosts you list, and never your own machine or network.

`http_tools(allowed_hosts=[...])` returns `http_get` (plus `http_post` with `allow_post=True`). Whatever
URL the model sends (prompt injection can steer it), a request is made only when:

* the scheme is http or https, the URL has no `user@` part and is at most MAX_URL_CHARS long;
* the host is in `allowed_hosts`: exact names, or `*.example.com` for any subdomain of example.com
  (not example.com itself); case-insensitive, IDNA-normalised, trailing dot ignored. IP literals in
  any spelling the OS accepts (`2130706433`, `0x7f000001`, `127.1`) are compared as addresses;
* EVERY address the host resolves to is public. Refused: loopback, private (RFC 1918, fc00::/7),
  link-local (169.254/16, fe80::/10), cloud metadata (169.254.169.254 ...), carrier-grade NAT
  (100.64/10), unspecified, multicast, reserved/documentation ranges, and IPv6 forms embedding one
  of those (::ffff:127.0.0.1, 6to4, NAT64). `allow_private=["127.0.0.1", "10.0.0.0/8"]` lets listed
  networks through; `allow_private=True` lets loopback, private, link-local, CGNAT and reserved
  through, but metadata, unspecified and multicast addresses still need listing;
* the connection goes to the very address that was checked: no second DNS lookup, so no rebinding;
* redirects are followed by hand, at most `max_redirects`, each hop checked like the first.

Limits (all enforced here, whatever the arguments): the body is read up to `max_response_bytes`
(default 1 MB; more is cut and the cut noted; gzip/deflate are inflated with the same cap), the whole
call including redirects has `timeout_seconds` (default 10 s; at that deadline the call's connections
are shut down, so a server trickling its headers cannot stretch it), at most `max_redirects` (default 3),
a POST body of at most `max_request_bytes` (default 100 kB). Binary content types are summarised,
not shown. Proxy environment variables (HTTP(S)_PROXY, ALL_PROXY) are ignored by the built-in client.

Example:
    >>> [get] = http_tools(allowed_hosts=["api.example.com", "169.254.169.254"])
    >>> get.name
    'http_get'
    >>> get(url="http://localhost:8080/admin")
    Traceback (most recent call last):
    ...
    agentkit.tools.http.HttpRefusedError: Host 'localhost' is not in allowed_hosts (169.254.169.254, api.example.com). Use a URL on one of those hosts.
    >>> get(url="http://169.254.169.254/latest/meta-data/")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    agentkit.tools.http.HttpRefusedError: Host '169.254.169.254' is refused: 169.254.169.254 is a cloud metadata address.
    Requests to loopback, private, link-local and other non-public addresses are not allowed.
    >>> get(url="https://api.example.com/items", params={"q": "x"})  # doctest: +SKIP
    'HTTP 200 OK\nURL: https://api.example.com/items?q=x\nContent-Type: application/json\n\n{"items": []}'
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Sequence
from typing import Any

import httpx

from agentkit.tool import Tool, tool

DEFAULT_MAX_RESPONSE_BYTES = 1_000_000
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_REDIRECTS = 3
DEFAULT_MAX_REQUEST_BYTES = 100_000
MAX_URL_CHARS = 2048
TIMEOUT_GRACE_SECONDS = 2.0  # the registry's limit for the call: timeout_seconds plus this
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_ALLOWED_BY_TRUE = ("loopback", "link-local", "carrier-grade NAT", "private", "reserved")
# IPv4 in the forms inet_aton accepts: 1 to 4 parts, decimal, 0-octal or 0x-hex ("127.1", "0x7f000001").
_NUMERIC_IPV4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$")
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_TEXT_SUBTYPES = ("json", "xml", "javascript", "ecmascript", "x-www-form-urlencoded", "yaml", "csv")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HttpToolError(ValueError):
    """The request failed (timeout, connection, undecodable response); the message says why."""


class HttpRefusedError(HttpToolError):
    """The request was refused before anything was sent: scheme, host, address or size not allowed."""


def _ip_literal(host: str) -> IPAddress | None:
    """The address `host` spells, normalised as the OS resolver would (inet_aton forms included)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise HttpRefusedError(f"{host!r} is not a valid IP address.") from None
    return None


def _normalise_host(host: str) -> str:
    """Lower-case, no trailing dot; IP literals in canonical form."""
    host = host.lower().removesuffix(".")
    ip = _ip_literal(host)
    return str(ip) if ip is not None else host


def _allowlist_entry(entry: object) -> str:
    text = _normalise_host(entry.strip()) if isinstance(entry, str) else ""
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    if not name or (any(c in name for c in "*/@: ") and _ip_literal(name) is None):
        raise ValueError(
            f"allowed_hosts entry {entry!r} is not a host name: write 'api.example.com' or '*.example.com' "
            "(no scheme, port or path)."
        )
    if _ip_literal(name) is not None:
        if wildcard:
            raise ValueError(f"allowed_hosts entry {entry!r}: a wildcard needs a domain name, not an address.")
        return name
    try:  # the same IDNA encoding httpx applies to request URLs
        name = httpx.URL(f"http://{name}/").raw_host.decode("ascii").lower()
    except httpx.InvalidURL as exc:
        raise ValueError(f"allowed_hosts entry {entry!r} is not a valid host name: {exc}.") from None
    return f"*.{name}" if wildcard else name


def _address_kind(ip: IPAddress) -> str | None:
    """What kind of non-public address `ip` is, or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # the kernel connects to the IPv4 address
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind, flag in (("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
                       ("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("carrier-grade NAT (100.64.0.0/10)", ip in _CGNAT), ("private", ip.is_private),
                       ("reserved", ip.is_reserved or not ip.is_global)):  # fmt: skip
        if flag:
            return kind
    if isinstance(ip, ipaddress.IPv6Address):  # IPv6 forms that tunnel to an embedded IPv4 address
        embedded = ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        inner = _address_kind(embedded) if embedded is not None else None
        if inner is not None:
            return f"{inner} (embeds {embedded})"
    return None


class _Deadline:
    """The end of one whole call, enforced on its sockets: at the deadline they are shut down.

    httpx's timeouts apply to each read, and every byte that arrives starts a new one, so a server that
    trickles its headers or body a line at a time would keep a call alive indefinitely (and, in the
    registry, keep a worker thread busy long after the call was given up). httpcore reports each new
    connection through the request's "trace" extension; a timer shuts those sockets down at the
    deadline, which ends whatever read is blocked on them. A duplicate of each socket is kept, so the
    shutdown reaches the connection even after TLS has wrapped (and detached) the original socket.
    """

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()  # our duplicates only: the connections themselves were closed by httpx
            self._sockets.clear()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's "trace" extension: watch every connection the request opens."""
        if event != "connection.connect_tcp.complete":
            return
        try:
            sock = info["return_value"].get_extra_info("socket").dup()
        except (AttributeError, KeyError, OSError):
            return  # a transport without a socket: its own timeouts apply
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read with end-of-file, in any thread
    except OSError:
        pass  # already closed by the peer


class _Fetcher:
    """The checks and the request loop shared by http_get and http_post."""

    def __init__(self, allowed_hosts: Sequence[str], allow_private: bool | Sequence[str], max_response_bytes: int,
                 timeout_seconds: float, max_redirects: int, max_request_bytes: int, client: httpx.Client | None) -> None:  # fmt: skip
        if isinstance(allowed_hosts, str) or not allowed_hosts:
            raise ValueError("allowed_hosts must be a non-empty list of host names, e.g. ['api.example.com'].")
        self.allowed = frozenset(_allowlist_entry(entry) for entry in allowed_hosts)
        self.allow_private: bool | tuple[Any, ...] = allow_private if isinstance(allow_private, bool) else ()
        try:
            if isinstance(allow_private, str):
                raise ValueError(f"got the string {allow_private!r}, not a list")
            if not isinstance(allow_private, bool):
                self.allow_private = tuple(ipaddress.ip_network(n.strip("[]"), strict=False) for n in allow_private)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"allow_private must be True/False or a list of networks like ['10.0.0.0/8']: {exc}.") from None
        if max_response_bytes < 1 or timeout_seconds <= 0 or max_redirects < 0 or max_request_bytes < 0:
            raise ValueError("max_response_bytes must be >= 1, timeout_seconds > 0, max_redirects and max_request_bytes >= 0.")
        if client is not None and not isinstance(client, httpx.Client):
            raise TypeError(f"client must be an httpx.Client, not {type(client).__name__}.")
        self.max_bytes, self.timeout, self.max_redirects = max_response_bytes, timeout_seconds, max_redirects
        self.max_request_bytes = max_request_bytes
        # No proxies from the environment (trust_env=False) and no kept-alive connections, so a connection
        # opened with one host's TLS name is never reused for another host on the same address.
        self.client = client or httpx.Client(trust_env=False, follow_redirects=False,
                                             limits=httpx.Limits(max_keepalive_connections=0))  # fmt: skip

    def host_allowed(self, host: str) -> bool:
        if host in self.allowed:
            return True
        return _ip_literal(host) is None and any(e.startswith("*.") and host.endswith(e[1:]) for e in self.allowed)

    def check(self, url: httpx.URL) -> tuple[str, list[IPAddress]]:
        """Refuse `url` unless scheme, host and every resolved address are allowed; return host and addresses."""
        if url.scheme not in ("http", "https"):
            raise HttpRefusedError(f"Only http and https URLs are allowed, not {url.scheme or 'a relative URL'!r}: {url}.")
        if url.userinfo:
            raise HttpRefusedError("URLs with a user name or password ('user@host') are not allowed; remove that part.")
        host = _normalise_host(url.raw_host.decode("ascii"))
        if not host or not self.host_allowed(host):
            raise HttpRefusedError(
                f"Host {host!r} is not in allowed_hosts ({', '.join(sorted(self.allowed))}). Use a URL on one of those hosts."
            )
        addresses = self.resolve(host, url.port or (443 if url.scheme == "https" else 80))
        problems = [f"{ip} is {kind}" for ip in addresses if (kind := self.refused_kind(ip))]
        if problems:
            raise HttpRefusedError(
                f"Host {host!r} is refused: {'; '.join(problems)}. Requests to loopback, private, link-local "
                "and other non-public addresses are not allowed."
            )
        return host, addresses

    def refused_kind(self, ip: IPAddress) -> str | None:
        if isinstance(self.allow_private, tuple):
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            if any(ip in net or (mapped is not None and mapped in net) for net in self.allow_private):
                return None
        kind = _address_kind(ip)
        if kind is not None and self.allow_private is True and kind.startswith(_ALLOWED_BY_TRUE):
            return None
        return kind

    @staticmethod
    def resolve(host: str, port: int) -> list[IPAddress]:
        literal = _ip_literal(host)
        if literal is not None:
            return [literal]
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise HttpToolError(f"Cannot resolve host {host!r}: {exc}.") from None
        families = (socket.AF_INET, socket.AF_INET6)
        addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0]) for i in infos if i[0] in families))
        if not addresses:
            raise HttpToolError(f"Host {host!r} has no IPv4 or IPv6 address.")
        return addresses

    def fetch(self, method: str, text: str, params: dict[str, Any] | None = None, body: Any = None) -> str:
        if len(text) > MAX_URL_CHARS:
            raise HttpRefusedError(f"The URL has {len(text)} characters; the limit is {MAX_URL_CHARS}.")
        try:
            url = httpx.URL(text.strip())
            url = url.copy_merge_params(params) if params else url
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise HttpRefusedError(f"{text!r} is not a valid URL ({exc}). Send an absolute http(s) URL.") from None
        if len(str(url)) > MAX_URL_CHARS:
            raise HttpRefusedError(f"The URL has {len(str(url))} characters; the limit is {MAX_URL_CHARS}.")
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        if content is not None and len(content) > self.max_request_bytes:
            raise HttpRefusedError(f"The JSON body has {len(content)} bytes; the limit is {self.max_request_bytes}.")
        with _Deadline(self.timeout) as deadline:  # one deadline for the whole call, redirects included
            return self.follow(method, url, content, deadline)

    def follow(self, method: str, url: httpx.URL, content: bytes | None, deadline: _Deadline) -> str:
        """Send the request and follow its redirects by hand, checking every hop like the first."""
        for hop in range(self.max_redirects + 1):
            host, addresses = self.check(url)
            response = self.send(method, url, host, addresses, content, deadline)
            try:
                location = response.headers.get("location")
                if response.status_code not in _REDIRECT_CODES or not location:
                    return self.render(response, url, hop, deadline)
                if hop == self.max_redirects:
                    raise HttpRefusedError(f"Too many redirects: {url} redirects again and the limit is {self.max_redirects}.")
                try:
                    url = url.join(location)
                except httpx.InvalidURL as exc:
                    raise HttpRefusedError(f"The redirect to {location!r} is not a valid URL ({exc}).") from None
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, content = "GET", None  # as browsers do
            finally:
                response.close()
        raise AssertionError("unreachable")  # the loop returns or raises

    def send(self, method: str, url: httpx.URL, host: str, addresses: list[IPAddress], content: bytes | None,
             deadline: _Deadline) -> httpx.Response:  # fmt: skip
        # Pinning against DNS rebinding: the request URL is rewritten to the address just checked, so the
        # transport connects to that IP literal and never resolves the name again. The Host header keeps
        # the name, and for https the TLS SNI and certificate check use it too (httpcore's "sni_hostname"
        # extension). Unlike a custom network backend, this works with any transport, an injected client's
        # included; the checks above ran before the client was touched.
        headers = {"Host": url.netloc.decode("ascii"), "Accept-Encoding": "gzip, deflate"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        failure: Exception | None = None
        for ip in addresses:
            remaining = deadline.remaining()
            if remaining <= 0:
                break
            extensions: dict[str, Any] = {"timeout": httpx.Timeout(remaining).as_dict(), "trace": deadline.trace}
            if url.scheme == "https" and _ip_literal(host) is None:
                extensions["sni_hostname"] = host
            request = httpx.Request(method, url.copy_with(host=str(ip)), headers=headers, content=content,
                                    extensions=extensions)  # fmt: skip
            try:
                return self.client.send(request, stream=True, follow_redirects=False)
            except httpx.HTTPError as exc:
                if deadline.expired or isinstance(exc, httpx.TimeoutException):
                    break  # a shut-down socket shows up as a closed connection: report the deadline
                if not isinstance(exc, httpx.ConnectError):
                    raise HttpToolError(f"The request to {url} failed: {type(exc).__name__}: {exc}.") from None
                failure = exc  # nothing was sent: try the next checked address
        if failure is None or deadline.expired:
            raise HttpToolError(f"{url} did not answer within {self.timeout:g} s (timeout_seconds).")
        raise HttpToolError(f"Cannot connect to {host} ({', '.join(map(str, addresses))}): {failure}.")

    def render(self, response: httpx.Response, url: httpx.URL, hops: int, deadline: _Deadline) -> str:
        content_type = response.headers.get("content-type", "")
        mime = content_type.split(";")[0].strip().lower()
        after = f" (after {hops} redirect{'s' if hops > 1 else ''})" if hops else ""
        head = f"HTTP {response.status_code} {response.reason_phrase}\nURL: {url}{after}\nContent-Type: {content_type or '(none)'}\n\n"
        textual = mime.startswith("text/") or mime.endswith(("+json", "+xml")) or mime.split("/")[-1] in _TEXT_SUBTYPES
        if mime and not textual:
            size = response.headers.get("content-length", "unknown")
            return head + f"[binary content ({mime}, {size} bytes) not shown: this tool returns text only]"
        data, truncated = self.read(response, url, deadline)
        if not mime and b"\x00" in data[:1024]:
            return head + "[binary content (no content type, contains NUL bytes) not shown: this tool returns text only]"
        try:
            decoder = codecs.getincrementaldecoder(response.charset_encoding or "utf-8")(errors="replace")
        except LookupError:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(data, final=not truncated)  # a character cut in half by the limit is dropped
        if truncated:
            text += f"\n[truncated: the body is longer than {self.max_bytes} bytes; only the first {self.max_bytes} are shown]"
        return head + text

    def read(self, response: httpx.Response, url: httpx.URL, deadline: _Deadline) -> tuple[bytes, bool]:
        """Read at most max_bytes (+1 to detect more) of the decoded body, within the deadline."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
            raise HttpToolError(f"{url} sent {encoding!r}-encoded content, which this tool cannot decode.")
        # Our own inflater, capped at the limit: httpx's would inflate a whole chunk (a gzip bomb) at once.
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding not in ("identity", "") else None
        body, raw = bytearray(), 0
        late = HttpToolError(f"{url} did not finish sending within {self.timeout:g} s (timeout_seconds).")
        try:
            for chunk in response.iter_raw():
                raw += len(chunk)
                body += inflater.decompress(chunk, self.max_bytes + 1 - len(body)) if inflater else chunk
                if len(body) > self.max_bytes or raw > self.max_bytes:
                    return bytes(body[: self.max_bytes]), True
                if deadline.remaining() <= 0:
                    raise late
        except httpx.TimeoutException:
            raise late from None
        except (httpx.HTTPError, zlib.error) as exc:
            if deadline.expired:
                raise late from None
            raise HttpToolError(f"Reading the response from {url} failed: {type(exc).__name__}: {exc}.") from None
        if deadline.expired:  # a body that ends when the connection closes: ours was closed by the deadline
            raise late
        return bytes(body), False


def http_tools(
    *,
    allowed_hosts: Sequence[str],
    allow_private: bool | Sequence[str] = False,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    allow_post: bool = False,
    client: httpx.Client | None = None,
) -> list[Tool]:
    """Build `http_get` (and `http_post` when `allow_post`) limited to `allowed_hosts`.

    `client` replaces the built-in httpx client (for tests, custom TLS or headers); the scheme, host
    and address checks, the pinning, the manual redirects and the limits apply to it all the same.
    Status codes 4xx/5xx are returned as text (the model reads the status line); refusals raise
    `HttpRefusedError`, failures `HttpToolError`, which the registry turns into error observations.

    Example:
        >>> tools = http_tools(allowed_hosts=["*.example.com"], allow_post=True, timeout_seconds=5)
        >>> [t.name for t in tools], tools[0].timeout
        (['http_get', 'http_post'], 7.0)
        >>> tools[1](url="https://api.example.com/v1", body={"q": "x" * 200_000})
        Traceback (most recent call last):
        ...
        agentkit.tools.http.HttpRefusedError: The JSON body has 200009 bytes; the limit is 100000.
    """
    fetcher = _Fetcher(allowed_hosts, allow_private, max_response_bytes, timeout_seconds, max_redirects,
                       max_request_bytes, client)  # fmt: skip
    hosts = ", ".join(sorted(fetcher.allowed))
    limit = timeout_seconds + TIMEOUT_GRACE_SECONDS

    @tool(timeout=limit, description=f"Fetch a URL with GET; returns status, content type and the text. Allowed hosts: {hosts}.")
    def http_get(url: str, params: dict[str, str | int | float | bool] | None = None) -> str:
        """Fetch a URL with GET.

        Args:
            url: absolute http(s) URL on an allowed host, e.g. "https://api.example.com/items".
            params: query parameters added to the URL, e.g. {"q": "paris"}.
        """
        return fetcher.fetch("GET", url, params=params)

    @tool(timeout=limit, description=f"Send a JSON body with POST; returns status, content type and the text. Allowed hosts: {hosts}.")
    def http_post(url: str, body: dict[str, Any]) -> str:
        """Send a JSON object with POST.

        Args:
            url: absolute http(s) URL on an allowed host.
            body: the JSON object to send.
        """
        return fetcher.fetch("POST", url, body=body)

    return [http_get, http_post] if allow_post else [http_get]
