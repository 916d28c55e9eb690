"""Fetch images named by URL without letting a client reach into the service's own network (SSRF).

Every hop (the URL and each redirect) is resolved once, every resolved address is checked, and the
connection goes to the checked address (the Host header and TLS name stay the URL's host), so a
second DNS answer cannot swap in an internal address between check and connect (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.util.ssl_match_hostname import CertificateError

from shared.errors import LimitExceeded, UrlFetchFailed, UrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

SCHEMES = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
# [0-9], not \d (every script's digits); 18 digits are far past any byte limit.
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


def describe_failure(
    exc: urllib3.exceptions.HTTPError,
    timeout_s: float,
    *,
    peer: str = "server",
    timeout_setting: str = "url_timeout_s",
    action: str = "fetch",
) -> str:
    """What went wrong with a request to ``peer`` (an image URL's server, a webhook's receiver),
    in our words: urllib3's and OpenSSL's texts carry object reprs and source lines
    (``(_ssl.c:1000)``) that mean nothing to a client."""
    if isinstance(exc, urllib3.exceptions.SSLError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, ssl.SSLCertVerificationError):
            # OpenSSL's verdict on the certificate ("self-signed certificate", "certificate has
            # expired", a host-name mismatch): short, and what the client must fix.
            return f"TLS: the {peer}'s certificate is not trusted ({reason.verify_message})"
        if isinstance(reason, CertificateError):  # urllib3's own check of the URL's host name
            return f"TLS: the {peer}'s certificate is not trusted (it is not valid for the URL's host name)"
        return f"TLS: the handshake with the {peer} failed"
    # Before the timeouts: urllib3 2 makes NewConnectionError a ConnectTimeoutError too.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return f"cannot connect to the {peer} (connection refused, or the address is unreachable)"
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return f"took longer than {timeout_setting}={timeout_s}"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return f"the connection broke off (the {peer} closed it, or its answer is not HTTP)"
    return f"the {action} failed ({type(exc).__name__})"


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_kind(address: IPAddress) -> str | None:
    """Why an address must not be fetched from (``None``: a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo server) are judged by it.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[0]
        if embedded is not None:
            kind = address_kind(embedded)
            if kind is not None:
                return kind
            if address.ipv4_mapped is not None:
                return None
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


@dataclass(frozen=True, slots=True)
class Hop:
    """One checked connection target: the URL's parts and the address that passed the policy."""

    scheme: str
    host: str
    port: int
    target: str  # path and query
    address: str  # the checked address to connect to


class UrlPolicy:
    """Which URLs the service may connect to (SSRF rules): http(s) only, no credentials in the URL,
    and every resolved address public unless listed in ``allow`` (CIDRs or host names). One
    policy for image URLs (FACEREST_URL_ALLOW) and webhooks (FACEREST_WEBHOOK_ALLOW)."""

    def __init__(
        self, allow: Sequence[str] = (), resolver: Resolver = system_resolver, setting: str = ""
    ) -> None:
        """``setting``: the variable that lists the allowed addresses, named in a refusal."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        self._networks = tuple(networks)
        self._hosts = frozenset(hosts)
        self._resolve = resolver
        self._setting = setting or "FACEREST_URL_ALLOW"

    def check(self, url: str) -> Hop:
        """Resolve ``url``'s host once and check every address; the hop to connect to, or a
        domain error (UrlRefused, UrlFetchFailed when the host cannot be resolved)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UrlRefused("not a valid URL: its host or port cannot be read") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise UrlRefused(f"scheme {scheme or '(none)'!r} is not allowed; use http or https")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise UrlRefused("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise UrlRefused("credentials in URLs are not accepted")
        port = port or SCHEMES[scheme]
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in self._resolve(host, port)]
        except (UnicodeError, ValueError):  # IDNA: an empty or over-long label, a lone surrogate
            raise UrlFetchFailed(f"cannot resolve host {host!a}: not a valid host name") from None
        except OSError:
            raise UrlFetchFailed(f"cannot resolve host {host!r}: no such host, or DNS failed") from None
        if not addresses:
            raise UrlFetchFailed(f"host {host!r} has no address")
        # Every address must pass: a client must not pick the one a connection happens to use.
        if host.lower() not in self._hosts:
            for address in addresses:
                kind = address_kind(address)
                if kind is not None and not any(address in net for net in self._networks):
                    # Never the resolved address: that would tell any client what internal
                    # names resolve to (a DNS oracle). The URL and the category are enough.
                    raise UrlRefused(
                        f"refused address: {host} is or resolves to a {kind} address (not in {self._setting})"
                    )
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return Hop(scheme, host, port, target, str(addresses[0]))


def open_pool(hop: Hop, timeout: urllib3.Timeout, ca_certs: str | None = None) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to the hop's checked address; TLS verifies the URL's host name. The
    caller closes it."""
    if hop.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            hop.address,
            hop.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=hop.host,
            assert_hostname=hop.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
        )
    return urllib3.HTTPConnectionPool(hop.address, hop.port, timeout=timeout, retries=False, maxsize=1)


def host_header(hop: Hop) -> str:
    """The Host header of a hop: the URL's host (bracketed for IPv6), and its port unless the default."""
    default_port = SCHEMES[hop.scheme] == hop.port
    host = f"[{hop.host}]" if ":" in hop.host else hop.host
    return host if default_port else f"{host}:{hop.port}"


