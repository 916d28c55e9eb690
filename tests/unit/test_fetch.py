"""The URL fetcher: schemes, address checks after resolution and on each redirect, limits.

Servers run on 127.0.0.1; "refused" cases must fail before any connection is attempted.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from shared.errors import LimitExceeded, UrlFetchFailed, UrlRefused
from shared.fetch import UrlFetcher, address_kind, system_resolver
from tests.localserver import LocalServer, body, redirect


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as local:
        yield local


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything opens a TCP connection."""

    def refuse(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr("urllib3.util.connection.create_connection", refuse)


def _resolve_to(address: str) -> Callable[[str, int], list[str]]:
    return lambda host, port: [address]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "non-global"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:8.8.8.8", None),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", "link-local"),  # 6to4 of 169.254.169.254
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("/etc/passwd", "scheme '(none)'"),
        ("ftp://example.org/a.jpg", "scheme 'ftp'"),
        ("gopher://example.org/", "scheme 'gopher'"),
        ("http:///nohost", "no host"),
        ("http://user:pw@example.org/a.jpg", "credentials"),
        ("http://127.0.0.1/a.jpg", "refused address: 127.0.0.1 is or resolves to a loopback address"),
        ("http://[::1]:8080/a.jpg", "refused address: ::1 is or resolves to a loopback address"),
        ("http://10.0.0.7/a.jpg", "a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("http://[::ffff:192.168.0.1]/", "a private address"),
        ("http://localhost:1/a.jpg", "refused address: localhost is or resolves to a loopback address"),
    ],
)
def test_refused_before_any_connection(no_connections: None, url: str, reason: str) -> None:
    with pytest.raises(UrlRefused, match=re.escape(reason)):
        UrlFetcher().fetch(url)


def test_host_resolving_to_a_private_address_is_refused(no_connections: None) -> None:
    fetcher = UrlFetcher(resolver=_resolve_to("10.0.0.1"))
    with pytest.raises(
        UrlRefused, match=r"refused address: images\.example is or resolves to a private address"
    ) as raised:
        fetcher.fetch("http://images.example/a.jpg")
    assert "10.0.0.1" not in raised.value.message  # no DNS oracle: the resolved address is never told


def test_refusal_of_a_name_never_tells_its_address(no_connections: None) -> None:
    with pytest.raises(UrlRefused) as raised:
        UrlFetcher().fetch("http://localhost:1/a.jpg")
    assert "127.0.0.1" not in raised.value.message and "::1" not in raised.value.message


