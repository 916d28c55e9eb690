"""Optional API keys: ``X-API-Key`` (or ``Authorization: Bearer``) checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence

from flask import g, request

from shared.errors import InvalidApiKey, MissingApiKey
from shared.settings import Network, SettingsError

# The word of a key entry that gives the key's default webhook URL.
CALLBACK_OPTION = "callback="
# The collection list that names every collection (never a collection name: names start with a
# letter or digit).
ALL_COLLECTIONS = "*"

# Load balancers and people reading the docs or opening the web page (where they type their key)
# need these without a key; they hold no user data.
OPEN_ENDPOINTS = frozenset(
    {
        "status.health",
        "status.ready",
        "docs.index",
        "docs.openapi",
        "docs.docs",
        "docs.docs_static",
        "ui.page",
        "ui.static",
    }
)


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest from leaking the keys' lengths.
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The accepted keys, kept only as SHA-256 digests; empty means authentication is off.

    An entry ``KEY COLLECTION...`` (the key, then collection names, separated by spaces) limits
    that key to those collections; ``KEY *`` may use every collection, and so may a bare ``KEY``
    (as before ``*`` existed: ``unlimited_bare`` counts those, for a notice at start).
    A ``callback=URL`` word anywhere after the key is the key's default webhook URL (no
    collection name has a ``=``): its jobs without a callback_url of their own report there.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        words = [entry.split() for entry in entries]
        self._digests = tuple(_digest(parts[0]) for parts in words if parts)
        self._collections: dict[bytes, frozenset[str]] = {}
        self._first: dict[bytes, str] = {}  # the first collection an entry lists
        self._callbacks: dict[bytes, str] = {}
        parsed = []
        for parts in words:
            options = [word for word in parts[1:] if word.startswith(CALLBACK_OPTION)]
            if len(options) > 1:
                raise SettingsError(f"an API key entry names {CALLBACK_OPTION!r} more than once")
            if options and parts:
                self._callbacks[_digest(parts[0])] = options[0].removeprefix(CALLBACK_OPTION)
            parsed.append([word for word in parts if not word.startswith(CALLBACK_OPTION)])
        self.unlimited_bare = 0
        for parts in parsed:
            if len(parts) == 1:
                self.unlimited_bare += 1
            elif ALL_COLLECTIONS in parts[1:]:
                if len(parts) > 2:  # "KEY * staff" is a mistake either way it is read
                    raise SettingsError(
                        f"an API key entry with {ALL_COLLECTIONS!r} (every collection) names no collections "
                        "beside it"
                    )
            elif len(parts) > 1:
                self._collections[_digest(parts[0])] = frozenset(parts[1:])
                self._first[_digest(parts[0])] = parts[1]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def scope(self, presented: str | None) -> str:
        """Whose request this is, for keys a client chooses (Idempotency-Key): the digest of its API
        key, so that clients cannot see each other's jobs; "" (one shared scope) with keys off."""
        if not self.enabled or not presented:
            return ""
        return _digest(presented).hex()

    @property
    def callbacks(self) -> tuple[str, ...]:
        """Every key's default webhook URL (checked at start: they need a secret to sign with)."""
        return tuple(self._callbacks.values())

    def default_callback(self, presented: str | None) -> str:
        """The (already checked) key's default webhook URL; "" without one, or with keys off."""
        if not self.enabled or not presented:
            return ""
        return self._callbacks.get(_digest(presented), "")

    def may_use(self, presented: str | None, collection: str) -> bool:
        """Whether the (already checked) key may use ``collection``."""
        if not self.enabled or not presented:
            return True
        allowed = self._collections.get(_digest(presented))
        return allowed is None or collection in allowed

    def home_collection(self, presented: str | None, default: str) -> str:
        """The collection a protocol without collection names uses (api/compat/): the first one
        the key's entry lists, else (keys off, ``KEY *``, a bare key) ``default``."""
        if not self.enabled or not presented:
            return default
        return self._first.get(_digest(presented), default)

    def check(self, presented: str | None) -> None:
        """Raise unless ``presented`` is one of the keys; every key is compared, match or not."""
        if not presented:
            raise MissingApiKey("this endpoint needs an API key in the X-API-Key header")
        candidate = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        if not matched:
            raise InvalidApiKey("the API key is not valid")


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key in an ``X-API-Key`` header, else in ``Authorization: Bearer KEY``; None without one."""
    if x_api_key:
        return x_api_key
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


# Where a foreign protocol puts the key it read from its own place (DeepStack's api_key form
# field: api/compat/deepstack.py), for request_key.
PROTOCOL_KEY = "protocol_api_key"


def request_key() -> str | None:
    """The API key the current request presents: the one place a request's key is read (headers,
    else what a protocol found in its own field)."""
    key = presented_key(request.headers.get("X-API-Key"), request.headers.get("Authorization"))
    if key is None:
        found: str | None = g.get(PROTOCOL_KEY)
        return found or None
    return key


def request_owner(keys: ApiKeys) -> str:
    """Whose request this is: its API key's digest ("" with keys off); its jobs are its own."""
    return keys.scope(request_key())


def share_owner(keys: ApiKeys, trusted: Sequence[Network]) -> str:
    """Whose share of the queue a request takes (api/submit.py): its API key's digest, or with
    keys off its client's address (client_address)."""
    owner = request_owner(keys)
    return owner if owner else f"addr:{client_address(request.remote_addr or '', _forwarded(), trusted)}"


def _forwarded() -> list[str]:
    """X-Forwarded-For's hops, nearest last, across repeated headers (in their order)."""
    return [hop.strip() for value in request.headers.getlist("X-Forwarded-For") for hop in value.split(",")]


def client_address(peer: str, forwarded: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: the TCP peer's, unless the peer is a trusted proxy
    (FACEREST_TRUSTED_PROXIES); then the nearest X-Forwarded-For hop that is not one. Each proxy
    appends the address it got the request from, so the hops left of the first untrusted one are
    the client's to write: never read. A hop that is no address ends the walk at the proxy."""

    def is_trusted(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in trusted)

    address = peer
    try:
        if not is_trusted(address):
            return address
        for hop in reversed(forwarded):
            if not is_trusted(hop):
                return str(ipaddress.ip_address(hop))
            address = hop
    except ValueError:
        pass
    return address