class UrlFetcher:
    """Fetches one URL at a time under a policy; safe to share between threads."""

    def __init__(
        self,
        allow: Sequence[str] = (),
        timeout_s: float = 10.0,
        max_redirects: int = 3,
        max_bytes: int = 16 * 1024 * 1024,
        resolver: Resolver = system_resolver,
        ca_certs: str | None = None,
        limit_name: str = "max_image_bytes",
    ) -> None:
        """``ca_certs``: a PEM file of CAs to trust instead of the system's (a private CA);
        ``limit_name``: the setting ``max_bytes`` comes from, named in the error past it."""
        self._limit_name = limit_name
        self._policy = UrlPolicy(allow, resolver)
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self._max_bytes = max_bytes
        self._ca_certs = ca_certs

    def fetch(
        self, url: str, headers: Mapping[str, str] | None = None, sink: BinaryIO | None = None
    ) -> bytes:
        """The body of ``url`` after at most ``max_redirects`` redirects; raises a domain error.

        ``headers`` (a client's ``img_req_headers``: a cookie, a token) go to the URL's own
        origin only: a redirect elsewhere must not carry a client's credentials to a third host.
        The fetcher's own Host and Accept-Encoding always win (api/schemas/images.py refuses them).
        With ``sink`` the body is written there as it arrives (a video, never whole in memory)
        and b"" returned.
        """
        deadline = time.monotonic() + self._timeout_s
        current = url
        origin: tuple[str, str, int] | None = None
        for hop_number in range(self._max_redirects + 1):
            where = "" if hop_number == 0 else f"redirect to {current!r}: "
            try:
                hop = self._policy.check(current)
            except UrlRefused as exc:
                raise UrlRefused(where + exc.message) from None
            origin = origin or (hop.scheme, hop.host.lower(), hop.port)
            same_origin = (hop.scheme, hop.host.lower(), hop.port) == origin
            response = self._request(hop, deadline, where, headers if same_origin else None)
            try:
                if response.status in REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise UrlFetchFailed(f"{where}HTTP {response.status} without a Location header")
                    current = urljoin(current, location)
                    continue
                if response.status != 200:
                    raise UrlFetchFailed(f"{where}HTTP status {response.status}")
                return self._read(response, deadline, where, sink)
            finally:
                # Closed, not only released: a body left unread (a refused length, a redirect)
                # would otherwise keep its socket open until garbage collection. The pool is
                # this hop's own (closed in _request), so nothing is reused anyway.
                response.close()
                response.release_conn()
        raise UrlRefused(f"more than url_max_redirects={self._max_redirects} redirects")

    def _request(
        self, hop: Hop, deadline: float, where: str, extra: Mapping[str, str] | None
    ) -> urllib3.BaseHTTPResponse:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UrlFetchFailed(f"{where}took longer than url_timeout_s={self._timeout_s}")
        timeout = urllib3.Timeout(connect=remaining, read=remaining)
        pool = open_pool(hop, timeout, self._ca_certs)
        # Case-insensitive: a client's "user-agent" replaces ours instead of going out twice.
        headers = urllib3.HTTPHeaderDict({"User-Agent": "facerest", "Accept": "image/*"})
        headers.update(extra or {})
        headers["Host"] = host_header(hop)
        # Compressed transfer could hide a bomb behind the byte limit.
        headers["Accept-Encoding"] = "identity"
        try:
            return pool.urlopen(
                "GET",
                hop.target,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise UrlFetchFailed(where + describe_failure(exc, self._timeout_s)) from None
        finally:
            pool.close()

    def _read(
        self, response: urllib3.BaseHTTPResponse, deadline: float, where: str, sink: BinaryIO | None
    ) -> bytes:
        length = response.headers.get("Content-Length")
        if length is not None:
            # ASCII digits only: isdigit() passes "²", which int() refuses, and int() reads
            # other scripts' digits ("٣" is 3); a length we cannot read is the server's fault.
            if not CONTENT_LENGTH.fullmatch(length):
                raise UrlFetchFailed(f"{where}malformed Content-Length header {length[:20]!r}")
            if int(length) > self._max_bytes:
                raise LimitExceeded(f"{where}{length} bytes, more than {self._limit_name}={self._max_bytes}")
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.read1(CHUNK_BYTES, decode_content=False):
                size += len(chunk)
                if size > self._max_bytes:
                    raise LimitExceeded(f"{where}more than {self._limit_name}={self._max_bytes}")
                if time.monotonic() > deadline:
                    raise UrlFetchFailed(f"{where}took longer than url_timeout_s={self._timeout_s}")
                if sink is None:
                    chunks.append(chunk)
                else:
                    sink.write(chunk)
        except urllib3.exceptions.HTTPError as exc:
            raise UrlFetchFailed(where + describe_failure(exc, self._timeout_s)) from None
        return b"".join(chunks)