def test_one_private_address_among_public_ones_is_refused(no_connections: None) -> None:
    fetcher = UrlFetcher(resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(UrlRefused, match="loopback"):
        fetcher.fetch("http://images.example/a.jpg")


def test_loopback_is_fetched_when_its_network_is_allowed(server: LocalServer) -> None:
    server.routes["/a.jpg"] = body(b"image bytes")
    assert UrlFetcher(allow=["127.0.0.1/32"]).fetch(server.url("/a.jpg")) == b"image bytes"


def test_allowed_host_name_connects_to_the_checked_address(server: LocalServer) -> None:
    server.routes["/a.jpg"] = body(b"pinned")
    fetcher = UrlFetcher(allow=["images.internal"], resolver=_resolve_to("127.0.0.1"))
    assert fetcher.fetch(server.url("/a.jpg", host="images.internal")) == b"pinned"
    assert server.hosts == [f"images.internal:{server.port}"]


def test_redirect_to_a_refused_address_is_refused(server: LocalServer) -> None:
    server.routes["/start"] = redirect(f"http://127.0.0.2:{server.port}/a.jpg")
    fetcher = UrlFetcher(allow=["127.0.0.1/32"])
    with pytest.raises(UrlRefused, match=r"redirect to 'http://127\.0\.0\.2:\d+/a\.jpg': .*loopback"):
        fetcher.fetch(server.url("/start"))
    assert len(server.hosts) == 1  # the refused hop was never requested


def test_redirects_are_followed_up_to_the_limit(server: LocalServer) -> None:
    server.routes["/a.jpg"] = body(b"after redirects")
    server.routes["/r1"] = redirect("/a.jpg")
    server.routes["/r2"] = redirect("/r1")
    server.routes["/r3"] = redirect("/r2")
    allowed = ["127.0.0.0/8"]
    assert UrlFetcher(allow=allowed, max_redirects=2).fetch(server.url("/r2")) == b"after redirects"
    with pytest.raises(UrlRefused, match="url_max_redirects=2"):
        UrlFetcher(allow=allowed, max_redirects=2).fetch(server.url("/r3"))


def test_redirect_to_a_file_url_is_refused(server: LocalServer) -> None:
    server.routes["/start"] = redirect("file:///etc/passwd")
    with pytest.raises(UrlRefused, match="scheme 'file'"):
        UrlFetcher(allow=["127.0.0.1"]).fetch(server.url("/start"))


def test_size_limit_from_header_and_from_the_stream(server: LocalServer) -> None:
    server.routes["/big"] = body(b"x" * 5000)

    def no_length(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(b"y" * 5000)

    server.routes["/stream"] = no_length
    fetcher = UrlFetcher(allow=["127.0.0.1"], max_bytes=1000)
    with pytest.raises(LimitExceeded, match="max_image_bytes=1000"):
        fetcher.fetch(server.url("/big"))
    with pytest.raises(LimitExceeded, match="max_image_bytes=1000"):
        fetcher.fetch(server.url("/stream"))


@pytest.mark.parametrize("length", ["\xb2", "-1", "1e3", "5, 5", "9" * 4301, ""])
def test_a_malformed_content_length_is_a_fetch_error(server: LocalServer, length: str) -> None:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", length)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(b"abc")

    server.routes["/odd"] = answer
    with pytest.raises(UrlFetchFailed, match="malformed Content-Length header") as failed:
        UrlFetcher(allow=["127.0.0.1"]).fetch(server.url("/odd"))
    assert failed.value.code == "url_fetch_failed"


def test_http_errors_and_timeouts_fail_cleanly(server: LocalServer) -> None:
    def slow(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(2)
        body(b"late")(handler)

    server.routes["/slow"] = slow
    fetcher = UrlFetcher(allow=["127.0.0.1"], timeout_s=0.5)
    with pytest.raises(UrlFetchFailed, match="HTTP status 404"):
        fetcher.fetch(server.url("/missing"))
    started = time.monotonic()
    with pytest.raises(UrlFetchFailed, match=r"took longer than url_timeout_s=0\.5$"):
        fetcher.fetch(server.url("/slow"))
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_a_fetch_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UrlFetchFailed, match=r"cannot connect to the server \(connection refused"):
        UrlFetcher(allow=["127.0.0.1"]).fetch(f"http://127.0.0.1:{port}/a.jpg")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for images.test (its own CA)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    names = ["-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test"]
    files = ["-keyout", key, "-out", cert, "-days", "1"]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", *files, *names],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[str, str]) -> Iterator[LocalServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with LocalServer(tls=context) as local:
        local.routes["/a.jpg"] = body(b"over tls")
        yield local


def test_https_connects_to_the_checked_address_and_verifies_the_host_name(
    tls_server: LocalServer, certificate: tuple[str, str]
) -> None:
    url = tls_server.url("/a.jpg", host="images.test")
    resolver = _resolve_to("127.0.0.1")
    trusted = UrlFetcher(allow=["images.test"], resolver=resolver, ca_certs=certificate[0])
    assert trusted.fetch(url) == b"over tls"
    assert tls_server.hosts == [f"images.test:{tls_server.port}"]
    # The same server under another name, or with the system's CAs only, is not trusted.
    renamed = UrlFetcher(allow=["other.test"], resolver=resolver, ca_certs=certificate[0])
    # Our words and OpenSSL's verdict on the certificate, never its source line (_ssl.c:NNNN).
    with pytest.raises(UrlFetchFailed, match="not trusted") as mismatch:
        renamed.fetch(tls_server.url("/a.jpg", host="other.test"))
    with pytest.raises(UrlFetchFailed, match="not trusted") as unknown_ca:
        UrlFetcher(allow=["images.test"], resolver=resolver).fetch(url)
    for refused in (mismatch.value, unknown_ca.value):
        assert "_ssl.c" not in refused.message and "SSLError" not in refused.message, refused.message
    assert "not valid for the URL's host name" in mismatch.value.message


def test_a_server_that_speaks_no_tls_or_no_http_is_described_in_our_words(server: LocalServer) -> None:
    fetcher = UrlFetcher(allow=["127.0.0.1"])
    with pytest.raises(UrlFetchFailed) as not_tls:
        fetcher.fetch(server.url("/a.jpg").replace("http://", "https://"))
    assert not_tls.value.message.endswith("TLS: the handshake with the server failed"), not_tls.value.message


def _recording(
    seen: list[dict[str, str]], then: Callable[[BaseHTTPRequestHandler], None]
) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        seen.append({name.lower(): value for name, value in handler.headers.items()})
        then(handler)

    return answer


def test_client_headers_go_to_the_urls_origin_only(server: LocalServer) -> None:
    seen_first: list[dict[str, str]] = []
    seen_other: list[dict[str, str]] = []
    with LocalServer() as other:
        other.routes["/b.jpg"] = _recording(seen_other, body(b"image bytes"))
        server.routes["/a.jpg"] = _recording(seen_first, redirect(other.url("/b.jpg")))
        fetcher = UrlFetcher(allow=["127.0.0.1/32"])
        headers = {"Authorization": "Bearer t", "user-agent": "client/1", "Cookie": "a=b"}
        assert fetcher.fetch(server.url("/a.jpg"), headers) == b"image bytes"
    (first,) = seen_first
    assert first["authorization"] == "Bearer t" and first["cookie"] == "a=b"
    assert first["user-agent"] == "client/1"  # replaces facerest's, case-insensitively
    assert first["accept-encoding"] == "identity"
    (other_origin,) = seen_other  # another port: another origin, no credentials
    assert "authorization" not in other_origin and "cookie" not in other_origin
    assert other_origin["user-agent"] == "facerest"


def _failing_resolver(error: Exception) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        raise error

    return resolve


@pytest.mark.parametrize(
    ("url", "resolver", "expected"),
    [
        ("http://[::1/a.jpg", None, "not a valid URL: its host or port cannot be read"),
        ("http://images.example:99999/a.jpg", None, "not a valid URL: its host or port cannot be read"),
        (
            "http://nowhere.example/a.jpg",
            _failing_resolver(socket.gaierror(-2, "Name or service not known")),
            "cannot resolve host 'nowhere.example': no such host, or DNS failed",
        ),
        # The system resolver's IDNA codec: "label empty or too long", "surrogates not allowed".
        (
            "http://a..b.example/a.jpg",
            system_resolver,
            "cannot resolve host 'a..b.example': not a valid host name",
        ),
        (
            "http://a\udc80.example/a.jpg",
            system_resolver,
            "cannot resolve host 'a\\udc80.example': not a valid host name",
        ),
    ],
)
def test_bad_urls_and_hosts_are_described_in_our_words(
    url: str, resolver: Callable[[str, int], list[str]] | None, expected: str
) -> None:
    fetcher = UrlFetcher(resolver=resolver) if resolver else UrlFetcher()
    with pytest.raises((UrlFetchFailed, UrlRefused)) as failed:
        fetcher.fetch(url)
    assert failed.value.message == expected
