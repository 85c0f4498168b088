"""SSRF-safe fetching of media URLs: an httpx client whose network only reaches public addresses.

The guard is a network backend under httpx's own transport: each new connection resolves its
host name once, refuses it if any resolved address is not globally routable (unless the name
is explicitly allowed to be private), and connects to the address it checked. The request's
Host header and the TLS SNI/certificate check keep the name, because httpx and httpcore never
learn that the socket was opened to a literal address. Redirects are followed by hand so that
every hop is checked again, and a response body is read only up to its cap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import certifi
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class FetchError(Exception):
    """A URL could not be fetched; ``code`` names the rule (``media_url_forbidden``, ...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Forbidden(FetchError):
    """The URL, or an address its host resolves to, may not be reached from the gateway."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "media_url_forbidden")


class TooLarge(FetchError):
    """The body is larger than the cap; reading stopped there."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "media_too_large")


@dataclass(frozen=True)
class FetchPolicy:
    """Which hosts may be fetched, and how long fetching may take."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_private_hosts: frozenset[str] = frozenset()
    connect_timeout_s: float = 5.0
    total_timeout_s: float = 30.0
    max_redirects: int = 5


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _norm(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """True only for a globally routable unicast address, embedded IPv4 forms included."""
    if (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or address.is_private
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:  # fec0::/10: deprecated (RFC 3879), still routed inside sites
            return False
        embedded = embedded_ipv4(address)
        if embedded is not None:
            # An IPv6 form of an IPv4 address is refused outright when the IPv4 one would be,
            # and mapped addresses always: the socket would really talk IPv4 to it.
            return address.ipv4_mapped is None and is_public(embedded)
    return True


def _host_allowed(host: str, allowed: Iterable[str]) -> bool:
    for pattern in allowed:
        pattern = _norm(pattern)
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host == pattern:
            return True
    return False


def check_url(url: httpx.URL, policy: FetchPolicy) -> None:
    """Refuse a URL by its shape alone: scheme, credentials, host allowlist."""
    if url.scheme not in ("http", "https"):
        raise Forbidden(f"Only http and https URLs can be fetched, not `{url.scheme}:`.")
    if url.userinfo:
        raise Forbidden("Media URLs may not carry credentials (user:password@).")
    host = _norm(url.host)
    if not host:
        raise Forbidden("The media URL has no host.")
    if policy.allowed_hosts and not _host_allowed(host, policy.allowed_hosts):
        raise Forbidden(f"The host `{host}` is not on this service's list of media hosts.")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves once, checks every address, then connects to a checked address."""

    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses ``host`` may be reached at; Forbidden if any of them is not allowed."""
        name = _norm(host)
        literal = _ip(name)
        if literal is not None:
            addresses = [literal]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise httpcore.ConnectError(f"cannot resolve {name}: {exc}") from exc
            addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        # A private host is allowed by the name the URL gives, never by what it resolves to.
        if _host_allowed(name, self._policy.allowed_private_hosts):
            return addresses
        for address in addresses:
            if not is_public(address):
                raise Forbidden(
                    f"The host `{name}` resolves to {address}, which is not a public address."
                )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address of ``host`` that answers."""
        error: Exception | None = None
        for address in await self.resolve(host, port):
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: media comes over TCP only."""
        raise Forbidden("Unix sockets cannot be used for media.")

    async def sleep(self, seconds: float) -> None:
        """Sleep, as the inner backend does."""
        await self._inner.sleep(seconds)


@cache
def _ssl_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle costs milliseconds that a request should not pay.
    return ssl.create_default_context(cafile=certifi.where())


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, on a connection pool whose network is the guarded backend."""

    def __init__(self, policy: FetchPolicy) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        # httpx takes no network backend, so its pool is rebuilt around ours (the rest of the
        # transport, request mapping and error translation, stays httpx's).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(), network_backend=GuardedBackend(policy)
        )


def client(policy: FetchPolicy) -> httpx.AsyncClient:
    """An httpx client that only reaches what ``policy`` allows; redirects are left to fetch."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy),
        follow_redirects=False,
        # Compressed bodies would be inflated past the cap in one chunk; ask for them plain.
        headers={"accept-encoding": "identity", "user-agent": "visiongate-media-fetch"},
        trust_env=False,  # an environment proxy would connect on our behalf, unchecked
        timeout=httpx.Timeout(policy.total_timeout_s, connect=policy.connect_timeout_s),
    )


async def fetch(http: httpx.AsyncClient, url: str, policy: FetchPolicy, max_bytes: int) -> bytes:
    """GET ``url``, following checked redirects, reading at most ``max_bytes`` of its body."""
    try:
        async with asyncio.timeout(policy.total_timeout_s):
            return await _fetch(http, httpx.URL(url), policy, max_bytes)
    except TimeoutError:
        raise FetchError(
            f"Fetching the media URL took longer than {policy.total_timeout_s:g} s.",
            "media_fetch_failed",
        ) from None
    except httpx.InvalidURL as exc:
        raise FetchError(f"The media URL is not valid ({exc}).", "invalid_media_url") from None
    except httpx.HTTPError as exc:
        raise FetchError(
            f"The media URL could not be fetched ({type(exc).__name__}: {exc}).",
            "media_fetch_failed",
        ) from None


async def _fetch(http: httpx.AsyncClient, url: httpx.URL, policy: FetchPolicy, cap: int) -> bytes:
    for _ in range(policy.max_redirects + 1):
        check_url(url, policy)
        async with http.stream("GET", url) as response:
            if response.status_code in _REDIRECTS and "location" in response.headers:
                url = url.join(response.headers["location"])
                continue
            if response.status_code != 200:
                raise FetchError(
                    f"The media URL answered HTTP {response.status_code}.", "media_fetch_failed"
                )
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise TooLarge(f"The media at this URL is {int(declared)} bytes; at most {cap}.")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > cap:
                    raise TooLarge(f"The media at this URL is larger than {cap} bytes.")
            return bytes(body)
    raise FetchError(
        f"The media URL redirected more than {policy.max_redirects} times.", "media_fetch_failed"
    )
